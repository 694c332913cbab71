"""The main window driven as a user drives it (offscreen, tiny random-init model)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QThread, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.conftest import TEST_IMAGES
from tests.gui.conftest import open_and_wait
from vitexplorer.core.errors import WeightsUnavailableError


def view_image(window) -> QImage:
    return window.view.pixmap().toImage()


def count_forwards(model):
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_open_image_shows_overlay_and_grid(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    assert a.source == str(chelsea)
    assert not window.view.pixmap().isNull()
    assert window.view.pixmap().width() == 451
    assert window.grid.shape == (3, 3)
    assert "chelsea.png" in window.windowTitle()
    assert "random weights" in window.windowTitle()
    assert window.controls.target.count() == 5


def test_switching_view_options_never_reruns_the_model(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    calls, handle = count_forwards(window.loaded.model)
    try:
        before = view_image(window)
        seen = [before]
        for change in (lambda: window.grid.move(0, 1), lambda: window.grid.move(-1, 0),
                       lambda: window.controls.cmap.setCurrentText("viridis"),
                       lambda: window.controls.opacity.setValue(90),
                       lambda: window.controls.method.setCurrentIndex(2)):
            with qtbot.waitSignal(window.rendered, timeout=10000):
                change()
            img = view_image(window)
            assert img != seen[-1], "the view must change"
            seen.append(img)
        qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=10000)
        assert calls == [], "no forward for a head, layer, method, colormap or opacity change"
    finally:
        handle.remove()
    o = window.controls.options()
    assert (o.layer, o.head) == (1, 1)


def test_grid_click_and_arrows_select_heads(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    window.grid.resize(300, 300)
    r = window.grid._rect(2, 1)
    qtbot.mouseClick(window.grid, Qt.MouseButton.LeftButton, pos=r.center())
    assert (window.controls.layer.value(), window.controls.head.value()) == (2, 1)
    qtbot.keyClick(window.grid, Qt.Key.Key_Right)
    qtbot.keyClick(window.grid, Qt.Key.Key_Up)
    assert (window.controls.layer.value(), window.controls.head.value()) == (1, 2)
    window.view.arrow_pressed.emit(int(Qt.Key.Key_Down))
    assert window.controls.layer.value() == 2


def _drop(window, path):
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, md,
                    Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)


def test_drag_and_drop_opens_the_file(qtbot, window, tmp_path):
    p = tmp_path / "dropped é.png"
    shutil.copy(TEST_IMAGES / "coins.png", p)
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        _drop(window, p)
    assert window.prepared.analysis.source == str(p)
    assert window.prepared.analysis.image.shape == (303, 384, 3)  # grey shown as RGB


def test_corrupt_file_gives_a_message_and_keeps_the_previous_image(qtbot, window, chelsea,
                                                                    tmp_path):
    open_and_wait(qtbot, window, chelsea)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _drop(window, bad)
    qtbot.waitUntil(lambda: window.banner.isVisible() and "broken.jpg" in
                    window.banner.label.text(), timeout=20000)
    assert window.prepared.analysis.source == str(chelsea)
    assert "previous image stays" in window.banner.label.text()


def test_export_writes_valid_files(qtbot, window, chelsea, tmp_path):
    open_and_wait(qtbot, window, chelsea)
    for kind, name, magic in (("view", "v.png", b"\x89PNG"), ("layer", "l.svg", b"<?xml"),
                              ("grid", "g.pdf", b"%PDF")):
        out = tmp_path / name
        window.export(kind, str(out))
        qtbot.waitUntil(lambda out=out: out.exists(), timeout=60000)
        assert out.read_bytes()[:5].startswith(magic)
    qtbot.waitUntil(lambda: "Saved" in window.status_text.text(), timeout=10000)


def test_cancel_drops_the_running_analysis(qtbot, window, chelsea, tmp_path):
    a = open_and_wait(qtbot, window, chelsea)
    shown = []
    window.analysis_shown.connect(lambda: shown.append(1))
    window.open_path(str(TEST_IMAGES / "horse.png"))
    assert window.tasks.is_running("analyze")
    window.cancel()
    assert not window.tasks.is_running()
    qtbot.wait(1500)
    assert shown == [] and window.prepared.analysis is a
    assert not window.progress.isVisible() or window.progress.isHidden()


def test_newer_image_supersedes_older(qtbot, window, chelsea):
    shown = []
    window.analysis_shown.connect(lambda: shown.append(window.prepared.analysis.source))
    window.open_path(str(chelsea))
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_path(str(TEST_IMAGES / "horse.png"))
    qtbot.wait(500)
    assert shown == [str(TEST_IMAGES / "horse.png")]


def test_patch_query_shows_the_attention_row_and_column(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    window.controls.query.setCurrentIndex(1)  # row
    g = a.geometry
    x0, y0, x1, y1 = g.box
    cx = x0 + (x1 - x0) * (2.5 / 4)
    cy = y0 + (y1 - y0) * (1.5 / 4)
    o = window.controls.options()
    assert not a.has_layer(o.layer), "the analysis keeps no full attention"
    with qtbot.waitSignal(window.rendered):
        window._clicked(cx, cy)
    assert a.has_layer(o.layer), "recomputed in a worker, then drawn"
    row, col = a.patch_query(o.layer, o.head, 1, 2)
    np.testing.assert_allclose(window.current_map(o), row)
    window.controls.query.setCurrentIndex(2)
    np.testing.assert_allclose(window.current_map(window.controls.options()), col)


def test_class_methods_compute_gradients_in_a_worker(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    with qtbot.waitSignal(window.rendered, timeout=60000):
        window.controls.method.setCurrentIndex(4)  # relevance
    assert a.has_gradients(a.top_k(1)[0][0])
    with qtbot.waitSignal(window.rendered, timeout=60000):
        window.controls.target.setCurrentIndex(2)
    assert a.has_gradients(a.top_k(3)[2][0])


def test_settings_round_trip(qtbot, settings, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    window.controls.cmap.setCurrentText("magma")
    window.controls.opacity.setValue(35)
    window.close()
    from vitexplorer.gui.main_window import MainWindow

    w2 = MainWindow(settings, model="vit_tiny_patch16_224", weights="random")
    qtbot.addWidget(w2)
    o = w2.controls.options()
    assert (o.cmap, o.opacity) == ("magma", 0.35)
    assert settings.get("files/recent")[0] == str(chelsea)
    assert settings.get("model/weights") == "random"
    assert w2.actions_["recent"].actions()[0].text().endswith("chelsea.png")


def test_offline_model_gives_a_banner_with_the_ways_out(qtbot, settings, monkeypatch):
    from vitexplorer.gui import jobs
    from vitexplorer.gui.main_window import MainWindow

    def offline(*_a, **_k):
        raise WeightsUnavailableError("not cached", "x.dino", "offline mode")

    monkeypatch.setattr(jobs, "load_model_job", offline)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()
    w.load_model("vit_small_patch16_224.dino")
    qtbot.waitUntil(w.banner.isVisible, timeout=10000)
    assert w.banner.button_labels() == ["Open weights file…", "Choose model…",
                                        "Use random weights"]
    assert "x.dino" in w.banner.label.text() and w.banner.label.toolTip() == "offline mode"
    assert not w.findChildren(QMessageBox)


def test_unexpected_errors_open_a_dialog_and_the_app_keeps_running(qtbot, window):
    def boom(should_stop=None):
        raise RuntimeError("kaboom")

    window.tasks.run("test", boom, on_done=lambda _r: None)
    qtbot.waitUntil(lambda: any(b.isVisible() for b in window.findChildren(QMessageBox)),
                    timeout=10000)
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert "kaboom" in box.text() and "RuntimeError" in box.detailedText()
    box.close()
    assert window.isVisible()


def test_results_arrive_on_the_gui_thread(qtbot, window):
    threads = []
    window.tasks.run("test", lambda should_stop=None: QThread.currentThread(),
                     on_done=lambda worker_thread: threads.append(
                         (worker_thread, QThread.currentThread())))
    qtbot.waitUntil(lambda: len(threads) == 1, timeout=10000)
    worker_thread, callback_thread = threads[0]
    assert callback_thread == QApplication.instance().thread()
    assert worker_thread != callback_thread


def test_paste_from_clipboard(qtbot, window):
    img = QImage(str(TEST_IMAGES / "horse.png"))
    QGuiApplication.clipboard().setImage(img)
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.paste()
    assert window.prepared.analysis.source == "clipboard"
    assert window.prepared.analysis.image.shape[:2] == (328, 400)


def test_folder_browsing(qtbot, window, tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(TEST_IMAGES / "coins.png", tmp_path / name)
    (tmp_path / "notes.txt").write_text("skip me")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_path(str(tmp_path))
    assert window.prepared.analysis.source.endswith("a.png")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["next"].trigger()
    assert window.prepared.analysis.source.endswith("b.png")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["previous"].trigger()
    assert window.prepared.analysis.source.endswith("a.png")


@pytest.mark.parametrize("kind", ["rgba", "exif"])
def test_awkward_images_display_correctly(qtbot, window, tmp_path, kind):
    if kind == "rgba":
        p = tmp_path / "logo.png"
        rgba = np.zeros((50, 80, 4), np.uint8)
        rgba[..., 3] = 0
        Image.fromarray(rgba, "RGBA").save(p)
        a = open_and_wait(qtbot, window, p)
        assert (a.image == 255).all()  # transparent composited on white, not black
    else:
        p = tmp_path / "rot.jpg"
        im = Image.new("RGB", (100, 40))
        exif = im.getexif()
        exif[0x0112] = 6
        im.save(p, exif=exif)
        a = open_and_wait(qtbot, window, p)
        assert a.image.shape[:2] == (100, 40)
        assert window.view.pixmap().height() == 100


def test_model_picker_lists_supported_models(qtbot):
    from vitexplorer.gui.dialogs import ModelPicker

    models = [("vit_small_patch16_224.dino", True), ("deit_tiny_patch16_224.fb_in1k", False),
              ("eva02_tiny_patch14_224.mim_in22k", False)]
    dlg = ModelPicker(models, "vit_small_patch16_224.dino")
    qtbot.addWidget(dlg)
    assert dlg.list.count() == 3 and "cached" in dlg.list.item(0).text()
    dlg.search.setText("deit")
    assert dlg.list.count() == 1
    assert dlg.choice() == ("deit_tiny_patch16_224.fb_in1k", "pretrained")
    dlg.search.setText("")
    dlg.only_cached.setChecked(True)
    assert dlg.list.count() == 1
    dlg.search.setText("hf-hub:timm/some_vit")
    assert dlg.choice() == ("hf-hub:timm/some_vit", "pretrained")


def test_groups_panel_filters_sorts_and_scores(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    gp = window.groups_panel
    groups = window.prepared.groups
    assert groups is not None and groups.table.shape == (3, 3)
    top = [gp.tree.topLevelItem(i) for i in range(gp.tree.topLevelItemCount())]
    assert top[0].text(0) == "all heads" and top[0].text(1) == "9"
    assert sum(int(t.text(1)) for t in top[1:]) == 9
    gp.tree.setCurrentItem(top[-1])
    assert window.grid._visible == set(top[-1].data(0, Qt.ItemDataRole.UserRole))
    gp.tree.setCurrentItem(top[0])
    assert window.grid._visible is None
    gp.sort.setCurrentIndex(1)
    assert window.grid._order == groups.clustering.ordered_cells()
    gp.sort.setCurrentIndex(0)
    assert window.grid._order is None
    with qtbot.waitSignal(window.rendered, timeout=60000):
        gp.importance_requested.emit()
    assert groups.table.scores["kl"].shape == (3, 3)
    assert "ablation" in window.head_panel.scores.text()
    with qtbot.waitSignal(window.rendered, timeout=60000):
        gp.mask.setCurrentIndex(1)
    assert window.prepared.groups.mask_mode == "grabcut"
    assert ("table", "grabcut") in a._cache


def test_batch_dialog_runs_the_core_runner(qtbot, window, tmp_path):
    from vitexplorer.gui.batch_dialog import BatchDialog

    src = tmp_path / "photos"
    src.mkdir()
    for name in ("coins.png", "horse.png", "chelsea.png"):
        shutil.copy(TEST_IMAGES / name, src / name)
    (src / "bad.jpg").write_text("nope")
    dlg = BatchDialog(window)
    qtbot.addWidget(dlg)
    dlg.add_input(str(src))
    dlg.output.setText(str(tmp_path / "out"))
    dlg.methods["head"].setChecked(True)
    dlg.heads.setText("0")
    dlg.start()
    assert window.tasks.is_running("batch")
    qtbot.waitUntil(lambda: dlg.open_button.isEnabled(), timeout=120000)
    assert "3 images done" in dlg.status.text() and "1 failed" in dlg.status.text()
    assert not dlg.profile.pixmap().isNull()
    assert len(list((tmp_path / "out" / "photos").glob("*.json"))) == 3
    assert (tmp_path / "out" / "photos" / "coins.png__head_L2_H0.png").exists()
