"""The large image view: zoom (wheel, Ctrl +/-), pan (drag), fit, click to query a patch."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QGraphicsItemGroup,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
)

#: the patch-query marker: white and magenta, never the cyan of the 60%-mass contour
MARKER_OUTER, MARKER_INNER = QColor(255, 255, 255), QColor(255, 0, 200)
CONTOUR = QColor(0, 255, 255)
#: lines over the image (contour, mask outline) keep their full width on an image shown at
#: least this many screen pixels long, and thin in proportion on a smaller one (a 40 x 30
#: photo at 100 %), down to MIN_LINE
FULL_LINES, MIN_LINE = 300, 0.5


class ImageView(QGraphicsView):
    """Shows one pixmap; emits ``clicked(x, y)`` in image pixels (display-image coordinates)."""

    clicked = Signal(float, float)
    #: arrow keys are forwarded (the window moves through heads and layers with them)
    arrow_pressed = Signal(int)
    #: the zoom changed (fit, zoom, 100 %): lines over the image take their new width
    scaled = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        # parts of the image the model never saw (cropped away): a dark veil
        self._seen: QRectF | None = None
        self._unseen = QGraphicsPathItem()
        self._unseen.setBrush(QBrush(QColor(0, 0, 0, 140), Qt.BrushStyle.BDiagPattern))
        self._unseen.setPen(QPen(Qt.PenStyle.NoPen))
        self.scene().addItem(self._unseen)
        self._marker = QGraphicsItemGroup()
        for colour, width, style in ((MARKER_OUTER, 5, Qt.PenStyle.SolidLine),
                                     (MARKER_INNER, 2, Qt.PenStyle.DashLine)):
            for _ in range(2):  # the square and its cross
                item = QGraphicsPathItem()
                pen = QPen(colour, width, style)
                pen.setCosmetic(True)
                item.setPen(pen)
                self._marker.addToGroup(item)
        self._marker.setVisible(False)
        self.scene().addItem(self._marker)
        # the 60%-mass contour: a line, not pixels of the image (a 40 x 30 photo's 1-pixel
        # border, fitted to the view, was ten screen pixels thick)
        self._contour = QGraphicsPathItem()
        self._contour.setZValue(5)
        self.scene().addItem(self._contour)
        self.scaled.connect(self._scale_contour)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(self.palette().dark())
        # small, so two views side by side (compare mode) still fit a 1024 px screen
        self.setMinimumSize(160, 120)
        self._fit = True
        self._press: QPointF | None = None
        #: when it is ``active()``, a left drag goes to its press/move/release (scene
        #: coordinates) instead of panning: the mask overlay's drawing tools
        self.drawer = None
        self.setToolTip("Wheel: zoom · drag: pan · F: fit · click: query a patch (when on)")

    def set_pixmap(self, pixmap: QPixmap) -> None:
        new_size = pixmap.size() != self._item.pixmap().size()
        self._item.setPixmap(pixmap)
        self.scene().setSceneRect(QRectF(pixmap.rect()))
        if new_size or self._fit:
            self.fit()

    def pixmap(self) -> QPixmap:
        return self._item.pixmap()

    def show_marker(self, rect: QRectF | None) -> None:
        """A square with a cross over the queried patch (None hides it)."""
        self._marker.setVisible(rect is not None)
        if rect is None:
            return
        square, cross = QPainterPath(), QPainterPath()
        square.addRect(rect)
        c = rect.center()
        cross.moveTo(c.x() - rect.width() / 4, c.y())
        cross.lineTo(c.x() + rect.width() / 4, c.y())
        cross.moveTo(c.x(), c.y() - rect.height() / 4)
        cross.lineTo(c.x(), c.y() + rect.height() / 4)
        items = self._marker.childItems()
        for i, item in enumerate(items):
            item.setPath(square if i % 2 == 0 else cross)

    def show_unseen(self, box: QRectF | None) -> None:
        """Veil the image outside ``box``, the part of it the model sees (None: no veil)."""
        self._seen = box
        path = QPainterPath()
        if box is not None:
            path.addRect(QRectF(self._item.pixmap().rect()))
            inner = QPainterPath()
            inner.addRect(box)
            path = path.subtracted(inner)
        self._unseen.setPath(path)

    def unseen_area(self) -> float:
        """Share of the image veiled as unseen (0 when the model sees all of it)."""
        pix = self._item.pixmap()
        if self._seen is None or pix.isNull():
            return 0.0
        seen = self._seen.intersected(QRectF(pix.rect()))
        return 1.0 - seen.width() * seen.height() / (pix.width() * pix.height())

    def show_contour(self, contours: list[np.ndarray] | None) -> None:
        """The 60%-mass contour: ``(n, 2)`` int x, y pixel indices per contour, drawn
        through the pixel centres (None or [] hides it)."""
        path = QPainterPath()
        for c in contours or []:
            path.addPolygon(QPolygonF([QPointF(x + 0.5, y + 0.5) for x, y in c.tolist()]))
            path.closeSubpath()
        self._contour.setPath(path)
        self._scale_contour()

    def line_width(self, width: float) -> float:
        """A screen width for a line of ``width`` px over the image: full on an image shown
        at least FULL_LINES px long, in proportion below (never under MIN_LINE)."""
        pix = self._item.pixmap()
        if pix.isNull():
            return width
        shown = max(pix.width(), pix.height()) * self.transform().m11()
        return max(MIN_LINE, width * min(1.0, shown / FULL_LINES))

    def _scale_contour(self) -> None:
        pen = QPen(CONTOUR, self.line_width(2))
        pen.setCosmetic(True)
        self._contour.setPen(pen)

    def marker_visible(self) -> bool:
        return self._marker.isVisible()

    def fit(self) -> None:
        self._fit = True
        if not self._item.pixmap().isNull():
            self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)
            self.scaled.emit()

    def zoom(self, factor: float) -> None:
        self._fit = False
        self.scale(factor, factor)
        self.scaled.emit()

    def actual_size(self) -> None:
        self._fit = False
        self.resetTransform()
        self.scaled.emit()

    def wheelEvent(self, event) -> None:
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit:
            self.fit()

    def _drawing(self, event) -> bool:
        return (self.drawer is not None and self.drawer.active()
                and event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton))

    def mousePressEvent(self, event) -> None:
        if self._drawing(event):
            self.drawer.press(self.mapToScene(event.position().toPoint()))
            return
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._drawing(event) and event.buttons() & Qt.MouseButton.LeftButton:
            self.drawer.move(self.mapToScene(event.position().toPoint()))
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._drawing(event):
            self.drawer.release(self.mapToScene(event.position().toPoint()))
            return
        super().mouseReleaseEvent(event)
        if self._press is not None and (event.position() - self._press).manhattanLength() < 4:
            p = self.mapToScene(event.position().toPoint())
            if self._item.contains(p):
                self.clicked.emit(p.x(), p.y())
        self._press = None

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            self.arrow_pressed.emit(event.key())
            return
        super().keyPressEvent(event)
