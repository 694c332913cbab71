"""Decoding every awkward kind of file, and placing maps back on the original pixels."""

from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest
import timm
from PIL import Image

from tests.conftest import small_model
from vitexplorer.core.errors import ImageError
from vitexplorer.core.images import load_image, map_to_image, preprocess

CFG = {"input_size": (3, 224, 224), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
       "interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center"}


def gradient_rgb(h=60, w=80):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)],
                    -1).astype(np.uint8)


def test_modes_convert_to_rgb(tmp_path):
    rgb = gradient_rgb()
    grey = rgb[:, :, 0]
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    out = load_image(tmp_path / "l.png")
    assert out.shape == (60, 80, 3)
    assert (out[:, :, 0] == grey).all() and (out[:, :, 2] == grey).all()

    la = Image.fromarray(np.stack([grey, np.full_like(grey, 255)], -1), "LA")
    la.save(tmp_path / "la.png")
    assert (load_image(tmp_path / "la.png")[:, :, 1] == grey).all()

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    out = load_image(tmp_path / "cmyk.jpg")
    assert np.abs(out.astype(int) - rgb).mean() < 6

    Image.fromarray(rgb).save(tmp_path / "rgb.webp", lossless=True)
    assert (load_image(tmp_path / "rgb.webp") == rgb).all()


def test_rgba_and_palette_transparency_composite_on_background(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:5, :, 3] = 255  # top opaque red, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", background=(0, 0, 255))
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[9, 9]) == (0, 0, 255)
    pal = Image.fromarray(rgba, "RGBA").convert("P")
    pal.info["transparency"] = pal.getpixel((9, 9))
    pal.save(tmp_path / "p.png", transparency=pal.getpixel((9, 9)))
    out = load_image(tmp_path / "p.png", background=(0, 255, 0))
    assert tuple(out[9, 9]) == (0, 255, 0)
    assert out[0, 0, 0] > 150


def test_sixteen_bit_grey_and_rgb(tmp_path):
    v = np.linspace(0, 65535, 50).astype(np.uint16)[None].repeat(4, 0)
    cv2.imwrite(str(tmp_path / "g16.png"), v)
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = load_image(tmp_path / "g16.png")
    np.testing.assert_allclose(out[0, :, 0], np.round(v[0] / 65535 * 255), atol=1)
    rgb16 = (gradient_rgb().astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[:, :, ::-1])
    out = load_image(tmp_path / "c16.png")
    np.testing.assert_allclose(out.astype(int), gradient_rgb().astype(int), atol=1)


def test_float_tiff_with_nan_and_inf_is_stretched_over_its_finite_values(tmp_path):
    import warnings

    v = np.linspace(-2.0, 6.0, 40, dtype=np.float32)[None].repeat(6, 0)
    v[0, :5], v[1, :5], v[2, :5] = np.nan, np.inf, -np.inf
    Image.fromarray(v, "F").save(tmp_path / "f.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in cast"
        out = load_image(tmp_path / "f.tif")[:, :, 0].astype(int)
    want = np.round((v[3] + 2.0) / 8.0 * 255)
    np.testing.assert_allclose(out[3], want, atol=1)
    assert (out[0, :5] == 0).all() and (out[1, :5] == 255).all() and (out[2, :5] == 0).all()
    Image.fromarray(np.full((6, 40), np.nan, np.float32), "F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageError, match=r"nan\.tif.*without one finite"):
        load_image(tmp_path / "nan.tif")


def test_exif_rotation_applied(tmp_path):
    rgb = np.zeros((40, 100, 3), np.uint8)
    rgb[:10, :10] = 255  # white block top-left of the stored pixels
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape[:2] == (100, 40)
    assert out[:10, -10:].mean() > 200  # top-left moved to top-right


def test_animated_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "a.gif")[0, 0, 0] > 200


@pytest.mark.parametrize("case", ["empty", "truncated", "text", "folder", "missing"])
def test_bad_files_raise_one_error_type_naming_the_file(tmp_path, case):
    path = tmp_path / f"bad {case}.jpg"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        Image.fromarray(gradient_rgb(200, 200)).save(path, quality=90)
        path.write_bytes(path.read_bytes()[:600])
    elif case == "text":
        path.write_text("this is not an image")
    elif case == "folder":
        path.mkdir()
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value) and info.value.reason


