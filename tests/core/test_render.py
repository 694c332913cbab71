"""Overlay compositing, display scaling, and the Analysis record."""

from __future__ import annotations

import io

import numpy as np
import pytest

from vitexplorer.core.analysis import analyze
from vitexplorer.core.capture import capture
from vitexplorer.core.images import Geometry, map_to_image
from vitexplorer.core.render import (
    COLORMAPS,
    colormap_lut,
    display_range,
    overlay,
)

GEOM = Geometry(image_size=(40, 60), input_size=(32, 48), grid=(2, 3), box=(0, 0, 60, 40))


def test_overlay_opacity_extremes_and_colormap():
    img = np.full((40, 60, 3), 100, np.uint8)
    grid = np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])
    assert (overlay(img, grid, GEOM, opacity=0.0) == img).all()
    full = overlay(img, grid, GEOM, cmap="gray", opacity=1.0, upsample="nearest")
    assert (full[5, 5] == 0).all() and (full[5, 55] == 255).all()
    for name in COLORMAPS:
        assert colormap_lut(name).shape == (256, 3)
    with pytest.raises(ValueError):
        colormap_lut("nope")


def test_overlay_leaves_cropped_out_pixels_alone():
    geom = Geometry((40, 60), (32, 32), (2, 2), box=(20, 0, 60, 40))
    img = np.full((40, 60, 3), 77, np.uint8)
    out = overlay(img, np.ones((2, 2)) / 4, geom, opacity=1.0)
    assert (out[:, :19] == 77).all() and (out[:, 25:] != 77).any()


def test_contour_outlines_the_union_of_the_mass_region():
    """60% of this map's mass needs two patches ((0, 0) and (0, 1): image rows 0-19, columns
    0-39): one outline around both, in the contour colour, nothing inside or elsewhere."""
    img = np.zeros((40, 60, 3), np.uint8)
    grid = np.array([[0.5, 0.3, 0.2], [0.0, 0.0, 0.0]])
    out = overlay(img, grid, GEOM, opacity=0.0, contour=0.6, contour_color=(0, 255, 255))
    drawn = out.any(-1)
    for r, c in ((10, 0), (10, 39), (0, 30), (19, 30), (0, 10), (19, 10)):
        assert drawn[r, c], (r, c)
    assert not drawn[3:17, 3:37].any()  # no line between the two patches
    assert not drawn[22:].any() and not drawn[:, 42:].any()
    assert (out[drawn][:, 0] == 0).all() and (out[drawn][:, 1] == out[drawn][:, 2]).all()


def test_percentile_range_ignores_one_outlier():
    v = np.r_[np.linspace(0, 1, 999), 1000.0]
    assert display_range(v, "percentile")[1] < 2 < display_range(v, "minmax")[1]


def test_percentile_value_and_a_shared_range():
    v = np.arange(101, dtype=float)  # the q-th percentile of 0..100 is q
    assert display_range(v, "percentile", 90.0) == (10.0, 90.0)
    with pytest.raises(ValueError, match="percentile"):
        display_range(v, "percentile", 40.0)
    img = np.zeros((40, 60, 3), np.uint8)
    grid = np.array([[0.5, 0.25, 0.25], [0.0, 0.0, 0.0]])
    own = overlay(img, grid, GEOM, "gray", 1.0)
    shared = overlay(img, grid, GEOM, "gray", 1.0, vrange=(0.0, 1.0))
    # the hottest patch is white on its own scale, mid-grey on a scale up to 1.0
    assert own.max() == 255 and 120 <= shared.max() <= 135


