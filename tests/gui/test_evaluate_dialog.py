"""Evaluate from the GUI: the dialog runs the folder evaluation in a worker."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from tests.conftest import TEST_IMAGES


def test_evaluate_dialog_runs_and_shows_the_summary(qtbot, window, tmp_path):
    from vitexplorer.gui.evaluate_dialog import EvaluateDialog

    images, masks = tmp_path / "img", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    shutil.copy(TEST_IMAGES / "coins.png", images / "coins.png")
    h, w = np.asarray(Image.open(images / "coins.png")).shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[: h // 2] = 255
    Image.fromarray(mask).save(masks / "coins.png")
    dlg = EvaluateDialog(window.state.a.loaded, window.tasks, window)
    qtbot.addWidget(dlg)
    dlg.folder.setText(str(images))
    dlg.masks.setText(str(masks))
    dlg.output.setText(str(tmp_path / "out"))
    dlg.steps.setValue(2)
    with qtbot.waitSignal(dlg.finished_run, timeout=60000) as got:
        dlg.start()
    result, summary = got.args
    assert result.done == 1 and "| rollout | 1 |" in summary
    assert "1 images done" in dlg.summary.toPlainText()
    assert (tmp_path / "out" / "summary.csv").is_file()
    assert dlg.run_button.isEnabled()
    # the same output again is refused with the runner's message, not a crash
    with qtbot.waitSignal(window.tasks.worker_finished, timeout=60000):
        dlg.start()
    assert "already holds a run" in dlg.summary.toPlainText()


def test_a_mask_folder_that_does_not_exist_is_named_before_the_run(qtbot, window, tmp_path):
    from vitexplorer.gui.evaluate_dialog import EvaluateDialog

    images = tmp_path / "img"
    images.mkdir()
    shutil.copy(TEST_IMAGES / "coins.png", images / "coins.png")
    dlg = EvaluateDialog(window.state.a.loaded, window.tasks, window)
    qtbot.addWidget(dlg)
    dlg.folder.setText(str(images))
    dlg.masks.setText(str(tmp_path / "masks"))  # a typo: no such folder
    dlg.output.setText(str(tmp_path / "out"))
    dlg.faithful.setChecked(False)
    with qtbot.waitSignal(window.tasks.worker_finished, timeout=60000):
        dlg.start()
    assert "mask folder" in dlg.summary.toPlainText()
    assert str(tmp_path / "masks") in dlg.summary.toPlainText()
    assert not (tmp_path / "out").exists(), "no run of failures is started"


def test_a_file_that_fails_is_named_with_its_reason(qtbot, window, tmp_path):
    from vitexplorer.gui.evaluate_dialog import EvaluateDialog

    images = tmp_path / "img"
    images.mkdir()
    shutil.copy(TEST_IMAGES / "coins.png", images / "coins.png")
    (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    dlg = EvaluateDialog(window.state.a.loaded, window.tasks, window)
    qtbot.addWidget(dlg)
    dlg.folder.setText(str(images))
    dlg.output.setText(str(tmp_path / "out"))
    dlg.faithful.setChecked(False)
    with qtbot.waitSignal(dlg.finished_run, timeout=60000):
        dlg.start()
    text = dlg.summary.toPlainText()
    assert "1 images done" in text and "1 failed" in text
    assert "bad.png: not an image file" in text
