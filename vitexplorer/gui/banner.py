"""A non-blocking message bar above the image, with the actions that resolve it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton


class Banner(QFrame):
    """Shows a message and buttons; hidden until :meth:`show_message`."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#banner { background: palette(alternate-base); "
                           "border: 1px solid #d9a400; border-radius: 4px; }")
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._layout.addWidget(self.label, 1)
        self._buttons: list[QPushButton] = []
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        self._close = close
        self._layout.addWidget(close)
        self.hide()

    def show_message(self, text: str, actions: list[tuple[str, Callable[[], None]]] = ()) -> None:
        for b in self._buttons:
            b.deleteLater()
        self._buttons = []
        self.label.setText(text)
        for label, fn in actions:
            b = QPushButton(label)
            b.clicked.connect(fn)
            self._layout.insertWidget(self._layout.count() - 1, b)
            self._buttons.append(b)
        self.show()

    def button_labels(self) -> list[str]:
        return [b.text() for b in self._buttons]
