"""Outline and texture maps on natural textures at their real contrast (issue 12).

Composites from ``validation/composites.py`` over the test images (tests/data); the full
report over every texture of shared/images is ``python -m validation.image_features``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TEST_IMAGES
from validation.composites import Composite, composite, silhouette, texture_sources
from validation.image_features import composite_aucs
from vitexplorer.core import features
from vitexplorer.core.features import outline_strength


def test_outline_strength_against_a_float64_loop():
    rng = np.random.default_rng(0)
    grey = rng.normal(128, 30, (40, 48)).astype(np.float32)
    grey[:, 24:] += 60
    b = outline_strength(grey)
    g = grey.astype(np.float64)
    y, x = 20, 23

    def blur(img, s):  # scipy's Gaussian, float64, borders mirrored as OpenCV's default
        from scipy.ndimage import gaussian_filter

        return gaussian_filter(img, s, mode="mirror", truncate=4.0)

    expected = np.inf
    for s in features.SIGMAS:
        sm = blur(g, s)
        gx = (sm[y, x + 1] - sm[y, x - 1]) / 2
        gy = (sm[y + 1, x] - sm[y - 1, x]) / 2
        mean, sq = blur(g, 2 * s)[y, x], blur(g * g, 2 * s)[y, x]
        sd = np.sqrt(max(sq - mean * mean, 0.0))
        expected = min(expected, s * np.hypot(gx, gy) / (sd + features.OUTLINE_EPS))
    assert b[y, x] == pytest.approx(expected, rel=1e-3)
    # a step is an outline at every contrast; the same grey levels shuffled are not
    assert b[:, 23].mean() > features.OUTLINE_THRESHOLD
    shuffled = rng.permutation(grey.ravel()).reshape(grey.shape)
    assert outline_strength(shuffled).max() < features.OUTLINE_THRESHOLD


CASES = [(t, s, c, bright, mirrored)
         for t in ("grass", "gravel", "brick", "chelsea-crop")
         for s in ("horse", "ellipse", "star")
         for c, bright, mirrored in ((1.0, True, False), (0.4, False, True))]


@pytest.fixture(scope="module")
def textures():
    return texture_sources(TEST_IMAGES)


@pytest.mark.parametrize("size", [224, 384])
def test_outline_and_texture_maps_separate_at_any_contrast(textures, size):
    worst = []
    for tex, sil, c, bright, mirrored in CASES:
        mask = silhouette(sil, TEST_IMAGES)
        img = composite(textures[tex], mask, c, bright, mirrored)
        comp = Composite(tex, img, mask[:, ::-1] if mirrored else mask)
        outline_auc, texture_auc = composite_aucs(comp, size)
        worst.append((min(outline_auc, texture_auc), tex, sil, c))
    assert min(worst)[0] >= 0.9, min(worst)


@pytest.mark.parametrize("tex", ["grass", "gravel", "brick"])
def test_a_small_image_is_measured_at_its_own_resolution(textures, tex):
    """A 128 px crop of a texture with an ellipse on it (the trained-model validation's
    images): enlarged to WORK_SIDE, its grain would reach the outline scales (AUC ~0.5)."""
    import cv2

    mask = np.zeros((128, 128), np.uint8)
    cv2.ellipse(mask, (60, 70), (34, 26), 30.0, 0, 360, 1, -1)
    img = composite(textures[tex][100:228, 200:328], mask > 0, 1.0, brighter=True)
    outline_auc, texture_auc = composite_aucs(Composite(tex, img, mask > 0), 128)
    assert min(outline_auc, texture_auc) >= 0.9, (outline_auc, texture_auc)


@pytest.mark.parametrize("shape", [(1, 1), (3, 40), (5, 5)])
def test_a_tiny_image_has_features_not_an_error(tiny_loaded, shape):
    """A 1 x 1 icon or a 3 px strip (both pass the decoder's checks) is measured after
    whole-pixel replication to MIN_SIDE: a flat image has no outline and no texture, and a
    single bright pixel is not lost. Fails without the replication (np.gradient needs two
    rows: ValueError, and the batch writes no results for the image)."""
    from vitexplorer.core.images import preprocess

    flat = np.full((*shape, 3), 120, np.uint8)
    pre = preprocess(flat, tiny_loaded.data_config, "crop", tiny_loaded.patch_size)
    f = features.patch_features(flat, pre.geometry)
    assert f.contour.max() == 0 and f.texture.max() == 0
    dot = flat.copy()
    dot[shape[0] // 2, shape[1] // 2] = (250, 250, 250)
    g = features.patch_features(dot, pre.geometry)
    assert np.isfinite(g.contour).all() and np.isfinite(g.texture).all()
