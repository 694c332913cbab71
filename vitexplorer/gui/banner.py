"""A non-blocking message bar above the image, with the actions that resolve it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
)


class Banner(QFrame):
    """Shows a message and buttons; hidden until :meth:`show_message`.

    The text takes the banner's full width and the buttons sit in a row below it, so a
    long message never wraps into a narrow column beside wide buttons.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#banner { background: palette(alternate-base); "
                           "border: 1px solid #d9a400; border-radius: 4px; }")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 4, 4, 4)
        outer.setSpacing(2)
        top = QHBoxLayout()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        top.addWidget(self.label, 1)
        outer.addLayout(top)
        self._layout = QHBoxLayout()
        self._layout.addStretch(1)
        outer.addLayout(self._layout)
        self._buttons: list[QPushButton] = []
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        self._close = close
        top.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, actions: list[tuple[str, Callable[[], None]]] = ()) -> None:
        for b in self._buttons:
            b.deleteLater()
        self._buttons = []
        self.label.setText(text)
        for label, fn in actions:
            b = QPushButton(label)
            b.clicked.connect(fn)
            self._layout.addWidget(b)
            self._buttons.append(b)
        self.show()

    def button_labels(self) -> list[str]:
        return [b.text() for b in self._buttons]
