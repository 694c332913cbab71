"""What the window shows, in one Qt-free place (napari's ViewerModel, mnelab's Model).

Widgets and controllers never read each other: they read :class:`ViewState`, change it with
:meth:`ViewState.update` (or a slot's setters) and subscribe to its events. It lives in the
GUI package because it holds GUI choices (colormap, selection, grid order), but it imports no
Qt (an import-linter contract keeps it so): tests drive it without widgets, a notebook or a
second front end could reuse it, and every event runs synchronously on the caller's thread.

A state holds two model slots, ``"A"`` and ``"B"``, so two models can analyse one image side
by side; the view options (method, layer, head, ...) are shared by both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from vitexplorer.core.constants import DEFAULT_CMAP, DEFAULT_OPACITY

if TYPE_CHECKING:
    import numpy as np

    from vitexplorer.core.analysis import Analysis
    from vitexplorer.core.models import LoadedModel


class Event:
    """Callbacks called in connection order with the emitted arguments."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


@dataclass(frozen=True)
class ViewOptions:
    """How the current map is computed and drawn (a snapshot handed to workers and exports)."""

    method: str = "head"
    layer: int = -1
    head: int = 0
    target: int | None = None  # class of the gradient methods; None: the top-1 class
    fusion: str = "mean"
    discard: float = 0.0
    cmap: str = DEFAULT_CMAP
    opacity: float = DEFAULT_OPACITY
    scaling: str = "minmax"
    percentile: float = 99.0  # "percentile" scaling clips to [100 - p, p]
    scale: str = "map"  # who shares the colour scale: see SCALE_SCOPES
    fixed_range: tuple[float, float] = (0.0, 0.05)  # the range of the "fixed" scale
    upsample: str = "bilinear"  # smooth, or "nearest": the token grid as it is
    contour: bool = True
    query: str = "off"  # patch query: off, row (where it looks), column (what looks at it)


#: colour-scale scopes: one map's own range, or a range shared so maps compare by eye
SCALE_SCOPES = {"map": "own range of each map", "layer": "shared by the layer's heads",
                "model": "shared by every layer and head", "fixed": "fixed range"}


#: every field of the state besides the view options, with its default
STATE_FIELDS: dict[str, Any] = {
    "source": None,  # the current image: a path, "clipboard", or None
    "query_cell": None,  # (row, col) of the queried patch, or None
    "selection": None,  # frozenset of (layer, head) the grid highlights, or None for all
    "mask": "centre",  # foreground of the head scores: a core.constants.MASK_MODES entry
    "sort_by_cluster": False,  # head grid order: by layer, or by similarity cluster
    "importance_heatmap": False,  # the grid shows head importance as a heatmap
    "policy": "crop",  # how the image is fitted to the model's input (a new forward)
    "input_size": None,  # pixels per side the models are built for; None: their default
    "drawing": None,  # Drawing: the box, scribbles and mask edits on this image, or None
    "mask_file": None,  # a mask file the user chose for this image (a path), or None
    "draw_tool": None,  # what a drag on the image does: a DRAW_TOOLS key, or None (pan)
    "brush": 12,  # brush diameter in screen pixels (scribbles and mask edits)
    "show_outline": True,  # the foreground mask's outline over the image
}
#: the drawing tools: what a drag on the image draws
DRAW_TOOLS = {"box": "GrabCut box", "fg": "foreground scribble", "bg": "background scribble",
              "add": "add to the mask", "erase": "erase from the mask"}
OPTION_FIELDS = tuple(f.name for f in fields(ViewOptions))


@dataclass(frozen=True)
class Drawing:
    """What the user drew on one image, in the photo's pixels: a GrabCut box, scribbles
    (``core.masks.Stroke``) that seed GrabCut with it, and brush edits of the mask."""

    box: tuple[int, int, int, int] | None = None
    scribbles: tuple = ()
    edits: tuple = ()

    def __bool__(self) -> bool:
        return self.box is not None or bool(self.scribbles) or bool(self.edits)


