"""Decoding at the size the work needs (JPEG draft, reduce) keeps the original geometry."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import TEST_IMAGES
from vitexplorer.core.images import (
    decode,
    display_size,
    load_image,
    map_to_image,
    preprocess,
    resize_target,
)

CFG = {"input_size": (3, 224, 224), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
       "interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center"}
#: OpenCV decodes reduced JPEGs only with IMREAD_COLOR_RGB (4.11+; pyproject allows 4.8):
#: before it Pillow decodes them all, and the tests of OpenCV's path have nothing to test
opencv_path = pytest.mark.skipif(not hasattr(cv2, "IMREAD_COLOR_RGB"),
                                 reason="OpenCV before 4.11: Pillow decodes every JPEG")
# the inverse of what exif_transpose applies for each orientation (to store the pixels)
TRANSPOSE = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
             4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
             6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_270}


def save_oriented(upright: np.ndarray, path, orientation: int, quality: int = 92) -> None:
    """Store ``upright`` so that a viewer applying the EXIF ``orientation`` shows it upright."""
    im = Image.fromarray(upright)
    if TRANSPOSE[orientation] is not None:
        im = im.transpose(TRANSPOSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, quality=quality, exif=exif.tobytes())


def photo(h: int, w: int) -> np.ndarray:
    """A photo-like test image: a real photo enlarged, with sensor-like noise."""
    base = Image.open(TEST_IMAGES / "chelsea.png").convert("RGB").resize((w, h),
                                                                         Image.BICUBIC)
    noise = np.random.default_rng(0).normal(0, 4, (h, w, 1))
    return np.clip(np.asarray(base, np.float64) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("policy", ["crop", "letterbox"])
def test_draft_gives_the_full_decode_geometry_and_nearly_its_input(tmp_path, orientation,
                                                                   policy):
    upright = photo(1209, 1617)  # neither side a multiple of 8: padded JPEG blocks
    path = tmp_path / "p.jpg"
    save_oriented(upright, path, orientation)
    need = lambda size: resize_target(size, CFG, policy)  # noqa: E731
    small = decode(path, need)
    assert small.size == (1209, 1617)
    assert max(small.pixels.shape[:2]) < 1617 // 3  # decoded at 1/4 or less
    full = preprocess(load_image(path), CFG, policy)
    reduced = preprocess(small, CFG, policy)
    assert reduced.original_geometry == full.geometry  # exactly the same placement
    diff = np.abs(reduced.model_view.astype(float) - full.model_view.astype(float))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_draft_box_follows_the_exif_orientation(tmp_path, orientation):
    # 1201 x 905 = 8k + 1 each: the 1/8 decode has 7/8 of a pixel of block padding on the
    # right and bottom of the STORED image, which the orientation moves (left, top, ...)
    h, w, y0, y1, x0, x1 = 905, 1201, 300, 700, 200, 600
    upright = np.zeros((h, w, 3), np.uint8)
    upright[y0:y1, x0:x1] = 255
    path = tmp_path / "o.jpg"
    save_oriented(upright, path, orientation, quality=98)
    d = decode(path, lambda size: (size[0] // 8, size[1] // 8))
    assert d.size == (h, w) and d.pixels.shape[:2] == (114, 151)
    grey = d.pixels.mean(2)
    ys, xs = np.mgrid[0:grey.shape[0], 0:grey.shape[1]] + 0.5
    bx0, by0, bx1, by1 = d.box
    cx = ((xs * grey).sum() / grey.sum() - bx0) * w / (bx1 - bx0)
    cy = ((ys * grey).sum() / grey.sum() - by0) * h / (by1 - by0)
    assert abs(cx - (x0 + x1) / 2) < 1.5 and abs(cy - (y0 + y1) / 2) < 1.5


def test_other_formats_are_reduced_with_the_same_geometry(tmp_path):
    upright = photo(603, 805)
    Image.fromarray(upright).save(tmp_path / "p.png")
    d = decode(tmp_path / "p.png", lambda size: resize_target(size, CFG, "crop"))
    assert d.pixels.shape[:2] == (302, 403)  # reduce(2): sides rounded up
    assert d.box == (0.0, 0.0, 805 / 2, 603 / 2)
    full = preprocess(upright, CFG, "crop")
    reduced = preprocess(d, CFG, "crop")
    assert reduced.original_geometry == full.geometry
    assert np.abs(reduced.model_view.astype(float) - full.model_view).mean() < 1.5


def test_display_copy_places_maps_where_the_original_does():
    h, w = 900, 1300
    img = photo(h, w)
    full = preprocess(img, CFG, "crop")
    shown = preprocess(img, CFG, "crop", display_side=400)
    dh, dw = display_size((h, w), 400)
    assert shown.display.shape[:2] == (dh, dw) == (277, 400)
    assert shown.original_geometry == full.geometry
    assert np.array_equal(shown.pixels, full.pixels)
    # one hot token: its footprint on the display copy, scaled back, is its footprint on
    # the original within a display pixel
    hot = np.zeros(full.geometry.grid, np.float32)
    hot[3, 9] = 1.0
    big = map_to_image(hot, full.geometry, "nearest") > 0.5
    small = map_to_image(hot, shown.geometry, "nearest") > 0.5
    (r0, r1), (c0, c1) = [(a.min(), a.max()) for a in np.nonzero(big)]
    (s0, s1), (t0, t1) = [(a.min(), a.max()) for a in np.nonzero(small)]
    sy, sx = h / dh, w / dw
    assert abs(s0 * sy - r0) <= sy and abs((s1 + 1) * sy - (r1 + 1)) <= sy
    assert abs(t0 * sx - c0) <= sx and abs((t1 + 1) * sx - (c1 + 1)) <= sx


def test_an_analysis_on_a_display_copy_exports_on_the_original(tmp_path, tiny_loaded):
    from vitexplorer.core.analysis import analyze

    path = tmp_path / "p.jpg"
    save_oriented(photo(1209, 1617), path, 6)
    shown = analyze(tiny_loaded, path, display_side=300)
    ref = analyze(tiny_loaded, path)  # decoded in full
    assert shown.image.shape[:2] == (224, 300) and ref.image.shape[:2] == (1209, 1617)
    assert shown.original == ref.geometry and shown.geometry == ref.geometry.resized((224, 300))
    assert (shown.model_input() - ref.model_input()).abs().mean() < 0.02  # ~1.5 grey levels
    full = shown.full_resolution()
    assert np.array_equal(full.image, ref.image) and full.geometry == ref.geometry
    assert np.array_equal(full.map("rollout"), shown.map("rollout"))  # no new forward
    assert ref.full_resolution() is ref


def test_an_export_decodes_only_the_pixels_its_figure_shows(tmp_path, tiny_loaded,
                                                            monkeypatch):
    from vitexplorer.core import images
    from vitexplorer.core.analysis import analyze

    path = tmp_path / "p.jpg"
    save_oriented(photo(1209, 1617), path, 6)
    shown = analyze(tiny_loaded, path, display_side=300)
    ref = analyze(tiny_loaded, path)
    decoded = []
    real_decode = images._decode_open  # every decode's, whoever imported decode by name
    monkeypatch.setattr(images, "_decode_open",
                        lambda *a, **k: decoded.append(real_decode(*a, **k)) or decoded[-1])
    assert shown.full_resolution(250) is shown  # the display copy has the pixels
    assert not decoded
    part = shown.full_resolution(700)
    assert decoded[0].pixels.shape[:2] == (605, 809)  # JPEG draft at 1/2, not in full
    assert part.image.shape[:2] == (523, 700) and part.photo_size == (1209, 1617)
    assert part.original == ref.geometry and part.geometry == ref.geometry.resized((523, 700))
    fair = cv2.resize(ref.image, (700, 523), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(part.image - fair).mean() < 1.5
    assert np.array_equal(part.map("rollout"), shown.map("rollout"))  # no new forward


def test_a_figure_from_the_pixels_it_shows_matches_one_from_the_original(tmp_path,
                                                                          tiny_loaded):
    # a portrait photo: the overlay panel's height, not the figure's width, is its long side
    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.figures import FigureOptions, overlay_figure, shown_side

    path = tmp_path / "p.jpg"
    save_oriented(photo(1617, 1209), path, 6)
    options = FigureOptions(width=2.0, dpi=150)
    shown = analyze(tiny_loaded, path, display_side=200)
    ref = analyze(tiny_loaded, path)
    side = shown_side(ref.photo_size, True, options)
    assert side == 402  # ceil(300 * 1617 / 1209): a 300 px wide figure, a 1209 x 1617 photo

    def pixels(analysis):
        fig = overlay_figure(analysis, "rollout", options=options)
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(float)

    # mean difference: 1.6 grey levels (the draft decode's resampling), 0.3 from a full
    # decode; 8 from the 300 px a width-only bound would decode
    made, want = pixels(shown.full_resolution(side)), pixels(ref)
    assert made.shape == want.shape and np.abs(made - want).mean() < 3.0
    assert shown_side(ref.photo_size, False, options) <= 320  # grid cells


def test_a_large_reduction_after_the_decode_stays_close(tmp_path):
    # decoded at 1/2 for an 800 px display copy, then shrunk 8x to a 64 px model input:
    # Pillow box-reduces first (reducing_gap), which must not move or blur the input
    cfg = {**CFG, "input_size": (3, 64, 64)}
    path = tmp_path / "p.jpg"
    save_oriented(photo(1209, 1617), path, 1)

    def need(size):
        m, d = resize_target(size, cfg), display_size(size, 800)
        return max(m[0], d[0]), max(m[1], d[1])

    small = decode(path, need)
    assert small.pixels.shape[:2] == (605, 809)
    reduced = preprocess(small, cfg, "crop", display_side=800)
    full = preprocess(load_image(path), cfg, "crop")
    assert reduced.original_geometry == full.geometry
    assert reduced.display.shape[:2] == (598, 800)
    diff = np.abs(reduced.model_view.astype(float) - full.model_view.astype(float))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 8


@pytest.mark.parametrize("orientation", [1, 6, 3])
def test_display_copy_from_a_reduced_decode_matches_the_full_one(tmp_path, orientation):
    # 905 x 1201 (8k + 1): the 1/2 decode holds half a pixel of block padding, which the
    # orientation moves to the left or top; the copy must be read from the exact box
    h, w, y0, y1, x0, x1 = 905, 1201, 300, 700, 200, 600
    upright = np.zeros((h, w, 3), np.uint8)
    upright[y0:y1, x0:x1] = 255
    path = tmp_path / "o.jpg"
    save_oriented(upright, path, orientation, quality=98)
    small = decode(path, lambda size: display_size(size, 500))
    assert small.pixels.shape[0] * 2 in (h + 1, w + 1) and not small.is_full  # 1/2, padded
    shown = preprocess(small, CFG, "crop", display_side=500).display
    ref = preprocess(load_image(path), CFG, "crop", display_side=500).display  # 2.4x: area
    assert shown.shape == ref.shape == (377, 500, 3)
    assert np.abs(shown.astype(float) - ref).mean() < 1.0
    # the square's centre (display pixels): within a fifth of a pixel of where it lies
    white = shown.mean(2)
    ys, xs = np.mgrid[0:white.shape[0], 0:white.shape[1]] + 0.5
    cx, cy = (xs * white).sum() / white.sum(), (ys * white).sum() / white.sum()
    assert abs(cx - (x0 + x1) / 2 * 500 / w) < 0.2 and abs(cy - (y0 + y1) / 2 * 377 / h) < 0.2


@opencv_path
@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_opencv_reduced_decode_gives_pillows_pixels(tmp_path, monkeypatch, orientation, grey,
                                                    factor):
    # a reduced JPEG decode goes straight into an array by OpenCV; Pillow's draft decode of
    # the same file (the fallback) must give the very same pixels, turned the same way
    from vitexplorer.core import images

    upright = photo(905, 1201)  # 8k + 1: padded blocks, moved by the orientation
    path = tmp_path / "o.jpg"
    save_oriented(upright[..., 0] if grey else upright, path, orientation)
    need = lambda size: (size[0] // factor, size[1] // factor)  # noqa: E731
    calls = []
    real = images._reduced_jpeg
    monkeypatch.setattr(images, "_reduced_jpeg",
                        lambda *a: calls.append(real(*a)) or calls[-1])
    fast = decode(path, need)
    assert calls and calls[0] is not None  # OpenCV decoded it
    monkeypatch.setattr(images, "_reduced_jpeg", lambda *a: None)
    ref = decode(path, need)
    assert fast.size == ref.size and fast.box == ref.box
    assert fast.pixels.shape == ref.pixels.shape and fast.pixels.flags.c_contiguous
    assert np.array_equal(fast.pixels, ref.pixels)


def test_a_truncated_jpeg_still_names_its_fault_on_a_reduced_decode(tmp_path):
    from vitexplorer.core.errors import ImageError

    path = tmp_path / "cut.jpg"
    save_oriented(photo(905, 1201), path, 6)
    path.write_bytes(path.read_bytes()[:20_000])
    with pytest.raises(ImageError, match="truncated"):
        decode(path, lambda size: (size[0] // 4, size[1] // 4))


def exif_orientation(tiff_type: int, count: int, value: bytes) -> bytes:
    """An EXIF block whose only tag is an orientation of any TIFF type (little-endian)."""
    head = struct.pack("<HHI", 0x0112, tiff_type, count)
    if len(value) > 4:  # stored after the IFD (8 + 2 + 12 + 4 bytes in), by its offset
        return (b"Exif\0\0II*\0" + struct.pack("<IH", 8, 1) + head + struct.pack("<II", 26, 0)
                + value)
    entry = head + value.ljust(4, b"\0")
    return b"Exif\0\0II*\0" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


@pytest.mark.parametrize("tiff_type, count, value", [
    (2, 2, b"6\0"), (2, 4, b"abc\0"), (7, 1, b"\x06"), (5, 1, struct.pack("<II", 6, 0))],
    ids=["text-6", "text-abc", "undefined-byte", "rational-6-over-0"])
def test_an_orientation_exif_transpose_ignores_leaves_the_image_as_stored(
        tmp_path, monkeypatch, tiff_type, count, value):
    # Pillow shows these as stored; the reduced decode (OpenCV's turn, the box) must agree,
    # and none of them is a reason to refuse the image
    from vitexplorer.core import images

    path = tmp_path / "o.jpg"
    Image.fromarray(photo(61, 97)).save(path, quality=92,
                                        exif=exif_orientation(tiff_type, count, value))
    assert decode(path).pixels.shape[:2] == (61, 97)
    need = lambda size: (size[0] // 2, size[1] // 2)  # noqa: E731
    fast = decode(path, need)
    monkeypatch.setattr(images, "_reduced_jpeg", lambda *a: None)
    ref = decode(path, need)
    assert fast.size == ref.size == (61, 97) and fast.box == ref.box
    assert np.array_equal(fast.pixels, ref.pixels)


@opencv_path
@pytest.mark.parametrize("save", [{}, {"restart_marker_blocks": 4}, {"progressive": True}],
                         ids=["baseline", "restarts", "progressive"])
def test_corrupt_scan_data_fails_on_a_reduced_decode_as_on_a_full_one(tmp_path, monkeypatch,
                                                                       save):
    # OpenCV stops reading a single-scan JPEG at its last row: a marker libjpeg rejects after
    # it went unseen, and the reduced decode returned pixels where Pillow names the fault
    from vitexplorer.core import images
    from vitexplorer.core.errors import ImageError

    path = tmp_path / "c.jpg"
    Image.fromarray(photo(203, 301)).save(path, quality=90, **save)
    need = lambda size: (size[0] // 2, size[1] // 2)  # noqa: E731
    calls = []
    real = images._reduced_jpeg
    monkeypatch.setattr(images, "_reduced_jpeg", lambda *a: calls.append(real(*a)) or calls[-1])
    decode(path, need)
    assert calls[-1] is not None  # intact: OpenCV decodes it
    data = path.read_bytes()  # the last scan's last bytes: "Unsupported marker type 0x7c"
    path.write_bytes(data[:-6] + b"\xff\x7c" + data[-4:])
    with pytest.raises(ImageError, match="broken data stream") as full:
        decode(path)
    with pytest.raises(ImageError) as reduced:
        decode(path, need)
    assert str(reduced.value) == str(full.value)


def test_a_jpeg_with_a_large_tail_is_not_read_whole_for_a_reduced_decode(tmp_path,
                                                                         monkeypatch):
    # OpenCV decodes from the whole file in memory; megabytes after the EOI (a video, junk)
    # are Pillow's to skip: it reads up to the EOI
    from vitexplorer.core import images

    path = tmp_path / "tail.jpg"
    Image.fromarray(photo(61, 97)).save(path, quality=90)
    path.write_bytes(path.read_bytes() + bytes(2**20 + 8 * 61 * 97))
    need = lambda size: (size[0] // 2, size[1] // 2)  # noqa: E731
    calls = []
    real = images._reduced_jpeg
    monkeypatch.setattr(images, "_reduced_jpeg", lambda *a: calls.append(real(*a)) or calls[-1])
    got = decode(path, need)
    assert calls == [None]
    monkeypatch.setattr(images, "_reduced_jpeg", lambda *a: None)
    assert np.array_equal(got.pixels, decode(path, need).pixels)


def test_an_arithmetic_coded_jpeg_is_refused_alike_at_every_size(monkeypatch):
    # libjpeg cannot suspend its arithmetic decoder and Pillow feeds it by 64 KB blocks:
    # Pillow fails on this 80 KB file (tests/data/README.md) where OpenCV, given the whole
    # file, decodes it: a reduced decode showed a photo the full decode refused
    from vitexplorer.core import images
    from vitexplorer.core.errors import ImageError

    path = TEST_IMAGES / "arithmetic.jpg"
    calls = []
    real = images._reduced_jpeg
    monkeypatch.setattr(images, "_reduced_jpeg", lambda *a: calls.append(real(*a)) or calls[-1])
    with pytest.raises(ImageError, match="arithmetic-coded") as full:
        decode(path)
    with pytest.raises(ImageError) as reduced:
        decode(path, lambda size: (size[0] // 2, size[1] // 2))
    assert calls == [None] and str(reduced.value) == str(full.value)


def test_an_opencv_without_rgb_decoding_leaves_the_decode_to_pillow(tmp_path, monkeypatch):
    # OpenCV before 4.11 has no IMREAD_COLOR_RGB: given the bit anyway, 4.10 decodes grey
    upright = photo(905, 1201)
    path = tmp_path / "o.jpg"
    save_oriented(upright, path, 1)
    need = lambda size: (size[0] // 2, size[1] // 2)  # noqa: E731
    fast = decode(path, need)
    monkeypatch.delattr(cv2, "IMREAD_COLOR_RGB", raising=False)
    calls = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(1))
    old = decode(path, need)
    assert not calls and np.array_equal(old.pixels, fast.pixels)


@opencv_path
def test_a_reduced_decode_reads_the_file_pillow_opened(tmp_path, monkeypatch):
    # a file put in the path's place after Pillow opened it (a sync tool, an editor's
    # save) must not be decoded under the first one's header and geometry
    from vitexplorer.core import images

    path, other = tmp_path / "p.jpg", tmp_path / "other.jpg"
    Image.fromarray(photo(240, 320)).save(path, quality=90)
    Image.fromarray(255 - photo(240, 320)).save(other, quality=90)
    need = lambda size: (size[0] // 4, size[1] // 4)  # noqa: E731
    expected = decode(path, need).pixels
    real = images.check_size

    def swapped(source, size):  # runs inside opened_image, once Pillow holds the file
        other.replace(path)
        real(source, size)

    calls = []
    monkeypatch.setattr(images, "check_size", swapped)
    real_reduced = images._reduced_jpeg
    monkeypatch.setattr(images, "_reduced_jpeg",
                        lambda *a: calls.append(real_reduced(*a)) or calls[-1])
    got = decode(path, need).pixels
    assert calls and calls[0] is not None  # OpenCV's path decoded it
    assert np.array_equal(got, expected)


def test_a_pasted_image_exports_from_its_own_pixels(tiny_loaded):
    """An array (the GUI's pasted image) larger than its display copy has no file to be
    decoded again from: a figure that needed more than the copy failed with 'Cannot open
    image 'clipboard': No such file or directory'."""
    from vitexplorer.core.analysis import analyze

    rgb = photo(1440, 2560)
    shown = analyze(tiny_loaded, rgb, source="clipboard", display_side=1600)
    assert shown.image.shape[:2] == (900, 1600)
    part = shown.full_resolution(2100)
    assert part.image.shape[:2] == (1181, 2100) and part.photo_size == (1440, 2560)
    fair = cv2.resize(rgb, (2100, 1181), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(part.image - fair).mean() < 0.5
    full = shown.full_resolution()
    assert full.original is None and np.array_equal(full.image, rgb)
    assert np.array_equal(full.map("rollout"), shown.map("rollout"))
