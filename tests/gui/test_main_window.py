"""The main window driven as a user drives it (offscreen, tiny random-init model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QThread, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QMessageBox, QScrollArea

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
    assert window.windowTitle().count("vitexplorer") == 0, "the platform adds the app name"
    assert window.controls.target.count() == 5
    assert (window.state.layer, window.state.source) == (2, str(chelsea)), "last layer first"


def test_switching_view_options_never_reruns_the_model(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    calls, handle = count_forwards(window.state.a.loaded.model)
    try:
        before = view_image(window)
        seen = [before]
        for change in (lambda: window.state.select_head(2, 1),
                       lambda: window.state.select_head(1, 1),
                       lambda: window.controls.cmap.setCurrentText("magma"),
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
    assert (window.state.cmap, window.state.opacity, window.state.method) == (
        "magma", 0.9, "rollout"), "the controls write into the state"


def test_widgets_follow_the_state(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    edits = []
    window.state.changed.connect(edits.append)
    with qtbot.waitSignal(window.rendered, timeout=10000):
        window.state.update(cmap="magma", layer=0, head=2, opacity=0.25)
    assert edits == [frozenset({"cmap", "layer", "head", "opacity"})], "no echo from widgets"
    c = window.controls
    assert (c.cmap.currentText(), c.layer.value(), c.head.value(), c.opacity.value()) == (
        "magma", 0, 2, 25)
    assert window.grid.current == (0, 2)
    assert "layer 0, head 2" in window.head_panel.title.text()
    frame = window.maps.last_frame
    np.testing.assert_allclose(frame.grid_map, window.state.a.analysis.map("head", 0, 2))


def test_grid_click_and_arrows_select_heads(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    window.grid.resize(300, 300)
    r = window.grid.cell_rect(2, 1)
    qtbot.mouseClick(window.grid, Qt.MouseButton.LeftButton, pos=r.center())
    assert (window.state.layer, window.state.head) == (2, 1)
    qtbot.keyClick(window.grid, Qt.Key.Key_Right)
    qtbot.keyClick(window.grid, Qt.Key.Key_Up)
    assert (window.state.layer, window.state.head) == (1, 2)
    window.view.arrow_pressed.emit(int(Qt.Key.Key_Down))
    assert (window.controls.layer.value(), window.controls.head.value()) == (2, 2)


def test_arrow_keys_move_in_the_cluster_order_shown(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    window.groups_panel.sort.setCurrentIndex(1)
    order = window.state.a.head_groups.clustering.ordered_cells()
    assert window.state.sort_by_cluster and window.grid.cells_in_order() == order
    window.state.select_head(*order[0])
    for expected in order[1:4]:
        qtbot.keyClick(window.grid, Qt.Key.Key_Right)
        assert (window.state.layer, window.state.head) == expected


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
    assert window.state.a.analysis.source == str(p)
    assert window.state.a.analysis.image.shape == (303, 384, 3)  # grey shown as RGB


def test_several_dropped_files_are_browsed_and_a_web_address_is_named(qtbot, window,
                                                                        tmp_path):
    """Dropping several images opens the first and PageDown goes through the others (it
    opened the first and dropped the rest silently); a web address (a browser's image) is
    named with the reason instead of nothing happening."""
    for folder, name in (("one", "b.png"), ("two", "a.png"), ("one", "c.png")):
        (tmp_path / folder).mkdir(exist_ok=True)
        shutil.copy(TEST_IMAGES / "coins.png", tmp_path / folder / name)
    dropped = [tmp_path / "one" / "b.png", tmp_path / "two" / "a.png"]
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(p)) for p in dropped])
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, md,
                                    Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert window.state.source == str(dropped[0])
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["next"].trigger()
    assert window.state.source == str(dropped[1]), "the dropped files, not b.png's folder"
    md = QMimeData()
    md.setUrls([QUrl("https://example.org/cat.jpg")])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, md,
                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert "https://example.org/cat.jpg" in window.status_text.text()
    assert "not a file on this computer" in window.status_text.text()


def test_a_folder_that_cannot_be_listed_is_named_with_its_reason(qtbot, window, tmp_path,
                                                                 monkeypatch):
    """Opening or dropping a folder that cannot be read (permission denied, a network share
    gone) says which and why; the OSError escaped the slot as an 'Unexpected error'."""
    locked, other = tmp_path / "locked", tmp_path / "other"
    locked.mkdir(), other.mkdir()
    shutil.copy(TEST_IMAGES / "coins.png", other / "a.png")
    real = Path.iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with qtbot.waitSignal(window.analyses.image_failed, timeout=10000):
        window.open_path(str(locked))  # listed in a worker
    assert f"Cannot list '{locked}': Permission denied" in window.banner.label.text()
    assert not window.tasks.is_running()
    said = []
    window.analyses.image_failed.connect(said.append)
    md = QMimeData()  # dropped with another folder: that one is still browsed
    md.setUrls([QUrl.fromLocalFile(str(p)) for p in (locked, other)])
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, md,
                                    Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert window.state.source == str(other / "a.png")
    assert said == [f"Cannot list '{locked}': Permission denied."]


def test_corrupt_file_gives_a_message_and_keeps_the_previous_image(qtbot, window, chelsea,
                                                                    tmp_path):
    open_and_wait(qtbot, window, chelsea)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _drop(window, bad)
    qtbot.waitUntil(lambda: window.banner.isVisible() and "broken.jpg" in
                    window.banner.label.text(), timeout=20000)
    assert window.state.a.analysis.source == str(chelsea)
    assert "previous image stays" in window.banner.label.text()
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_path(str(TEST_IMAGES / "horse.png"))
    assert window.banner.isHidden(), "the next success clears the error"
    assert window.warning.isVisible() and "random weights" in window.warning.label.text()


def test_a_corrupt_first_image_claims_no_previous_image(qtbot, window, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    window.open_path(str(bad))  # as `vitexplorer broken.jpg` opens it at start
    qtbot.waitUntil(lambda: window.banner.isVisible() and "broken.jpg" in
                    window.banner.label.text(), timeout=20000)
    assert "previous image" not in window.banner.label.text(), "there is none"


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
    qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=60000)
    assert not window.actions_["cancel"].isEnabled(), "Model > Cancel: nothing to cancel"
    shown = []
    window.analysis_shown.connect(lambda: shown.append(1))
    window.open_path(str(TEST_IMAGES / "horse.png"))
    assert window.tasks.is_running("analyze-A") and window.progress.isVisible()
    assert window.actions_["cancel"].isEnabled()
    with qtbot.waitSignal(window.tasks.worker_finished, timeout=60000) as ended:
        window.cancel()
        assert not window.tasks.is_running()
    assert ended.args == ["analyze-A"]
    assert shown == [] and window.state.a.analysis is a and window.state.source == str(chelsea)
    assert window.progress.isHidden() and window.status_text.text() == "Cancelled."


def test_newer_image_supersedes_older(qtbot, window, chelsea):
    shown = []
    window.analysis_shown.connect(lambda: shown.append(window.state.a.analysis.source))
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
    o = window.state.options
    assert not a.has_layer(o.layer), "the analysis keeps no full attention"
    with qtbot.waitSignal(window.rendered):
        window.view.clicked.emit(cx, cy)
    assert window.state.query_cell == (1, 2)
    assert a.has_layer(o.layer), "recomputed in a worker, then drawn"
    row, col = a.patch_query(o.layer, o.head, 1, 2)
    np.testing.assert_allclose(window.maps.last_frame.grid_map, row)
    assert window.view.marker_visible()
    with qtbot.waitSignal(window.rendered):
        window.controls.query.setCurrentIndex(2)
    np.testing.assert_allclose(window.maps.last_frame.grid_map, col)
    with qtbot.waitSignal(window.rendered):
        window.actions_["query"].trigger()  # Q: off
    assert window.state.query_cell is None and not window.view.marker_visible()


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
    window.state.update(method="rollout", fusion="max", discard=0.2, sort_by_cluster=True)
    window.close()
    from vitexplorer.gui.main_window import MainWindow

    w2 = MainWindow(settings, model="vit_tiny_patch16_224", weights="random")
    qtbot.addWidget(w2)
    o = w2.state.options
    assert (o.cmap, o.opacity, o.method, o.fusion, o.discard) == (
        "magma", 0.35, "rollout", "max", 0.2)
    assert w2.state.sort_by_cluster and w2.groups_panel.sort.currentIndex() == 1
    assert w2.controls.cmap.currentText() == "magma"
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
    assert w.status_text.text() == "No model loaded."


def test_a_failed_load_keeps_the_previous_model_and_says_so(qtbot, window, monkeypatch):
    from vitexplorer.core.errors import UnsupportedModelError
    from vitexplorer.gui import jobs

    def unsupported(*_a, **_k):
        raise UnsupportedModelError("Model 'swin_t' is not supported, because no attn.")

    before = window.state.a.loaded
    monkeypatch.setattr(jobs, "load_model_job", unsupported)
    window.load_model("swin_t")
    qtbot.waitUntil(window.banner.isVisible, timeout=10000)
    assert window.state.a.loaded is before
    assert "Still using" in window.banner.label.text() and before.label in \
        window.status_text.text()
    assert "Use random weights" not in window.banner.button_labels()


def test_a_weights_file_that_cannot_be_read_is_named_in_a_sentence(qtbot, window, tmp_path):
    """The core's one-line reason ends without a full stop: 'Still using' starts a new
    sentence after it (it ran on: '... header too large Still using ...')."""
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junkjunkjunk")
    window.load_model("vit_tiny_patch16_224", str(junk))
    qtbot.waitUntil(window.banner.isVisible, timeout=10000)
    text = window.banner.label.text()
    assert "junk.safetensors" in text and ". Still using" in text


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
    assert window.state.a.analysis.source == "clipboard"
    assert window.state.a.analysis.image.shape[:2] == (328, 400)


def test_paste_refuses_a_strip_at_once_and_keeps_the_image(qtbot, window, monkeypatch):
    """A pasted image gets the file bounds (aspect, pixel count) before its pixels are
    copied: a clear banner on the GUI thread, no worker started, the image stays."""
    from PIL import Image

    a = open_and_wait(qtbot, window, TEST_IMAGES / "horse.png")
    strip = QImage(2100, 100, QImage.Format.Format_RGB888)
    strip.fill(0x808080)
    window.paste_image(strip)
    assert not window.tasks.is_running()  # refused before any work, not by the worker
    text = window.banner.label.text()
    assert "'clipboard'" in text and "2100 x 100 pixels" in text and "20:1" in text
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 200)
    window.paste_image(QImage(str(TEST_IMAGES / "horse.png")))  # 400 x 328
    assert "too large" in window.banner.label.text() and not window.tasks.is_running()
    assert window.state.a.analysis is a


def test_model_picker_counts_every_listed_model_in_a_worker(qtbot, window):
    """Every row gets its parameter count (not only the selected one), from a worker,
    cached on disk for the next picker; the column sorts by the number."""
    from vitexplorer.core.models import count_parameters, model_catalog
    from vitexplorer.gui.actions import count_parameters as fill_counts
    from vitexplorer.gui.model_picker import PARAMS, ModelPicker

    names = ["vit_small_patch16_224.dino", "deit_tiny_patch16_224.fb_in1k",
             "eva02_tiny_patch14_224.mim_in22k", "vit_base_patch16_224.augreg_in21k"]
    rows = model_catalog(names)
    for r in rows:
        r["cached"] = False
    dlg = ModelPicker({"rows": rows}, "deit_tiny", "random", window)
    qtbot.addWidget(dlg)
    fill_counts(window, dlg, names)
    assert window.tasks.is_running("parameters")  # the GUI thread did not count
    items = [dlg.list.topLevelItem(i) for i in range(len(names))]
    qtbot.waitUntil(lambda: all(it.text(PARAMS) for it in items), timeout=60000)
    for it in items:
        assert it.text(PARAMS) == f"{count_parameters(it.text(0)) / 1e6:.1f} M"
    assert (window.settings.cache_dir / "parameter_counts.json").is_file()
    dlg.list.sortByColumn(PARAMS, Qt.SortOrder.AscendingOrder)
    ordered = [dlg.list.topLevelItem(i).text(0) for i in range(len(names))]
    assert ordered == ["eva02_tiny_patch14_224.mim_in22k", "deit_tiny_patch16_224.fb_in1k",
                       "vit_small_patch16_224.dino", "vit_base_patch16_224.augreg_in21k"]
    qtbot.waitUntil(lambda: not window.tasks.is_running("parameters"), timeout=10000)


def test_folder_browsing(qtbot, window, tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(TEST_IMAGES / "coins.png", tmp_path / name)
    (tmp_path / "notes.txt").write_text("skip me")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_path(str(tmp_path))
    assert window.state.source.endswith("a.png")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["next"].trigger()
    assert window.state.source.endswith("b.png")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["previous"].trigger()
    assert window.state.a.analysis.source.endswith("a.png")


def test_folder_browsing_passes_a_file_that_cannot_be_opened(qtbot, window, tmp_path):
    """PageDown onto a broken file says so, and the next PageDown goes on past it (it
    stepped from the image still shown, so it tried the broken file again and again);
    a folder whose first file is broken can be browsed too."""
    for name in ("a.png", "c.png"):
        shutil.copy(TEST_IMAGES / "coins.png", tmp_path / name)
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_path(str(tmp_path))
    with qtbot.waitSignal(window.analyses.image_failed, timeout=60000) as failed:
        window.actions_["next"].trigger()
    assert "b.png" in failed.args[0]
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["next"].trigger()
    assert window.state.source == str(tmp_path / "c.png")
    (tmp_path / "a.png").rename(tmp_path / "d.png")  # the broken file comes first now
    with qtbot.waitSignal(window.analyses.image_failed, timeout=60000):
        window.open_path(str(tmp_path))
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["next"].trigger()
    assert window.state.source == str(tmp_path / "c.png")


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


def test_model_picker_columns_detail_and_why_not_listed(qtbot):
    from vitexplorer.core.models import model_catalog
    from vitexplorer.gui.model_picker import ModelPicker

    names = ["vit_small_patch16_224.dino", "deit_tiny_patch16_224.fb_in1k",
             "eva02_tiny_patch14_224.mim_in22k"]
    rows = model_catalog(names)
    for r, cached in zip(rows, (True, False, False), strict=True):
        r["cached"] = cached
    unsupported = {"swin_tiny_patch4_window7_224.ms_in1k":
                   "swin_transformer: no global attention in its blocks (shifted windows)"}
    dlg = ModelPicker({"rows": rows, "unsupported": unsupported}, "deit_tiny", "random")
    qtbot.addWidget(dlg)
    wanted = []
    dlg.parameters_wanted.connect(wanted.append)
    assert dlg.list.topLevelItemCount() == 3 and dlg.weights.currentData() == "random"
    item = dlg.list.currentItem()
    assert [item.text(c) for c in (0, 1, 3, 4, 5, 6)] == [
        "deit_tiny_patch16_224.fb_in1k", "deit", "16", "224x224", "fb_in1k", ""]
    assert "hf_hub_id" in dlg.detail.toPlainText() and "counting" in dlg.detail.toPlainText()
    dlg.set_parameters(item.text(0), 5_717_416)
    assert item.text(2) == "5.7 M" and "5.7 M" in dlg.detail.toPlainText()
    dlg.list.setCurrentItem(dlg.list.findItems("eva02", Qt.MatchFlag.MatchContains, 0)[0])
    assert wanted == ["eva02_tiny_patch14_224.mim_in22k"], "unknown counts are asked for"
    dlg.search.setText("swin")
    assert dlg.list.topLevelItemCount() == 0
    assert "no global attention" in dlg.why.text() and "swin_tiny" in dlg.why.text()
    dlg.search.setText("dino")
    assert dlg.choice() == ("vit_small_patch16_224.dino", "random") and dlg.why.text() == ""
    dlg.search.setText("")
    dlg.only_cached.setChecked(True)
    assert dlg.list.topLevelItemCount() == 1
    dlg.search.setText("hf-hub:timm/some_vit")
    assert dlg.choice() == ("hf-hub:timm/some_vit", "random")


def test_the_catalog_says_why_a_model_is_not_offered():
    import timm

    from vitexplorer.core.models import count_parameters, supported_models, why_not_supported

    assert why_not_supported("vit_small_patch16_224.dino") is None
    assert why_not_supported("swin_tiny_patch4_window7_224.ms_in1k").startswith(
        "swin_transformer: no global attention")
    assert "convolutional" in why_not_supported("resnet50.a1_in1k")
    hybrid = "vit_base_r50_s16_384.orig_in21k_ft_in1k"
    assert hybrid not in supported_models() and "hybrid" in why_not_supported(hybrid)
    real = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    assert count_parameters("vit_tiny_patch16_224.augreg_in21k") == sum(
        p.numel() for p in real.parameters())


def test_groups_panel_filters_sorts_and_scores(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    gp = window.groups_panel
    groups = window.state.a.head_groups
    assert groups is not None and groups.table.shape == (3, 3)
    top = [gp.tree.topLevelItem(i) for i in range(gp.tree.topLevelItemCount())]
    assert top[0].text(0) == "all heads" and top[0].text(1) == "9"
    assert sum(int(t.text(1)) for t in top[1:]) == 9
    gp.tree.setCurrentItem(top[-1])
    chosen = set(top[-1].data(0, Qt.ItemDataRole.UserRole))
    assert window.state.selection == chosen
    assert {c for c in window.grid.cells_in_order() if not window.grid.is_dimmed(*c)} == chosen
    gp.tree.setCurrentItem(top[0])
    assert window.state.selection is None and not window.grid.is_dimmed(0, 0)
    by_layer = [(li, h) for li in range(3) for h in range(3)]
    gp.sort.setCurrentIndex(1)
    assert window.grid.cells_in_order() == groups.clustering.ordered_cells()
    gp.sort.setCurrentIndex(0)
    assert window.grid.cells_in_order() == by_layer
    with qtbot.waitSignal(window.rendered, timeout=60000):
        gp.importance.click()
    assert window.state.a.head_groups.table.scores["kl"].shape == (3, 3)
    assert "ablation" in window.head_panel.scores.text()
    with qtbot.waitSignal(window.rendered, timeout=60000):
        gp.mask.setCurrentIndex(2)
    assert window.state.mask == "grabcut"
    assert "agreement with the model's rollout" in gp.scored_with.text()
    table = window.state.a.head_groups.table
    assert window.state.a.head_groups.mask == "grabcut" and table.meta["mask_source"] == "grabcut"
    assert table.meta["mask"].startswith("agreement with the model's rollout")
    np.testing.assert_array_equal(table.scores["fg_score"],
                                  a.head_table("grabcut").scores["fg_score"])


def test_batch_dialog_runs_the_core_runner(qtbot, window, tmp_path):
    import json

    from vitexplorer.gui.batch_dialog import BatchDialog

    src = tmp_path / "photos"
    src.mkdir()
    for name in ("coins.png", "horse.png", "chelsea.png"):
        shutil.copy(TEST_IMAGES / name, src / name)
    (src / "bad.jpg").write_text("nope")
    window.state.update(cmap="magma", opacity=0.4)
    base = tmp_path / "results"
    dlg = BatchDialog(window.state.a.loaded, window.tasks, window.state.options, str(base))
    qtbot.addWidget(dlg)
    used = []
    dlg.output_base_used.connect(used.append)
    dlg.add_input(str(src))
    assert dlg.output.text() == str(base / "photos_vitexplorer"), "never beside the inputs"
    dlg.methods["head"].setChecked(True)
    dlg.heads.setText("0,3")  # the tiny model has heads 0-2
    dlg.start()
    assert "heads 3: not an index" in dlg.status.text() and not window.tasks.is_running("batch")
    dlg.heads.setText("0")
    dlg.start()
    assert window.tasks.is_running("batch") and used == [str(base)]
    qtbot.waitUntil(lambda: dlg.open_button.isEnabled(), timeout=120000)
    assert "3 images done" in dlg.status.text() and "1 failed" in dlg.status.text()
    assert "bad.jpg: not an image file" in dlg.status.text(), "the file and its reason"
    assert dlg.progress.value() == dlg.progress.maximum() == 4
    assert not dlg.profile.pixmap().isNull()
    out = base / "photos_vitexplorer" / "photos"
    assert len(list(out.glob("*.json"))) == 3
    assert (out / "coins.png__head_L2_H0.png").exists()
    record = json.loads((base / "photos_vitexplorer" / "run.json").read_text())
    assert (record["options"]["cmap"], record["options"]["opacity"]) == ("magma", 0.4)
    dlg.output.setText(str(tmp_path / "second"))
    dlg.start()  # a new run starts without the previous run's preview and count
    assert dlg.profile.pixmap().isNull() and not dlg.open_button.isEnabled()
    assert dlg.progress.maximum() == 0
    qtbot.waitUntil(lambda: dlg.open_button.isEnabled(), timeout=120000)


def test_batch_dialog_suggests_an_output_for_the_input_until_one_is_chosen(qtbot, window,
                                                                           tmp_path):
    from vitexplorer.gui.batch_dialog import DEFAULT_OUTPUT_BASE, BatchDialog

    dlg = BatchDialog(window.state.a.loaded, window.tasks, window.state.options)
    qtbot.addWidget(dlg)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    dlg.add_input(str(tmp_path / "cats"))
    assert dlg.output.text() == str(DEFAULT_OUTPUT_BASE / "cats_vitexplorer")
    dlg.inputs.item(0).setSelected(True)
    dlg.remove_selected()
    dlg.add_input(str(tmp_path / "dogs"))
    assert dlg.output.text() == str(DEFAULT_OUTPUT_BASE / "dogs_vitexplorer")
    qtbot.keyClicks(dlg.output, "x")
    dlg.add_input(str(tmp_path / "cats"))
    assert dlg.output.text().endswith("dogs_vitexplorerx"), "a typed folder is kept"


def test_an_opened_image_browses_its_own_folder(qtbot, window, tmp_path):
    """Next/Previous after opening one file step through its folder, as an image viewer
    does, and follow the image to another folder; the bundled sample browses nothing."""
    from vitexplorer.gui.main_window import sample_image

    first, second = tmp_path / "one", tmp_path / "two"
    for folder, names in ((first, ("a.png", "b.png")), (second, ("x.png", "y.png"))):
        folder.mkdir()
        for name in names:
            shutil.copy(TEST_IMAGES / "coins.png", folder / name)
    open_and_wait(qtbot, window, first / "b.png")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["previous"].trigger()
    assert window.state.source == str(first / "a.png")
    open_and_wait(qtbot, window, second / "x.png")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.actions_["next"].trigger()
    assert window.state.source == str(second / "y.png")
    open_and_wait(qtbot, window, sample_image())
    window.actions_["next"].trigger()
    assert window.state.source == str(sample_image())
    assert "Open an image file or a folder" in window.status_text.text()


def test_next_image_lists_the_folder_in_a_worker_and_adds_up_presses_meanwhile(
        qtbot, window, tmp_path, monkeypatch):
    """A slow folder (huge, on a network) is listed off the GUI thread: the window stays
    live, Next/Previous pressed meanwhile add up (3 x Next, 1 x Previous: two on), and an
    image opened meanwhile wins over the steps."""
    import threading

    for name in "abcde":
        shutil.copy(TEST_IMAGES / "coins.png", tmp_path / f"{name}.png")
    open_and_wait(qtbot, window, tmp_path / "b.png")
    gate, on_gui_thread = threading.Event(), []
    real = Path.iterdir

    def slow(self):
        if self == tmp_path:
            on_gui_thread.append(threading.current_thread() is threading.main_thread())
            gate.wait(5)
        return real(self)

    monkeypatch.setattr(Path, "iterdir", slow)
    window.actions_["next"].trigger()
    qtbot.waitUntil(lambda: bool(on_gui_thread), timeout=10000)
    assert on_gui_thread == [False], "the folder was listed on the GUI thread"
    assert window.tasks.is_running("list-A")
    for key in ("next", "next", "previous"):
        window.actions_[key].trigger()
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        gate.set()
    assert window.state.source == str(tmp_path / "d.png")
    gate.clear()
    window.analyses.folder = []  # listed again
    window.actions_["next"].trigger()
    qtbot.waitUntil(lambda: len(on_gui_thread) == 2, timeout=10000)
    open_and_wait(qtbot, window, tmp_path / "a.png")
    gate.set()
    qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=10000)
    assert window.state.source == str(tmp_path / "a.png"), "the image opened, not a step"


def test_an_image_pasted_while_a_folder_lists_stays(qtbot, window, tmp_path, monkeypatch):
    """A listing for Next still running when an image is pasted: the listing landed and
    opened the folder's next image in place of the pasted one."""
    import threading

    for name in "abc":
        shutil.copy(TEST_IMAGES / "coins.png", tmp_path / f"{name}.png")
    open_and_wait(qtbot, window, tmp_path / "a.png")
    window.analyses.folder = []  # listed again on Next
    gate, listing = threading.Event(), threading.Event()
    real = Path.iterdir

    def slow(self):
        if self == tmp_path:
            listing.set()
            gate.wait(5)
        return real(self)

    monkeypatch.setattr(Path, "iterdir", slow)
    window.actions_["next"].trigger()
    qtbot.waitUntil(listing.is_set, timeout=10000)
    pasted = np.asarray(Image.open(TEST_IMAGES / "chelsea.png").convert("RGB"))
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_array(pasted, "clipboard")
    gate.set()
    qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=10000)
    qtbot.wait(200)
    assert window.state.source == "clipboard", "the listing replaced the pasted image"


