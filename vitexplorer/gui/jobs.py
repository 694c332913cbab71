"""The functions the GUI runs in worker threads: thin calls into the core, no widgets.

Each takes ``should_stop`` (polled by the core between blocks) and returns plain data; the
conversion to pixmaps happens on the GUI thread.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitexplorer.core.constants import DISPLAY_SIDE, MASS_SHARE
from vitexplorer.core.images import display_size
from vitexplorer.core.render import overlay
from vitexplorer.gui.state import Drawing, FinishedAnalysis, HeadGroups

if TYPE_CHECKING:
    from collections import deque

    from matplotlib.figure import Figure

    from vitexplorer.core.analysis import Analysis
    from vitexplorer.core.figures import FigureOptions
    from vitexplorer.core.masks import Foreground
    from vitexplorer.core.models import LoadedModel

THUMB = 72  # head-grid thumbnail size (longest side, pixels)
DISPLAY_MAX = DISPLAY_SIDE  # longest side of the image the view renders on


def load_model_job(spec: str, weights: str, model_kwargs: dict | None = None,
                   should_stop=None) -> LoadedModel:
    from vitexplorer.core.models import load_model

    loaded = load_model(spec, weights, **(model_kwargs or {}))
    preload()
    return loaded


def preload() -> None:
    """Import what the analysis needs now, while a model loads anyway.

    An import holds the interpreter lock for long stretches (matplotlib alone stalled the
    event loop for 240 ms when first imported during an analysis).
    """
    import importlib

    for name in ("scipy.cluster.hierarchy", "scipy.spatial.distance",
                 "vitexplorer.core.analysis", "vitexplorer.core.heads",
                 "vitexplorer.core.masks", "vitexplorer.core.relations"):
        importlib.import_module(name)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))  # a first draw loads the fonts (another long lock)
    fig.add_subplot().set_title("warm-up")
    FigureCanvasAgg(fig).draw()


def decode_job(path: str, should_stop=None) -> np.ndarray:
    from vitexplorer.core.images import load_image

    return load_image(path)


def resized(image: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, longest / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    dh, dw = display_size((h, w), longest)
    return cv2.resize(image, (dw, dh), interpolation=cv2.INTER_AREA), scale


def head_thumbnails(analysis: Analysis, method: str, cmap: str, fusion: str = "mean",
                    discard: float = 0.0) -> np.ndarray:
    """Overlays of every (layer, head) map on a thumbnail-sized copy of the image."""
    small, scale = resized(analysis.image, THUMB)
    geom = analysis.geometry.scaled(scale)
    if geom.image_size != small.shape[:2]:
        geom = type(geom)(small.shape[:2], geom.input_size, geom.grid, geom.box)
    maps = (analysis.head_maps() if method == "head"
            else analysis.head_rollout_maps(fusion, discard)).numpy()
    out = np.empty((*maps.shape[:2], *small.shape), np.uint8)
    for li in range(maps.shape[0]):
        for h in range(maps.shape[1]):
            out[li, h] = overlay(small, maps[li, h], geom, cmap, 0.75)
    return out


def analyze_job(loaded: LoadedModel, image: str | np.ndarray, source: str, policy: str,
                cmap: str, mask_mode: str = "centre", should_stop=None) -> FinishedAnalysis:
    """Forward + the maps every view needs at once (head maps, rollouts, thumbnails), and
    the head groups against the ``mask_mode`` foreground (a drawing or chosen mask file is
    scored after, by the groups controller). Superseded (another image opened), it stops
    between stages there too: the centre GrabCut alone is ~0.4 s."""
    from vitexplorer.core.analysis import analyze

    # a file is decoded only as large as the view shows it (JPEG draft: a 24 MP photo in
    # a fraction of a full decode); exports decode it again in full
    analysis = analyze(loaded, image, policy, source=source, should_stop=should_stop,
                       display_side=DISPLAY_MAX)
    analysis.head_maps()
    analysis.head_rollout_maps()
    display, scale = resized(analysis.image, DISPLAY_MAX)
    return FinishedAnalysis(analysis, display, scale, head_thumbnails(analysis, "head", cmap),
                            groups_job(analysis, mask_mode, should_stop))


def groups_job(analysis: Analysis, mask_mode: str, should_stop=None,
               mask_file: str | None = None, drawing: Drawing | None = None,
               previous: HeadGroups | None = None) -> HeadGroups:
    """Head table, clustering, per-layer divergence and the distance matrix as an image
    (coloured with the core's colormap tables, not matplotlib: a figure draw holds the
    interpreter lock for ~40 ms and would stall the event loop), plus the foreground
    scored against and its outline (for the view).

    The foreground: ``IMAGE_mask.png`` next to an image file when there is one, as the CLI
    and batch do (one of the wrong size is skipped with a warning in the table's meta); a
    ``mask_file`` the user chose instead (one that does not fit is an error); else
    ``mask_mode``. A ``drawing`` (box, scribbles: GrabCut; edits of that mask) is laid
    over it (:func:`vitexplorer.core.masks.drawn_foreground`).

    ``previous``, the groups of this same analysis scored against another mask, gives what
    no mask changes: the clustering, divergence and matrix are taken from it, not computed
    again (the mask-free head scores the analysis keeps itself). A drawing whose box and
    scribbles did not change (only its edits) finds its GrabCut in the core's shared cache
    (:func:`vitexplorer.core.masks.shared_box_grabcut`). A superseded job (``should_stop``:
    the user drew again meanwhile) stops between its stages instead of scoring a mask
    nobody will see."""
    from vitexplorer.core.errors import Cancelled
    from vitexplorer.core.masks import drawn_foreground
    from vitexplorer.core.relations import cluster_heads, layer_divergence
    from vitexplorer.core.render import colorize

    def stage() -> None:  # superseded (another edit meanwhile): stop between the stages
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled")

    mask, mask_name, warning = _mask_file(analysis, mask_file)
    if drawing:
        size, seeds = analysis.photo_size, replace(drawing, edits=())
        if not seeds:
            base = analysis.foreground(mask_mode, mask, mask_name=mask_name)
        else:
            base = drawn_foreground(analysis.image, size, seeds.box, seeds.scribbles)
        stage()
        fg = drawn_foreground(analysis.image, size, edits=drawing.edits, base=base)
        table = analysis.head_table(mask=fg)
    else:
        fg = analysis.foreground(mask_mode, mask, mask_name=mask_name)
        stage()
        table = analysis.head_table(mask_mode, mask, mask_name)
    if warning is not None:  # on a copy: the analysis caches its tables per mask mode
        warnings = [w for w in (table.meta.get("mask_warning"), warning) if w]
        table = replace(table, meta={**table.meta, "mask_warning": "; ".join(warnings)})
    stage()
    if previous is not None:
        clustering, divergence, matrix = (previous.clustering, previous.divergence,
                                          previous.matrix)
    else:
        maps = analysis.head_maps().numpy()
        clustering = cluster_heads(maps)
        divergence = layer_divergence(maps)
        order = clustering.order
        ordered = clustering.distances[np.ix_(order, order)]
        matrix = colorize(1.0 - np.clip(ordered, 0, 1), "viridis")
    name = fg.name if drawing else mask_name or mask_mode
    base_source = base.source if drawing else fg.source
    return HeadGroups(table, clustering, divergence, matrix, name, foreground=fg,
                      outline=display_outline(fg.mask), base_source=base_source,
                      centre_box=bool(drawing and drawing.scribbles and drawing.box is None),
                      mask_file=mask_name if base_source == "file" else None)


def display_outline(mask: np.ndarray) -> list[np.ndarray]:
    """The border of ``mask`` (on ``analysis.image``) as ``(n, 2)`` float x, y through its
    pixel centres on the display copy the view draws on (:func:`analyze_job`'s, longest side
    ``DISPLAY_MAX``): the GUI thread copies them into polygons as they are (an edited mask's
    border on a large photo has tens of thousands of points)."""
    from vitexplorer.core.masks import mask_outline

    h, w = mask.shape
    dh, dw = display_size((h, w), DISPLAY_MAX)  # the display copy's size (resized())
    return [(c + 0.5) * np.array([dw / w, dh / h]) for c in mask_outline(mask)]


def _mask_file(analysis: Analysis, mask_file: str | None
               ) -> tuple[np.ndarray | None, str | None, str | None]:
    """The chosen mask file (an error when it does not fit), else ``IMAGE_mask.png`` next
    to the image file (skipped with a warning when it does not fit), on ``analysis.image``:
    (mask, its name, warning)."""
    from vitexplorer.core.errors import ImageError
    from vitexplorer.core.masks import find_mask_file, fitted_mask

    size = analysis.photo_size
    if mask_file is not None:
        return fitted_mask(mask_file, size, analysis.image.shape[:2]), mask_file, None
    if analysis.source and Path(analysis.source).is_file():
        found = find_mask_file(analysis.source)  # IMAGE_mask.png beside it, as CLI/batch
        if found is not None:
            try:
                return fitted_mask(found, size, analysis.image.shape[:2]), str(found), None
            except ImageError as exc:
                return None, None, f"{exc}; the mask file is not used"
    return None, None, None


def save_mask_job(foreground: Foreground, path: str, size: tuple[int, int],
                  overwrite: bool, should_stop=None) -> Path:
    """Write the mask at the photo's size (``core.masks.save_mask``: atomic, PNG)."""
    from vitexplorer.core.masks import save_mask

    return save_mask(foreground.mask, path, size, overwrite)


def importance_job(analysis: Analysis, should_stop=None, progress=None) -> dict:
    """Ablate every head (one image); scores are added to the analysis' head tables."""
    from vitexplorer.core.importance import head_importance

    out = head_importance(analysis.loaded.model, analysis.model_input(),
                          should_stop=should_stop, progress=progress)
    return {"logprob_drop": out["logprob_drop"].numpy().astype(float),
            "kl": out["kl"].numpy().astype(float), "target": out["target"]}


def thumbnails_job(analysis: Analysis, method: str, cmap: str, fusion: str, discard: float,
                   should_stop=None) -> np.ndarray:
    return head_thumbnails(analysis, method, cmap, fusion, discard)


def maps_job(analysis: Analysis, method: str, fusion: str, discard: float,
             target: int | None = None, should_stop=None) -> None:
    """Fill the analysis cache for a rollout setting (L matrix products; may take a moment)."""
    analysis.map(method, -1, 0, fusion, discard, target)


def layer_job(analysis: Analysis, layer: int, should_stop=None) -> None:
    """Recompute one block's full attention for a patch query (the analysis keeps only
    what the maps need)."""
    analysis.layer(layer)


def gradients_job(analysis: Analysis, target: int | None, should_stop=None) -> int:
    return analysis.ensure_gradients(target, should_stop)


def figure_of(analysis: Analysis, kind: str, options: dict,
              figure_options: FigureOptions | None = None) -> Figure:
    """The figure ``kind`` (view / layer / grid) of the view ``options``: the same core code
    as ``vitexplorer export``, with the view's colour scale, percentile and upsampling, so
    the figure shows what the window shows."""
    from vitexplorer.core.figures import grid_figure, overlay_figure

    o = options
    contour = MASS_SHARE if o.get("contour") else None
    look = dict(percentile=o["percentile"], upsample=o["upsample"])
    if kind == "view":
        return overlay_figure(analysis, o["method"], o["layer"], o["head"], o.get("target"),
                              None, o["opacity"], o["scaling"], contour, o["fusion"],
                              o["discard"], options=_with_cmap(figure_options, o),
                              scope=o["scale"], fixed_range=o["fixed_range"], **look)
    method = o["method"] if o["method"] in ("head", "head-rollout") else "head"
    return grid_figure(analysis, method, None if kind == "grid" else o["layer"], None,
                       o["opacity"], o["scaling"], o["fusion"], o["discard"], contour=contour,
                       options=_with_cmap(figure_options, o),
                       fixed_range=o["fixed_range"] if o["scale"] == "fixed" else None,
                       **look)


def _with_cmap(figure_options: FigureOptions | None, options: dict) -> FigureOptions:
    """The figure options with the view's colormap (the one the user sees)."""
    from vitexplorer.core.figures import FigureOptions

    return replace(figure_options or FigureOptions(), cmap=options["cmap"])


def export_job(analysis: Analysis, kind: str, path: str, options: dict,
               figure_options: FigureOptions | None = None, should_stop=None) -> Path:
    """Write a figure through the same core code as ``vitexplorer export``, on as many of
    the photo's pixels as the figure shows (a large photo is shown from a display-size
    copy, and decoded again only when the figure needs more)."""
    from vitexplorer.core.figures import FigureOptions, save_figure, shown_side

    side = shown_side(analysis.photo_size, kind == "view", figure_options or FigureOptions())
    return save_figure(figure_of(analysis.full_resolution(side), kind, options,
                                 figure_options), path)


def preview_job(analysis: Analysis, kind: str, options: dict, figure_options: FigureOptions,
                longest: int = 420, should_stop=None) -> np.ndarray:
    """The exported figure as RGB pixels, ``longest`` px on its longer side (the export
    dialog's live preview: same layout, lower DPI)."""

    fig = figure_of(analysis, kind, options, figure_options)
    fig.set_dpi(longest / max(fig.get_size_inches()))
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[:, :, :3])


