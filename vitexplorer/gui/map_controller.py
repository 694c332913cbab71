"""Turns the view state into the picture of one model slot: the overlay, its map, the marker.

It reads the slot's finished analysis; what is not cached yet (a rollout setting, class
gradients, a layer's full attention for a patch query) is computed by a worker, after which
the frame is drawn. The frame goes out through :attr:`MapController.frame_ready`; the
controller touches no widget.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from vitexplorer.core.constants import CLASS_METHODS, MASS_SHARE, PER_HEAD_METHODS
from vitexplorer.core.render import display_range, mass_contours, overlay
from vitexplorer.gui import jobs
from vitexplorer.gui.slot_controller import SlotController
from vitexplorer.gui.state import ModelSlot, ViewOptions, ViewState
from vitexplorer.gui.tasks import TaskRunner

#: state fields that change the picture of a slot
DRAWN_FIELDS = frozenset({"method", "layer", "head", "target", "fusion", "discard", "cmap",
                          "opacity", "scaling", "percentile", "scale", "fixed_range",
                          "upsample", "contour", "query", "query_cell"})
#: state fields that change the head-grid thumbnails
THUMB_FIELDS = frozenset({"method", "cmap", "fusion", "discard"})


@dataclass
class Frame:
    """One drawn view: the overlay, the token-grid map behind it and what was asked."""

    image: np.ndarray  # RGB overlay on the display image
    grid_map: np.ndarray  # [gh, gw] map the overlay shows
    options: ViewOptions
    marker: tuple[float, float, float, float] | None  # queried patch (x, y, w, h), display px
    vrange: tuple[float, float]  # the values at the two ends of the colour scale
    scale: str  # who shares that range (state.SCALE_SCOPES; "map" in a patch query)
    view_box: tuple[float, float, float, float]  # the model's view (x0, y0, x1, y1), display px
    display_size: tuple[int, int]  # (height, width) of the display image
    #: the 60%-mass contour (render.mass_contours, display px), drawn by the view as a line
    contours: list[np.ndarray] | None = None

class MapController(SlotController):
    """Draws one slot's view whenever the state or the slot's analysis changes."""

    #: a new frame (the view, the head panel and the tests take it from here)
    frame_ready = Signal(object)
    #: new head-grid thumbnails ``[L, H, h, w, 3]``
    thumbnails_ready = Signal(object)
    #: a line for the status bar
    message = Signal(str)

    def __init__(self, state: ViewState, slot: ModelSlot, tasks: TaskRunner,
                 parent: QObject | None = None) -> None:
        super().__init__(state, slot, tasks, parent)
        self.last_frame: Frame | None = None
        self._thumb_key: tuple | None = None
        self._drawn: tuple | None = None  # (finished, options, query cell) of the last frame
        slot.finished_changed.connect(self._finished)
        slot.head_groups_changed.connect(lambda _g: self.render())

    # --- reacting --------------------------------------------------------------------------
    def _finished(self, finished) -> None:
        self._thumb_key = ("head", self.state.cmap, "mean", 0.0)
        self.thumbnails_ready.emit(finished.thumbnails)
        self._refresh_thumbnails()
        d = self._drawn
        if d is None or d[0] is not finished or d[1:] != (self.view_options(),
                                                           self.state.query_cell):
            self.render()  # else the state change that came with it drew it already

    def _state_changed(self, names: frozenset[str]) -> None:
        if names & THUMB_FIELDS:
            self._refresh_thumbnails()
        if names & DRAWN_FIELDS:
            self.render()

    def _refresh_thumbnails(self) -> None:
        if self.slot.finished is None:
            return
        o = self.state.options
        method = o.method if o.method in PER_HEAD_METHODS else "head"
        key = (method, o.cmap, o.fusion, o.discard)
        if key == self._thumb_key:
            return
        self._thumb_key = key
        self.tasks.run(self._kind("thumbs"), jobs.thumbnails_job, self.slot.analysis, method,
                       o.cmap, o.fusion, o.discard, on_done=self.thumbnails_ready.emit,
                       message="Drawing head thumbnails…")

    # --- the map ---------------------------------------------------------------------------
    def cached_map(self, o: ViewOptions) -> np.ndarray | None:
        """The map the view shows for ``o``, or None when it is not computed yet.

        Never computes anything heavy and never starts a worker (see :meth:`request_map`).
        """
        a = self.slot.analysis
        cell = self.state.query_cell
        if o.query != "off" and cell is not None:
            head = o.head if o.method in PER_HEAD_METHODS else None
            maps = a.patch_query(o.layer, head, *cell, compute=False)
            if maps is None:
                return None
            return maps[0] if o.query == "row" else maps[1]
        target = self._target(o)
        if o.method in CLASS_METHODS and not a.has_gradients(target):
            return None
        if not a.has_map(o.method, o.fusion, o.discard, o.target):
            return None
        return a.map(o.method, o.layer, o.head, o.fusion, o.discard, o.target)

    def _target(self, o: ViewOptions) -> int:
        return o.target if o.target is not None else self.slot.analysis.top_k(1)[0][0]

    def request_map(self, o: ViewOptions) -> None:
        """Start the worker that computes what :meth:`cached_map` lacks, then draw again."""
        a = self.slot.analysis

        def redraw(_result) -> None:
            self.render()

        if o.query != "off" and self.state.query_cell is not None:
            self.tasks.run(self._kind("layer"), jobs.layer_job, a, o.layer, on_done=redraw,
                           message=f"Attention of layer {o.layer}…")
        elif o.method in CLASS_METHODS and not a.has_gradients(self._target(o)):
            target = self._target(o)
            self.tasks.run(self._kind("gradients"), jobs.gradients_job, a, target,
                           on_done=redraw, on_error=self._usage_error,
                           message=f"Gradients for {a.class_name(target)}…")
        else:
            self.tasks.run(self._kind("maps"), jobs.maps_job, a, o.method, o.fusion,
                           o.discard, o.target, on_done=redraw, message="Computing rollout…")

    def _usage_error(self, exc: BaseException) -> bool:
        """A map the model cannot give (a class method on a backbone) is a status line."""
        from vitexplorer.core.errors import UsageError

        if isinstance(exc, UsageError):
            self.message.emit(str(exc))
            return True
        return False

    def view_options(self) -> ViewOptions:
        """The options this slot draws with (compare mode's slot B translates them)."""
        return self.state.options

    def render(self) -> None:
        """Draw the frame from the finished analysis (no forward), or request what is missing."""
        f = self.slot.finished
        if f is None:
            return
        o = self.view_options()
        grid_map = self.cached_map(o)
        if grid_map is None:
            self.request_map(o)
            return
        geom = f.analysis.geometry.scaled(f.display_scale)
        scale = "map" if self._querying(o) else o.scale
        vrange = self.color_range(o, grid_map, scale)
        image = overlay(f.display, grid_map, geom, o.cmap, o.opacity, o.scaling, o.upsample,
                        vrange=vrange)
        contours = mass_contours(grid_map, MASS_SHARE, geom) if o.contour else None
        self.last_frame = Frame(image, grid_map, o, self._marker(o), vrange, scale,
                                geom.box, f.display.shape[:2], contours)
        self._drawn = (f, o, self.state.query_cell)
        self.frame_ready.emit(self.last_frame)

    def _querying(self, o: ViewOptions) -> bool:
        return o.query != "off" and self.state.query_cell is not None

    def color_range(self, o: ViewOptions, grid_map: np.ndarray,
                    scale: str) -> tuple[float, float]:
        """The colour scale's ends: the map's own range (also a patch query's), or the
        analysis's shared or fixed range (the same :meth:`Analysis.colour_range` the
        exported figures use)."""
        if scale == "map":
            return display_range(grid_map, o.scaling, o.percentile)
        return self.slot.analysis.colour_range(scale, o.method, o.layer, o.head, o.fusion,
                                               o.discard, o.target, o.scaling, o.percentile,
                                               o.fixed_range)

    # --- patch query -----------------------------------------------------------------------
    def query_at(self, x: float, y: float) -> None:
        """Query the patch under display pixel (x, y) when the patch query is on."""
        f = self.slot.finished
        if f is None or self.state.query == "off":
            return
        cell = f.analysis.geometry.scaled(f.display_scale).image_to_grid(x, y)
        if cell is None:
            self.message.emit("That point lies outside the model's view (cropped away).")
            return
        self.state.update(query_cell=cell)
        what = "where it looks" if self.state.query == "row" else "what looks at it"
        self.message.emit(f"Patch row {cell[0]}, column {cell[1]}: {what}")

    def _marker(self, o: ViewOptions) -> tuple[float, float, float, float] | None:
        cell = self.state.query_cell
        if o.query == "off" or cell is None:
            return None
        f = self.slot.finished
        geom = f.analysis.geometry.scaled(f.display_scale)
        x0, y0, x1, y1 = geom.box
        gh, gw = geom.grid
        cw, ch = (x1 - x0) / gw, (y1 - y0) / gh
        return (x0 + cell[1] * cw, y0 + cell[0] * ch, cw, ch)