@dataclass
class HeadGroups:
    """Head scores and relations of one analysis, for one foreground mask."""

    table: Any  # core.heads.HeadTable
    clustering: Any  # core.relations.Clustering
    divergence: np.ndarray
    matrix: np.ndarray  # RGB image of the JS distances in cluster order
    mask: str  # name of the foreground mask the table was scored with
    importance_class: str | None = None  # class the head importance was computed for
    foreground: Any = None  # the core.masks.Foreground scored against, on analysis.image
    outline: list = field(default_factory=list)  # its border: (n, 2) x, y on the display copy
    centre_box: bool = False  # drawn scribbles seeded GrabCut in the centre box (no box drawn)
    base_source: str = ""  # what made the mask before hand edits (core.masks.Foreground.source)
    mask_file: str | None = None  # the mask file that base is, chosen or found beside the image


@dataclass
class FinishedAnalysis:
    """An analysis of one image plus what the views draw without computing further."""

    analysis: Analysis
    display: np.ndarray  # RGB, the image the view draws on (longest side bounded)
    display_scale: float
    thumbnails: np.ndarray  # [L, H, h, w, 3] uint8 for the per-head method shown
    head_groups: HeadGroups | None = None


def has_classifier(analysis: Analysis) -> bool:
    """Whether the analysis' model predicts classes (a backbone such as DINO's does not:
    gradient rollout, relevance and head importance need a class)."""
    loaded = analysis.loaded
    return loaded is None or bool(getattr(loaded.model, "num_classes", 0))