def test_analysis_maps_and_patch_query(tiny_loaded, images_dir):
    a = analyze(tiny_loaded, images_dir / "chelsea.png")
    assert a.image.shape == (300, 451, 3)
    assert a.num_layers == 3 and a.num_heads == 3
    for method in ("head", "head-rollout", "rollout"):
        m = a.map(method, 1, 2)
        assert m.shape == (4, 4) and abs(m.sum() - 1) < 1e-5
    assert np.allclose(a.map("head", 1, 2), a.head_maps()[1, 2].numpy())
    with pytest.raises(KeyError):
        a.map("relevance")
    t = a.ensure_gradients()
    assert t == a.top_k(1)[0][0]
    assert abs(a.map("relevance").sum() - 1) < 1e-5
    row, col = a.patch_query(1, 0, 2, 3)
    att = capture(tiny_loaded.model, a.model_input()).attentions[0, 1, 0]
    p = 1 + 2 * 4 + 3
    np.testing.assert_allclose(row.ravel(), (att[p, 1:] / att[p, 1:].sum()).numpy(), rtol=1e-5)
    np.testing.assert_allclose(col.ravel(), (att[1:, p] / att[1:, p].sum()).numpy(), rtol=1e-5)
    top = a.top_k(5)
    assert len(top) == 5 and top[0][2] >= top[-1][2] and isinstance(top[0][1], str)


def test_atomic_writes_get_normal_permissions_and_leave_no_temporaries(tmp_path):
    import os

    from vitexplorer.core.files import write_atomic

    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("fmt,tol", [("png", 0), ("jpg", 4), ("webp", 4)])
def test_encoded_overlays_decode_to_the_same_rgb(fmt, tol):
    """PNG lossless, JPEG and WebP close on average; a swapped channel order is off by ~100."""
    from PIL import Image

    from vitexplorer.core.render import encode

    rgb = np.zeros((48, 64, 3), np.uint8)  # red, green, blue bands and a ramp
    rgb[:16, :, 0] = 220
    rgb[16:32, :, 1] = 200
    rgb[32:, :, 2] = 180
    rgb[:, :, 1] += np.arange(64, dtype=np.uint8)[None, :] // 2
    back = np.asarray(Image.open(io.BytesIO(encode(rgb[:, ::-1], fmt))).convert("RGB"))
    assert back.shape == rgb.shape
    err = np.abs(back.astype(int) - rgb[:, ::-1])
    assert (err.max() if fmt == "png" else err.mean()) <= tol


def test_a_png_that_cannot_be_encoded_is_an_error_not_an_empty_file():
    from vitexplorer.core.render import encode

    with pytest.raises(OSError, match="PNG encoding failed"):
        encode(np.zeros((0, 4, 3), np.uint8), "png")  # fpng returns b"" for it


@pytest.mark.parametrize("box", [(37.3, 0.0, 122.7, 90.0), (-10.5, -20.25, 170.5, 110.25)])
def test_overlay_is_the_blend_of_the_bilinear_map_on_the_view(box):
    """Against an independent placement: each pixel centre mapped to grid coordinates,
    bilinear (scipy, edges clamped), 0 outside the box, colour from the LUT, blended."""
    from scipy.ndimage import map_coordinates

    geom = Geometry((90, 160), (224, 224), (5, 4), box)
    rng = np.random.default_rng(3)
    grid, img = rng.random((5, 4)), rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[0:90, 0:160] + 0.5
    gy, gx = (ys - y0) / (y1 - y0) * 5 - 0.5, (xs - x0) / (x1 - x0) * 4 - 0.5
    unit = (grid - grid.min()) / (grid.max() - grid.min())
    values = map_coordinates(unit, [gy, gx], order=1, mode="nearest")
    inside = (ys >= y0) & (ys <= y1) & (xs >= x0) & (xs <= x1)
    placed = map_to_image(unit, geom)
    assert np.abs(placed - np.where(inside, values, 0.0)).max() < 1e-3
    colour = colormap_lut("viridis")[np.rint(values * 255).astype(int)]
    want = np.where(inside[..., None], 0.4 * img + 0.6 * colour, img)
    got = overlay(img, grid, geom, "viridis", 0.6)
    assert np.abs(got.astype(float) - want).max() <= 2.0
