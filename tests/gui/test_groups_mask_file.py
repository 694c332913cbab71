"""The Groups panel's scores use IMAGE_mask.png next to the image, as the CLI and batch do."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TEST_IMAGES
from vitexplorer.core.analysis import analyze
from vitexplorer.core.images import load_image
from vitexplorer.gui.jobs import groups_job


def test_mask_file_next_to_the_image_is_used_even_on_a_display_copy(tmp_path, tiny_loaded):
    img = tmp_path / "coins.png"
    img.write_bytes((TEST_IMAGES / "coins.png").read_bytes())  # 384 x 303
    a = analyze(tiny_loaded, str(img), "stretch", source=str(img), display_side=200)
    assert a.image.shape[:2] != (303, 384)  # a smaller display copy
    plain = groups_job(a, "centre")
    assert plain.table.meta["mask_source"] == "centre"
    mask = np.zeros((303, 384), np.uint8)
    mask[60:240, 80:300] = 255
    Image.fromarray(mask).save(tmp_path / "coins_mask.png")
    used = groups_job(a, "centre")
    assert used.table.meta["mask_source"] == "file"
    assert used.mask.endswith("coins_mask.png") and "mask_warning" not in used.table.meta
    Image.fromarray(mask[:100]).save(tmp_path / "coins_mask.png")  # the wrong size
    wrong = analyze(tiny_loaded, str(img), "stretch", source=str(img))
    skipped = groups_job(wrong, "centre")
    assert skipped.table.meta["mask_source"] == "centre"
    assert "not used" in skipped.table.meta["mask_warning"]


def test_a_chosen_mask_file_is_used_and_one_that_does_not_fit_is_an_error(tmp_path, tiny_loaded):
    import pytest

    from vitexplorer.core.errors import ImageError

    a = analyze(tiny_loaded, load_image(TEST_IMAGES / "coins.png"), "stretch")
    mask = np.zeros((303, 384), np.uint8)
    mask[60:240, 80:300] = 255
    Image.fromarray(mask).save(tmp_path / "object.png")
    chosen = groups_job(a, "centre", mask_file=str(tmp_path / "object.png"))
    assert chosen.table.meta["mask_source"] == "file" and chosen.mask.endswith("object.png")
    Image.fromarray(mask[:, :100]).save(tmp_path / "narrow.png")
    with pytest.raises(ImageError, match=r"narrow\.png"):
        groups_job(a, "centre", mask_file=str(tmp_path / "narrow.png"))


def test_the_panel_offers_a_mask_file(qtbot, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    from vitexplorer.gui.groups_panel import GroupsPanel
    from vitexplorer.gui.state import ViewState

    panel = GroupsPanel(ViewState())
    qtbot.addWidget(panel)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: ("/x/m.png", ""))
    with qtbot.waitSignal(panel.mask_file_chosen) as sig:
        panel.mask_file.click()
    assert sig.args == ["/x/m.png"]


def test_a_typed_box_seeds_grabcut_on_the_display_copy(tmp_path, tiny_loaded):
    from vitexplorer.core.masks import parse_box
    from vitexplorer.gui.state import Drawing

    img = tmp_path / "coins.png"
    img.write_bytes((TEST_IMAGES / "coins.png").read_bytes())  # 384 x 303
    a = analyze(tiny_loaded, str(img), "stretch", source=str(img), display_side=192)
    boxed = groups_job(a, "centre", drawing=Drawing(box=parse_box("40,30,200,160")))
    assert boxed.table.meta["mask_source"] == "box"
    assert "(40, 30, 200, 160)" in boxed.mask  # named in the photo's pixels
    fg = boxed.foreground.mask  # on the half-size display copy: inside (20, 15, 100, 80)
    assert fg.shape == a.image.shape[:2] and fg.any()
    assert not fg[:15].any() and not fg[80:].any()
    assert not fg[:, :20].any() and not fg[:, 100:].any()


def test_edits_reuse_the_grabcut_of_the_same_box_and_scribbles(tiny_loaded, monkeypatch):
    from dataclasses import replace

    from vitexplorer.core import masks
    from vitexplorer.core.masks import Stroke
    from vitexplorer.gui.state import Drawing

    a = analyze(tiny_loaded, load_image(TEST_IMAGES / "coins.png"), "stretch")
    calls = []
    real = masks.box_grabcut
    monkeypatch.setattr(masks, "box_grabcut", lambda *a, **k: calls.append(1) or real(*a, **k))
    drawing = Drawing(box=(40, 30, 200, 160), scribbles=(Stroke(((60, 60),), 5, False),))
    masks.clear_grabcuts()
    first = groups_job(a, "centre", drawing=drawing)
    assert len(calls) == 1 and not first.centre_box
    edited = replace(drawing, edits=(Stroke(((100, 100), (150, 100)), 6, False),))
    reused = groups_job(a, "centre", drawing=edited, previous=first)
    assert len(calls) == 1  # GrabCut not run again
    masks.clear_grabcuts()  # nothing kept to share: GrabCut again, the same mask
    anew = groups_job(a, "centre", drawing=edited)
    assert len(calls) == 2 and (reused.foreground.mask == anew.foreground.mask).all()
    assert reused.table.meta["mask"] == anew.table.meta["mask"]
    moved = replace(edited, box=(30, 30, 200, 160))  # another box: GrabCut again
    groups_job(a, "centre", drawing=moved, previous=first)
    assert len(calls) == 3
    scribbled = groups_job(a, "centre", drawing=replace(drawing, box=None))
    assert scribbled.centre_box and len(calls) == 4  # seeded in the centre box


def test_a_new_analysis_is_scored_with_the_mask_mode_in_use(tiny_loaded, monkeypatch):
    """The analysis job scores its heads against the view's mask mode: with 'rollout' no
    GrabCut (about a second) runs for a centre table that would be scored again at once.
    Fails when the job always scores 'centre' (the GrabCut count is 1, the mask 'centre')."""
    import cv2

    from vitexplorer.gui.jobs import analyze_job

    calls = []
    real = cv2.grabCut
    monkeypatch.setattr(cv2, "grabCut", lambda *a, **k: calls.append(1) or real(*a, **k))
    rgb = load_image(TEST_IMAGES / "coins.png")
    done = analyze_job(tiny_loaded, rgb, "coins", "stretch", "viridis", "rollout")
    assert calls == [] and done.head_groups.mask == "rollout"
    done = analyze_job(tiny_loaded, rgb, "coins", "stretch", "viridis")
    assert calls and done.head_groups.mask == "centre"


@pytest.mark.parametrize(("display_max", "shape", "scale"), [
    (100, (200, 400), (1 / 4, 1 / 4)),  # a quarter on both sides
    (192, (303, 384), (192 / 384, 152 / 303)),  # rows rounded as resized() rounds them
    (1000, (200, 400), (1, 1))])  # not reduced
def test_the_outline_comes_in_display_pixels_through_pixel_centres(monkeypatch, display_max,
                                                                   shape, scale):
    """The worker gives the outline on the display copy the view draws on, through the
    mask's pixel centres, so the GUI thread only copies it. Fails when it is left in the
    mask's pixels (the GUI thread then scales every point)."""
    from vitexplorer.gui import jobs

    monkeypatch.setattr(jobs, "DISPLAY_MAX", display_max)
    mask = np.zeros(shape, bool)
    mask[20:40, 100:140] = True  # rows 20-39, columns 100-139
    (square,) = jobs.display_outline(mask)
    sx, sy = scale
    assert square[:, 0].min() == pytest.approx(100.5 * sx)
    assert square[:, 0].max() == pytest.approx(139.5 * sx)
    assert square[:, 1].min() == pytest.approx(20.5 * sy)
    assert square[:, 1].max() == pytest.approx(39.5 * sy)
    display = jobs.resized(np.zeros((*shape, 3), np.uint8), display_max)[0]
    assert display.shape[:2] == (round(shape[0] * sy), round(shape[1] * sx))