class ModelSlot:
    """One model and its finished analysis of the current image.

    Events: ``loaded(LoadedModel)``, ``finished(FinishedAnalysis)``,
    ``head_groups(HeadGroups)`` (new scores, relations or importance for the same analysis).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.loaded: LoadedModel | None = None
        self.finished: FinishedAnalysis | None = None
        self.loaded_changed = Event()
        self.finished_changed = Event()
        self.head_groups_changed = Event()

    @property
    def analysis(self) -> Analysis | None:
        return self.finished.analysis if self.finished is not None else None

    @property
    def head_groups(self) -> HeadGroups | None:
        return self.finished.head_groups if self.finished is not None else None

    def set_loaded(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.loaded_changed.emit(loaded)

    def set_finished(self, finished: FinishedAnalysis) -> None:
        self.finished = finished
        self.finished_changed.emit(finished)

    def set_head_groups(self, groups: HeadGroups) -> None:
        """New head scores for the analysis shown (ignored when none is)."""
        if self.finished is None:
            return
        self.finished.head_groups = groups
        self.head_groups_changed.emit(groups)


class ViewState:
    """Image, model slots, view options, patch query, selection, mask and grid order.

    :meth:`update` sets fields and emits ``changed(names)`` once with the set of names whose
    value really changed, so one user action is one event however many fields it touches.
    """

    def __init__(self, **values: Any) -> None:
        self.options = ViewOptions()
        self._values = dict(STATE_FIELDS)
        self.slots = {name: ModelSlot(name) for name in ("A", "B")}
        self.changed = Event()
        self.history = DrawingHistory(self)
        if values:
            self.update(**values)

    # --- fields ----------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in OPTION_FIELDS:
            return getattr(self.options, name)
        if name in STATE_FIELDS:
            return self._values[name]
        raise AttributeError(name)

    def update(self, **values: Any) -> frozenset[str]:
        """Set fields by name (view options and state fields); returns the changed names."""
        unknown = set(values) - set(OPTION_FIELDS) - set(STATE_FIELDS)
        if unknown:
            raise AttributeError(f"ViewState has no field {sorted(unknown)}")
        if values.get("query") == "off":
            values.setdefault("query_cell", None)  # no marker without a query
        if "source" in values and values["source"] != self._values["source"]:
            # what was drawn or chosen for the last image goes, in the same event
            values.setdefault("drawing", None)
            values.setdefault("mask_file", None)
        opts = {k: v for k, v in values.items() if k in OPTION_FIELDS}
        changed = {k for k, v in opts.items() if getattr(self.options, k) != v}
        if changed:
            self.options = replace(self.options, **{k: opts[k] for k in changed})
        for k, v in values.items():
            if k in STATE_FIELDS and self._values[k] != v:
                self._values[k] = v
                changed.add(k)
        names = frozenset(changed)
        if names:
            self.changed.emit(names)
        return names

    # --- slots -----------------------------------------------------------------------------
    @property
    def a(self) -> ModelSlot:
        """The first (and, outside compare mode, only) model slot."""
        return self.slots["A"]

    @property
    def b(self) -> ModelSlot:
        return self.slots["B"]

    # --- heads -----------------------------------------------------------------------------
    def select_head(self, layer: int, head: int) -> None:
        self.update(layer=layer, head=head)

    def step_head(self, d_layer: int, d_head: int, order: Iterable[tuple[int, int]],
                  per_row: int) -> None:
        """Move the current head through the cells as the grid shows them.

        ``order`` lists the (layer, head) cells in display order, ``per_row`` of them a row:
        left/right steps one cell, up/down one row, wrapping around.
        """
        cells = list(order)
        if not cells:
            return
        current = (self.options.layer, self.options.head)
        i = cells.index(current) if current in cells else 0
        i = (i + d_head + d_layer * per_row) % len(cells)
        self.select_head(*cells[i])


class DrawingHistory:
    """Undo and redo of the foreground the user gives on the current image: every change of
    the state's ``drawing`` or ``mask_file`` (a box, a stroke, a typed box, Clear, a chosen
    mask file, a mode that drops them) is one step; a new image starts an empty history.
    Event: ``changed()`` when what can be undone or redone changes."""

    #: the state fields a step restores
    FIELDS = ("drawing", "mask_file")
    #: steps kept (a drawing is a few strokes of points: small)
    LIMIT = 200

    def __init__(self, state: ViewState) -> None:
        self.state = state
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []
        self._last = self._now()
        self._moving = False
        self.changed = Event()
        state.changed.connect(self._state_changed)

    def _now(self) -> tuple:
        return tuple(getattr(self.state, f) for f in self.FIELDS)

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> None:
        self._step(self._undo, self._redo)

    def redo(self) -> None:
        self._step(self._redo, self._undo)

    def drop_mask_file(self) -> None:
        """Unchoose the mask file, here and in every step (it cannot be used), as no step
        of its own: when choosing it was the last step, the foreground in use before (a
        drawing, another file) comes back; steps that then change nothing go."""
        bad = self.state.mask_file
        if self._now() == (None, bad) and self._undo:
            self._set(**dict(zip(self.FIELDS, self._undo.pop(), strict=True)))
        else:
            self._set(mask_file=None)
        for stack in (self._undo, self._redo):
            fixed = [(d, None if f == bad else f) for d, f in stack]
            stack[:] = [e for i, e in enumerate(fixed)
                        if e != (fixed[i + 1] if i + 1 < len(fixed) else self._last)]
        self.changed.emit()

    def _step(self, source: list, target: list) -> None:
        if not source:
            return
        target.append(self._now())
        self._set(**dict(zip(self.FIELDS, source.pop(), strict=True)))
        self.changed.emit()

    def _set(self, **values: Any) -> None:
        """Change the state without recording a step."""
        self._moving = True
        try:
            self.state.update(**values)
        finally:
            self._moving = False
        self._last = self._now()

    def _state_changed(self, names: frozenset[str]) -> None:
        if "source" in names:
            self._undo.clear()
            self._redo.clear()
        elif names & set(self.FIELDS) and not self._moving:
            self._undo.append(self._last)
            del self._undo[:-self.LIMIT]
            self._redo.clear()
        elif not names & set(self.FIELDS):
            return
        self._last = self._now()
        if not self._moving:
            self.changed.emit()
