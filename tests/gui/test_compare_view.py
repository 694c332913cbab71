"""Compare mode in the window: a second model beside the first, in step, heads matched."""

from __future__ import annotations

from tests.gui.conftest import open_and_wait


def load_second(qtbot, window, spec):
    with qtbot.waitSignal(window.compare.compared, timeout=60000) as got:
        window.compare.load_model(spec, "random")
    return got.args[0]


def test_same_model_in_slot_b_draws_the_same_heads(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    window.state.select_head(1, 2)
    comp = load_second(qtbot, window, "vit_tiny_patch16_224")
    assert window.compare_panel.isVisible()
    assert (window.state.layer, window.state.head) == (1, 2), "B leaves A's selection alone"
    assert comp.match_of(0, 1, 2)[:2] == (1, 2)
    qtbot.waitUntil(lambda: window.compare.maps.last_frame is not None
                    and window.compare.maps.last_frame.options.head == 2, timeout=10000)
    frame_b, frame_a = window.compare.maps.last_frame, window.maps.last_frame
    assert (frame_b.options.layer, frame_b.options.head) == (1, 2)
    assert (frame_b.image == frame_a.image).all(), "same weights: the same picture"
    assert "match of A's head 1.2" in window.compare_panel.caption.text()


def test_other_model_follows_the_selection_through_the_matching(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    comp = load_second(qtbot, window, "vit_small_patch16_224")  # 6 heads per block
    b = window.state.b.analysis
    assert (b.num_layers, b.num_heads) == (3, 6)
    for layer, head in ((0, 0), (2, 1), (1, 2)):
        lb, hb, cost = comp.match_of(0, layer, head)
        with qtbot.waitSignal(window.compare.maps.frame_ready, timeout=10000):
            window.state.select_head(layer, head)
        o = window.compare.maps.last_frame.options
        assert (o.layer, o.head) == (lb, hb)
        caption = window.compare_panel.caption.text()
        assert f"head {lb}.{hb}: the match of A's head {layer}.{head}" in caption
        assert f"JS distance {cost:.3f}" in caption
        assert window.compare_panel.grid.current == (lb, hb), "the match is current in B"
    # a click on B's grid selects A's head matched to it
    i, j = comp.matches[3]
    (la, ha), (lb, hb) = comp.cells[0][i], comp.cells[1][j]
    window.compare_panel.grid.selected.emit(lb, hb)
    assert (window.state.layer, window.state.head) == (la, ha)
    assert window.compare_panel.grid.shape == (3, 6)
    centre = window.compare_panel.grid.cell_rect(0, 4).center()
    group = window.state.b.head_groups.table.group(0, 4)
    assert f"B 0.4: group {group}" in window.compare_panel.grid.tooltip_at(centre.x(),
                                                                           centre.y())
    # a method without heads: the block at the same depth, same method and colormap
    with qtbot.waitSignal(window.compare.maps.frame_ready, timeout=10000):
        window.state.update(method="rollout", cmap="magma")
    o = window.compare.maps.last_frame.options
    assert (o.method, o.cmap, o.layer) == ("rollout", "magma", window.state.layer)


def _folder(tmp_path):
    import shutil

    from tests.conftest import TEST_IMAGES

    for name in ("chelsea.png", "horse.png", "coins.png"):
        shutil.copy(TEST_IMAGES / name, tmp_path / name)
    return tmp_path


def test_pairing_over_the_folder_holds_while_browsing(qtbot, window, tmp_path):
    """Pair Heads over Folder pairs on every image of the folder (the mean JS cost of
    compare_models, recomputed here independently), and B keeps following that pairing on
    the next image instead of the one image's pairing; a new fit forgets it."""
    import numpy as np

    from vitexplorer.core.compare import compare_models

    folder = _folder(tmp_path)
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_path(str(folder))
    load_second(qtbot, window, "vit_small_patch16_224")
    with qtbot.waitSignal(window.compare.compared_folder, timeout=120000) as got:
        window.actions_["compare_folder"].trigger()
    comp = got.args[0]
    paths = sorted(folder.glob("*.png"))
    ref = compare_models(window.state.a.loaded, window.state.b.loaded, paths,
                         window.state.policy, scores=False)
    assert comp.n_images == 3 and np.allclose(comp.cost, ref.cost)
    with qtbot.waitSignal(window.compare.compared, timeout=60000) as one:
        window.analyses.step_folder(1)
    image = one.args[0]
    differ = [c for c in comp.cells[0] if comp.match_of(0, *c)[:2] != image.match_of(0, *c)[:2]]
    assert differ, "the folder's pairing and this image's agree on every head"
    with qtbot.waitSignal(window.compare.maps.frame_ready, timeout=10000):
        window.state.select_head(*differ[0])
    o = window.compare.maps.last_frame.options
    assert (o.layer, o.head) == comp.match_of(0, *differ[0])[:2]
    assert "mean over 3 images of the folder" in window.compare_panel.caption.text()
    window.state.update(policy="stretch")
    assert window.compare.maps.folder_comparison is None


def test_pairing_over_a_folder_names_the_file_it_skipped_and_why(qtbot, window, tmp_path,
                                                                 monkeypatch):
    """From an image opened on its own, the pairing takes its folder, listed off the GUI
    thread (a network folder stalled the window), and names the file it skipped."""
    import threading
    from pathlib import Path

    folder = _folder(tmp_path)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_path(str(folder / "chelsea.png"))
    load_second(qtbot, window, "vit_small_patch16_224")
    on_gui_thread, real = [], Path.iterdir

    def iterdir(self):
        if self == folder:
            on_gui_thread.append(threading.current_thread() is threading.main_thread())
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    window.actions_["compare_folder"].trigger()
    qtbot.waitUntil(lambda: "Heads paired" in window.status_text.text(), timeout=120000)
    assert on_gui_thread == [False], "the folder was listed on the GUI thread"
    assert "broken.png: not an image file" in window.status_text.text()


def test_tokens_panel_follows_the_chosen_slot(qtbot, window, chelsea):
    """With B chosen, the panel measures B's image with B's model and reports the head B's
    view shows (the match of A's selection)."""
    open_and_wait(qtbot, window, chelsea)
    panel = window.tokens_panel
    assert not panel.slot.model().item(1).isEnabled(), "no B before a second model"
    load_second(qtbot, window, "vit_small_patch16_224")
    assert panel.slot.model().item(1).isEnabled()
    window.docks["Artifact tokens"].raise_()
    qtbot.waitUntil(lambda: window.tokens.result is not None, timeout=60000)
    assert window.tokens.result[0] is window.state.a.analysis
    with qtbot.waitSignal(window.tokens.measured, timeout=60000):
        panel.slot.setCurrentIndex(1)
    assert window.tokens.result[0] is window.state.b.analysis
    with qtbot.waitSignal(window.compare.maps.frame_ready, timeout=10000):
        window.state.select_head(2, 1)
    o = window.compare.maps.last_frame.options
    text = panel.text.text()
    assert text.startswith("B: ")
    assert (f"head {o.layer}.{o.head} puts" if o.layer else "Block 0 reads") in text
    panel.slot.setCurrentIndex(0)
    qtbot.waitUntil(lambda: window.tokens.result[0] is window.state.a.analysis,
                    timeout=60000)
    assert "head 2.1 puts" in panel.text.text()


def test_window_with_a_second_model_still_fits_1024x700(qtbot, window, chelsea):
    """Slot B beside A made the window's minimum wider than a laptop screen (two image views
    at their minimum, docks as wide as their content): the window grew and cut off the right
    dock. The views shrink and the docks scroll instead."""
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.size().toTuple() == (1024, 700), timeout=5000)
    open_and_wait(qtbot, window, chelsea)
    load_second(qtbot, window, "vit_tiny_patch16_224")
    qtbot.waitUntil(window.compare_panel.isVisible, timeout=5000)
    qtbot.wait(50)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700
    assert window.size().toTuple() == (1024, 700), "the window never grows by itself"
    inside = window.rect()
    for name in ("Controls", "Heads", "Selected head"):
        assert inside.contains(window.docks[name].geometry()), name


def test_a_and_b_share_the_centre(qtbot, window, chelsea):
    """By their size hints B's panel (caption, view, head grid) took most of the centre and A's
    view sat at its minimum; each model gets half, also after the window is resized."""
    window.resize(1280, 800)
    open_and_wait(qtbot, window, chelsea)
    load_second(qtbot, window, "vit_tiny_patch16_224")
    qtbot.waitUntil(window.compare_panel.isVisible, timeout=5000)
    for size in ((1280, 800), (1600, 900)):
        window.resize(*size)
        qtbot.waitUntil(lambda s=size: window.size().toTuple() == s, timeout=5000)
        a, b = window.view.width(), window.compare_panel.width()
        assert abs(a - b) <= 0.1 * (a + b), (size, a, b)


def test_slot_b_analyses_a_large_pasted_image_from_its_pixels(qtbot, window):
    """B analysed a pasted image larger than the display copy as a file named 'clipboard'
    (No such file or directory): A's display copy stood for a file there was not."""
    import numpy as np
    from PIL import Image

    from tests.conftest import TEST_IMAGES

    big = np.asarray(Image.open(TEST_IMAGES / "chelsea.png").convert("RGB").resize((1800, 1200)))
    with qtbot.waitSignal(window.analysis_shown, timeout=60000):
        window.open_array(big, "clipboard")
    load_second(qtbot, window, "vit_tiny_patch16_224")
    b = window.state.b.analysis
    assert b.source == "clipboard" and b.photo_size == (1200, 1800)
    assert b.image.shape == window.state.a.analysis.image.shape
