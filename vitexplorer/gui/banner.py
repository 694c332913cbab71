"""A non-blocking message bar above the image, with the actions that resolve it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
)

#: px the message keeps beside its close button when the banner is at its narrowest
MIN_TEXT_WIDTH = 120


class Banner(QFrame):
    """Shows a message and buttons; hidden until :meth:`show_message`.

    The text takes the banner's full width and the buttons sit in a row below it, so a
    long message never wraps into a narrow column beside wide buttons; when the row does not
    fit the banner's width the buttons wrap onto more rows, so that the banner never makes
    the window wider than a laptop screen.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#banner { background: palette(alternate-base); "
                           "border: 1px solid #d9a400; border-radius: 4px; }")
        outer = QVBoxLayout(self)
        # the banner's minimum width is minimumSizeHint's (the widest button), not the row's
        outer.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        outer.setContentsMargins(8, 4, 4, 4)
        outer.setSpacing(2)
        top = QHBoxLayout()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        top.addWidget(self.label, 1)
        outer.addLayout(top)
        row = QHBoxLayout()
        row.addStretch(1)
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        row.addLayout(self._grid)
        outer.addLayout(row)
        self._columns = 0
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
            self._buttons.append(b)
        self._columns = 0
        self._arrange(self.width())
        self.show()

    def _arrange(self, width: int) -> None:
        """The buttons in as many columns as fit ``width`` (one row when they all fit)."""
        if not self._buttons:
            return
        gap = max(self._grid.horizontalSpacing(), 0)
        margins = self.layout().contentsMargins()
        free = width - margins.left() - margins.right()
        widths = [b.sizeHint().width() for b in self._buttons]
        columns = len(widths)
        while columns > 1 and max(
                sum(widths[i:i + columns]) + gap * (columns - 1)
                for i in range(0, len(widths), columns)) > free:
            columns -= 1
        if columns == self._columns:
            return
        self._columns = columns
        for b in self._buttons:
            self._grid.removeWidget(b)
        for i, b in enumerate(self._buttons):
            self._grid.addWidget(b, i // columns, i % columns)

    def minimumSizeHint(self) -> QSize:
        """As narrow as the widest button (the buttons wrap), as tall as the rows need."""
        m = self.layout().contentsMargins()
        widest = max((b.sizeHint().width() for b in self._buttons), default=0)
        width = max(widest, self._close.sizeHint().width() + MIN_TEXT_WIDTH) + m.left() + m.right()
        return QSize(width, self.layout().minimumSize().height())

    def resizeEvent(self, event) -> None:
        self._arrange(event.size().width())
        super().resizeEvent(event)

    def button_labels(self) -> list[str]:
        return [b.text() for b in self._buttons]
