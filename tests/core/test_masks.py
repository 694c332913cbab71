"""Foreground from the user: GrabCut in a box, the model-free centre box, clear fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TEST_IMAGES
from vitexplorer.core.analysis import analyze
from vitexplorer.core.images import load_image
from vitexplorer.core.masks import MASK_NAMES, box_grabcut, centre_box, parse_box


def disc_image(size=(120, 160), seed=0):
    """A red disc on green noise: the disc is the object GrabCut should find."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 60) ** 2 + (xx - 70) ** 2 <= 30 ** 2
    img = np.clip(rng.normal([40, 150, 50], 20, (h, w, 3)), 0, 255)
    img[disc] = np.clip(rng.normal([200, 40, 40], 10, (int(disc.sum()), 3)), 0, 255)
    return img.astype(np.uint8), disc


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_grabcut_in_a_box_finds_the_object():
    img, disc = disc_image()
    mask, warning = box_grabcut(img, (25, 15, 115, 105))
    assert warning is None
    assert iou(mask, disc) > 0.85
    assert iou(np.pad(np.ones((90, 90), bool), ((15, 15), (25, 45))), disc) < 0.6  # the box


def test_failed_grabcut_falls_back_to_the_box_with_a_warning():
    flat = np.full((80, 80, 3), 128, np.uint8)  # one colour: no object to cut out
    mask, warning = box_grabcut(flat, (10, 20, 50, 60))
    assert warning is not None and "box" in warning
    assert mask.sum() == 40 * 40 and mask[20:60, 10:50].all()  # never an empty mask
    with pytest.raises(ValueError, match="does not overlap"):
        box_grabcut(flat, (100, 100, 200, 200))


def test_parse_box_and_centre_box():
    assert parse_box("1,2,30.4,40") == (1, 2, 30, 40)
    for bad in ("1,2,3", "a,b,c,d", "5,5,4,9", "0,0,inf,3"):
        with pytest.raises(ValueError, match="box"):
            parse_box(bad)
    assert centre_box((100, 200)) == (20, 10, 180, 90)


def test_tables_record_their_mask_source(tiny_loaded):
    img, disc = disc_image()
    a = analyze(tiny_loaded, img, "stretch")
    rollout = a.head_table("rollout")
    assert rollout.meta["mask"] == MASK_NAMES["rollout"]
    assert rollout.meta["mask"].startswith("agreement with the model's rollout")
    centre = a.head_table()  # the model-free default
    assert centre.meta["mask_source"] == "centre" and "mask_warning" not in centre.meta
    boxed = a.head_table(box=(25, 15, 115, 105))
    assert boxed.meta["mask_source"] == "box" and "(25, 15, 115, 105)" in boxed.meta["mask"]
    assert iou(a.foreground(box=(25, 15, 115, 105)).mask, disc) > 0.85
    given = a.head_table(mask=disc, mask_name="disc.png")
    assert (given.meta["mask_source"], given.meta["mask"]) == ("file", "disc.png")
    assert "mask" in given.to_csv().splitlines()[0].split(",")
    flat = analyze(tiny_loaded, np.full((64, 64, 3), 90, np.uint8), "stretch")
    failed = flat.head_table()
    assert "GrabCut" in failed.meta["mask_warning"]
    x0, y0, x1, y1 = centre_box((64, 64))  # the fallback: the centre box itself
    assert flat.foreground().mask.sum() == (x1 - x0) * (y1 - y0)


def test_an_analysis_takes_a_box_in_the_photos_pixels(tiny_loaded):
    # an analysis of a half-size display copy: the box is given, checked and named in the
    # photo's pixels, and GrabCut runs on the copy inside the halved box
    from vitexplorer.core.errors import UsageError

    photo = load_image(TEST_IMAGES / "coins.png")  # 384 x 303
    a = analyze(tiny_loaded, photo, "stretch")
    small = analyze(tiny_loaded, photo, "stretch", display_side=192)
    assert small.image.shape[:2] == (152, 192) and small.photo_size == (303, 384)
    fg = small.foreground(box=(40, 30, 200, 160))
    assert fg.name.endswith("(40, 30, 200, 160)") and fg.source == "box"
    m = fg.mask
    assert m.shape == (152, 192) and m.any()
    assert not m[:14].any() and not m[81:].any() and not m[:, :19].any() and not m[:, 101:].any()
    assert a.foreground(box=(40, 30, 200, 160)).mask.shape == (303, 384)
    with pytest.raises(UsageError, match=r"\(500, 0, 600, 100\) does not overlap the 384x303"):
        small.foreground(box=(500, 0, 600, 100))


@pytest.mark.parametrize("kind", ["dangling link", "link loop", "folder"])
def test_a_broken_mask_is_named_not_skipped(tmp_path, kind):
    """find_mask_file passed over a mask that is there but no file, and the head table
    silently took the centre GrabCut in its place."""
    import os
    import shutil

    from vitexplorer.core.errors import ImageError
    from vitexplorer.core.masks import find_mask_file, load_mask

    photo = tmp_path / "photo.png"
    shutil.copy(TEST_IMAGES / "coins.png", photo)
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = masks / "photo.png"
    if kind == "dangling link":
        os.symlink(masks / "gone.png", mask)
    elif kind == "link loop":
        os.symlink(masks / "other.png", mask)
        os.symlink(mask, masks / "other.png")
    else:
        mask.mkdir()
    assert find_mask_file(photo, masks) == mask
    reason = "it is a folder" if kind == "folder" else "a broken symbolic link"
    with pytest.raises(ImageError, match=f"photo.png': {reason}"):
        load_mask(mask, (10, 10))
