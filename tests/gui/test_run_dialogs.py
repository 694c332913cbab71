"""Batch and evaluate dialogs while their run is going: Esc cancels it where the user sees
it (the dialog stays, Run comes back once the cancelled worker has ended), never hides a
run that then ends unseen."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt

from tests.conftest import TEST_IMAGES
from vitexplorer.gui.picture_dialog import PictureDialog


def photos(tmp_path, n=6):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(n):
        shutil.copy(TEST_IMAGES / "coins.png", src / f"c{i}.png")
    return src


def test_escape_during_a_batch_cancels_it_in_view_and_resume_finishes(qtbot, window,
                                                                       tmp_path):
    from vitexplorer.gui.batch_dialog import BatchDialog

    dlg = BatchDialog(window.state.a.loaded, window.tasks, window.state.options,
                      str(tmp_path / "results"), window)
    qtbot.addWidget(dlg)
    dlg.open()  # window-modal, as File > Batch / Evaluate open it
    dlg.add_input(str(photos(tmp_path)))
    dlg.batch_size.setValue(1)
    dlg.start()
    assert window.tasks.is_running("batch")
    qtbot.keyClick(dlg, Qt.Key.Key_Escape)
    assert dlg.isVisible(), "Esc must not hide a running batch"
    assert not window.tasks.is_running("batch"), "Esc cancels the run"
    assert not dlg.run_button.isEnabled(), "no second run while the first one still writes"
    assert "Stopping" in dlg.status.text()
    qtbot.waitUntil(dlg.run_button.isEnabled, timeout=60000)
    assert "Cancelled" in dlg.status.text() and "Resume" in dlg.status.text()
    assert not dlg.cancel_button.isEnabled()
    dlg.start()  # resume: the images the cancelled run finished are skipped
    qtbot.waitUntil(dlg.open_button.isEnabled, timeout=120000)
    assert "images done" in dlg.status.text() and "0 failed" in dlg.status.text()
    qtbot.keyClick(dlg, Qt.Key.Key_Escape)
    assert not dlg.isVisible(), "without a run Esc closes the dialog"


def test_escape_during_an_evaluation_cancels_it_in_view(qtbot, window, tmp_path):
    from vitexplorer.gui.evaluate_dialog import EvaluateDialog

    dlg = EvaluateDialog(window.state.a.loaded, window.tasks, window)
    qtbot.addWidget(dlg)
    dlg.open()  # window-modal, as File > Batch / Evaluate open it
    dlg.folder.setText(str(photos(tmp_path, 3)))
    dlg.output.setText(str(tmp_path / "out"))
    dlg.steps.setValue(2)
    dlg.start()
    assert window.tasks.is_running("evaluate") and dlg.cancel_button.isEnabled()
    qtbot.keyClick(dlg, Qt.Key.Key_Escape)
    assert dlg.isVisible() and not window.tasks.is_running("evaluate")
    assert not dlg.run_button.isEnabled() and not dlg.cancel_button.isEnabled()
    qtbot.waitUntil(dlg.run_button.isEnabled, timeout=60000)
    assert "Cancelled" in dlg.summary.toPlainText()
    dlg.resume.setChecked(True)
    with qtbot.waitSignal(dlg.finished_run, timeout=120000) as got:
        dlg.start()
    result = got.args[0]
    assert result.done + result.skipped == 3 and not result.failed
    qtbot.keyClick(dlg, Qt.Key.Key_Escape)
    assert not dlg.isVisible()


def test_closing_a_dialog_during_its_run_asks_before_stopping_it(qtbot, window, tmp_path,
                                                                 monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from vitexplorer.gui.batch_dialog import BatchDialog

    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or answers.pop(0))
    dlg = BatchDialog(window.state.a.loaded, window.tasks, window.state.options,
                      str(tmp_path / "results"), window)
    qtbot.addWidget(dlg)
    dlg.open()
    dlg.add_input(str(photos(tmp_path)))
    dlg.batch_size.setValue(1)
    dlg.start()
    dlg.close()
    assert dlg.isVisible() and window.tasks.is_running("batch"), "No: the run goes on"
    assert "Resume" in asked[0]
    with qtbot.waitSignal(window.tasks.worker_finished, timeout=60000):
        dlg.close()
        assert not dlg.isVisible() and not window.tasks.is_running("batch")
    dlg.close()  # no run: closes without asking
    assert len(asked) == 2
    from vitexplorer.gui.evaluate_dialog import EvaluateDialog

    answers[:] = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    ev = EvaluateDialog(window.state.a.loaded, window.tasks, window)
    qtbot.addWidget(ev)
    ev.open()
    ev.folder.setText(str(tmp_path / "photos"))
    ev.output.setText(str(tmp_path / "out"))
    ev.start()
    ev.close()
    assert ev.isVisible() and window.tasks.is_running("evaluate")
    with qtbot.waitSignal(window.tasks.worker_finished, timeout=60000):
        ev.close()
        assert not ev.isVisible() and not window.tasks.is_running("evaluate")
    assert len(asked) == 4


def _batch_dialog(qtbot, window, tmp_path, n=6, size=2):
    from vitexplorer.gui.batch_dialog import BatchDialog

    dlg = BatchDialog(window.state.a.loaded, window.tasks, window.state.options,
                      str(tmp_path / "results"), window)
    qtbot.addWidget(dlg)
    dlg.open()
    dlg.add_input(str(photos(tmp_path, n)))
    dlg.batch_size.setValue(size)
    dlg.resume.setChecked(False)
    return dlg


def _cancel_when(qtbot, dlg, reached, go):
    """Start the run, click Cancel once the worker is held at ``reached``, release it."""
    dlg.start()
    assert reached.wait(60), "the worker never reached the point the test holds it at"
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    assert dlg.status.text() == "Stopping: writing the images already through the model…"
    go.set()
    qtbot.waitUntil(dlg.run_button.isEnabled, timeout=60000)
    return sorted(p.name for p in Path(dlg.output.text()).rglob("c*.json"))


def test_batch_cancel_while_the_next_batch_decodes_starts_no_other_forward(
        qtbot, window, tmp_path, monkeypatch):
    """Cancel between two forwards (batch 2 decoding, batch 1 written) keeps batch 1 only:
    the runner used to check only after a forward, so batch 2 ran and was written too."""
    import threading

    from vitexplorer.core import batch as batch_mod

    reached, go = threading.Event(), threading.Event()
    decode = batch_mod._decode_item

    def held(item, loaded, opts):
        if item.path.name == "c2.png":  # the first image of the second batch
            reached.set()
            go.wait(60)
        return decode(item, loaded, opts)

    monkeypatch.setattr(batch_mod, "_decode_item", held)
    dlg = _batch_dialog(qtbot, window, tmp_path)
    assert _cancel_when(qtbot, dlg, reached, go) == ["c0.png.json", "c1.png.json"]
    assert dlg.status.text().startswith("Cancelled after 2 of 6 images")


def test_batch_cancel_stops_the_forward_in_flight(qtbot, window, tmp_path, monkeypatch):
    """Cancel during the first forward stops it between blocks: nothing written (a resume
    redoes those images), instead of the whole batch running to its end."""
    import threading

    reached, go = threading.Event(), threading.Event()
    block = window.state.a.loaded.model.blocks[0]

    def hold(_module, _inputs, _output):
        reached.set()
        go.wait(60)

    handle = block.register_forward_hook(hold)
    try:
        dlg = _batch_dialog(qtbot, window, tmp_path)
        written = _cancel_when(qtbot, dlg, reached, go)
    finally:
        handle.remove()
    assert written == []
    assert dlg.status.text().startswith("Cancelled after 0 of 6 images")


def _close_button(dlg):
    from PySide6.QtWidgets import QDialogButtonBox

    box = dlg.findChild(QDialogButtonBox)
    assert box is not None, f"{type(dlg).__name__} has no button box"
    button = box.button(QDialogButtonBox.StandardButton.Close)
    assert button is not None and button.isVisible()
    return button


def test_evaluate_and_similarity_dialogs_close_with_a_button_or_esc(qtbot, window, chelsea,
                                                                    tmp_path, monkeypatch):
    """Both had no Close button. The evaluate dialog's asks first during a run (No: the
    run goes on) and Esc cancels the run in view, as the batch dialog's; the similarity
    figure's closes, and so does Esc."""
    from PySide6.QtWidgets import QMessageBox

    from tests.gui.conftest import open_and_wait
    from vitexplorer.gui.evaluate_dialog import EvaluateDialog

    ev = EvaluateDialog(window.state.a.loaded, window.tasks, window)
    qtbot.addWidget(ev)
    ev.open()
    qtbot.mouseClick(_close_button(ev), Qt.MouseButton.LeftButton)
    assert not ev.isVisible()
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    ev.open()
    ev.folder.setText(str(photos(tmp_path, 2)))
    ev.output.setText(str(tmp_path / "out"))
    ev.steps.setValue(2)
    ev.start()
    qtbot.mouseClick(_close_button(ev), Qt.MouseButton.LeftButton)
    assert asked and ev.isVisible() and window.tasks.is_running("evaluate")
    qtbot.keyClick(ev, Qt.Key.Key_Escape)
    assert ev.isVisible() and not window.tasks.is_running("evaluate")
    assert ev.summary.toPlainText().startswith("Stopping: the image in progress is dropped")
    qtbot.waitUntil(ev.run_button.isEnabled, timeout=60000)
    open_and_wait(qtbot, window, chelsea)
    qtbot.waitUntil(lambda: window.state.a.head_groups is not None, timeout=60000)
    for leave in ("button", "esc"):
        dlg = window.groups_panel.enlarge()
        qtbot.waitExposed(dlg)
        if leave == "button":
            qtbot.mouseClick(_close_button(dlg), Qt.MouseButton.LeftButton)
        else:
            qtbot.keyClick(dlg, Qt.Key.Key_Escape)
        assert not dlg.isVisible()