def test_a_superseded_scoring_stops_after_its_grabcut(tiny_loaded, monkeypatch):
    """A drawing replaced while its job runs: the job stops once its GrabCut is done and
    scores no heads (the newer job does). Fails when groups_job ignores should_stop."""
    from vitexplorer.core.analysis import Analysis
    from vitexplorer.core.errors import Cancelled
    from vitexplorer.gui.state import Drawing

    a = analyze(tiny_loaded, load_image(TEST_IMAGES / "coins.png"), "stretch")
    tables = []
    real = Analysis.head_table
    monkeypatch.setattr(Analysis, "head_table",
                        lambda self, *k, **kw: tables.append(1) or real(self, *k, **kw))
    with pytest.raises(Cancelled):
        groups_job(a, "centre", drawing=Drawing(box=(40, 30, 200, 160)),
                   should_stop=lambda: True)
    assert not tables
    done = groups_job(a, "centre", drawing=Drawing(box=(40, 30, 200, 160)),
                      should_stop=lambda: False)
    assert tables and done.table.meta["mask_source"] == "box"


def test_a_superseded_analysis_scores_no_heads(tiny_loaded, monkeypatch):
    """Another image opened once the forward is done: the analysis job stops after its
    foreground instead of scoring heads. Fails when analyze_job keeps should_stop from
    its groups."""
    from vitexplorer.core.analysis import Analysis
    from vitexplorer.core.errors import Cancelled
    from vitexplorer.gui.jobs import analyze_job

    opened = []  # set once the foreground is made: the user opened another image
    real_fg, real_table = Analysis.foreground, Analysis.head_table
    monkeypatch.setattr(Analysis, "foreground",
                        lambda self, *k, **kw: opened.append(1) or real_fg(self, *k, **kw))
    tables = []
    monkeypatch.setattr(Analysis, "head_table",
                        lambda self, *k, **kw: tables.append(1) or real_table(self, *k, **kw))
    rgb = load_image(TEST_IMAGES / "coins.png")
    with pytest.raises(Cancelled):
        analyze_job(tiny_loaded, rgb, "coins", "stretch", "viridis", "centre",
                    should_stop=lambda: bool(opened))
    assert opened and not tables