def test_decompression_bomb_is_a_clear_error(tmp_path, monkeypatch):
    Image.fromarray(gradient_rgb(100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="too large"):
        load_image(tmp_path / "big.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    p = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(p)
    p.chmod(0)
    with pytest.raises(ImageError, match="ermission"):
        load_image(p)


def test_unicode_path(tmp_path, images_dir):
    p = tmp_path / "chat été 猫 🐱.png"
    shutil.copy(images_dir / "chelsea.png", p)
    assert load_image(p).shape == (300, 451, 3)


def test_crop_policy_matches_timm_eval_transform():
    img = gradient_rgb(300, 451)
    pre = preprocess(img, CFG, "crop")
    transform = timm.data.create_transform(**CFG, is_training=False)
    ref = transform(Image.fromarray(img)).numpy()
    np.testing.assert_allclose(pre.pixels, ref, atol=1e-6)


@pytest.mark.parametrize("policy", ["crop", "stretch", "letterbox", "native"])
@pytest.mark.parametrize("shape", [(300, 451), (451, 300), (97, 300)])
def test_planted_square_comes_back_within_one_patch(policy, shape):
    h, w = shape
    img = np.zeros((h, w, 3), np.uint8)
    cy, cx = h // 2 + h // 8, w // 2 - w // 9  # inside the centre crop for every shape
    s = max(8, min(h, w) // 10)
    img[cy - s // 2: cy + s // 2, cx - s // 2: cx + s // 2] = 255
    pre = preprocess(img, CFG, policy, (16, 16), pad_value=(0, 0, 0))
    gh, gw = pre.geometry.grid
    assert pre.pixels.shape[1:] == (gh * 16, gw * 16)
    # the brightest patch of the model input, mapped back to original pixels
    bright = (pre.pixels.mean(0) - pre.pixels.min()).reshape(gh, 16, gw, 16).mean((1, 3))
    full = map_to_image(bright, pre.geometry, "nearest")
    yy, xx = np.unravel_index(np.argmax(full), full.shape)
    patch_px = 16 * max(h / pre.geometry.input_size[0], w / pre.geometry.input_size[1]) \
        if policy != "crop" else 16 * (pre.geometry.box[2] - pre.geometry.box[0]) / 224
    assert abs(yy - cy) <= patch_px and abs(xx - cx) <= patch_px
    # and the weighted centre of mass lands on the square even more precisely
    smooth = map_to_image(bright, pre.geometry, "bilinear")
    smooth = np.clip(smooth - smooth.max() * 0.5, 0, None)
    ys, xs = np.mgrid[0:h, 0:w]
    assert abs((ys * smooth).sum() / smooth.sum() - cy) <= patch_px
    assert abs((xs * smooth).sum() / smooth.sum() - cx) <= patch_px


def test_native_policy_runs_on_dynamic_model():
    import torch

    from vitexplorer.core.capture import capture

    model = small_model("vit_small_patch16_224", depth=2, dynamic_img_size=True)
    pre = preprocess(gradient_rgb(150, 400), CFG, "native", (16, 16))
    assert pre.geometry.grid[1] > pre.geometry.grid[0]
    cap = capture(model, torch.from_numpy(pre.pixels))
    assert cap.layout.grid == pre.geometry.grid


def test_image_to_grid_inverts_the_geometry():
    pre = preprocess(gradient_rgb(300, 451), CFG, "crop")
    g = pre.geometry
    x0, y0, x1, y1 = g.box
    assert g.image_to_grid(x0 + 1, y0 + 1) == (0, 0)
    assert g.image_to_grid(x1 - 1, y1 - 1) == (13, 13)
    assert g.image_to_grid(x0 - 5, y0 + 1) is None
    half = g.scaled(0.5)
    assert half.image_size == (150, 226)
    assert half.image_to_grid((x1 - 4) / 2, (y1 - 4) / 2) == (13, 13)


def test_a_wholly_covered_token_has_coverage_one():
    """Token edges fall between pixels (400 / 14 px): a token inside the mask is still 1."""
    from vitexplorer.core.images import Geometry, grid_coverage

    geom = Geometry((328, 400), (224, 224), (14, 14), (0.0, 0.0, 400.0, 328.0))
    mask = np.zeros((328, 400), bool)
    mask[:164, :200] = True
    cover = grid_coverage(mask, geom)
    assert cover[:6, :6].min() == 1.0 and cover[8:, 8:].max() == 0.0
    assert np.allclose(grid_coverage(np.ones((328, 400)), geom), 1.0)
