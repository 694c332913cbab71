"""validation/texture_diagnosis.py: its counts on a hand-made case, and a shortened run."""

from __future__ import annotations

import numpy as np
import torch

from validation.texture_diagnosis import (
    failing_terms,
    faint_as_one,
    faint_counts,
    gap_parts,
    measure,
    report,
    straddling_counts,
)
from validation.train_small_vit import build
from vitexplorer.core.heads import TEXTURE_MAX_EDGE_LIFT, TEXTURE_MIN_LIFT, TEXTURE_SHARE

# 3 x 3 patches: an object interior (0, 0), four straddling the band, four wholly in the
# texture region (one faint, one 0)
TEXTURE = np.array([[0.2, 0.0, 0.0], [0.0, 0.6, 1.0], [0.4, 0.0, 1.0]])
REGION = np.array([[0.0, 0.0, 0.5], [0.0, 0.25, 1.0], [1.0, 1.0, 1.0]])
BAND = np.array([[0.0, 0.5, 0.5], [0.5, 0.75, 0.0], [0.0, 0.0, 0.0]])
AWAY = np.array([[0.0, 0.1, 0.25], [0.2, 0.5, 1.0], [1.0, 1.0, 1.0]])


def test_patch_counts_on_a_hand_made_map():
    assert straddling_counts(TEXTURE, BAND, AWAY) == {"patches": 4, "zero": 3,
                                                      "unmeasurable": 2}
    assert faint_counts(TEXTURE, REGION) == {"patches": 4, "below_1": 2, "zero": 1}
    gap = gap_parts(TEXTURE, REGION, BAND)
    assert np.isclose(gap["straddling"], (0.5 - 0.35) / 9)
    assert np.isclose(gap["wholly"], (0.6 + 1.0) / 9)
    assert np.isclose(gap["rest"], -0.2 / 9)
    assert np.isclose(sum(gap.values()), REGION.mean() - TEXTURE.mean())
    assert np.array_equal(faint_as_one(TEXTURE, REGION),
                          [[0.2, 0, 0], [0, 0.6, 1], [1, 1, 1]])


def test_failing_terms_at_the_thresholds():
    """A value at a threshold passes it (the rule's >= and <); the third head fails every
    term but is not among those asked about."""
    share = np.array([TEXTURE_SHARE, TEXTURE_SHARE - 0.01, 0.0])
    lift = np.array([TEXTURE_MIN_LIFT - 0.01, TEXTURE_MIN_LIFT, 0.0])
    edge = np.array([0.5, TEXTURE_MAX_EDGE_LIFT, 5.0])
    which = np.array([True, True, False])
    assert failing_terms(share, lift, edge, which) == {"share": 1, "lift": 1, "band": 1}


def test_report_on_two_images_at_random_init():
    torch.set_num_threads(1)
    images = measure(build(0).eval(), n_images=2)
    lines = report(images).splitlines()
    assert lines[0].startswith("2 images x 16 heads") and len(lines) == 11
    # every patch of the 128 px images is one of: straddling, wholly in the region, interior
    total = sum(straddling_counts(im.texture, im.band, im.away)["patches"]
                + faint_counts(im.texture, im.region)["patches"] for im in images)
    assert 0 < total <= 2 * 64
