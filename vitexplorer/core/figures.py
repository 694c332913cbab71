"""Publication figures (PNG, SVG, PDF) of overlays, with colour bar and caption.

Built on matplotlib's object API (``Figure`` + Agg canvas, no pyplot) so it never touches a
GUI backend; the GUI's export and ``vitexplorer export`` call these same functions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from vitexplorer.core.analysis import Analysis
from vitexplorer.core.constants import FORMATS, METHOD_LABELS
from vitexplorer.core.render import display_range, overlay


def describe(analysis: Analysis, method: str, layer: int | None, head: int | None,
             target: int | None = None) -> str:
    """Caption text: model, method, layer, head, class."""
    parts = [analysis.model_label, METHOD_LABELS.get(method, method)]
    if not analysis.layout.has_class_token and method in ("head", "head-rollout"):
        parts[-1] += " (mean attention received: no class token)"
    if layer is not None:
        parts.append(f"layer {layer % analysis.num_layers}")
    if head is not None and method in ("head", "head-rollout"):
        parts.append(f"head {head}")
    if method in ("grad-rollout", "relevance"):
        t = analysis.top_k(1)[0][0] if target is None else target
        parts.append(f"class {t}: {analysis.class_name(t)}")
    return " · ".join(parts)


def overlay_figure(
    analysis: Analysis,
    method: str = "head",
    layer: int = -1,
    head: int = 0,
    target: int | None = None,
    cmap: str = "inferno",
    opacity: float = 0.6,
    scaling: str = "minmax",
    contour: float | None = 0.6,
    fusion: str = "mean",
    discard: float = 0.0,
) -> Figure:
    """One overlay with a colour bar (share of the map's mass per patch, in %) and a caption."""
    grid = analysis.map(method, layer, head, fusion, discard, target)
    img = overlay(analysis.image, grid, analysis.geometry, cmap, opacity, scaling,
                  contour=contour)
    h, w = img.shape[:2]
    fig = Figure(figsize=(6.6, 5.4 * h / w + 1.0), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(img)
    ax.set_axis_off()
    lo, hi = display_range(grid, scaling)
    sm = ScalarMappable(Normalize(lo * 100, hi * 100), cmap)
    fig.colorbar(sm, ax=ax, shrink=0.8, label="attention per patch (% of map mass)")
    shown_layer = layer if method in ("head", "head-rollout", "rollout") else None
    caption = describe(analysis, method, shown_layer, head, target)
    if contour:
        caption += f"\ncontour: patches holding {contour:.0%} of the mass"
    fig.suptitle(Path(analysis.source).name, fontsize=10)
    fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=8, wrap=True)
    return fig


def grid_figure(
    analysis: Analysis,
    method: str = "head",
    layer: int | None = None,
    cmap: str = "inferno",
    opacity: float = 0.6,
    scaling: str = "minmax",
    fusion: str = "mean",
    discard: float = 0.0,
    frames: np.ndarray | None = None,
) -> Figure:
    """All heads of one layer (one row), or of every layer (``layer=None``: L rows x H cols).

    ``frames`` optionally gives an RGB colour per [layer, head] cell (group colours).
    """
    layers = list(range(analysis.num_layers)) if layer is None else [layer % analysis.num_layers]
    heads = analysis.num_heads
    cell = 1.3 if len(layers) > 1 else 2.0
    aspect = analysis.image.shape[0] / analysis.image.shape[1]
    fig = Figure(figsize=(cell * heads + 0.6, cell * aspect * len(layers) + 0.7),
                 layout="constrained")
    axes = fig.subplots(len(layers), heads, squeeze=False)
    for r, li in enumerate(layers):
        for h in range(heads):
            ax = axes[r, h]
            grid = analysis.map(method, li, h, fusion, discard)
            ax.imshow(overlay(analysis.image, grid, analysis.geometry, cmap, opacity, scaling))
            ax.set_xticks([])
            ax.set_yticks([])
            if frames is not None:
                for s in ax.spines.values():
                    s.set_edgecolor(frames[li, h])
                    s.set_linewidth(3)
            if r == 0:
                ax.set_title(f"head {h}", fontsize=8)
            if h == 0:
                ax.set_ylabel(f"layer {li}", fontsize=8)
    fig.suptitle(f"{Path(analysis.source).name}: {describe(analysis, method, None, None)}",
                 fontsize=9)
    return fig


def save_figure(fig: Figure, path: str | Path, fmt: str | None = None, dpi: int = 150) -> Path:
    """Write ``fig`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; choose one of {FORMATS}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=dpi, metadata=_metadata(fmt))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _metadata(fmt: str) -> dict:
    from vitexplorer import __version__

    key = {"png": "Software", "pdf": "Creator", "svg": "Creator"}[fmt]
    return {key: f"vitexplorer {__version__}"}
