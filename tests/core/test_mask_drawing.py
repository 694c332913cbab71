"""A mask drawn by the user: a box and scribbles seed GrabCut, brush edits, outline, saving.

The images are built so the right mask is known exactly: GrabCut from the box alone gets
them wrong in a known way, and a scribble must put it right.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from vitexplorer.core.analysis import analyze
from vitexplorer.core.errors import OutputError
from vitexplorer.core.masks import (
    Foreground,
    Stroke,
    box_grabcut,
    drawn_foreground,
    load_mask,
    mask_outline,
    mask_path,
    paint_strokes,
    save_mask,
)

BOX = (25, 20, 140, 100)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def scene(extra: str):
    """A red square on grey noise inside ``BOX``, plus either a blue patch beside it
    (``"distractor"``: background that the box wrongly includes) or a flat grey handle
    attached to it (``"handle"``: object in the background's colour, wrongly dropped)."""
    rng = np.random.default_rng(0)
    img = np.clip(128 + rng.integers(-10, 11, (120, 160, 3)), 0, 255).astype(np.uint8)
    obj = np.zeros((120, 160), bool)
    obj[35:85, 40:90] = True
    img[obj] = (200, 40, 40)
    part = np.zeros_like(obj)
    if extra == "distractor":
        part[40:80, 105:125] = True
        img[part] = (40, 60, 200)
    else:
        part[50:70, 90:125] = True
        img[part] = 128
    return img, obj, part


def test_a_background_scribble_removes_what_the_box_alone_wrongly_keeps():
    img, obj, blue = scene("distractor")
    alone, warning = box_grabcut(img, BOX)
    assert warning is None and (alone & blue).mean() / blue.mean() > 0.9  # the box's mistake
    scribble = Stroke(((115, 50), (115, 70)), 3, foreground=False)  # 7 x 27 of the 20 x 40
    fixed, warning = box_grabcut(img, BOX, strokes=[scribble])
    assert warning is None
    assert (fixed & blue).sum() == 0  # all of the patch, not only the pixels under the stroke
    assert iou(fixed, obj) > 0.97


def test_a_foreground_scribble_restores_a_part_in_the_background_colour():
    img, obj, handle = scene("handle")
    alone, _ = box_grabcut(img, BOX)
    assert (alone & handle).sum() / handle.sum() < 0.1
    scribble = Stroke(((100, 60), (110, 60)), 3, foreground=True)  # 11% of the handle
    fixed, warning = box_grabcut(img, BOX, strokes=[scribble])
    assert warning is None
    assert (fixed & handle).sum() / handle.sum() > 0.9
    assert iou(fixed, obj | handle) > 0.95


def test_strokes_paint_discs_joined_by_lines_later_strokes_winning():
    strokes = [Stroke(((10.0, 12.0), (40.0, 30.0), (45.0, 50.0)), 4, True),
               Stroke(((30.0, 20.0),), 3, False)]
    painted = paint_strokes(np.zeros((60, 70), bool), strokes)
    # independently: the distance of every pixel centre to each polyline, in float64
    yy, xx = np.mgrid[:60, :70].astype(np.float64)

    def distance(points):
        best = np.full(yy.shape, np.inf)
        pts = points if len(points) > 1 else points * 2
        for (ax, ay), (bx, by) in pairwise(pts):
            dx, dy = bx - ax, by - ay
            t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
            best = np.minimum(best, np.hypot(xx - ax - t * dx, yy - ay - t * dy))
        return best

    d_add, d_erase = distance(strokes[0].points), distance(strokes[1].points)
    assert painted[(d_add <= 3.5) & (d_erase > 3.5)].all()
    assert not painted[d_add > 5.5].any()
    assert not painted[d_erase <= 2.5].any()  # the erase came later


def test_drawn_foreground_maps_photo_pixels_onto_a_display_copy():
    img, obj, blue = scene("distractor")  # the display copy of a photo twice its size
    photo_box = tuple(2 * v for v in BOX)
    scribble = Stroke(((230, 100), (230, 140)), 6, foreground=False)  # photo pixels
    fg = drawn_foreground(img, (240, 320), photo_box, [scribble])
    assert fg.source == "scribbles" and str(photo_box) in fg.name
    assert "1 background" in fg.name and fg.warning is None
    assert fg.mask.shape == img.shape[:2] and iou(fg.mask, obj) > 0.97
    boxed = drawn_foreground(img, (240, 320), photo_box)
    assert boxed.source == "box" and (boxed.mask & blue).sum() > 0.9 * blue.sum()
    only_scribbles = drawn_foreground(img, (240, 320), None, [scribble])
    assert only_scribbles.source == "scribbles" and "(32, 24, 288, 216)" in only_scribbles.name
    assert "centre box" in only_scribbles.name and "given" not in only_scribbles.name
    base = Foreground(obj, "file", "obj.png")
    erase = Stroke(((130, 120), (170, 120)), 10, foreground=False)  # photo px: rows 55-65
    edited = drawn_foreground(img, (240, 320), edits=[erase], base=base)
    assert edited.source == "edited" and edited.name.startswith("obj.png, edited")
    assert not edited.mask[57:63, 66:84].any() and edited.mask[40:50].any()
    assert (edited.mask & ~obj).sum() == 0 and base.mask is obj  # a copy is edited
    with pytest.raises(ValueError, match="nothing drawn"):
        drawn_foreground(img, (240, 320))


def test_outline_follows_the_mask_border_and_its_holes():
    mask = np.zeros((50, 60), bool)
    mask[10:30, 15:45] = True
    (square,) = mask_outline(mask)
    assert {tuple(p) for p in square.astype(int)} == {(15, 10), (44, 10), (44, 29), (15, 29)}
    mask[15:20, 25:30] = False
    assert len(mask_outline(mask)) == 2
    assert mask_outline(np.zeros((5, 5), bool)) == []


def test_saved_mask_is_read_back_at_the_photo_size_and_never_silently_replaced(tmp_path):
    photo = tmp_path / "cat.jpg"
    assert mask_path(photo) == tmp_path / "cat_mask.png"
    mask = np.zeros((60, 80), bool)
    mask[10:40, 20:60] = True
    out = save_mask(mask, mask_path(photo), (120, 160))  # drawn on a half-size copy
    back = load_mask(out, (120, 160))
    expected = np.zeros((120, 160), bool)
    expected[20:80, 40:120] = True
    assert iou(back, expected) > 0.97
    with pytest.raises(OutputError, match="exists"):
        save_mask(~mask, out, (120, 160))
    assert (load_mask(out, (120, 160)) == back).all()
    save_mask(~mask, out, (120, 160), overwrite=True)
    assert iou(load_mask(out, (120, 160)), ~expected) > 0.97
    assert [p.name for p in tmp_path.iterdir()] == ["cat_mask.png"]  # no temporary left


def test_a_drawn_foreground_is_scored_with_its_own_source(tiny_loaded):
    img, _obj, _blue = scene("distractor")
    a = analyze(tiny_loaded, img, "stretch")
    fg = drawn_foreground(a.image, img.shape[:2], BOX, [Stroke(((115, 60),), 4, False)])
    table = a.head_table(mask=fg)
    assert (table.meta["mask_source"], table.meta["mask"]) == ("scribbles", fg.name)
    erased = Foreground(~fg.mask, "edited", "the rest")
    again = a.head_table(mask=erased)  # a new drawing is scored anew, never from the cache
    assert again.meta["mask_source"] == "edited"
    assert not np.array_equal(again.scores["fg_score"], table.scores["fg_score"])


def test_a_second_mask_is_scored_as_if_it_were_the_first(tiny_loaded):
    """The table for another mask reuses the analysis's mask-free scores, yet equals, column
    by column, label by label, the table score_heads makes from nothing for that mask.
    Fails when the foreground part is reused too (fg scores, sink labels or feature_r of
    the first mask)."""
    from vitexplorer.core.heads import score_heads
    from vitexplorer.core.images import grid_coverage

    img, _obj, _blue = scene("distractor")
    a = analyze(tiny_loaded, img, "stretch")
    a.head_table("rollout")  # the first table: the mask-free part is kept from it
    fg = Foreground(drawn_foreground(a.image, img.shape[:2], BOX).mask, "edited", "drawn")
    table = a.head_table(mask=fg)
    fresh = score_heads(a.head_maps().numpy(), a.ranges, a.layout, a.image, a.geometry,
                        grid_coverage(fg.mask, a.geometry), a.patch_size, a.valid_tokens(),
                        a.prefix_share().numpy(), {"x": 1})
    assert list(table.scores) == list(fresh.scores)
    assert list(table.labels) == list(fresh.labels)
    for k in fresh.scores:
        np.testing.assert_array_equal(table.scores[k], fresh.scores[k], err_msg=k)
    for k in fresh.labels:
        np.testing.assert_array_equal(table.labels[k], fresh.labels[k], err_msg=k)
    assert table.meta["feature_r"] == fresh.meta["feature_r"]
    assert not np.array_equal(table.scores["fg_score"], a.head_table("rollout").scores["fg_score"])


def test_grabcut_is_shared_by_pixels_box_and_strokes_and_kept_for_a_few(monkeypatch):
    """One run per image content, box and strokes, whoever asks (another array with the
    same pixels too, two threads at once too); one changed pixel, box or stroke is a new
    run; only the newest GRABCUT_KEPT are kept. Fails when the key misses any of them
    (a stale mask) or the image is known by its identity (a run per copy)."""
    import threading
    import time

    from vitexplorer.core import masks

    runs = []
    monkeypatch.setattr(masks, "box_grabcut",  # slow enough for the threads to meet
                        lambda *a, **k: runs.append(a[1]) or time.sleep(0.1)
                        or box_grabcut(*a, **k))
    img, obj, _blue = scene("distractor")
    threads = [threading.Thread(target=masks.shared_box_grabcut, args=(img.copy(), BOX))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, warning = masks.shared_box_grabcut(img, BOX)
    assert warning is None and iou(first, obj) > 0.5 and not first.flags.writeable
    assert masks.shared_box_grabcut(img.copy(), BOX)[0] is first and len(runs) == 1
    changed = img.copy()
    changed[0, 0, 0] ^= 1
    masks.shared_box_grabcut(changed, BOX)
    masks.shared_box_grabcut(img, (24, 20, 140, 100))
    stroke = Stroke(((115, 60),), 4, False)
    scribbled, _ = masks.shared_box_grabcut(img, BOX, [stroke])
    assert len(runs) == 4 and not (scribbled == first).all()
    assert masks.shared_box_grabcut(img, BOX, (stroke,))[0] is scribbled and len(runs) == 4
    monkeypatch.setattr(masks, "GRABCUT_KEPT", 2)
    masks.shared_box_grabcut(img, (26, 20, 140, 100))  # keeps only it and the scribbled
    masks.shared_box_grabcut(img, BOX, [stroke])
    assert len(runs) == 5
    again, _ = masks.shared_box_grabcut(img, BOX)  # forgotten: run again, same mask
    assert len(runs) == 6 and again is not first and (again == first).all()
