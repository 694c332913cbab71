"""Drawing the foreground on the image with the mouse: a box and scribbles seed GrabCut in
the worker, brush edits change the mask, its outline is shown, the mask is saved next to the
photo. The photo (384 x 303) is shown from a half-size display copy, so every drawn pixel
must be mapped back to the photo."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from tests.conftest import TEST_IMAGES
from tests.gui.conftest import open_and_wait

PHOTO = (303, 384)  # rows, cols of coins.png


@pytest.fixture
def coins(tmp_path, monkeypatch):
    """coins.png in a folder of its own, shown from a half-size copy."""
    from vitexplorer.gui import jobs

    monkeypatch.setattr(jobs, "DISPLAY_MAX", 192)
    path = tmp_path / "photos" / "coins.png"
    path.parent.mkdir()
    path.write_bytes((TEST_IMAGES / "coins.png").read_bytes())
    return path


def drag(window, tool, scene_points):
    """Choose ``tool`` by its key and drag through ``scene_points`` (display pixels)."""
    window.activateWindow()
    window.view.setFocus()
    key = window.groups_panel.tools.tool_actions[tool].shortcut().toString()
    if window.state.draw_tool != tool:
        QTest.keyClick(window.view, key)
    assert window.state.draw_tool == tool
    port = window.view.viewport()
    pos = [window.view.mapFromScene(QPointF(x, y)) for x, y in scene_points]
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos[0])
    for p in pos[1:]:
        QTest.mouseMove(port, p)
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       pos[-1])


def wait_scored(qtbot, window, source):
    qtbot.waitUntil(lambda: (g := window.state.a.head_groups) is not None
                    and g.table.meta["mask_source"] == source
                    and not window.tasks.is_running(), timeout=30000)
    return window.state.a.head_groups


def test_a_drawn_box_and_scribbles_seed_grabcut_in_photo_pixels(qtbot, window, coins,
                                                                monkeypatch):
    from vitexplorer.core import masks

    open_and_wait(qtbot, window, coins)
    display = window.state.a.finished.display
    assert display.shape[:2] == (152, 192)  # half the photo
    drag(window, "box", [(20, 15), (60, 50), (100, 80)])
    tol = 2 / window.view.transform().m11() + 1  # one screen pixel, in photo pixels
    box = window.state.drawing.box
    assert np.allclose(box, (40, 30, 200, 160), atol=tol), box
    groups = wait_scored(qtbot, window, "box")
    assert str(box) in groups.table.meta["mask"]
    assert window.groups_panel.box.text() == ",".join(map(str, box))
    fg = groups.foreground.mask  # on the display copy, inside the box halved
    assert fg.any() and not fg[:14].any() and not fg[81:].any() and not fg[:, 101:].any()
    outline = window.mask_overlay.outline_path().boundingRect()
    assert outline.width() > 5 and outline.left() >= 19 and outline.right() <= 101
    points = np.vstack(groups.outline)  # the worker's display pixels, drawn as they are
    assert (outline.left(), outline.right(), outline.top(), outline.bottom()) == (
        points[:, 0].min(), points[:, 0].max(), points[:, 1].min(), points[:, 1].max())
    assert "drawn box" in window.groups_panel.scored_with.text()

    seen = []
    real = masks.box_grabcut
    monkeypatch.setattr(masks, "box_grabcut",
                        lambda image, rect, **kw: seen.append(kw) or real(image, rect, **kw))
    drag(window, "bg", [(80, 30), (80, 40), (80, 50)])
    groups = wait_scored(qtbot, window, "scribbles")
    (stroke,) = window.state.drawing.scribbles
    assert not stroke.foreground and len(stroke.points) >= 3
    assert np.allclose(stroke.points[0], (160, 60), atol=tol)  # photo pixels
    (reached,) = seen[-1]["strokes"]  # the core got it, on the display copy
    assert np.allclose(reached.points[0], (80, 30), atol=tol / 2)
    assert reached.radius == pytest.approx(stroke.radius / 2, rel=0.01)
    assert "1 background" in groups.table.meta["mask"]
    assert "scribbles" in window.groups_panel.scored_with.text()

    window.groups_panel.tools.clear.click()
    groups = wait_scored(qtbot, window, "centre")
    assert window.state.drawing is None and window.mask_overlay._box.path().isEmpty()


def test_brush_edits_the_mask_and_the_outline_toggles(qtbot, window, coins):
    open_and_wait(qtbot, window, coins)
    before = window.state.a.head_groups.foreground.mask.copy()
    assert window.state.a.head_groups.table.meta["mask_source"] == "centre"
    zoom = window.view.transform().m11()  # screen pixels per display pixel
    window.state.update(brush=round(24 * zoom))  # 12 display px each side
    drag(window, "add", [(30, 76), (90, 76), (160, 76)])
    groups = wait_scored(qtbot, window, "edited")
    added = groups.foreground.mask
    assert added[66:87, 30:161].all() and (added >= before).all()
    window.state.update(brush=round(8 * zoom))  # 4 display px each side
    drag(window, "erase", [(40, 76), (150, 76)])
    groups = wait_scored(qtbot, window, "edited")
    after = groups.foreground.mask
    assert not after[73:80, 40:151].any()  # under the eraser
    assert after[66:71, 30:161].all() and after[82:87, 30:161].all()  # the added band beside
    assert "2 strokes" in groups.mask and "edited" in window.groups_panel.scored_with.text()
    assert window.mask_overlay._outline.isVisible()
    QTest.keyClick(window.view, "O")
    assert not window.state.show_outline and not window.mask_overlay._outline.isVisible()
    assert not window.groups_panel.tools.outline.isChecked()
    QTest.keyClick(window.view, "E")  # the tool's key again: back to panning
    assert window.state.draw_tool is None
    drawing = window.state.drawing
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):  # same photo, another fit
        window.state.update(policy="stretch")
    groups = wait_scored(qtbot, window, "edited")  # the drawing (photo pixels) still holds
    assert window.state.drawing == drawing and not groups.foreground.mask[74:79, 44:147].any()


def test_a_stroke_rescores_only_the_foreground_and_keeps_the_head_importance(
        qtbot, window, coins, monkeypatch):
    """A box or brush stroke after the head importance: the table keeps its ablation
    columns and class, and nothing that no mask changes (clustering, divergence, the
    image's features) is computed again. Failed before the fix: the new table had no
    logprob_drop / kl, and the clustering and features were computed on every stroke."""
    from vitexplorer.core import features, relations

    open_and_wait(qtbot, window, coins)
    gp = window.groups_panel
    gp.importance.click()
    qtbot.waitUntil(lambda: window.state.a.head_groups.importance_class is not None
                    and not window.tasks.is_running(), timeout=60000)
    before = window.state.a.head_groups
    drop, kl = before.table.scores["logprob_drop"], before.table.scores["kl"]
    calls = []
    for module, name in ((relations, "cluster_heads"), (relations, "layer_divergence"),
                         (features, "working_copy")):  # the image's features
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _n=name, _f=real, **k:
                            calls.append(_n) or _f(*a, **k))
    drag(window, "box", [(20, 15), (100, 80)])
    boxed = wait_scored(qtbot, window, "box")
    zoom = window.view.transform().m11()
    window.state.update(brush=round(16 * zoom))
    drag(window, "erase", [(30, 40), (90, 40)])
    edited = wait_scored(qtbot, window, "edited")
    for groups in (boxed, edited):
        assert groups.importance_class == before.importance_class
        assert groups.table.scores["logprob_drop"] is drop and groups.table.scores["kl"] is kl
        assert groups.clustering is before.clustering and groups.matrix is before.matrix
    assert calls == []
    assert not (edited.table.scores["fg_lift"] == before.table.scores["fg_lift"]).all()
    assert (edited.table.scores["edge_lift"] == before.table.scores["edge_lift"]).all()
    assert not gp.ranking.isHidden() and before.importance_class in gp.importance_title.text()


def test_importance_that_lands_while_a_stroke_is_scored_is_kept(qtbot, window, coins,
                                                                 monkeypatch):
    """The head importance finishes while the heads are scored against a new box: the new
    table still gets it. Fails when only the groups the job started from are asked for
    their importance (the job started before the importance was there)."""
    import threading

    from vitexplorer.gui import jobs

    open_and_wait(qtbot, window, coins)
    gate, real = threading.Event(), jobs.groups_job
    monkeypatch.setattr(jobs, "groups_job",
                        lambda *a, **k: gate.wait(30) and real(*a, **k))
    drag(window, "box", [(20, 15), (100, 80)])
    assert window.tasks.is_running("groups-A")
    window.groups_panel.importance.click()
    qtbot.waitUntil(lambda: window.state.a.head_groups.importance_class is not None,
                    timeout=60000)
    drop = window.state.a.head_groups.table.scores["logprob_drop"]
    gate.set()
    groups = wait_scored(qtbot, window, "box")
    assert groups.table.scores["logprob_drop"] is drop and groups.importance_class


def test_save_writes_the_mask_next_to_the_photo_and_asks_before_replacing(
        qtbot, window, coins, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from vitexplorer.core.masks import load_mask

    open_and_wait(qtbot, window, coins)
    drag(window, "box", [(20, 15), (100, 80)])
    groups = wait_scored(qtbot, window, "box")
    target = coins.parent / "coins_mask.png"
    with qtbot.waitSignal(window.tasks.worker_finished, timeout=10000):
        window.groups_panel.tools.save.click()
    saved = load_mask(target, PHOTO)  # at the photo's size, as the CLI reads it
    shown = np.kron(groups.foreground.mask, np.ones((2, 2), bool))[:303, :384]
    assert (saved != shown).mean() < 0.02
    assert "saved" in window.status_text.text()
    data = target.read_bytes()
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    drag(window, "bg", [(40, 40), (80, 40)])
    wait_scored(qtbot, window, "scribbles")
    window.groups_panel.tools.save.click()
    assert asked and "coins_mask.png" in asked[0]
    assert target.read_bytes() == data and "not saved" in window.status_text.text()
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.tasks.worker_finished, timeout=10000):
        window.groups_panel.tools.save.click()
    assert target.read_bytes() != data
    window.groups_controller.choose_mask_file(str(target))  # "Mask file…" replaces
    assert wait_scored(qtbot, window, "file").mask == str(target)  # the drawing, box and all
    assert window.state.drawing is None
    assert sorted(p.name for p in coins.parent.iterdir()) == ["coins.png", "coins_mask.png"]
    # the saved mask is the one this photo is scored with from now on, drawing gone
    open_and_wait(qtbot, window, TEST_IMAGES / "chelsea.png")
    assert window.state.drawing is None
    open_and_wait(qtbot, window, coins)
    assert window.state.a.head_groups.table.meta["mask_source"] == "file"
    assert "mask file" in window.groups_panel.scored_with.text()


def test_undo_and_redo_step_through_the_drawing_and_rescore(qtbot, window, coins):
    open_and_wait(qtbot, window, coins)
    tools = window.groups_panel.tools
    assert not tools.undo_action.isEnabled()  # nothing drawn yet
    drag(window, "box", [(20, 15), (100, 80)])
    box_only = window.state.drawing
    wait_scored(qtbot, window, "box")
    drag(window, "bg", [(40, 40), (80, 40)])
    wait_scored(qtbot, window, "scribbles")
    assert tools.undo_action.isEnabled() and not tools.redo_action.isEnabled()
    # Ctrl+Z in the typed-box field undoes the typing, not the drawing
    window.groups_panel.box.setFocus()
    window.groups_panel.box.setText("1,2,3,4")
    window.groups_panel.box.insert("5")
    QTest.keyClick(window.groups_panel.box, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.groups_panel.box.text() == "1,2,3,4" and window.state.drawing.scribbles
    window.view.setFocus()
    QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.state.drawing == box_only  # the stroke taken back ...
    wait_scored(qtbot, window, "box")  # ... and the heads scored again without it
    QTest.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.state.drawing is None and not tools.undo_action.isEnabled()
    assert window.groups_panel.box.text() == ""  # no box shown that is not in use
    wait_scored(qtbot, window, "centre")
    QTest.keyClick(window.view, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.state.drawing == box_only
    groups = wait_scored(qtbot, window, "box")
    assert not window.mask_overlay._box.path().isEmpty() and groups.foreground.mask.any()


def test_brush_size_and_outline_are_remembered_between_sessions(qtbot, window, settings,
                                                                 tmp_path):
    from vitexplorer.gui.main_window import MainWindow
    from vitexplorer.gui.settings import Settings

    tools = window.groups_panel.tools
    tools.brush.setValue(31)
    window.view.setFocus()
    QTest.keyClick(window.view, "O")
    assert not window.state.show_outline
    window.close()
    again = Settings(tmp_path / "settings.ini")  # read back from the file
    w2 = MainWindow(again, model="vit_tiny_patch16_224", weights="random")
    qtbot.addWidget(w2)
    assert w2.state.brush == 31 and w2.groups_panel.tools.brush.value() == 31
    assert not w2.state.show_outline and not w2.groups_panel.tools.outline.isChecked()
    assert not w2.mask_overlay._outline.isVisible()
    again.set("draw/brush", "999")  # out of the brush box's range: the default instead
    w3 = MainWindow(again, model="vit_tiny_patch16_224", weights="random")
    qtbot.addWidget(w3)
    assert w3.state.brush == 12 and not w3.state.show_outline


def test_the_compare_slot_scores_and_shows_the_same_drawing(qtbot, window, coins):
    open_and_wait(qtbot, window, coins)
    with qtbot.waitSignal(window.compare.compared, timeout=60000):
        window.compare.load_model("vit_small_patch16_224", "random")
    b = window.state.b
    assert b.head_groups.table.meta["mask_source"] == "centre"
    drag(window, "box", [(20, 15), (100, 80)])
    groups = wait_scored(qtbot, window, "box")
    qtbot.waitUntil(lambda: b.head_groups.table.meta["mask_source"] == "box"
                    and not window.tasks.is_running(), timeout=30000)
    assert b.head_groups.table.meta["mask"] == groups.table.meta["mask"]
    assert (b.head_groups.foreground.mask == groups.foreground.mask).all()  # same photo pixels
    names = b.head_groups.table.groups()
    centre = window.compare_panel.grid.cell_rect(0, 4).center()  # B's grid shows B's new groups
    assert f"B 0.4: group {names[0, 4]}" in window.compare_panel.grid.tooltip_at(centre.x(),
                                                                                 centre.y())
    overlay_b = window.compare.overlay  # B's view shows the box and B's mask outline
    assert not overlay_b._box.path().isEmpty() and not overlay_b.outline_path().isEmpty()
    assert overlay_b._box.path().boundingRect() == window.mask_overlay._box.path().boundingRect()
    # and a stroke drawn on B's view lands in the same photo pixels as one drawn on A's
    port = window.compare_panel.view.viewport()
    pos = [window.compare_panel.view.mapFromScene(QPointF(x, y)) for x, y in ((60, 40),
                                                                             (80, 40))]
    QTest.keyClick(window.view, "X")
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos[0])
    QTest.mouseMove(port, pos[1])
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos[1])
    (stroke,) = window.state.drawing.scribbles
    zoom_b = window.compare_panel.view.transform().m11()
    assert np.allclose(stroke.points[0], (120, 80), atol=2 / zoom_b + 1)  # photo pixels
    qtbot.waitUntil(lambda: b.head_groups.table.meta["mask_source"] == "scribbles"
                    and not window.tasks.is_running(), timeout=30000)


def test_the_two_slots_share_one_grabcut_per_image_and_box(qtbot, window, coins,
                                                           monkeypatch):
    """Compare mode: the model-free GrabCut runs once for both models of an image (centre
    box, then a drawn box), and again once the image changes. Fails (2, 4, 6 runs) when
    every slot runs its own."""
    from vitexplorer.core import masks

    runs = []
    real = masks.box_grabcut
    monkeypatch.setattr(masks, "box_grabcut",
                        lambda *a, **k: runs.append(a[1]) or real(*a, **k))
    open_and_wait(qtbot, window, coins)
    with qtbot.waitSignal(window.compare.compared, timeout=60000):
        window.compare.load_model("vit_small_patch16_224", "random")
    a, b = window.state.a, window.state.b
    assert b.head_groups.table.meta["mask_source"] == "centre" and len(runs) == 1
    assert (b.head_groups.foreground.mask == a.head_groups.foreground.mask).all()
    drag(window, "box", [(20, 15), (100, 80)])
    wait_scored(qtbot, window, "box")
    qtbot.waitUntil(lambda: b.head_groups.table.meta["mask_source"] == "box"
                    and not window.tasks.is_running(), timeout=30000)
    assert len(runs) == 2 and runs[1] != runs[0]
    other = coins.with_name("chelsea.png")
    other.write_bytes((TEST_IMAGES / "chelsea.png").read_bytes())
    with qtbot.waitSignal(window.compare.compared, timeout=60000):
        open_and_wait(qtbot, window, other)
    assert b.analysis.source == str(other) and b.head_groups.table.meta["mask_source"] == \
        "centre"
    assert len(runs) == 3


def test_the_foreground_dropdown_names_the_mask_the_scores_use(qtbot, window, coins, tmp_path):
    from dataclasses import replace

    from PIL import Image

    from vitexplorer.core.masks import Stroke
    from vitexplorer.gui.groups_panel import IN_USE

    combo = window.groups_panel.mask
    open_and_wait(qtbot, window, coins)
    assert combo.currentData() == "centre" and combo.findData(IN_USE) < 0
    drag(window, "box", [(20, 15), (100, 80)])
    wait_scored(qtbot, window, "box")
    assert combo.currentData() == IN_USE and combo.currentText() == "drawn: box (GrabCut)"
    drag(window, "erase", [(40, 40), (60, 40)])
    wait_scored(qtbot, window, "edited")
    assert combo.currentText() == "drawn: box (GrabCut), edited by hand"
    window.state.update(drawing=replace(window.state.drawing, box=None, scribbles=(
        Stroke(((40, 40), (60, 40)), 4, False),)))  # scribbles without a box
    wait_scored(qtbot, window, "edited")
    assert combo.currentText() == "drawn: centre box + scribbles (GrabCut), edited by hand"
    shown = window.mask_overlay._box.path().boundingRect()  # the centre box GrabCut used, /2
    assert np.allclose([shown.left(), shown.top(), shown.right(), shown.bottom()],
                       [38.4 / 2, 30.3 / 2, 345.6 / 2, 272.7 / 2], atol=1)
    chosen = tmp_path / "elsewhere" / "chosen.png"
    chosen.parent.mkdir()
    ring = np.zeros(PHOTO, np.uint8)
    ring[50:250, 60:300] = 255
    Image.fromarray(ring).save(chosen)
    window.groups_controller.choose_mask_file(str(chosen))
    wait_scored(qtbot, window, "file")
    assert combo.currentText() == "mask file: chosen.png"
    combo.setCurrentIndex(combo.findData("rollout"))  # the user asks for a mode: it is used
    assert window.state.mask_file is None and window.state.mask == "rollout"
    wait_scored(qtbot, window, "rollout")
    assert combo.currentData() == "rollout" and combo.findData(IN_USE) < 0
    # a mask file beside the photo wins over the modes (as in the CLI): they are off
    Image.fromarray(ring).save(coins.parent / "coins_mask.png")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.state.update(policy="stretch")
    wait_scored(qtbot, window, "file")
    assert combo.currentText() == "mask file: coins_mask.png"
    assert not combo.model().item(combo.findData("centre")).isEnabled()
    assert "beside the photo" in combo.toolTip()


def test_a_chosen_mask_file_that_does_not_fit_is_dropped_with_a_message(qtbot, window, coins,
                                                                        tmp_path, monkeypatch):
    from PIL import Image

    from vitexplorer.gui import main_window

    dialogs = []
    monkeypatch.setattr(main_window, "show_error", lambda *a, **k: dialogs.append(a))
    open_and_wait(qtbot, window, coins)
    narrow = tmp_path / "narrow.png"
    Image.fromarray(np.full((303, 100), 255, np.uint8)).save(narrow)
    window.groups_controller.choose_mask_file(str(narrow))
    qtbot.waitUntil(lambda: "narrow.png" in window.status_text.text(), timeout=10000)
    assert "not used" in window.status_text.text() and window.state.mask_file is None
    assert not dialogs
    groups = wait_scored(qtbot, window, "centre")
    drag(window, "box", [(20, 15), (100, 80)])  # drawing goes on without the bad file
    wait_scored(qtbot, window, "box")
    assert not dialogs and groups is not window.state.a.head_groups


def test_a_mask_file_that_cannot_be_read_leaves_the_drawn_box_in_use(qtbot, window, coins,
                                                                    tmp_path):
    open_and_wait(qtbot, window, coins)
    drag(window, "box", [(20, 15), (100, 80)])
    wait_scored(qtbot, window, "box")
    box = window.state.drawing
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    window.groups_controller.choose_mask_file(str(broken))
    qtbot.waitUntil(lambda: "broken.png" in window.status_text.text(), timeout=10000)
    assert "not used" in window.status_text.text()
    assert window.state.mask_file is None and window.state.drawing == box, "box kept"
    wait_scored(qtbot, window, "box")
    assert window.groups_panel.mask.currentText().startswith("drawn: box")


@pytest.mark.parametrize(("base", "edited", "no_box", "expected"), [
    ("centre", False, False, None),  # the mode as it is: the dropdown shows the mode
    ("centre", True, False, "centre GrabCut, edited by hand"),
    ("scribbles", False, True, "drawn: centre box + scribbles (GrabCut)"),
    ("scribbles", False, False, "drawn: box + scribbles (GrabCut)"),
    ("file", True, False, "mask file: m.png, edited by hand"),
])
def test_the_dropdown_entry_says_what_was_drawn(base, edited, no_box, expected):
    from vitexplorer.gui.groups_panel import in_use_text

    assert in_use_text(base, "/x/m.png" if base == "file" else None, edited,
                       no_box) == expected


def test_an_outline_array_becomes_a_polygon_point_for_point():
    from vitexplorer.gui.mask_overlay import _polygon

    points = np.random.default_rng(0).uniform(-5, 500, (1000, 2))
    polygon = _polygon(points)
    assert [(p.x(), p.y()) for p in polygon] == [tuple(p) for p in points.tolist()]
    assert _polygon(points[::2]).size() == 500  # a strided view too
    assert _polygon(np.empty((0, 2))).isEmpty()


def test_a_typed_box_that_misses_the_photo_is_a_line_not_a_dialog(qtbot, window, coins,
                                                                  monkeypatch):
    from vitexplorer.gui import main_window

    dialogs = []
    monkeypatch.setattr(main_window, "show_error", lambda *a, **k: dialogs.append(a))
    open_and_wait(qtbot, window, coins)  # 384 x 303, shown from a half-size copy
    window.groups_panel.box.setText("500,0,600,100")
    window.groups_panel.box.returnPressed.emit()
    qtbot.waitUntil(lambda: "does not overlap" in window.status_text.text(), timeout=10000)
    assert "(500, 0, 600, 100)" in window.status_text.text()  # the photo's pixels
    assert "384x303" in window.status_text.text() and not dialogs


def test_lines_over_a_tiny_photo_thin_with_it(qtbot, window, tmp_path):
    """A 40 x 30 photo: the 60%-mass contour was burned into its pixels (one photo pixel:
    about ten screen pixels once fitted to the view), and the mask outline was a 2 px line
    on a 4 px halo at any zoom (a tenth of the photo at 100 %). Both are lines now, their
    width following the photo's size on screen."""
    from PIL import Image

    from tests.conftest import TEST_IMAGES
    from tests.gui.conftest import open_and_wait

    tiny = tmp_path / "tiny.png"
    Image.open(TEST_IMAGES / "chelsea.png").convert("RGB").resize((40, 30)).save(tiny)
    window.resize(1024, 700)
    window.state.update(contour=False)
    open_and_wait(qtbot, window, tiny)
    qtbot.waitUntil(lambda: window.state.a.head_groups is not None, timeout=60000)
    bare = window.maps.last_frame.image.copy()
    with qtbot.waitSignal(window.rendered, timeout=10000):
        window.state.update(contour=True)
    frame, view, overlay = window.maps.last_frame, window.view, window.mask_overlay
    assert np.array_equal(frame.image, bare), "the contour is not burned into the pixels"
    assert frame.contours and not view._contour.path().isEmpty()
    view.fit()
    assert view.transform().m11() > 5  # a photo pixel is several screen pixels

    def widths():
        return (view._contour.pen().widthF(), overlay._outline.pen().widthF(),
                overlay._halo.pen().widthF())

    assert widths() == (2, 2, 4) and view._contour.pen().isCosmetic()
    view.actual_size()  # 40 screen pixels long
    contour, outline, halo = widths()
    assert contour < 1 and outline < 1 and halo < 2 and contour >= 0.5
