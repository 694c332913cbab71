"""Publication figures (PNG, SVG, PDF): journal sizes, editable text, shared colour bars.

Every figure is built the same way, so every figure kind meets the same rules:

* :class:`FigureOptions` says the size (a journal preset or explicit inches), DPI, font size,
  title, caption, colormap and whether panels share one colour scale;
* :func:`figure_style` is the matplotlib ``rc_context`` the figure is built in (font sizes,
  no global state touched); :func:`save_figure` writes it with ``pdf.fonttype = 42``
  (TrueType fonts embedded: publishers reject Type 3) and ``svg.fonttype = 'none'`` (real
  ``<text>`` elements, editable and searchable);
* layouts are matplotlib's constrained layout on a figure whose height is computed from the
  content (:func:`figure_size`); grids are ONE mosaic image with tick labels thinned to the
  cells' size (:func:`panel_grid_figure`), so nothing clips or overlaps from a 3-head model to
  16 heads x 32 layers, for panoramas and portraits.

Built on matplotlib's object API (``Figure`` + Agg canvas, no pyplot) so it never touches a
GUI backend; the GUI's export, ``vitexplorer export``/``heads``/``batch`` call these functions.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vitexplorer.core.constants import (
    DEFAULT_CMAP,
    DEFAULT_OPACITY,
    FORMATS,
    MASS_SHARE,
    METHOD_LABELS,
)
from vitexplorer.core.errors import UsageError
from vitexplorer.core.files import atomic_writer
from vitexplorer.core.render import Upsample, display_range, overlay, resolve_cmap

if TYPE_CHECKING:  # annotations only: FigureOptions is usable without importing torch
    from vitexplorer.core.analysis import Analysis
    from vitexplorer.core.images import Geometry


@dataclass(frozen=True)
class Preset:
    """A target size: width in inches, a fixed height (slides) or the tallest allowed."""

    width: float
    font_size: float
    height: float | None = None
    max_height: float = 9.0


# Single and double column widths of Nature/Elsevier/IEEE (89/183 mm, 3.5/7.16 in); a slide
# is 16:9 at PowerPoint's 13.33 x 7.5 in. 9 in is about the tallest a journal page holds.
PRESETS = {
    "single": Preset(width=3.5, font_size=7.0),
    "double": Preset(width=7.2, font_size=8.0),
    "slide": Preset(width=13.333, font_size=16.0, height=7.5),
}
SCALES = ("shared", "per-panel")
EXPORT_RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}
CHAR_EM = 0.62  # DejaVu Sans: mean advance of a caption's characters is ~0.55 em; margin
CONTOUR_RGB = (0, 255, 255)
RANDOM_MARK = "random weights: the maps show no learned attention"


@dataclass(frozen=True)
class FigureOptions:
    """How a figure looks; every field has a journal-ready default.

    ``title``/``caption``: None = the default text (model, method, layer, head, class; the
    colour scale and contour), "" = none. ``width``/``height`` in inches override the preset
    (see :func:`parse_length` for px/cm/mm). ``scale``: panels share one colour scale, or
    each spans its own min-max (the caption says which).
    """

    preset: str = "double"
    width: float | None = None
    height: float | None = None
    dpi: float = 300.0
    font_size: float | None = None
    title: str | None = None
    caption: str | None = None
    scale: str = "shared"
    cmap: str = DEFAULT_CMAP

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {tuple(PRESETS)}")
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; choose one of {SCALES}")
        for name in ("width", "height", "font_size"):
            v = getattr(self, name)
            if v is not None and not 0 < v < 200:
                raise ValueError(f"{name} must be positive (and under 200), got {v}")
        if not 10 <= self.dpi <= 2400:
            raise ValueError(f"dpi must be between 10 and 2400, got {self.dpi}")
        resolve_cmap(self.cmap)
        for name in ("title", "caption"):
            check_math(getattr(self, name), name)

    @property
    def fs(self) -> float:
        return self.font_size or PRESETS[self.preset].font_size


def check_math(text: str | None, name: str) -> None:
    """Refuse a title or caption whose ``$...$`` matplotlib cannot typeset (mathtext), here
    instead of as a traceback when the figure is saved after all the work."""
    dollars = text.count("$") - text.count(r"\$") if text else 0
    if dollars == 0 or dollars % 2:  # matplotlib's rule: math only between paired '$'
        return
    from matplotlib.mathtext import MathTextParser

    try:
        MathTextParser("path").parse(text)
    except ValueError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise ValueError(f"the {name} {text!r} has math between '$' signs that matplotlib "
                         f"cannot typeset ({reason}); write a literal dollar as \\$") from None


def parse_length(text: str, dpi: float = 300.0) -> float:
    """A length in inches from ``'3.5in'``, ``'1200px'`` (at ``dpi``), ``'89mm'``, ``'8.9cm'``
    or a bare number (inches)."""
    t = str(text).strip().lower()
    units = {"in": 1.0, "px": 1.0 / dpi, "mm": 1 / 25.4, "cm": 1 / 2.54, "pt": 1 / 72}
    unit = next((u for u in units if t.endswith(u)), None)
    try:
        value = float(t[: -len(unit)] if unit else t)
    except ValueError:
        raise ValueError(f"cannot read the length {text!r}: use e.g. 3.5in, 1200px, 89mm"
                         ) from None
    if not value > 0:
        raise ValueError(f"the length {text!r} must be positive")
    return value * units[unit or "in"]


@contextmanager
def figure_style(options: FigureOptions | None = None) -> Iterator[FigureOptions]:
    """The rc settings a figure is built (and saved) in; global rcParams stay untouched."""
    o = options or FigureOptions()
    fs = o.fs
    rc = {**EXPORT_RC, "font.family": "DejaVu Sans", "font.size": fs,
          "axes.titlesize": fs, "axes.labelsize": fs, "xtick.labelsize": fs * 0.9,
          "ytick.labelsize": fs * 0.9, "legend.fontsize": fs * 0.9,
          "figure.titlesize": fs * 1.1, "figure.labelsize": fs, "axes.linewidth": 0.6,
          "xtick.major.size": 0, "ytick.major.size": 0, "xtick.major.pad": 1.5,
          "ytick.major.pad": 1.5, "image.cmap": resolve_cmap(o.cmap),
          "figure.constrained_layout.h_pad": 2 / 72, "figure.constrained_layout.w_pad": 2 / 72,
          "figure.dpi": o.dpi, "savefig.dpi": o.dpi,
          # our texts hold file and model names: a '$' there is a dollar, not TeX math
          # (a file named 'a_$\\x$.png' failed the save); the user's own title and caption
          # are math where they say so (finish)
          "text.parse_math": False}
    with matplotlib.rc_context(rc):
        yield o


def wrap(text: str, width_in: float, font_size: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` at ``font_size`` (explicit newlines
    kept)."""
    chars = max(8, int(width_in * 72 / (CHAR_EM * font_size)))
    return "\n".join(textwrap.fill(line, chars) if line else "" for line in text.split("\n"))


