"""The large image view: zoom (wheel, Ctrl +/-), pan (drag), fit, click to query a patch."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsRectItem, QGraphicsScene, QGraphicsView


class ImageView(QGraphicsView):
    """Shows one pixmap; emits ``clicked(x, y)`` in image pixels (display-image coordinates)."""

    clicked = Signal(float, float)
    #: arrow keys are forwarded (the window moves through heads and layers with them)
    arrow_pressed = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        self._marker = QGraphicsRectItem()
        pen = QPen(QColor(0, 255, 255), 2)
        pen.setCosmetic(True)
        self._marker.setPen(pen)
        self._marker.setVisible(False)
        self.scene().addItem(self._marker)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(self.palette().dark())
        self.setMinimumSize(320, 240)
        self._fit = True
        self._press: QPointF | None = None
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
        self._marker.setVisible(rect is not None)
        if rect is not None:
            self._marker.setRect(rect)

    def marker_visible(self) -> bool:
        return self._marker.isVisible()

    def fit(self) -> None:
        self._fit = True
        if not self._item.pixmap().isNull():
            self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self._fit = False
        self.scale(factor, factor)

    def actual_size(self) -> None:
        self._fit = False
        self.resetTransform()

    def wheelEvent(self, event) -> None:
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fit:
            self.fit()

    def mousePressEvent(self, event) -> None:
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
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
