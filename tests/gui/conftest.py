"""A main window on a tiny random-init model, closed after each test."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_IMAGES

MODEL_KW = {"img_size": 64, "depth": 3}


@pytest.fixture
def settings(tmp_path):
    from vitexplorer.gui.settings import Settings

    return Settings(tmp_path / "settings.ini")


@pytest.fixture
def window(qtbot, settings):
    """A window whose tiny model is loaded; no image opened yet."""
    from vitexplorer.gui.main_window import MainWindow

    w = MainWindow(settings, model="vit_tiny_patch16_224", weights="random",
                   model_kwargs=MODEL_KW)
    qtbot.addWidget(w)
    w.show()
    w.load_model("vit_tiny_patch16_224", "random")
    qtbot.waitUntil(lambda: w.state.a.loaded is not None, timeout=60000)
    yield w
    w.tasks.cancel()


def open_and_wait(qtbot, window, path):
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_path(str(path))
    return window.state.a.analysis


@pytest.fixture
def chelsea():
    return TEST_IMAGES / "chelsea.png"
