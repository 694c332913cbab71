"""Closing the window while a worker that cannot be interrupted still runs: the window
hides and a dialog names the job until it ends (it used to wait after the event loop, with
no window, up to 60 s); Quit now does not wait."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QPushButton

from vitexplorer.gui import jobs


@pytest.fixture
def held_load(window, monkeypatch):
    """A model load that ignores should_stop until the test releases it; it has ended when
    the test does (a build left running would draw from torch's generator in the next)."""
    release, started = threading.Event(), threading.Event()
    load = jobs.load_model_job

    def slow(*args, should_stop=None, **kwargs):
        started.set()
        release.wait(60)
        return load(*args, **kwargs)

    monkeypatch.setattr(jobs, "load_model_job", slow)
    window.load_model("vit_tiny_patch16_224", "random")
    assert started.wait(30)
    yield release
    release.set()
    assert QThreadPool.globalInstance().waitForDone(60000)


def visible_windows(window, dialog=None):
    """Which of ``window`` and its closing ``dialog`` (default: the one it shows) are
    visible; not every top-level window: an earlier test's window, closed while a worker
    of its own ran, may still show its own dialog."""
    from shiboken6 import isValid

    dialog = dialog or window.closing.dialog
    return [w for w in (window, dialog) if w is not None and isValid(w) and w.isVisible()]


def test_closing_during_an_uninterruptible_job_shows_it_until_it_ends(qtbot, window,
                                                                      held_load):
    window.close()
    dialog = window.closing.dialog
    assert dialog is not None and dialog.isVisible(), "no silent wait: the job is shown"
    assert not window.isVisible()
    assert "Loading vit_tiny_patch16_224" in dialog.labelText()
    window.close()  # a second close (Ctrl+C again) quits without waiting
    assert window.closing.abandoned and not visible_windows(window, dialog)


def test_the_close_completes_once_the_job_ends(qtbot, window, held_load):
    window.close()
    dialog = window.closing.dialog
    assert visible_windows(window) == [dialog]
    held_load.set()
    qtbot.waitUntil(lambda: not visible_windows(window, dialog), timeout=60000)
    assert not window.closing.abandoned, "ended on its own: nothing abandoned"
    assert not window.tasks.live_jobs()


def test_quit_now_does_not_wait(qtbot, window, held_load):
    window.close()
    dialog = window.closing.dialog
    quit_now, = [b for b in dialog.findChildren(QPushButton) if b.text() == "Quit now"]
    qtbot.mouseClick(quit_now, Qt.MouseButton.LeftButton)
    assert window.closing.abandoned and not visible_windows(window, dialog)


def test_the_dialog_names_the_job_still_waited_for(qtbot, window, held_load):
    """It named the first job for as long as it showed, also once that one had ended and
    another was what the close waited for."""
    release = threading.Event()

    def figure(should_stop=None):
        release.wait(60)

    window.tasks.run("export", figure, on_done=lambda _: None,
                     message="Writing figure.png…")
    try:
        window.close()
        dialog = window.closing.dialog
        assert "Loading vit_tiny_patch16_224" in dialog.labelText()
        held_load.set()
        qtbot.waitUntil(lambda: "Writing figure.png" in dialog.labelText(), timeout=20000)
        assert dialog.isVisible() and not window.isVisible()
    finally:
        release.set()  # ended before the next test (the fixture waits for the pool)
    qtbot.waitUntil(lambda: not visible_windows(window, dialog), timeout=60000)