def text_height(text: str, font_size: float) -> float:
    """Inches taken by ``text`` (its lines at 1.25 line spacing); 0 for no text."""
    return 0.0 if not text else (text.count("\n") + 1) * font_size * 1.25 / 72


#: the least room, in inches, a figure's panels need beside its text (none, and matplotlib
#: failed with "Width and height specified must be non-negative")
MIN_PANELS_IN = 0.05


def figure_size(o: FigureOptions, content_aspect: float, extra_height: float = 0.0,
                extra_width: float = 0.0) -> tuple[float, float]:
    """(width, height) in inches: the preset's (or asked-for) width; the height that holds
    content of ``content_aspect`` (height / width) over ``width - extra_width`` plus
    ``extra_height`` of text, capped at a page; slides are 16:9."""
    p = PRESETS[o.preset]
    w = o.width or p.width
    if o.height:
        h = o.height
    elif p.height is not None:
        h = p.height if o.width is None else w * 9 / 16
    else:
        h = max(0.3, w - extra_width) * content_aspect + extra_height
        h = float(min(max(h, 1.2), p.max_height))
    if min(w - extra_width, h - extra_height) < MIN_PANELS_IN:  # matplotlib: negative axes
        raise UsageError(
            f"a {w:.3g} x {h:.3g} in figure leaves no room for its panels beside "
            f"{extra_height:.2g} in of title, caption and labels at {o.fs:g} pt: make it "
            "larger (--width, --height), its font smaller (--font-size) or its title or "
            "caption shorter")
    return w, h


