"""Publication figures (PNG, SVG, PDF) of overlays, with colour bar and caption.

Built on matplotlib's object API (``Figure`` + Agg canvas, no pyplot) so it never touches a
GUI backend; the GUI's export and ``vitexplorer export`` call these same functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from vitexplorer.core.analysis import Analysis
from vitexplorer.core.constants import FORMATS, METHOD_LABELS
from vitexplorer.core.files import atomic_writer
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


def group_grid_figure(analysis: Analysis, table, method: str = "head", cmap: str = "inferno",
                      opacity: float = 0.6, scaling: str = "minmax") -> Figure:
    """Every layer x head map, each framed in its group's colour, with a legend."""
    from matplotlib.patches import Patch

    from vitexplorer.core.constants import GROUP_COLOURS

    groups = table.groups()
    frames = np.vectorize(lambda g: GROUP_COLOURS.get(g, GROUP_COLOURS["none"]))(groups)
    fig = grid_figure(analysis, method, None, cmap, opacity, scaling, frames=frames)
    present = [g for g in GROUP_COLOURS if (groups == g).any()]
    handles = [Patch(facecolor="none", edgecolor=GROUP_COLOURS[g], linewidth=3,
                     label=f"{g} ({int((groups == g).sum())})") for g in present]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)),
               fontsize=8, frameon=False)
    return fig


def similarity_figure(analysis: Analysis, clustering, divergence: np.ndarray) -> Figure:
    """Left: the heads' Jensen-Shannon distances in cluster order, clusters outlined.
    Right: mean pairwise distance between the heads of each layer, by depth."""
    from matplotlib.patches import Rectangle

    order = clustering.order
    d = clustering.distances[np.ix_(order, order)]
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.25, 1])
    im = ax.imshow(d, cmap="viridis_r", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8, label="Jensen-Shannon distance")
    labels = clustering.labels[order]
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            if i - start > 1:
                ax.add_patch(Rectangle((start - 0.5, start - 0.5), i - start, i - start,
                                       fill=False, edgecolor="red", linewidth=1.2))
            start = i
    n = len(order)
    step = max(1, n // 24)
    ticks = list(range(0, n, step))
    names = [f"{clustering.cells[order[i]][0]}.{clustering.cells[order[i]][1]}" for i in ticks]
    ax.set_xticks(ticks, names, rotation=90, fontsize=6)
    ax.set_yticks(ticks, names, fontsize=6)
    ax.set_title(f"Head similarity ({int(clustering.labels.max())} clusters)", fontsize=10)
    ax2.plot(np.arange(len(divergence)), divergence, marker="o")
    from matplotlib.ticker import MaxNLocator

    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.set_xlabel("layer")
    ax2.set_ylabel("mean JS distance between the layer's heads")
    ax2.set_ylim(0, max(0.05, float(np.max(divergence)) * 1.15))
    ax2.grid(alpha=0.3)
    ax2.set_title("Divergence across depth", fontsize=10)
    fig.suptitle(f"{Path(analysis.source).name}: {analysis.model_label}", fontsize=10)
    return fig


def profile_figure(profile) -> Figure:
    """The L x H grid of a folder's heads, coloured by majority group, with its share."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    from vitexplorer.core.constants import AXES, GROUP_COLOURS

    groups = profile.majority_group()
    n_l, n_h = groups.shape
    rgb = np.array([[to_rgb(GROUP_COLOURS[g]) for g in row] for row in groups])
    fig = Figure(figsize=(max(4.0, 0.55 * n_h + 2.5), max(3.0, 0.4 * n_l + 1.8)),
                 layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(rgb, aspect="auto")
    for li in range(n_l):
        for h in range(n_h):
            g = groups[li, h]
            if g == "none":
                continue
            axis = next(a for a in AXES if g in profile.label_freq[a])
            share = profile.label_freq[axis][g][li, h]
            ax.text(h, li, f"{share:.0%}", ha="center", va="center", fontsize=6,
                    color="white")
    ax.set_xticks(range(n_h), [str(h) for h in range(n_h)], fontsize=7)
    ax.set_yticks(range(n_l), [str(li) for li in range(n_l)], fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    present = [g for g in GROUP_COLOURS if (groups == g).any()]
    fig.legend(handles=[Patch(color=GROUP_COLOURS[g], label=g) for g in present],
               loc="outside right upper", fontsize=7, frameon=False)
    ax.set_title(f"Majority group of each head over {profile.n_images} images "
                 "(share of images)", fontsize=9)
    return fig


def save_figure(fig: Figure, path: str | Path, fmt: str | None = None, dpi: int = 150) -> Path:
    """Write ``fig`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; choose one of {FORMATS}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_writer(path) as fh:
        fig.savefig(fh, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    return path


def _metadata(fmt: str) -> dict:
    from vitexplorer import __version__

    key = {"png": "Software", "pdf": "Creator", "svg": "Creator"}[fmt]
    return {key: f"vitexplorer {__version__}"}
