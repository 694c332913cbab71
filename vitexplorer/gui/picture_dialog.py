"""A figure too large for its preview, shown readable: the batch head profile is a print-size
page (12 layers x 12 heads: 2160 x 2700 px) that the batch dialog's preview shrinks to a
thumbnail. Here it fills the dialog's width and scrolls; Whole figure fits all of it."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

#: the widest the dialog opens (the profile's text reads at about half its pixels)
WIDTH = 1100


class PictureDialog(QDialog):
    """``pixmap`` at the dialog's width (never above its own size), scrolling down."""

    def __init__(self, pixmap: QPixmap, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self._pix = pixmap
        self.label = QLabel()
        self.area = QScrollArea()
        self.area.setWidget(self.label)
        self.area.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.whole = QCheckBox("Whole figure")
        self.whole.setToolTip("Fit the whole figure in the window (smaller text)")
        self.whole.toggled.connect(self._rescale)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.whole)
        row.addStretch(1)
        row.addWidget(buttons)
        lay = QVBoxLayout(self)
        lay.addWidget(self.area, 1)
        lay.addLayout(row)
        screen = (parent.screen() if parent is not None
                  else QGuiApplication.primaryScreen()).availableGeometry()
        self.resize(min(WIDTH, screen.width() * 95 // 100), screen.height() * 9 // 10)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        frame = 2 * self.area.frameWidth()
        room = QSize(self.area.width() - frame, self.area.height() - frame)
        if self.whole.isChecked():
            size = self._pix.size().scaled(room, Qt.AspectRatioMode.KeepAspectRatio)
        else:  # the page's width, the vertical scroll bar beside it
            w = room.width() - self.area.verticalScrollBar().sizeHint().width()
            size = QSize(w, round(w * self._pix.height() / max(self._pix.width(), 1)))
        if size.width() > self._pix.width():
            size = self._pix.size()
        self.label.setPixmap(self._pix.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                              Qt.TransformationMode.SmoothTransformation))
        self.label.resize(size)