def new_figure(o: FigureOptions, size: tuple[float, float]) -> Figure:
    """A constrained-layout figure of ``size`` inches on an Agg canvas (text is measured
    with the renderer that writes PNGs); call inside :func:`figure_style`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=size, dpi=o.dpi, layout="constrained")
    FigureCanvasAgg(fig)
    fig.export_dpi = o.dpi  # what save_figure writes PNGs at
    return fig


def finish(fig: Figure, o: FigureOptions, title: str, caption: str,
           random_weights: bool = False) -> None:
    """Title on top and caption below, wrapped to the figure's width; both sit in the
    constrained layout, so they never overlap the panels. Random weights are always marked,
    whatever the title and caption say."""
    w = fig.get_figwidth() - 0.1
    title = o.title if o.title is not None else title
    caption = o.caption if o.caption is not None else caption
    if random_weights and "random weights" not in f"{title} {caption}":
        caption = f"{caption}\n{RANDOM_MARK.capitalize()}." if caption else \
            f"{RANDOM_MARK.capitalize()}."
    if title:
        fig.suptitle(wrap(title, w, o.fs * 1.1), parse_math=o.title is not None)
    if caption:
        fig.supxlabel(wrap(caption, w, o.fs * 0.9), fontsize=o.fs * 0.9, linespacing=1.25,
                      parse_math=o.caption is not None)


def _extra(o: FigureOptions, title: str, caption: str, w: float) -> float:
    """Inches of title and caption text at width ``w``."""
    title = o.title if o.title is not None else title
    caption = o.caption if o.caption is not None else caption
    return (text_height(wrap(title, w, o.fs * 1.1), o.fs * 1.1)
            + text_height(wrap(caption, w, o.fs * 0.9), o.fs * 0.9) + 0.15)


def describe(analysis: Analysis, method: str, layer: int | None, head: int | None,
             target: int | None = None) -> str:
    """Default title: model, method, layer, head, class."""
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


def is_random(analysis: Analysis) -> bool:
    return "random weights" in analysis.model_label


def _source(analysis: Analysis) -> str:
    h, w = analysis.image.shape[:2]
    return f"Image: {Path(analysis.source).name} ({w}×{h} px)."


def _percentiles(p: float) -> str:
    """``'1st-99th percentile'`` for 99: the clipping of the percentile scaling."""
    def nth(v: float) -> str:
        if v != int(v):
            return f"{v:g}th"
        n = int(v)
        suffix = "th" if 10 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"
    return f"{nth(100.0 - p)}-{nth(p)} percentile"


#: who shares a single view's colour scale (``scope`` of :meth:`Analysis.colour_range`)
SCOPE_TEXT = {"layer": "one scale shared by the layer's heads",
              "model": "one scale shared by every layer and head"}


def _scale_text(scaling: str, shared: bool | None, percentile: float = 99.0,
                scope: str = "map", vrange: tuple[float, float] | None = None) -> str:
    rng = _percentiles(percentile) if scaling == "percentile" else "min-max"
    if scope == "fixed" and vrange is not None:
        return f"Colour: each patch's share of its map's mass on a fixed scale, " \
               f"{vrange[0] * 100:.3g}-{vrange[1] * 100:.3g}%."
    if shared is None:
        if scope in SCOPE_TEXT:
            return f"Colour: each patch's share of the map's mass, {SCOPE_TEXT[scope]} " \
                   f"({rng} over their maps)."
        return f"Colour: each patch's share of the map's mass ({rng} of the map)."
    if shared:
        return f"Colour: each patch's share of its map's mass, one scale shared by all " \
               f"panels ({rng} over all maps)."
    return f"Colour: each panel scaled to its own {rng} (0 = lowest, 1 = highest patch)."


def _upsample_text(upsample: str) -> str:
    return " Patches drawn as the token grid (nearest, not smoothed)." \
        if upsample == "nearest" else ""


def _contour_text(contour: float | None) -> str:
    return f" Cyan outline: the fewest patches holding {contour:.0%} of the mass." \
        if contour else ""


def _colorbar(fig: Figure, ax, norm: Normalize, cmap: str, label: str, horizontal: bool,
              parent: tuple[float, float], fs: float, aspect: float):
    """A colour bar beside ``ax`` (below it when ``horizontal``), 70% of the image's length
    and a fixed thickness in inches whatever the panel's shape: matplotlib sizes the bar's
    thickness as a ``fraction`` of the panel and its length by ``aspect``, so both are
    computed from the panel's estimated size ``parent`` (width, height) in inches and the
    image's ``aspect`` (height / width; on a fixed-size slide the image may not fill the
    panel's width)."""
    thick = fs * 1.2 / 72
    length, across = (parent[0], parent[1]) if horizontal else (parent[1], parent[0])
    image = min(parent[0], parent[1] / aspect) if horizontal else \
        min(parent[1], parent[0] * aspect)
    shrink = min(0.7, 0.9 * image / max(length, 1e-3))
    cb = fig.colorbar(ScalarMappable(norm, resolve_cmap(cmap)), ax=ax,
                      location="bottom" if horizontal else "right", shrink=shrink,
                      fraction=min(0.5, max(0.01, thick / max(across, 1e-3))),
                      aspect=max(5.0, shrink * length / thick), pad=0.01)
    cb.set_label(label)
    cb.outline.set_linewidth(0.5)
    cb.ax.tick_params(length=2, width=0.5)
    if horizontal:
        cb.ax.xaxis.set_major_locator(MaxNLocator(5))
    return cb


def _panel_height(o: FigureOptions, width: float, aspect: float, room: float) -> float:
    """Height in inches the image panel will have: all the ``room`` on a fixed-size figure,
    else the image's own height (``compact`` fits the figure to it)."""
    fixed = o.height or PRESETS[o.preset].height is not None
    return room if fixed else min(width * aspect, room)


