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
