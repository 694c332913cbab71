"""The colour scale of the current view: the colormap with the values at its ends."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from vitexplorer.core.constants import DEFAULT_CMAP
from vitexplorer.core.render import colormap_lut
from vitexplorer.gui.state import SCALE_SCOPES


def format_value(v: float) -> str:
    """Attention shares are small numbers: three significant digits, no exponent below 1e-4."""
    return f"{v:.3g}" if v == 0 or abs(v) >= 1e-4 else f"{v:.1e}"


class ColourBar(QWidget):
    """A horizontal bar under the image: low value, the colormap, high value, the scope."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._cmap = DEFAULT_CMAP
        self._range: tuple[float, float] | None = None
        self._caption = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Colour scale of the view: the values (share of the map's mass per "
                        "patch) at its two ends and what shares the range")

    def set_scale(self, cmap: str, vrange: tuple[float, float], scale: str,
                  clipped: bool) -> None:
        self._cmap = cmap
        self._range = vrange
        self._caption = SCALE_SCOPES[scale] + (" (percentile-clipped)" if clipped else "")
        self.update()

    def labels(self) -> tuple[str, str, str]:
        """(low, high, caption) as drawn (tests read them)."""
        if self._range is None:
            return ("", "", "")
        return (format_value(self._range[0]), format_value(self._range[1]), self._caption)

    def sizeHint(self) -> QSize:
        return QSize(300, self.fontMetrics().height() + 8)

    def paintEvent(self, _event) -> None:
        if self._range is None:
            return
        p = QPainter(self)
        fm = self.fontMetrics()
        low, high, caption = self.labels()
        h = self.height()
        x = 4
        p.drawText(QRect(x, 0, fm.horizontalAdvance(low) + 4, h),
                   Qt.AlignmentFlag.AlignVCenter, low)
        x += fm.horizontalAdvance(low) + 8
        cap_w = fm.horizontalAdvance(caption) + 12
        bar_w = max(40, min(360, self.width() - x - fm.horizontalAdvance(high) - 12 - cap_w))
        lut = colormap_lut(self._cmap)
        strip = QImage(bytes(lut.tobytes()), 256, 1, 256 * 3, QImage.Format.Format_RGB888)
        p.drawImage(QRect(x, 4, bar_w, h - 8), strip)
        x += bar_w + 6
        p.drawText(QRect(x, 0, fm.horizontalAdvance(high) + 4, h),
                   Qt.AlignmentFlag.AlignVCenter, high)
        x += fm.horizontalAdvance(high) + 10
        p.drawText(QRect(x, 0, self.width() - x, h), Qt.AlignmentFlag.AlignVCenter, caption)
        p.end()