def overlay_figure(
    analysis: Analysis,
    method: str = "head",
    layer: int = -1,
    head: int = 0,
    target: int | None = None,
    cmap: str | None = None,
    opacity: float = DEFAULT_OPACITY,
    scaling: str = "minmax",
    contour: float | None = MASS_SHARE,
    fusion: str = "mean",
    discard: float = 0.0,
    options: FigureOptions | None = None,
    *,
    percentile: float = 99.0,
    upsample: Upsample = "bilinear",
    scope: str = "map",
    fixed_range: tuple[float, float] | None = None,
) -> Figure:
    """One overlay with a colour bar (share of the map's mass per patch, in %), a title and
    a caption. ``percentile``, ``upsample`` and the colour-scale ``scope`` (with its
    ``fixed_range``; see :meth:`Analysis.colour_range`) are the window's view options, so
    an export shows what the window shows."""
    o = options or FigureOptions()
    if cmap is not None:
        o = replace(o, cmap=cmap)
    grid = analysis.map(method, layer, head, fusion, discard, target)
    vr = analysis.colour_range(scope, method, layer, head, fusion, discard, target, scaling,
                               percentile, fixed_range)
    h, w = analysis.image.shape[:2]
    shown_layer = layer if method in ("head", "head-rollout", "rollout") else None
    title = describe(analysis, method, shown_layer, head, target)
    caption = (f"{_source(analysis)} {_scale_text(scaling, None, percentile, scope, vr)}"
               f"{_upsample_text(upsample)}{_contour_text(contour)}")
    horizontal = w >= h
    with figure_style(o):
        fw = o.width or PRESETS[o.preset].width
        bar = 0.45 + 2.6 * o.fs / 72
        extra = _extra(o, title, caption, fw) + (bar if horizontal else 0.0)
        fig = new_figure(o, figure_size(o, h / w, extra, 0.0 if horizontal else bar))
        fw, fh = fig.get_size_inches() * o.dpi
        # the panel never shows more pixels than the figure has: a camera photo's overlay
        # at full size cost seconds to make and as many for matplotlib to resample
        small, geom = _image_at(analysis, min(fw / w, fh / h))
        img = overlay(small, grid, geom, o.cmap, opacity, scaling, upsample, contour=contour,
                      contour_color=CONTOUR_RGB, vrange=vr)
        ax = fig.add_subplot()
        ax.imshow(img, interpolation="antialiased")
        ax.set_axis_off()
        lo, hi = vr
        size = fig.get_size_inches()
        pw = size[0] - (0 if horizontal else bar)
        _colorbar(fig, ax, Normalize(lo * 100, hi * 100), o.cmap, "% of map mass per patch",
                  horizontal, (pw, _panel_height(o, pw, h / w, size[1] - extra)), o.fs,
                  h / w)
        finish(fig, o, title, caption, is_random(analysis))
        compact(fig, ax, o)
    return fig


def _thin(labels: Sequence[str], cell_pt: float, need_pt: float) -> list[int]:
    """Indices of the labels to show so that each has ``need_pt`` of room."""
    step = max(1, math.ceil(need_pt / max(cell_pt, 1e-6)))
    return list(range(0, len(labels), step))