def test_the_sample_image_is_not_a_recent_file(qtbot, settings, window):
    from vitexplorer.gui.main_window import sample_image

    open_and_wait(qtbot, window, sample_image())
    assert settings.get("files/recent") == []


def test_window_fits_1024x700_and_never_grows_by_itself(qtbot, window, chelsea):
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1024, 700), timeout=5000)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
    open_and_wait(qtbot, window, chelsea)
    window.banner.show_message("A long error message " * 12, [("Open weights file…", print),
                                                             ("Choose model…", print),
                                                             ("Use random weights", print)])
    with qtbot.waitSignal(window.rendered, timeout=60000):
        window.groups_panel.importance.click()
    qtbot.wait(50)
    assert window.size().toTuple() == (1024, 700)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700, "docks scroll instead of growing"
    assert window.findChild(QScrollArea, "scroll-Map and head scores").isAncestorOf(
        window.head_panel)


def test_head_grid_tooltips_and_cluster_separators(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    groups = window.state.a.head_groups
    r = window.grid.cell_rect(1, 2)
    tip = window.grid.tooltip_at(r.center().x(), r.center().y())
    assert tip.startswith("Layer 1, head 2\n")
    assert f"group: {groups.table.group(1, 2)}" in tip
    assert f"cluster {groups.clustering.cluster_of(1, 2)}" in tip
    window.state.update(sort_by_cluster=True)
    order = groups.clustering.ordered_cells()
    labels = [groups.clustering.cluster_of(*c) for c in order]
    expected = [i for i in range(1, len(order)) if labels[i] != labels[i - 1]]
    assert window.grid.cluster_starts() == expected


def test_shared_colour_scales_make_heads_comparable(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    s, maps = window.state, a.head_maps().numpy().astype(np.float64)

    def frame_for(**values):
        with qtbot.waitSignal(window.rendered, timeout=10000):
            s.update(**values)
        return window.maps.last_frame

    own = [frame_for(layer=1, head=h).vrange for h in (0, 1)]
    assert own[0] == pytest.approx((maps[1, 0].min(), maps[1, 0].max()))
    assert own[0] != own[1]
    layer = [frame_for(scale="layer", head=h).vrange for h in (2, 0)]
    assert layer[0] == layer[1] == pytest.approx((maps[1].min(), maps[1].max()))
    assert window.colour_bar.labels() == (f"{maps[1].min():.3g}", f"{maps[1].max():.3g}",
                                          "shared by the layer's heads")
    model = frame_for(scale="model", scaling="percentile", percentile=90.0).vrange
    assert model == pytest.approx(tuple(np.percentile(maps, [10, 90])))
    window.controls.scale.setCurrentIndex(3)  # fixed
    window.controls.fixed_low.setValue(0.01)
    with qtbot.waitSignal(window.rendered, timeout=10000):
        window.controls.fixed_high.setValue(0.2)
    assert s.fixed_range == (0.01, 0.2) and window.maps.last_frame.vrange == (0.01, 0.2)
    window.controls.opacity_value.setValue(40)
    assert s.opacity == 0.4 and window.controls.opacity.value() == 40
    s.update(scale="layer", scaling="minmax")
    b = open_and_wait(qtbot, window, TEST_IMAGES / "horse.png")  # ranges of the new image
    horse = b.head_maps().numpy().astype(np.float64)[s.layer]
    assert window.maps.last_frame.vrange == pytest.approx((horse.min(), horse.max()))


def test_nearest_upsampling_shows_the_token_grid(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    x0, y0, _x1, y1 = a.geometry.scaled(window.state.a.finished.display_scale).box
    ph = (y1 - y0) / 4  # a 4 x 4 token grid
    cell = (slice(int(y0 + 0.2 * ph), int(y0 + 0.8 * ph)),
            slice(int(x0 + 0.2 * ph), int(x0 + 0.8 * ph)))

    def distinct_colours(**values):
        with qtbot.waitSignal(window.rendered, timeout=10000):
            window.state.update(opacity=1.0, contour=False, **values)
        patch = window.maps.last_frame.image[cell]
        return len(np.unique(patch.reshape(-1, 3), axis=0))

    assert distinct_colours(upsample="bilinear") > 5
    assert distinct_colours(upsample="nearest") == 1


def test_image_fit_is_a_control_and_crop_marks_what_the_model_never_saw(qtbot, window,
                                                                        chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    assert a.policy == "crop"
    x0, y0, x1, y1 = a.geometry.box  # original pixels; the crop keeps the centre
    seen = (min(x1, 451) - max(x0, 0)) * (min(y1, 300) - max(y0, 0)) / (451 * 300)
    assert seen < 0.9 and window.view.unseen_area() == pytest.approx(1 - seen, abs=0.01)
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.controls.policy.setCurrentIndex(2)  # letterbox
    assert window.state.a.analysis.policy == "letterbox" and window.view.unseen_area() == 0


def test_a_large_pasted_image_is_analysed_again_from_its_pixels(qtbot, window):
    """A pasted image larger than the 1600 px display copy: another fit (or model) analysed
    its source again as a file, 'Cannot open image 'clipboard': No such file or directory'."""
    big = np.asarray(Image.open(TEST_IMAGES / "chelsea.png").convert("RGB").resize((1800, 1200)))
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_array(big, "clipboard")
    assert window.state.a.analysis.image.shape[:2] == (1067, 1600)
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.controls.policy.setCurrentIndex(2)  # letterbox
    a = window.state.a.analysis
    assert a.policy == "letterbox" and a.source == "clipboard" and a.photo_size == (1200, 1800)


def test_a_fit_whose_model_cannot_be_built_goes_back_to_the_fit_shown(qtbot, window, chelsea,
                                                                      monkeypatch):
    """A family that cannot follow the image's grid (BEiT) refuses 'native aspect': its
    message shows, and the fit control goes back to the maps shown, as after a cancel."""
    from vitexplorer.core.errors import ModelError
    from vitexplorer.gui import jobs, main_window

    dialogs = []
    monkeypatch.setattr(main_window, "show_error", lambda *a, **k: dialogs.append(a))
    load = jobs.load_model_job

    def fixed_grid_only(spec, weights, kwargs=None, should_stop=None):
        if (kwargs or {}).get("dynamic_img_size"):
            raise ModelError(f"'{spec}' cannot follow the input's token grid")
        return load(spec, weights, kwargs, should_stop)

    monkeypatch.setattr(jobs, "load_model_job", fixed_grid_only)
    a = open_and_wait(qtbot, window, chelsea)
    window.controls.policy.setCurrentIndex(3)  # native aspect
    assert window.state.policy == "native"
    qtbot.waitUntil(lambda: window.state.policy == "crop", timeout=60000)
    assert "cannot follow" in window.banner.label.text() and not dialogs
    assert window.banner.button_labels() == [], "not a weights problem: no weights buttons"
    assert window.controls.policy.currentIndex() == 0
    assert window.state.a.analysis is a and window.state.a.loaded is a.loaded
    assert "image fit 'crop'" in window.status_text.text()


def test_any_class_can_be_typed(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    top = [i for i, _n, _p in a.top_k(5)]
    typed = next(i for i in range(a.logits.numel()) if i not in top)
    c = window.controls
    c.method.setCurrentIndex(4)  # relevance
    qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=60000)
    with qtbot.waitSignal(window.rendered, timeout=60000):
        c.target.setEditText(str(typed))
        qtbot.keyClick(c.target.lineEdit(), Qt.Key.Key_Return)
    assert window.state.target == typed and a.has_gradients(typed)
    p = float(a.logits.softmax(-1)[typed])
    assert c.target.currentText() == f"{a.class_name(typed)} ({p:.1%})"
    name = a.class_name(top[3])
    c.target.setEditText(name)
    qtbot.keyClick(c.target.lineEdit(), Qt.Key.Key_Return)
    assert window.state.target == top[3]


def test_input_size_rebuilds_the_model_with_a_finer_grid(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    assert a.geometry.grid == (4, 4)
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.controls.input_size.setValue(96)
    b = window.state.a.analysis
    assert window.state.input_size == 96 and b.source == str(chelsea)
    assert b.geometry.grid == (6, 6) and window.grid.shape == (3, 3)
    assert window.maps.last_frame.grid_map.shape == (6, 6)


def test_a_cancelled_input_size_change_goes_back_to_the_size_of_the_maps_shown(
        qtbot, window, chelsea):
    """Esc while the model is rebuilt, or while the rebuilt model analyses: the control,
    the slot's model (Model Info, exports of a new image) and the maps agree again."""
    from PySide6.QtCore import QTimer

    a = open_and_wait(qtbot, window, chelsea)
    window.controls.input_size.setValue(96)
    assert window.tasks.is_running("model-A")
    window.cancel()  # while the model is rebuilt
    qtbot.waitUntil(lambda: window.state.input_size is None, timeout=60000)
    assert window.controls.input_size.value() == 0 and window.state.a.loaded is a.loaded
    cancel_then = window.state.a.loaded_changed.connect(
        lambda _l: QTimer.singleShot(0, window.cancel))
    window.controls.input_size.setValue(96)  # cancelled while the rebuilt model analyses
    qtbot.waitUntil(lambda: window.state.input_size is None, timeout=60000)
    window.state.a.loaded_changed.disconnect(cancel_then)
    assert window.controls.input_size.value() == 0
    assert window.state.a.loaded is a.loaded and window.state.a.analysis is a
    assert not window.tasks.is_running()
    assert "input size the model's default" in window.status_text.text()


def test_an_input_size_too_large_for_the_memory_says_so_and_goes_back(qtbot, window, chelsea,
                                                                     monkeypatch):
    """The attention store of a rebuilt model's analysis that the machine cannot hold
    (core.stream.check_memory's ModelError) is a banner naming the GiB, and the size comes
    back; it was an 'Unexpected error' dialog with a traceback."""
    from vitexplorer.core import stream
    from vitexplorer.gui import main_window

    dialogs = []
    monkeypatch.setattr(main_window, "show_error", lambda *a, **k: dialogs.append(a))
    a = open_and_wait(qtbot, window, chelsea)
    monkeypatch.setattr(stream, "physical_memory", lambda: 1)
    window.controls.input_size.setValue(96)
    qtbot.waitUntil(lambda: window.state.input_size is None and not window.tasks.is_running(),
                    timeout=60000)
    assert not dialogs
    text = window.banner.label.text()
    assert window.banner.isVisible() and "Not analysed: the attention kept" in text
    assert "GiB" in text and "Back to the input size the model's default" in text
    assert window.state.a.loaded is a.loaded and window.state.a.analysis is a


def test_a_model_without_a_classifier_offers_no_class_methods(qtbot, settings, chelsea,
                                                               monkeypatch):
    """A backbone (DINO, DINOv2: num_classes 0, the default model's family) has no class to
    explain: gradient rollout, relevance and head importance are greyed out, and asked for
    anyway they say why in the status line (each was an 'Unexpected error' dialog)."""
    from tests.gui.conftest import MODEL_KW
    from vitexplorer.gui import main_window
    from vitexplorer.gui.main_window import MainWindow

    dialogs = []
    monkeypatch.setattr(main_window, "show_error", lambda *a, **k: dialogs.append(a))
    w = MainWindow(settings, model="vit_tiny_patch16_224", weights="random",
                   model_kwargs={**MODEL_KW, "num_classes": 0})
    qtbot.addWidget(w)
    w.show()
    w.load_model("vit_tiny_patch16_224", "random")
    open_and_wait(qtbot, w, chelsea)
    combo = w.controls.method
    enabled = {combo.itemData(i): combo.model().item(i).isEnabled()
               for i in range(combo.count())}
    assert enabled == {"head": True, "head-rollout": True, "rollout": True,
                       "grad-rollout": False, "relevance": False}
    assert not w.groups_panel.importance.isEnabled()
    for method in ("grad-rollout", "relevance"):
        with qtbot.waitSignal(w.tasks.worker_finished, timeout=60000):
            w.state.update(method=method)
        assert "no classifier head" in w.status_text.text()
    w.state.update(method="head")
    with qtbot.waitSignal(w.tasks.worker_finished, timeout=60000):
        w.groups_controller.compute_importance()
    assert "no classifier head" in w.status_text.text()
    assert not dialogs
    w.tasks.cancel()


def test_head_importance_counts_heads_ranks_them_and_names_the_class(qtbot, window, chelsea):
    a = open_and_wait(qtbot, window, chelsea)
    bars = []
    window.groups_controller.importance_progress.connect(
        lambda k, n: bars.append((k, n, window.progress.value(), window.progress.maximum())))
    gp = window.groups_panel
    assert gp.ranking.isHidden()
    with qtbot.waitSignal(window.rendered, timeout=60000):
        gp.importance.click()
    assert bars and bars[-1] == (9, 9, 9, 9), "determinate: k of L x H heads"
    assert all(k % 3 == 0 for k, *_ in bars)
    table = window.state.a.head_groups.table
    drops = [float(gp.ranking.topLevelItem(i).text(1)) for i in range(9)]
    assert drops == sorted(drops, reverse=True)
    assert drops[0] == pytest.approx(table.scores["logprob_drop"].max(), abs=1e-4)
    assert a.top_k(1)[0][1] in gp.importance_title.text()
    gp.ranking.sortByColumn(2, Qt.SortOrder.AscendingOrder)
    kls = [float(gp.ranking.topLevelItem(i).text(2)) for i in range(9)]
    assert kls == sorted(kls)
    assert window.grid.heat_colour(0, 0) is None, "thumbnails until the heatmap is asked for"
    gp.heatmap.setChecked(True)
    assert window.state.importance_heatmap
    drop = table.scores["logprob_drop"]
    top = np.unravel_index(np.argmax(drop), drop.shape)
    low = np.unravel_index(np.argmin(np.clip(drop, 0, None)), drop.shape)
    from vitexplorer.core.render import colormap_lut

    lut = colormap_lut("inferno")
    assert window.grid.heat_colour(*top).getRgb()[:3] == tuple(lut[255])
    expected = lut[round(255 * max(drop[low], 0) / drop.max())]
    assert window.grid.heat_colour(*low).getRgb()[:3] == tuple(expected)
    best = gp.ranking.topLevelItem(0)
    gp.ranking.itemDoubleClicked.emit(best, 0)
    assert f"{window.state.layer}.{window.state.head}" == best.text(0)


def test_similarity_click_chooses_a_pair_and_the_figure_enlarges(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    fig = window.groups_panel.figure
    fig.resize(360, 240)
    m = fig.matrix_rect()
    cells = window.state.a.head_groups.clustering.ordered_cells()
    n = len(cells)
    x, y = m.x() + (5.5 / n) * m.width(), m.y() + (2.5 / n) * m.height()
    qtbot.mouseClick(fig, Qt.MouseButton.LeftButton, pos=QPointF(x, y).toPoint())
    a, b = cells[2], cells[5]
    assert window.state.selection == {a, b} and (window.state.layer, window.state.head) == a
    dlg = window.groups_panel.enlarge()
    qtbot.addWidget(dlg)
    assert dlg.isVisible() and dlg.view.ordered_cells() == cells
    assert dlg.view.matrix_rect().width() > m.width()


def test_help_lists_every_shortcut(qtbot, window):
    from PySide6.QtGui import QKeySequence

    from vitexplorer.gui.actions import readme_url, shortcuts_dialog

    box = shortcuts_dialog(window, window.actions_)
    qtbot.addWidget(box)
    text = box.text()
    with_keys = [a for a in window.actions_.values()
                 if hasattr(a, "shortcut") and not a.shortcut().isEmpty()]
    assert len(with_keys) >= 15
    for a in with_keys:
        assert a.shortcut().toString(QKeySequence.SequenceFormat.NativeText) in text, a.text()
    assert "← →" in text and "↑ ↓" in text
    from PySide6.QtWidgets import QMenu

    help_menu = next(m for m in window.menuBar().findChildren(QMenu) if m.title() == "&Help")
    assert [a.text() for a in help_menu.actions()][:2] == ["&Keyboard Shortcuts",
                                                         "&Documentation (README)"]
    assert readme_url().toString().endswith("README.md")


def test_model_info_counts_registers_where_timm_keeps_no_count():
    """EVA models with registers (DINOv3) have no num_reg_tokens: the info showed 0."""
    from vitexplorer.core.models import load_model
    from vitexplorer.gui.dialogs import model_info_text

    loaded = load_model("vit_small_patch16_dinov3", "random", input_size=32, depth=1)
    assert "Prefix tokens: 5 (class: yes, distillation: 0, registers: 4)" in model_info_text(loaded)


def test_input_size_arrows_step_by_the_patch_from_the_size_shown(qtbot, window, chelsea):
    """From 'model default' (64 px, /16) the up arrow asks for 80 px; a fixed step of 16
    asked for 16 px, one patch per side, which the model refuses."""
    open_and_wait(qtbot, window, chelsea)
    spin = window.controls.input_size
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        spin.stepBy(1)
    assert window.state.input_size == 80 and window.state.a.analysis.geometry.grid == (5, 5)
    spin.patch, spin.shown = 14, 224  # a /14 model (DINOv2, EVA-02): multiples of 14 only
    spin.blockSignals(True)
    for start, steps, expect in ((0, 1, 238), (0, -1, 210), (100, 1, 112), (28, -1, 0)):
        spin.setValue(start)
        spin.stepBy(steps)
        assert spin.value() == expect, (start, steps)
    spin.blockSignals(False)


def test_native_aspect_rebuilds_the_model_to_follow_the_image(qtbot, window, chelsea):
    """'native aspect' needs a model whose token grid follows the image (timm's
    dynamic_img_size); the window kept its fixed-grid model, and every analysis failed."""
    a = open_and_wait(qtbot, window, chelsea)
    assert a.geometry.grid == (4, 4)
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.state.update(policy="native")
    b = window.state.a.analysis
    assert b.policy == "native" and b.geometry.grid == (3, 5)  # 451 x 300 px at ~64^2 px
    assert window.state.a.loaded.model.dynamic_img_size
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.state.update(policy="crop")
    assert window.state.a.analysis.geometry.grid == (4, 4)
