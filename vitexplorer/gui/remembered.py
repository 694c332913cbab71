"""What the window keeps between sessions: geometry and dock layout, view options, grid order,
brush size and mask outline."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vitexplorer.gui.main_window import MainWindow

#: state field -> settings key
REMEMBERED = {"method": "view/method", "fusion": "view/fusion", "discard": "view/discard",
              "cmap": "view/cmap", "opacity": "view/opacity", "scaling": "view/scaling",
              "contour": "view/contour", "percentile": "view/percentile",
              "scale": "view/scale", "upsample": "view/upsample", "policy": "view/policy",
              "sort_by_cluster": "groups/sort_by_cluster", "brush": "draw/brush",
              "show_outline": "draw/outline"}
#: the first start's size on a screen that holds it (a laptop's 1280x800)...
DEFAULT_SIZE = (1280, 800)
#: ... and the share of a larger screen it takes (a 1920x1080 monitor: 1632x918)
SCREEN_SHARE = 0.85


def first_size(available: tuple[int, int]) -> tuple[int, int]:
    """The window's size at the first start on a screen whose free area is ``available``:
    :data:`SCREEN_SHARE` of a large screen, :data:`DEFAULT_SIZE` on a middling one, never
    more than the screen (a 1024x700 laptop gets all of it)."""
    return tuple(min(free, max(default, int(SCREEN_SHARE * free)))
                 for free, default in zip(available, DEFAULT_SIZE, strict=True))


def restore_state(w: MainWindow) -> None:
    """Window geometry, dock layout and the remembered state fields from the settings."""
    s = w.settings
    geometry = s.get("window/geometry")
    screen = w.screen().availableGeometry() if w.screen() else None
    if geometry and not geometry.isEmpty() and _fits(s.get("window/size"), screen):
        w.restoreGeometry(geometry)
    else:
        if screen is None:
            w.resize(*DEFAULT_SIZE)
        else:
            w.resize(*first_size((screen.width(), screen.height())))
            frame = w.frameGeometry()
            frame.moveCenter(screen.center())
            w.move(frame.topLeft())
    layout = s.get("window/state")
    if layout and not layout.isEmpty():
        w.restoreState(layout)
    values = {field: s.get(key) for field, key in REMEMBERED.items()}
    w.state.update(**{k: v for k, v in values.items() if _valid(k, v)})


def _fits(size: str, screen) -> bool:
    """Whether a window saved at ``size`` ("WxH"; "" from an older version) fits the free
    area of ``screen``: one saved on a larger monitor gets the first start's fit instead of
    Qt's, which shrinks it to two thirds of the screen."""
    try:
        width, height = (int(v) for v in size.split("x"))
    except ValueError:
        return True
    return screen is None or (width <= screen.width() and height <= screen.height())


def _valid(field: str, value) -> bool:
    """False for a stored choice this version does not offer (an older or edited file)."""
    from vitexplorer.core.constants import FUSIONS, METHODS
    from vitexplorer.core.images import RESIZE_POLICIES
    from vitexplorer.core.render import COLORMAPS, SCALINGS
    from vitexplorer.gui.state import SCALE_SCOPES

    choices = {"method": METHODS, "fusion": FUSIONS, "cmap": COLORMAPS,
               "scaling": SCALINGS, "scale": tuple(SCALE_SCOPES),
               "upsample": ("bilinear", "nearest"), "policy": RESIZE_POLICIES}
    if field == "percentile":
        return 50.0 < value <= 100.0
    if field == "brush":  # the brush box's range
        return 2 <= value <= 200
    return field not in choices or value in choices[field]


def default_docks(w: MainWindow) -> None:
    """First start: controls a fifth of the width on the left, heads and scores a third on
    the right (heads above, scores and groups tabbed below)."""
    from PySide6.QtCore import Qt

    d = w.docks
    width, height = w.width(), w.height()
    w.resizeDocks([d["Controls"], d["Heads"]], [max(200, width // 5), max(300, width // 3)],
                  Qt.Orientation.Horizontal)
    w.resizeDocks([d["Heads"], d["Selected head"]], [height // 2, height // 2],
                  Qt.Orientation.Vertical)


def save_state(w: MainWindow) -> None:
    s = w.settings
    s.set("window/geometry", w.saveGeometry())
    normal = w.normalGeometry()
    s.set("window/size", f"{normal.width()}x{normal.height()}")
    s.set("window/state", w.saveState())
    for field, key in REMEMBERED.items():
        s.set(key, getattr(w.state, field))
    s.sync()