def panel_grid_figure(
    cells: Sequence[Sequence[np.ndarray | None]],
    options: FigureOptions,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    row_title: str = "",
    col_title: str = "",
    norm: Normalize | None = None,
    colorbar_label: str = "",
    frames: Sequence[Sequence[str | tuple | None]] | None = None,
    legend: Sequence | None = None,
    title: str = "",
    caption: str = "",
    random_weights: bool = False,
) -> Figure:
    """Rows x columns of equally sized RGB panels as ONE mosaic image (fast at 512 panels,
    one colour bar, row/column labels thinned to fit the cells), optionally framed
    (``frames[r][c]`` a colour or None) with a ``legend`` (matplotlib handles) below.

    Reusable for any panel grid: a layer's heads, every layer x head, matched heads of two
    models.
    """
    o = options
    rows, cols = len(cells), len(cells[0])
    ch, cw = cells[0][0].shape[:2]
    gap = max(1, round(0.05 * max(ch, cw)))
    mosaic = np.full((rows * ch + (rows - 1) * gap, cols * cw + (cols - 1) * gap, 3), 255,
                     np.uint8)
    for r in range(rows):
        for c in range(cols):
            if cells[r][c] is not None:  # None: an empty cell (a wrapped row's end)
                y, x = r * (ch + gap), c * (cw + gap)
                mosaic[y:y + ch, x:x + cw] = cells[r][c]
    mh, mw = mosaic.shape[:2]
    horizontal = mw >= mh
    with figure_style(o):
        fw = o.width or PRESETS[o.preset].width
        fs = o.fs
        frames = frames if frames is not None else [[None] * cols for _ in range(rows)]
        labels_h = 2 * fs * 1.3 / 72 if col_labels else 0.0
        labels_w = 2 * fs * 1.3 / 72 + 0.1 if row_labels else 0.0
        bar = 0.45 + 2.6 * fs / 72 if norm is not None else 0.0
        leg = (math.ceil(len(legend) / 4) * fs * 1.5 / 72 + 0.1) if legend else 0.0
        extra = _extra(o, title, caption, fw) + labels_h + leg + (bar if horizontal else 0)
        size = figure_size(o, mh / mw, extra, labels_w + (0 if horizontal else bar))
        fig = new_figure(o, size)
        ax = fig.add_subplot()
        ax.imshow(mosaic, interpolation="antialiased")
        for s in ax.spines.values():
            s.set_visible(False)
        if any(f is not None for row in frames for f in row):
            from matplotlib.patches import Rectangle

            lw = max(0.6, min(2.0, 0.06 * 72 * size[0] / cols))
            for r in range(rows):
                for c in range(cols):
                    if frames[r][c] is not None and cells[r][c] is not None:
                        ax.add_patch(Rectangle((c * (cw + gap) - 0.5, r * (ch + gap) - 0.5),
                                               cw, ch, fill=False, edgecolor=frames[r][c],
                                               linewidth=lw))
        ax.set_xticks([])
        ax.set_yticks([])
        if norm is not None:
            pw = size[0] - labels_w - (0 if horizontal else bar)
            _colorbar(fig, ax, norm, o.cmap, colorbar_label, horizontal,
                      (pw, _panel_height(o, pw, mh / mw, size[1] - extra)), fs, mh / mw)
        if legend:
            _legend(fig, ax, legend, o)
        finish(fig, o, title, caption, random_weights)
        # the labels take room: reserve it with the longest one, lay out, then thin them
        # to the cells' laid-out size (thinning frees room; it never needs more)
        pad = fs * 0.9 * 0.6 + 1  # clears the corner where a row and a column label meet
        ax.tick_params(pad=pad)
        if col_labels:
            ax.set_xticks([cw / 2], [max(col_labels, key=len)])
            ax.set_xlabel(col_title)
        if row_labels:
            ax.set_yticks([ch / 2], [max(row_labels, key=len)])
            ax.set_ylabel(row_title)
        compact(fig, ax, o)
        bb = ax.get_position()
        size = fig.get_size_inches()
        scale = min(bb.width * size[0] / mw, bb.height * size[1] / mh) * 72  # pt per px
        if col_labels:
            need = max(len(s) for s in col_labels) * CHAR_EM * fs * 0.9 + 3
            keep = _thin(col_labels, (cw + gap) * scale, need)
            ax.set_xticks([c * (cw + gap) + cw / 2 - 0.5 for c in keep],
                          [col_labels[c] for c in keep])
        if row_labels:
            keep = _thin(row_labels, (ch + gap) * scale, fs * 0.9 * 1.2 + 1)
            ax.set_yticks([r * (ch + gap) + ch / 2 - 0.5 for r in keep],
                          [row_labels[r] for r in keep])
    return fig