def test_the_head_profile_opens_readable_in_a_window_of_its_own(qtbot, window, tmp_path):
    """The preview shrinks a print-size page to a thumbnail at 1024x700; a click (or View
    head profile…) shows it at the window's width, scrolling, and Whole figure fits it."""
    dlg = _batch_dialog(qtbot, window, tmp_path, n=2)
    assert not dlg.profile_button.isEnabled()
    dlg.start()
    qtbot.waitUntil(dlg.open_button.isEnabled, timeout=60000)
    assert dlg.profile_button.isEnabled()
    pix = dlg.profile.pixmap()
    with qtbot.waitSignal(dlg.profile.clicked):
        qtbot.mouseClick(dlg.profile, Qt.MouseButton.LeftButton,
                         pos=dlg.profile.rect().center())
    viewer = dlg.findChild(PictureDialog)
    qtbot.waitExposed(viewer)
    screen = viewer.screen().availableGeometry()
    assert viewer.width() <= screen.width() and viewer.height() <= screen.height()
    viewer.resize(1000, 650)  # as it opens on a 1024x700 screen
    shown = viewer.label.pixmap().size()
    assert shown.width() >= min(pix.width(), 900), "not at the window's width"
    assert abs(shown.height() / shown.width() - pix.height() / pix.width()) < 0.01
    viewer.whole.setChecked(True)
    whole = viewer.label.pixmap().size()
    assert whole.height() <= viewer.area.viewport().height() < shown.height()
    qtbot.mouseClick(_close_button(viewer), Qt.MouseButton.LeftButton)
    assert not viewer.isVisible()
    assert dlg.profile.cursor().shape() == Qt.CursorShape.PointingHandCursor
    dlg.start()  # the preview is cleared: nothing to click (it kept the hand and tooltip)
    assert not dlg.profile_button.isEnabled() and not dlg.profile.toolTip()
    assert dlg.profile.cursor().shape() != Qt.CursorShape.PointingHandCursor
    qtbot.waitUntil(dlg.run_button.isEnabled, timeout=60000)
