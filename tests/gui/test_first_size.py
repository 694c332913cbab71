"""The first start's window size follows the screen: all of a small laptop screen, the
default on a middling one, most of a large monitor (not a 1280x800 island on 1920x1080)."""

from __future__ import annotations

import pytest

from vitexplorer.gui.remembered import first_size


@pytest.mark.parametrize(("available", "expected"), [
    ((1024, 700), (1024, 700)),  # a small laptop: the whole free area, never more
    ((1366, 740), (1280, 740)),  # a common laptop: the default width, the free height
    ((1920, 1050), (1632, 892)),  # a full-HD monitor less its panel: 85% of it
    ((3840, 2100), (3264, 1785)),
])
def test_first_size_fits_and_uses_the_screen(available, expected):
    assert first_size(available) == expected


def test_a_window_saved_on_a_larger_screen_opens_fitted_to_this_one(qtbot, settings):
    """Saved on a 1920x1080 monitor, opened on a 1024x700 laptop: Qt's restoreGeometry
    shrank it to a 2/3 island (831x466 there); the first start's fit is used instead. A
    window that fits the screen comes back as it was."""
    from tests.gui.conftest import MODEL_KW
    from vitexplorer.gui.main_window import MainWindow
    from vitexplorer.gui.remembered import save_state

    def window():
        w = MainWindow(settings, model="vit_tiny_patch16_224", weights="random",
                       model_kwargs=MODEL_KW)
        qtbot.addWidget(w)
        return w

    big = window()
    free = big.screen().availableGeometry()
    big.resize(free.width() + 600, free.height() + 300)
    save_state(big)
    again = window()
    assert again.size().toTuple() == first_size((free.width(), free.height()))
    again.resize(free.width() - 100, free.height() - 100)
    save_state(again)
    assert window().size().toTuple() == (free.width() - 100, free.height() - 100)