def _legend(fig: Figure, ax, handles: Sequence, o: FigureOptions) -> None:
    """A frameless legend between the title and the panels, with as many columns as the
    figure's width holds (an axes legend: the layout makes room for it; a figure legend
    would share the bottom margin with the caption and overlap it)."""
    width_pt = fig.get_figwidth() * 72 * 0.9
    entry = max(len(h.get_label()) for h in handles) * CHAR_EM * o.fs * 0.9 + 2.8 * o.fs
    ncols = int(max(1, min(len(handles), width_pt // entry)))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=ncols,
              frameon=False, handlelength=1.2, columnspacing=1.0, borderaxespad=0.3)


def compact(fig: Figure, ax, o: FigureOptions) -> None:
    """Lay the figure out, then fit its height to the image of fixed aspect in ``ax``: drop
    the empty band above and below it, or grow (up to the preset's page height) when the
    image is height-bound and narrower than the figure. Computed heights are estimates;
    this makes them exact."""
    engine = fig.get_layout_engine()
    for _ in range(4):
        engine.execute(fig)
        if o.height or PRESETS[o.preset].height is not None:
            return
        box = ax.get_position(original=True)
        h = fig.get_figheight()
        want = box.width * fig.get_figwidth() * ax.get_data_ratio()  # inches
        new = min(max(1.0, h + want - box.height * h), PRESETS[o.preset].max_height)
        if abs(new - h) < 0.02:
            return
        fig.set_figheight(new)


def _panel_ranges(maps: np.ndarray, scaling: str, percentile: float, shared: bool,
                  fixed_range: tuple[float, float] | None
                  ) -> tuple[list[list[tuple[float, float]]], Normalize]:
    """The colour range of each map of ``maps`` ``[rows, cols, gh, gw]`` and the colour bar's
    norm: with ``shared``, ``fixed_range`` or the ``scaling`` range over every map, the bar
    in % of map mass; otherwise each map's own range, the bar 0-1 of it."""
    if shared:
        vr = fixed_range or display_range(maps, scaling, percentile)
        return [[vr] * maps.shape[1]] * maps.shape[0], Normalize(vr[0] * 100, vr[1] * 100)
    return ([[display_range(m, scaling, percentile) for m in row] for row in maps],
            Normalize(0, 1))


def _cells(analysis: Analysis, method: str, layers: Sequence[int], o: FigureOptions,
           opacity: float, scaling: str, fusion: str, discard: float, contour: float | None,
           cell_px: int, shared: bool, percentile: float = 99.0,
           upsample: Upsample = "bilinear", fixed_range: tuple[float, float] | None = None
           ) -> tuple[list[list[np.ndarray]], Normalize]:
    """Each head's overlay at ``cell_px`` on its longer side, on one ``shared`` scale
    (``fixed_range`` when given) or per-panel scales (:func:`_panel_ranges`), and the
    colour bar's norm."""
    maps = np.stack([[analysis.map(method, li, h, fusion, discard)
                      for h in range(analysis.num_heads)] for li in layers])
    small, geom = _image_at(analysis, cell_px / max(analysis.image.shape[:2]))
    ranges, norm = _panel_ranges(maps, scaling, percentile, shared, fixed_range)
    cells = [[overlay(small, m, geom, o.cmap, opacity, scaling, upsample, contour=contour,
                      contour_color=CONTOUR_RGB, vrange=vr)
              for m, vr in zip(row, row_ranges, strict=True)]
             for row, row_ranges in zip(maps, ranges, strict=True)]
    return cells, norm


def _image_at(analysis: Analysis, factor: float) -> tuple[np.ndarray, Geometry]:
    """The analysis's image reduced by ``factor`` (area averaging) and its geometry on that
    copy (the map placed exactly as on the original); as they are for ``factor >= 1``."""
    import cv2

    if factor >= 1:
        return analysis.image, analysis.geometry
    geom = analysis.geometry.scaled(factor)
    return cv2.resize(analysis.image, geom.image_size[::-1],
                      interpolation=cv2.INTER_AREA), geom


#: the most pixels a grid cell shows on its longer side
CELL_MAX_PX = 320


def _cell_px(o: FigureOptions, cols: int) -> int:
    """Pixels a grid cell needs on its longer side for the output DPI (bounded)."""
    w = o.width or PRESETS[o.preset].width
    return int(min(CELL_MAX_PX, max(24, w / cols * o.dpi)))


def shown_side(size: tuple[int, int], overlay: bool, options: FigureOptions) -> int:
    """The most pixels, on the long side of an image of ``size`` (height, width), that an
    overlay figure (``overlay``) or a grid of maps shows: the overlay's panel is at most the
    figure's width, a grid cell at most :data:`CELL_MAX_PX`. An export needs no more of a
    photo than this (:meth:`Analysis.full_resolution`)."""
    if not overlay:
        return CELL_MAX_PX
    h, w = size
    return math.ceil((options.width or PRESETS[options.preset].width) * options.dpi
                     * max(h, w) / w)


def grid_figure(
    analysis: Analysis,
    method: str = "head",
    layer: int | None = None,
    cmap: str | None = None,
    opacity: float = DEFAULT_OPACITY,
    scaling: str = "minmax",
    fusion: str = "mean",
    discard: float = 0.0,
    frames: np.ndarray | None = None,
    contour: float | None = None,
    options: FigureOptions | None = None,
    legend: Sequence | None = None,
    *,
    percentile: float = 99.0,
    upsample: Upsample = "bilinear",
    fixed_range: tuple[float, float] | None = None,
) -> Figure:
    """All heads of one layer (one row), or of every layer (``layer=None``: L rows x H cols),
    with one colour bar. ``frames`` optionally gives a colour per [layer, head] cell;
    ``percentile``, ``upsample`` and ``fixed_range`` (every panel on that scale) are the
    window's view options."""
    o = options or FigureOptions()
    if cmap is not None:
        o = replace(o, cmap=cmap)
    layers = list(range(analysis.num_layers)) if layer is None else [layer % analysis.num_layers]
    shared = o.scale == "shared" or fixed_range is not None
    cells, norm = _cells(analysis, method, layers, o, opacity, scaling, fusion, discard,
                         contour, _cell_px(o, analysis.num_heads), shared, percentile,
                         upsample, fixed_range)
    where = f"layer {layers[0]}" if layer is not None else "every layer"
    title = f"{analysis.model_label} · {METHOD_LABELS.get(method, method)} · {where}"
    scale_text = _scale_text(scaling, shared, percentile,
                             "fixed" if fixed_range else "map", fixed_range)
    caption = f"{_source(analysis)} {scale_text}{_upsample_text(upsample)}" \
              f"{_contour_text(contour)}"
    n_h = analysis.num_heads
    frame_rows = None if frames is None else [[frames[li, h] for h in range(n_h)]
                                              for li in layers]
    labels = dict(row_labels=[str(li) for li in layers] if layer is None else None,
                  col_labels=[str(h) for h in range(n_h)], row_title="layer", col_title="head")
    per_row = _heads_per_row(n_h, cells[0][0].shape[0] / cells[0][0].shape[1])
    if layer is not None and per_row < n_h:  # one flat strip would be unreadably thin
        rows = math.ceil(n_h / per_row)

        def wrap_row(row):
            return [[(row + [None] * per_row)[r * per_row + c] for c in range(per_row)]
                    for r in range(rows)]

        cells, frame_rows = wrap_row(cells[0]), frame_rows and wrap_row(frame_rows[0])
        labels = dict(row_labels=[f"{r * per_row}-{min(n_h, (r + 1) * per_row) - 1}"
                                  for r in range(rows)], col_labels=None, row_title="heads")
        caption += f" Heads in reading order, {per_row} per row."
    return panel_grid_figure(
        cells, o, **labels, norm=norm,
        colorbar_label="% of map mass per patch" if shared else "fraction of panel's range",
        frames=frame_rows, legend=legend, title=title, caption=caption,
        random_weights=is_random(analysis))


def _heads_per_row(n: int, cell_aspect: float, flattest: float = 0.12) -> int:
    """Heads per row so that a one-layer grid is no flatter than ``flattest`` (height /
    width): all in one row unless the panels are panoramas."""
    per_row = n
    while per_row > 1 and cell_aspect * math.ceil(n / per_row) / per_row < flattest:
        per_row -= 1
    return per_row


def group_grid_figure(analysis: Analysis, table, method: str = "head", cmap: str | None = None,
                      opacity: float = DEFAULT_OPACITY, scaling: str = "minmax",
                      options: FigureOptions | None = None,
                      contour: float | None = None) -> Figure:
    """Every layer x head map, each framed in its group's colour, with a legend."""
    from matplotlib.patches import Patch

    from vitexplorer.core.constants import GROUP_COLOURS

    groups = table.groups()
    frames = np.vectorize(lambda g: GROUP_COLOURS.get(g, GROUP_COLOURS["none"]))(groups)
    present = [g for g in GROUP_COLOURS if (groups == g).any()]
    handles = [Patch(facecolor="none", edgecolor=GROUP_COLOURS[g], linewidth=1.5,
                     label=f"{g} ({int((groups == g).sum())})") for g in present]
    return grid_figure(analysis, method, None, cmap, opacity, scaling, frames=frames,
                       contour=contour, options=options, legend=handles)


def similarity_figure(analysis: Analysis, clustering, divergence: np.ndarray,
                      options: FigureOptions | None = None) -> Figure:
    """Left (top on a single column): the heads' Jensen-Shannon distances in cluster order,
    clusters outlined. Right (below): mean pairwise distance between a layer's heads, by
    depth."""
    from matplotlib.patches import Rectangle

    o = options or FigureOptions(cmap="viridis_r")
    order = clustering.order
    d = clustering.distances[np.ix_(order, order)]
    n = len(order)
    title = f"{analysis.model_label} · head similarity"
    k = int(clustering.labels.max())
    caption = (f"{_source(analysis)} Left: Jensen-Shannon distance between the heads' "
               f"maps in cluster order, {k} cluster{'s' if k != 1 else ''} outlined "
               "(labels: layer.head). Right: mean distance between the heads of each layer.")
    stacked = (o.preset == "single" and o.width is None) or (o.width or 99) < 5
    if stacked:
        caption = caption.replace("Left:", "Top:").replace("Right:", "Below:")
    fs = o.fs
    with figure_style(o):
        fw = o.width or PRESETS[o.preset].width
        extra = _extra(o, title, caption, fw) + 6 * fs / 72
        aspect = 1.6 if stacked else 0.5
        fig = new_figure(o, figure_size(o, aspect, extra))
        ax, ax2 = fig.subplots(2, 1, height_ratios=[1.6, 1]) if stacked else \
            fig.subplots(1, 2, width_ratios=[1.25, 1])
        im = ax.imshow(d, cmap=resolve_cmap(o.cmap), vmin=0, vmax=1)
        cb = fig.colorbar(im, ax=ax, shrink=0.8, label="JS distance", pad=0.01)
        cb.outline.set_linewidth(0.5)
        cb.ax.tick_params(length=2, width=0.5)
        labels = clustering.labels[order]
        start = 0
        for i in range(1, len(labels) + 1):
            if i == len(labels) or labels[i] != labels[start]:
                if i - start > 1:
                    ax.add_patch(Rectangle((start - 0.5, start - 0.5), i - start, i - start,
                                           fill=False, edgecolor="red", linewidth=0.8))
                start = i
        ax2.plot(np.arange(len(divergence)), divergence, marker="o", markersize=2.5,
                 linewidth=1.0)
        ax2.set_xlim(-0.5, len(divergence) - 0.5)
        ax2.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax2.set_xlabel("layer")
        ax2.set_ylabel("mean JS distance")
        ax2.set_ylim(0, max(0.05, float(np.max(divergence)) * 1.15))
        ax2.grid(alpha=0.3, linewidth=0.5)
        ax2.tick_params(length=2)
        finish(fig, o, title, caption, is_random(analysis))
        compact(fig, ax, o)
        bb = ax.get_position()
        cell = min(bb.width * fig.get_figwidth(), bb.height * fig.get_figheight()) * 72 / n
        names = [f"{clustering.cells[i][0]}.{clustering.cells[i][1]}" for i in order]
        small = fs * 0.7
        keep = _thin(names, cell, small * 1.2 + 1)
        ax.tick_params(pad=small * 0.6 + 1)  # clears the corner where the two label rows meet
        ax.set_xticks(keep, [names[i] for i in keep], rotation=90, fontsize=small)
        ax.set_yticks(keep, [names[i] for i in keep], fontsize=small)
    return fig


def profile_figure(profile, options: FigureOptions | None = None) -> Figure:
    """The L x H grid of a folder's heads, coloured by majority group, with its share."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    from vitexplorer.core.constants import AXES, GROUP_COLOURS

    o = options or FigureOptions()
    groups = profile.majority_group()
    n_l, n_h = groups.shape
    rgb = np.array([[to_rgb(GROUP_COLOURS[g]) for g in row] for row in groups])
    present = [g for g in GROUP_COLOURS if (groups == g).any()]
    handles = [Patch(color=GROUP_COLOURS[g], label=g) for g in present]
    title = f"Majority group of each head over {profile.n_images} images"
    caption = "Number in a cell: share of the images in which the head is in that group."
    fs = o.fs
    with figure_style(o):
        fw = o.width or PRESETS[o.preset].width
        leg = math.ceil(len(handles) / 4) * fs * 1.5 / 72 + 0.1
        extra = _extra(o, title, caption, fw) + leg + 4 * fs / 72
        fig = new_figure(o, figure_size(o, n_l / n_h, extra, 4 * fs / 72))
        ax = fig.add_subplot()
        ax.imshow(rgb, aspect="auto", interpolation="nearest")
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        _legend(fig, ax, handles, o)
        finish(fig, o, title, caption)
        fig.get_layout_engine().execute(fig)
        bb = ax.get_position()
        cw = bb.width * fig.get_figwidth() * 72 / n_h
        chh = bb.height * fig.get_figheight() * 72 / n_l
        cell_fs = min(fs * 0.8, (cw - 2) / (4 * CHAR_EM), (chh - 1) / 1.2)
        if cell_fs >= 4:  # the shares only where they can be read
            for li in range(n_l):
                for h in range(n_h):
                    g = groups[li, h]
                    if g == "none":
                        continue
                    axis = next(a for a in AXES if g in profile.label_freq[a])
                    share = profile.label_freq[axis][g][li, h]
                    ax.text(h, li, f"{share:.0%}", ha="center", va="center",
                            fontsize=cell_fs, color="white")
        xk = _thin(range(n_h), cw, 2 * CHAR_EM * fs * 0.9 + 3)
        yk = _thin(range(n_l), chh, fs * 0.9 * 1.2 + 1)
        ax.set_xticks(xk, [str(h) for h in xk])
        ax.set_yticks(yk, [str(li) for li in yk])
    return fig


def save_figure(fig: Figure, path: str | Path, fmt: str | None = None,
                dpi: float | None = None) -> Path:
    """Write ``fig`` atomically (temporary file in the same folder, then rename) with
    TrueType fonts in PDF and real text in SVG."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "png").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; choose one of {FORMATS}")
    with atomic_writer(path) as fh:
        _write(fig, fh, fmt, dpi)
    return path


def figure_bytes(fig: Figure, fmt: str = "png", dpi: float | None = None) -> bytes:
    """The file ``save_figure`` would write, in memory (clipboard, previews)."""
    buf = io.BytesIO()
    _write(fig, buf, fmt, dpi)
    return buf.getvalue()


def _write(fig: Figure, fh, fmt: str, dpi: float | None) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with matplotlib.rc_context(EXPORT_RC):
        fig.savefig(fh, format=fmt, dpi=dpi or getattr(fig, "export_dpi", 150),
                    metadata=_metadata(fmt))


def _metadata(fmt: str) -> dict:
    from vitexplorer import __version__

    key = {"png": "Software", "pdf": "Creator", "svg": "Creator"}[fmt]
    return {key: f"vitexplorer {__version__}"}
