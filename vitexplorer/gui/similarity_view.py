"""Head similarity (JS distance matrix in cluster order) and divergence across depth,
painted with QPainter from arrays the worker computed."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QSizePolicy, QVBoxLayout, QWidget

from vitexplorer.core.render import colormap_lut
from vitexplorer.gui.qimage import to_qimage

TITLE, AXIS, BAND, SCALE_W = 16, 34, 5, 10
BAND_COLOURS = (QColor("#e6194b"), QColor("#4363d8"))  # alternate clusters along the edges


class SimilarityView(QWidget):
    """Left: the distance matrix (yellow = similar) with clusters outlined and banded, head
    ticks and a colour scale; click a cell to choose that pair of heads. Right: the mean
    distance between a layer's heads, by layer."""

    #: ((layer, head), (layer, head)) of the clicked cell
    pair_chosen = Signal(object, object)
    #: double-click: show the figure large
    enlarge_requested = Signal()

    def __init__(self, parent=None, large: bool = False) -> None:
        super().__init__(parent)
        self._groups = None
        self._pair: tuple | None = None
        self._large = large
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(180)
        self.setToolTip("Jensen-Shannon distance between head maps in cluster order "
                        "(clusters outlined and banded; yellow = similar): click a cell to "
                        "choose that pair of heads, double-click to enlarge. Right: the mean "
                        "distance between the heads of each layer (divergence across depth)")

    def set_groups(self, groups) -> None:
        self._groups = groups
        self._image = to_qimage(groups.matrix)
        self._pair = None
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(340, 220)

    # --- geometry -------------------------------------------------------------------------
    def matrix_rect(self) -> QRectF:
        share = 0.62 if self._large else 0.45
        side = min(self.height() - TITLE - AXIS, (self.width() - AXIS) * share)
        return QRectF(AXIS, TITLE, max(side, 10), max(side, 10))

    def plot_rect(self) -> QRectF:
        m = self.matrix_rect()
        x = m.right() + SCALE_W + 70  # scale labels, then the plot's own value labels
        return QRectF(x, TITLE, max(10.0, self.width() - x - 8), m.height() - 10)

    def ordered_cells(self) -> list[tuple[int, int]]:
        return self._groups.clustering.ordered_cells() if self._groups is not None else []

    def pair_at(self, x: float, y: float) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """The two heads of the matrix cell under (x, y), or None."""
        m = self.matrix_rect()
        cells = self.ordered_cells()
        if not cells or not m.contains(x, y):
            return None
        n = len(cells)
        i = min(n - 1, int((y - m.y()) / m.height() * n))
        j = min(n - 1, int((x - m.x()) / m.width() * n))
        return cells[i], cells[j]

    def distance(self, a: tuple[int, int], b: tuple[int, int]) -> float:
        c = self._groups.clustering
        return float(c.distances[c.cells.index(a), c.cells.index(b)])

    # --- painting -------------------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        pal = self.palette()
        if self._groups is None:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                       "Head similarity and divergence appear here")
            return
        g = self._groups
        m = self.matrix_rect()
        cells = self.ordered_cells()
        n = len(cells)
        cell = m.width() / max(n, 1)
        title = f"similarity ({int(g.clustering.labels.max())} clusters)"
        if self._pair is not None:
            a, b = self._pair
            title = f"{a[0]}.{a[1]} vs {b[0]}.{b[1]}: JS {self.distance(a, b):.3f}"
        p.setPen(pal.text().color())
        p.drawText(QRectF(0, 0, m.right() + SCALE_W + 40, TITLE), Qt.AlignmentFlag.AlignLeft,
                   title)
        p.drawImage(m, self._image)
        self._draw_clusters(p, m, cell)
        self._draw_ticks(p, m, cell, cells)
        self._draw_scale(p, m)
        if self._pair is not None:
            i, j = cells.index(self._pair[0]), cells.index(self._pair[1])
            p.setPen(QPen(QColor("white"), 2))
            p.drawRect(QRectF(m.x() + j * cell, m.y() + i * cell, max(cell, 3), max(cell, 3)))
        self._draw_divergence(p, np.asarray(g.divergence, float))
        p.end()

    def _draw_clusters(self, p: QPainter, m: QRectF, cell: float) -> None:
        labels = self._groups.clustering.labels[self._groups.clustering.order]
        n, start, k = len(labels), 0, 0
        for i in range(1, n + 1):
            if i == n or labels[i] != labels[start]:
                colour = BAND_COLOURS[k % 2]
                span = (i - start) * cell
                p.fillRect(QRectF(m.x() + start * cell, m.y() - BAND - 1, span, BAND), colour)
                p.fillRect(QRectF(m.x() - BAND - 1, m.y() + start * cell, BAND, span), colour)
                if i - start > 1:
                    p.setPen(QPen(QColor("red"), 1.2))
                    p.drawRect(QRectF(m.x() + start * cell, m.y() + start * cell, span, span))
                start, k = i, k + 1

    def _draw_ticks(self, p: QPainter, m: QRectF, cell: float,
                    cells: list[tuple[int, int]]) -> None:
        """"layer.head" of every k-th row and column, k so that the labels never overlap."""
        fm = self.fontMetrics()
        every = max(1, int(np.ceil((fm.height() + 1) / max(cell, 1e-6))))
        p.setPen(self.palette().text().color())
        for i in range(0, len(cells), every):
            text = f"{cells[i][0]}.{cells[i][1]}"
            y = m.y() + (i + 0.5) * cell
            p.drawText(QRectF(0, y - fm.height() / 2, AXIS - BAND - 3, fm.height()),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
        p.drawText(QRectF(m.x(), m.bottom() + 2, m.width(), fm.height()),
                   Qt.AlignmentFlag.AlignCenter, "heads (layer.head), cluster order")

    def _draw_scale(self, p: QPainter, m: QRectF) -> None:
        """The matrix colours: 1 - JS distance through viridis (0 = disjoint maps)."""
        lut = colormap_lut("viridis")
        bar = QRectF(m.right() + 4, m.y(), SCALE_W, m.height())
        steps = 64
        for k in range(steps):
            c = lut[round(255 * (1 - k / (steps - 1)))]
            p.fillRect(QRectF(bar.x(), bar.y() + bar.height() * k / steps, bar.width(),
                              bar.height() / steps + 1), QColor(*map(int, c)))
        fm = self.fontMetrics()
        p.setPen(self.palette().text().color())
        p.drawText(QRectF(bar.right() + 2, bar.y() - 2, 16, fm.height()),
                   Qt.AlignmentFlag.AlignLeft, "0")
        p.drawText(QRectF(bar.right() + 2, bar.bottom() - fm.height() + 2, 16, fm.height()),
                   Qt.AlignmentFlag.AlignLeft, "1")
        p.drawText(QRectF(bar.x() - 2, bar.bottom() + 2, 30, fm.height()),
                   Qt.AlignmentFlag.AlignLeft, "JS")

    def _draw_divergence(self, p: QPainter, d: np.ndarray) -> None:
        plot = self.plot_rect()
        pal = self.palette()
        fm = self.fontMetrics()
        p.setPen(pal.text().color())
        p.drawText(QRectF(plot.x() - 28, 0, plot.width() + 28, TITLE),
                   Qt.AlignmentFlag.AlignLeft, "divergence by layer")
        p.setPen(QPen(pal.mid().color(), 1))
        p.drawRect(plot)
        if len(d) < 2 or plot.width() <= 10:
            return
        top = max(float(d.max()), 1e-6)
        pts = [QPointF(plot.x() + plot.width() * i / (len(d) - 1),
                       plot.bottom() - plot.height() * v / top) for i, v in enumerate(d)]
        path = QPainterPath(pts[0])
        for q in pts[1:]:
            path.lineTo(q)
        p.setPen(QPen(pal.highlight().color(), 2))
        p.drawPath(path)
        p.setPen(pal.text().color())
        for text, y in ((f"{top:.2f}", plot.y()), ("0", plot.bottom() - fm.height())):
            p.drawText(QRectF(plot.x() - 28, y, 26, fm.height()),
                       Qt.AlignmentFlag.AlignRight, text)
        p.save()
        p.translate(plot.x() - 28, plot.center().y())
        p.rotate(-90)
        p.drawText(QRectF(-plot.height() / 2, -fm.height(), plot.height(), fm.height()),
                   Qt.AlignmentFlag.AlignCenter, "mean JS")
        p.restore()
        y = plot.bottom() + 1
        p.drawText(QRectF(plot.x() - 10, y, 20, fm.height()), Qt.AlignmentFlag.AlignCenter,
                   "0")
        p.drawText(QRectF(plot.right() - 10, y, 20, fm.height()),
                   Qt.AlignmentFlag.AlignCenter, str(len(d) - 1))
        p.drawText(QRectF(plot.x() + 10, y, plot.width() - 20, fm.height()),
                   Qt.AlignmentFlag.AlignCenter, "layer")

    # --- input ----------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        pair = self.pair_at(event.position().x(), event.position().y())
        if pair is not None:
            self._pair = pair
            self.update()
            self.pair_chosen.emit(*pair)

    def mouseDoubleClickEvent(self, _event) -> None:
        if not self._large:
            self.enlarge_requested.emit()


class SimilarityDialog(QDialog):
    """The similarity figure, large; its clicks choose pairs like the small one's."""

    def __init__(self, groups, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Head similarity and divergence")
        self.resize(900, 620)
        self.view = SimilarityView(self, large=True)
        self.view.set_groups(groups)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view, 1)
        lay.addWidget(close)