def copy_job(analysis: Analysis, options: dict, figure_options: FigureOptions | None = None,
             should_stop=None) -> dict[str, bytes]:
    """The current view as its exported figure in PNG, SVG and PDF (clipboard flavours)."""
    from vitexplorer.core.figures import figure_bytes

    fig = figure_of(analysis, "view", options, figure_options)
    return {fmt: figure_bytes(fig, fmt) for fmt in ("png", "svg", "pdf")}


def list_models_job(should_stop=None) -> dict:
    """The model chooser's rows (supported models, cached or not) and why every other
    timm model is not offered."""
    from vitexplorer.core.models import (
        cached_models,
        is_cached,
        model_catalog,
        supported_models,
        unsupported_models,
    )

    cached = cached_models()
    rows = model_catalog(supported_models(pretrained=True))
    for r in rows:
        r["cached"] = is_cached(r["name"], cached)
    return {"rows": rows, "unsupported": unsupported_models(pretrained=True)}


def parameter_counts_job(names: list[str], cache: Path, found: list, priority: deque,
                         should_stop=None, progress=None) -> int:
    """Count the parameters of every listed model (the model chooser's column), appending
    ``(name, count)`` to ``found`` as each is known; ``progress`` wakes the GUI thread,
    which reads the new entries (a list append crosses no signal)."""
    from vitexplorer.core.models import parameter_counts

    def add(name: str, count: int) -> None:
        found.append((name, count))
        if progress is not None:
            progress(len(found), len(names))

    return len(parameter_counts(names, cache, add, priority, should_stop))
