"""A label that shows a picture scaled to its width, keeping the aspect ratio."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget


class ScaledPixmap(QWidget):
    #: a click on the picture (to show it larger)
    clicked = Signal()

    def __init__(self, placeholder: str = "", parent=None) -> None:
        super().__init__(parent)
        self._pix = QPixmap()
        self._placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_pixmap(self, pix: QPixmap) -> None:
        self._pix = pix
        self.updateGeometry()
        self.update()

    def pixmap(self) -> QPixmap:
        return self._pix

    def hasHeightForWidth(self) -> bool:
        return not self._pix.isNull()

    def heightForWidth(self, w: int) -> int:
        if self._pix.isNull():
            return 60
        return round(w * self._pix.height() / self._pix.width())

    def sizeHint(self) -> QSize:
        return QSize(300, self.heightForWidth(300))

    def mouseReleaseEvent(self, event) -> None:
        if not self._pix.isNull() and event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        if self._pix.isNull():
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        scaled = self._pix.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - scaled.width()) // 2
        p.drawPixmap(x, 0, scaled.width(), scaled.height(), self._pix)
