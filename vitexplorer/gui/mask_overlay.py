"""The foreground over the image view: its outline, the GrabCut box, the scribbles, and the
drags that draw them.

The view's scene is in pixels of the display image (a photo may be decoded reduced, and the
display copy bounded); what is drawn goes into the state in pixels of the photo itself, the
same coordinates a typed box and a saved mask use, so the drawing survives another model or
image fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem
from shiboken6 import VoidPtr

from vitexplorer.core.masks import Stroke, centre_box
from vitexplorer.gui.image_view import ImageView
from vitexplorer.gui.state import Drawing, HeadGroups, ModelSlot, ViewState

#: outline yellow on a dark halo (the 60%-mass contour is cyan, the patch marker magenta)
OUTLINE, HALO = QColor(255, 220, 0), QColor(0, 0, 0, 160)
BOX = QColor(255, 140, 0)
#: foreground scribbles green, background red; add / erase while they are drawn
STROKE_COLOURS = {True: QColor(0, 230, 90, 150), False: QColor(255, 40, 40, 150)}
EDIT_COLOURS = {True: QColor(255, 220, 0, 120), False: QColor(90, 90, 90, 160)}


def _pen(colour: QColor, width: float, cosmetic: bool, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(colour, width, style, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
    pen.setCosmetic(cosmetic)
    return pen


def _polyline(points) -> QPainterPath:
    path = QPainterPath(QPointF(*points[0]))
    for p in points[1:]:
        path.lineTo(QPointF(*p))
    if len(points) == 1:  # a click: a dot as wide as the brush
        path.lineTo(QPointF(points[0][0] + 0.01, points[0][1]))
    return path


def _polygon(points: np.ndarray) -> QPolygonF:
    """``(n, 2)`` float x, y as a polygon, copied into its buffer at once (a QPointF is two
    doubles; a point-by-point loop took ~36 ms for the 21,000 points of an edited mask)."""
    points = np.ascontiguousarray(points, np.float64)
    polygon = QPolygonF()
    polygon.resize(len(points))
    if len(points):
        buffer = VoidPtr(polygon.data(), points.nbytes, True)
        np.frombuffer(buffer, np.float64).reshape(points.shape)[:] = points
    return polygon


class MaskOverlay(QObject):
    """Shows a slot's foreground outline and the state's drawing on ``view`` (slot A's
    view, and B's in compare mode); while a drawing tool is on, a drag on the view draws a
    box or a stroke into the state."""

    def __init__(self, state: ViewState, slot: ModelSlot, view: ImageView,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.slot, self.view = state, slot, view
        scene = view.scene()
        self._halo, self._outline = QGraphicsPathItem(), QGraphicsPathItem()
        self._scale_pens()
        self._box = QGraphicsPathItem()
        self._box.setPen(_pen(BOX, 2, True, Qt.PenStyle.DashLine))
        self._live = QGraphicsPathItem()
        self._strokes: list[QGraphicsPathItem] = []
        for item in (self._halo, self._outline, self._box, self._live):
            item.setZValue(10)
            scene.addItem(item)
        self._points: list[tuple[float, float]] = []
        view.drawer = self
        view.scaled.connect(self._scale_pens)
        state.changed.connect(self._state_changed)
        slot.head_groups_changed.connect(self.show_outline)
        slot.finished_changed.connect(self._new_analysis)

    # ------------------------------------------------------------------ coordinates
    def photo_per_scene(self) -> tuple[float, float] | None:
        """Photo pixels per display pixel along x and y; None before an analysis of the
        state's image (slot B may still show the last one)."""
        f = self.slot.finished
        if f is None or f.analysis.source != self.state.source:
            return None
        (ph, pw), (dh, dw) = f.analysis.photo_size, f.display.shape[:2]
        return pw / dw, ph / dh

    def to_photo(self, p: QPointF) -> tuple[float, float]:
        fx, fy = self.photo_per_scene()
        return p.x() * fx, p.y() * fy

    # ------------------------------------------------------------------ showing
    def _scale_pens(self) -> None:
        """The outline's width follows the image's size on screen (ImageView.line_width):
        a fixed 2 px line on a 4 px halo covered a tenth of a 40 x 30 photo at 100 %."""
        self._halo.setPen(_pen(HALO, self.view.line_width(4), True))
        self._outline.setPen(_pen(OUTLINE, self.view.line_width(2), True))

    def _state_changed(self, names: frozenset[str]) -> None:
        if names & {"draw_tool", "source"}:
            self._show_tool()
        if "drawing" in names:
            self.show_drawing()
        if "show_outline" in names:
            self._halo.setVisible(self.state.show_outline)
            self._outline.setVisible(self.state.show_outline)

    def _show_tool(self) -> None:
        """A cross and no panning while a drag draws, the hand otherwise."""
        on = self.active()
        self.view.setDragMode(self.view.DragMode.NoDrag if on else
                              self.view.DragMode.ScrollHandDrag)
        self.view.viewport().setCursor(Qt.CursorShape.CrossCursor if on else
                                       Qt.CursorShape.OpenHandCursor)

    def _new_analysis(self, finished) -> None:
        self._show_tool()
        self.show_drawing()
        self.show_outline(finished.head_groups)

    def show_outline(self, groups: HeadGroups | None) -> None:
        """The border of the mask the head scores used, on the display image (the worker
        gave it in display pixels: only copied into polygons here)."""
        path = QPainterPath()
        for contour in groups.outline if groups is not None else []:
            path.addPolygon(_polygon(contour))
            path.closeSubpath()
        self._halo.setPath(path)
        self._outline.setPath(path)

    def show_drawing(self) -> None:
        """The box and the scribbles of the state's drawing, on the display image; scribbles
        without a box show, dotted, the centre box GrabCut then starts from."""
        for item in self._strokes:
            self.view.scene().removeItem(item)
        self._strokes = []
        drawing, scale = self.state.drawing, self.photo_per_scene()
        box = QPainterPath()
        if drawing and scale is not None:
            fx, fy = scale
            shown = drawing.box
            if shown is None and drawing.scribbles:  # GrabCut starts from the centre box
                shown = centre_box(self.slot.finished.analysis.photo_size)
            self._box.setPen(_pen(BOX, 2, True, Qt.PenStyle.DashLine if drawing.box else
                                  Qt.PenStyle.DotLine))
            if shown is not None:
                x0, y0, x1, y1 = shown
                box.addRect(QRectF(x0 / fx, y0 / fy, (x1 - x0) / fx, (y1 - y0) / fy))
            for stroke in drawing.scribbles:
                item = QGraphicsPathItem(_polyline([(x / fx, y / fy) for x, y in stroke.points]))
                item.setPen(_pen(STROKE_COLOURS[stroke.foreground],
                                 2 * stroke.radius / fx, False))
                item.setZValue(9)
                self.view.scene().addItem(item)
                self._strokes.append(item)
        self._box.setPath(box)

    def outline_path(self) -> QPainterPath:
        return self._outline.path()

    # ------------------------------------------------------------------ drawing
    def active(self) -> bool:
        """Whether a drag draws (a tool is on and there is an analysis to draw on)."""
        return self.state.draw_tool is not None and self.photo_per_scene() is not None

    def press(self, p: QPointF) -> None:
        self._points = [(p.x(), p.y())]
        self.move(p)

    def move(self, p: QPointF) -> None:
        if not self._points:
            return
        tool = self.state.draw_tool
        path = QPainterPath()
        if tool == "box":
            self._points[1:] = [(p.x(), p.y())]
            path.addRect(QRectF(QPointF(*self._points[0]), p).normalized())
            self._live.setPen(_pen(BOX, 2, True))
        else:
            if (p.x(), p.y()) != self._points[-1]:
                self._points.append((p.x(), p.y()))
            path = _polyline(self._points)
            colours = STROKE_COLOURS if tool in ("fg", "bg") else EDIT_COLOURS
            self._live.setPen(_pen(colours[tool in ("fg", "add")], self.state.brush, True))
        self._live.setPath(path)

    def release(self, p: QPointF) -> None:
        """Commit the drag to the state's drawing (photo pixels)."""
        if not self._points:
            return
        self.move(p)
        points, self._points = self._points, []
        self._live.setPath(QPainterPath())
        if self.photo_per_scene() is None:  # the image changed under the drag
            return
        tool, drawing = self.state.draw_tool, self.state.drawing or Drawing()
        if tool == "box":
            self._commit_box(points[0], points[-1], drawing)
            return
        fx, fy = self.photo_per_scene()
        zoom = self.view.transform().m11()  # screen px per display px
        radius = self.state.brush / 2 / zoom * (fx + fy) / 2
        stroke = Stroke(tuple((x * fx, y * fy) for x, y in points), radius,
                        tool in ("fg", "add"))
        if tool in ("fg", "bg"):
            drawing = replace(drawing, scribbles=(*drawing.scribbles, stroke))
        else:
            drawing = replace(drawing, edits=(*drawing.edits, stroke))
        self.state.update(drawing=drawing)

    def _commit_box(self, a, b, drawing: Drawing) -> None:
        (ph, pw) = self.slot.finished.analysis.photo_size
        (ax, ay), (bx, by) = self.to_photo(QPointF(*a)), self.to_photo(QPointF(*b))
        x0, x1 = sorted((max(0, min(pw, round(ax))), max(0, min(pw, round(bx)))))
        y0, y1 = sorted((max(0, min(ph, round(ay))), max(0, min(ph, round(by)))))
        if x1 - x0 < 3 or y1 - y0 < 3:
            return  # a click, not a box
        self.state.update(drawing=replace(drawing, box=(x0, y0, x1, y1)))
