"""Head similarity (JS distance matrix in cluster order) and divergence across depth,
painted with QPainter from arrays the worker computed."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from vitexplorer.gui.qimage import to_qimage


class SimilarityView(QWidget):
    """Left: the distance matrix (yellow = similar) with clusters outlined. Right: the
    mean distance between a layer's heads, by layer."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._groups = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(140)
        self.setToolTip("Jensen-Shannon distance between head maps in cluster order "
                        "(clusters outlined; yellow = similar) and the mean distance "
                        "between the heads of each layer (divergence across depth)")

    def set_groups(self, groups) -> None:
        self._groups = groups
        self._image = to_qimage(groups.matrix)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(320, 170)

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        pal = self.palette()
        if self._groups is None:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                       "Head similarity and divergence appear here")
            return
        g = self._groups
        side = min(self.height() - 20, self.width() * 0.5)
        mat = QRectF(4, 16, side, side)
        p.drawText(QRectF(4, 0, side, 16), Qt.AlignmentFlag.AlignLeft,
                   f"similarity ({int(g.clustering.labels.max())} clusters)")
        p.drawImage(mat, self._image)
        labels = g.clustering.labels[g.clustering.order]
        n = len(labels)
        cell = side / max(n, 1)
        p.setPen(QPen(QColor("red"), 1.2))
        start = 0
        for i in range(1, n + 1):
            if i == n or labels[i] != labels[start]:
                if i - start > 1:
                    p.drawRect(QRectF(mat.x() + start * cell, mat.y() + start * cell,
                                      (i - start) * cell, (i - start) * cell))
                start = i
        # divergence curve
        plot = QRectF(mat.right() + 38, 16, self.width() - mat.right() - 44, side - 14)
        p.setPen(pal.text().color())
        p.drawText(QRectF(plot.x(), 0, plot.width(), 16), Qt.AlignmentFlag.AlignLeft,
                   "divergence")
        p.setPen(QPen(pal.mid().color(), 1))
        p.drawRect(plot)
        d = np.asarray(g.divergence, float)
        if len(d) > 1 and plot.width() > 10:
            top = max(float(d.max()), 1e-6)
            pts = [QPointF(plot.x() + plot.width() * i / (len(d) - 1),
                           plot.bottom() - plot.height() * v / top) for i, v in enumerate(d)]
            path = QPainterPath(pts[0])
            for q in pts[1:]:
                path.lineTo(q)
            p.setPen(QPen(pal.highlight().color(), 2))
            p.drawPath(path)
            p.setPen(pal.text().color())
            p.drawText(QRectF(plot.x() - 34, plot.y() - 2, 32, 14),
                       Qt.AlignmentFlag.AlignRight, f"{top:.2f}")
            p.drawText(QRectF(plot.x(), plot.bottom() + 1, plot.width(), 14),
                       Qt.AlignmentFlag.AlignCenter, f"layer 0 … {len(d) - 1}")
        p.end()
