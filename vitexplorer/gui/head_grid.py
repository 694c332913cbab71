"""All layers x heads as thumbnails in one painted widget, framed in each head's group colour.

One widget paints every thumbnail (not L x H labels), so a ViT-L grid of 384 cells stays fast.
The thumbnails are scaled to fill the widget; in cluster order each cell carries its
"layer.head" label and a bar marks where a new similarity cluster starts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from vitexplorer.core.constants import GROUP_COLOURS
from vitexplorer.gui.qimage import to_pixmap

MARGIN, GAP, LABEL = 4, 3, 24
SEPARATOR = QColor("#00c8ff")  # start of a similarity cluster


class HeadGrid(QWidget):
    """Click a head to select it (``selected(layer, head)``); arrow keys ask to step through
    the cells in the order shown (``step_requested(d_layer, d_head)``)."""

    selected = Signal(int, int)
    step_requested = Signal(int, int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._pix: list[list[QPixmap]] = []
        self._frames: dict[tuple[int, int], QColor] = {}
        self._info: Callable[[int, int], str] | dict | None = None
        self._order: list[tuple[int, int]] | None = None  # cluster order (row-major cells)
        self._clusters: list[int] | None = None  # cluster id of each cell in that order
        self._visible: set[tuple[int, int]] | None = None
        self._heat: np.ndarray | None = None  # [L, H] in [0, 1], drawn over the thumbnails
        self._heat_cells = False  # True: each cell is the heat's colour (a heatmap)
        self._cur = (0, 0)
        self._cell = QSize(48, 48)

    # --- data -----------------------------------------------------------------------------
    def set_thumbnails(self, thumbs: np.ndarray) -> None:
        self._pix = [[to_pixmap(t) for t in row] for row in thumbs]
        h, w = thumbs.shape[2:4]
        # a panorama's (or a tall photo's) cells stay at least half as tall (wide) as they
        # are wide (tall), so that their row (column) labels fit; the thumbnail is
        # letterboxed in its cell
        self._cell = QSize(max(w, h // 2), max(h, w // 2))
        self.update()

    def set_groups(self, names: np.ndarray,
                   info: Callable[[int, int], str] | dict | None = None) -> None:
        """Frame each cell in the colour of its head group (``names`` ``[L, H]``, from
        ``HeadTable.groups()``; "none" is not framed), and the text of each cell's tooltip
        (group, score): a dict by cell, or ``info(layer, head)`` asked for only when the
        tooltip shows."""
        self._frames = {(li, h): QColor(GROUP_COLOURS[str(g)])
                        for (li, h), g in np.ndenumerate(names) if g != "none"}
        self._info = info
        self.update()

    def set_order(self, order: list[tuple[int, int]] | None,
                  clusters: list[int] | None = None) -> None:
        """None: layers as rows, heads as columns; else cells in this order, H per row,
        with ``clusters[i]`` the cluster of ``order[i]`` (separators where it changes)."""
        self._order = order
        self._clusters = clusters if order is not None else None
        self.update()

    def set_filter(self, cells: set[tuple[int, int]] | None) -> None:
        self._visible = cells
        self.update()

    def set_heat(self, values: np.ndarray | None) -> None:
        """A score per head in [0, 1] drawn as a bar under each thumbnail (None: off)."""
        self._heat = None if values is None else np.asarray(values, float)
        self.update()

    def show_heatmap(self, on: bool) -> None:
        """Draw the heat as a heatmap (cells coloured by it, inferno) instead of thumbnails."""
        self._heat_cells = on
        self.update()

    def heat_colour(self, layer: int, head: int) -> QColor | None:
        """The colour a cell is painted in heatmap mode (None when the thumbnail shows)."""
        if not (self._heat_cells and self._heat is not None):
            return None
        from vitexplorer.core.render import colormap_lut

        v = float(np.clip(self._heat[layer, head], 0, 1))
        return QColor(*(int(c) for c in colormap_lut("inferno")[round(255 * v)]))

    def set_current(self, layer: int, head: int) -> None:
        self._cur = (layer, head)
        self.update()

    @property
    def current(self) -> tuple[int, int]:
        """The (layer, head) drawn as selected."""
        return self._cur

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self._pix), len(self._pix[0]) if self._pix else 0)

    # --- geometry -------------------------------------------------------------------------
    def _positions(self) -> list[tuple[int, int, int, int]]:
        """(layer, head, row, col) of each cell as laid out now."""
        n_l, n_h = self.shape
        cells = self._order or [(li, h) for li in range(n_l) for h in range(n_h)]
        return [(li, h, i // max(n_h, 1), i % max(n_h, 1)) for i, (li, h) in enumerate(cells)]

    def _rect(self, row: int, col: int) -> QRect:
        s = self._scale()
        w, h = int(self._cell.width() * s), int(self._cell.height() * s)
        return QRect(LABEL + MARGIN + col * (w + GAP), LABEL + MARGIN + row * (h + GAP), w, h)

    def _scale(self) -> float:
        """Thumbnail scale that fills the widget with the whole grid (width and height)."""
        n_l, n_h = self.shape
        if not n_h:
            return 1.0
        avail_w = self.width() - LABEL - 2 * MARGIN - GAP * n_h
        avail_h = self.height() - LABEL - 2 * MARGIN - GAP * n_l
        fit = min(avail_w / (n_h * self._cell.width()), avail_h / (n_l * self._cell.height()))
        return max(0.15, fit)

    def sizeHint(self) -> QSize:
        n_l, n_h = self.shape
        return QSize(LABEL + 2 * MARGIN + max(n_h, 6) * (50 + GAP),
                     LABEL + 2 * MARGIN + max(n_l, 6) * (40 + GAP))

    def minimumSizeHint(self) -> QSize:
        return QSize(160, 120)  # thumbnails shrink; the window never grows for them

    def cell_rect(self, layer: int, head: int) -> QRect:
        """Where the thumbnail of (layer, head) is drawn now."""
        for li, h, row, col in self._positions():
            if (li, h) == (layer, head):
                return self._rect(row, col)
        raise KeyError((layer, head))

    def cells_in_order(self) -> list[tuple[int, int]]:
        """(layer, head) of every cell in the order shown, row by row."""
        return [(li, h) for li, h, _r, _c in self._positions()]

    @property
    def per_row(self) -> int:
        return max(1, self.shape[1])

    def is_dimmed(self, layer: int, head: int) -> bool:
        """True when a group filter hides the head (drawn faint)."""
        return self._visible is not None and (layer, head) not in self._visible

    def cluster_starts(self) -> list[int]:
        """Positions (in the order shown) where a new similarity cluster begins."""
        c = self._clusters
        if not c:
            return []
        return [i for i in range(1, len(c)) if c[i] != c[i - 1]]

    def tooltip_at(self, x: int, y: int) -> str:
        cell = self.cell_at(x, y)
        if cell is None:
            return "Click a head to show it large · arrow keys move in the order shown"
        text = f"Layer {cell[0]}, head {cell[1]}"
        info = self._info
        info = info(*cell) if callable(info) else (info or {}).get(cell, "")
        return f"{text}\n{info}" if info else text

    # --- painting and input ---------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        pal = self.palette()
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, font.pointSizeF() * 0.85))
        p.setFont(font)
        if not self._pix:
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Heads appear here")
            return
        n_h = self.shape[1]
        by_layer = self._order is None
        p.setPen(pal.text().color())
        if by_layer:
            for c in range(n_h):
                r = self._rect(0, c)
                p.drawText(QRect(r.x(), MARGIN, r.width(), LABEL - 2),
                           Qt.AlignmentFlag.AlignCenter, f"h{c}")
        else:
            p.drawText(QRect(LABEL + MARGIN, MARGIN, self.width(), LABEL - 2),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       "by similarity cluster (bars: a new cluster starts)")
        starts = set(self.cluster_starts())
        for i, (li, h, row, col) in enumerate(self._positions()):
            r = self._rect(row, col)
            if col == 0 and by_layer:
                p.setPen(pal.text().color())
                p.drawText(QRect(0, r.y(), LABEL + MARGIN - 2, r.height()),
                           Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                           f"L{li}")
            p.setOpacity(0.18 if self.is_dimmed(li, h) else 1.0)
            heat = self.heat_colour(li, h)
            if heat is None:
                pix = self._pix[li][h]
                fit = QRect(QPoint(0, 0), pix.size().scaled(
                    r.size(), Qt.AspectRatioMode.KeepAspectRatio))
                fit.moveCenter(r.center())
                p.drawPixmap(fit, pix)
            else:
                p.fillRect(r, heat)
            p.setOpacity(1.0)
            if self._heat is not None and heat is None:
                v = float(np.clip(self._heat[li, h], 0, 1))
                bar = QRect(r.x(), r.bottom() - 4, max(1, round(r.width() * v)), 5)
                p.fillRect(QRect(r.x(), r.bottom() - 4, r.width(), 5), QColor(0, 0, 0, 150))
                p.fillRect(bar, QColor(255, 255, 255))
            if not by_layer:
                tag = QRect(r.x() + 1, r.y() + 1, 30, 13)
                p.fillRect(tag, QColor(0, 0, 0, 160))
                p.setPen(QColor("white"))
                p.drawText(tag, Qt.AlignmentFlag.AlignCenter, f"{li}.{h}")
            colour = self._frames.get((li, h))
            if colour is not None:
                p.setPen(QPen(colour, 3))
                p.drawRect(r.adjusted(1, 1, -1, -1))
            if i in starts:
                p.fillRect(QRect(r.x() - GAP, r.y() - 2, GAP, r.height() + 4), SEPARATOR)
            if (li, h) == self._cur:
                p.setPen(QPen(pal.highlight().color(), 3))
                p.drawRect(r.adjusted(-2, -2, 2, 2))
        p.end()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            pos = event.pos()
            QToolTip.showText(event.globalPos(), self.tooltip_at(pos.x(), pos.y()), self)
            return True
        return super().event(event)

    def cell_at(self, x: int, y: int) -> tuple[int, int] | None:
        for li, h, row, col in self._positions():
            if self._rect(row, col).contains(x, y):
                return li, h
        return None

    def mousePressEvent(self, event) -> None:
        cell = self.cell_at(int(event.position().x()), int(event.position().y()))
        if cell is not None:
            self._cur = cell
            self.update()
            self.selected.emit(*cell)

    def keyPressEvent(self, event) -> None:
        step = {Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1),
                Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0)}.get(event.key())
        if step is None or not self._pix:
            super().keyPressEvent(event)
            return
        self.step_requested.emit(*step)
