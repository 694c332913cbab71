"""The head grid's group frames: each head framed in its group's colour, "none" not."""

from __future__ import annotations

import numpy as np

from vitexplorer.core.constants import GROUP_COLOURS


def test_set_groups_frames_each_head_in_its_group_colour(qtbot):
    from PySide6.QtGui import QColor

    from vitexplorer.gui.head_grid import HeadGrid

    grid = HeadGrid()
    qtbot.addWidget(grid)
    grid.resize(300, 300)
    grey = np.full((2, 3, 32, 32, 3), 128, np.uint8)
    grid.set_thumbnails(grey)
    names = np.array([["foreground", "none", "edge"], ["sink", "colour", "none"]])
    grid.set_groups(names, {(0, 0): "group foreground"})
    grid.set_current(1, 2)  # the current cell's highlight away from the cells read below
    image = grid.grab().toImage()
    for (li, h), group in np.ndenumerate(names):
        if (li, h) == (1, 2):
            continue
        r = grid.cell_rect(li, h)
        edge = QColor(image.pixel(r.x() + 1, r.center().y())).name()
        inside = QColor(image.pixel(r.center().x(), r.center().y())).name()
        want = "#808080" if group == "none" else QColor(GROUP_COLOURS[group]).name()
        assert edge == want, (li, h, group, edge)
        assert inside == "#808080"
    r = grid.cell_rect(0, 0)
    assert grid.tooltip_at(r.center().x(), r.center().y()) == "Layer 0, head 0\ngroup foreground"


def test_a_panorama_s_thumbnails_leave_room_for_the_row_labels(qtbot):
    """A 6000 x 800 photo's thumbnails are 72 x 10 px: rows squeezed to 8 px overlapped
    their 'L0'..'L11' labels. Each cell is at least half as tall as wide (a tall photo:
    as wide as half its height) and the thumbnail keeps its aspect inside it."""
    from PySide6.QtGui import QColor

    from vitexplorer.gui.head_grid import HeadGrid

    grid = HeadGrid()
    qtbot.addWidget(grid)
    grid.resize(300, 300)
    wide = np.zeros((12, 6, 10, 72, 3), np.uint8)
    wide[..., 0] = 255  # red thumbnails
    grid.set_thumbnails(wide)
    rows = grid.cell_rect(1, 0).y() - grid.cell_rect(0, 0).y()
    assert rows >= grid.fontMetrics().height(), "a row holds its label"
    r = grid.cell_rect(0, 1)
    image = grid.grab().toImage()
    assert QColor(image.pixel(r.center().x(), r.center().y())).name() == "#ff0000"
    assert QColor(image.pixel(r.center().x(), r.y() + 1)).name() != "#ff0000", \
        "letterboxed, not stretched"
    grid.resize(300, 600)
    grid.set_thumbnails(np.zeros((12, 6, 72, 10, 3), np.uint8))  # a tall photo
    cols = grid.cell_rect(0, 1).x() - grid.cell_rect(0, 0).x()
    assert cols >= grid.fontMetrics().horizontalAdvance("h5")
