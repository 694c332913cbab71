"""Mask agreement and faithfulness on constructed cases whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vitexplorer.core.evaluate import (
    faithfulness,
    forwards_needed,
    random_map,
    region_jaccard,
    step_counts,
    token_areas,
)
from vitexplorer.core.images import Geometry, map_to_image
from vitexplorer.core.maps import mass_region

GRID = (4, 4)


def aligned(h: int = 64, w: int = 64) -> Geometry:
    """The whole image seen, 16 px per token: token edges fall on pixel edges."""
    return Geometry((h, w), (64, 64), GRID, (0.0, 0.0, float(w), float(h)))


def pixel_jaccard(grid_map, mask, void, geometry, mass=0.6) -> float:
    """Independent count: the region upsampled to pixels (nearest), sets compared pixel
    by pixel inside the view."""
    region = map_to_image(mass_region(grid_map, mass).astype(np.float32), geometry,
                          "nearest") > 0.5
    h, w = mask.shape
    x0, y0, x1, y1 = geometry.box
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    inside = (xs > x0) & (xs < x1) & (ys > y0) & (ys < y1) & ~void
    inter = np.sum(region & mask & inside)
    union = np.sum((region | mask) & inside)
    return inter / union


def test_map_equal_to_mask_gives_one_and_uniform_over_mask_closed_form():
    g = aligned()
    tokens = np.zeros(GRID, bool)
    tokens[1:3, 0:3] = True  # 6 tokens
    mask = np.kron(tokens, np.ones((16, 16), bool))
    obj, valid = token_areas(mask, np.zeros_like(mask), g)
    m = tokens / tokens.sum()
    # the whole mass: the region is the mask itself
    assert region_jaccard(m, obj, valid, mass=1.0) == pytest.approx(1.0)
    # 60% of a map uniform on k tokens: the first ceil(0.6 k) of them, inside the mask
    k = tokens.sum()
    assert region_jaccard(m, obj, valid) == pytest.approx(math.ceil(0.6 * k) / k)


def test_uniform_map_closed_form():
    """A uniform map's 60% region is ceil(0.6 n) tokens (ties broken in raster order):
    J = ceil(0.6 n) / n against the whole image, 0 against the last row (n = 16: rows
    0-1 and two tokens of row 2)."""
    g = aligned()
    uniform = np.full(GRID, 1 / 16)
    n = 16
    whole = np.ones((64, 64), bool)
    none = np.zeros_like(whole)
    assert region_jaccard(uniform, *token_areas(whole, none, g)) == pytest.approx(
        math.ceil(0.6 * n) / n)
    last_row = np.zeros_like(whole)
    last_row[48:] = True
    assert region_jaccard(uniform, *token_areas(last_row, none, g)) == 0.0


@pytest.mark.parametrize("box", [(0.0, 0.0, 64.0, 64.0), (-7.3, 3.1, 70.2, 59.9)])
def test_jaccard_matches_a_pixel_count(box):
    """Token areas from integral images agree with counting upsampled pixels: exactly when
    token edges are pixel edges, to within the boundary pixels otherwise (crop/letterbox),
    with a void band excluded from both."""
    rng = np.random.default_rng(3)
    g = Geometry((64, 64), (64, 64), GRID, box)
    mask = np.zeros((64, 64), bool)
    mask[10:50, 5:40] = True
    void = np.zeros_like(mask)
    void[9:11, :] = True
    maps = rng.random((5, *GRID))
    got = region_jaccard(maps, *token_areas(mask, void, g))
    want = [pixel_jaccard(m, mask & ~void, void, g) for m in maps]
    tol = 1e-9 if box[0] == 0 else 0.03
    np.testing.assert_allclose(got, want, atol=tol)


class EvidenceClassifier(nn.Module):
    """Class 1's probability is linear in the evidence still present: the mean pixel value
    (channel 0) over a known set of patches S, p1 = 0.05 + 0.9 e; class 0 gets 1 - p1."""

    def __init__(self, patches: list[tuple[int, int]], patch: int = 16):
        super().__init__()
        self.patches, self.patch = patches, patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch
        e = torch.stack([x[:, 0, r * p:(r + 1) * p, c * p:(c + 1) * p].mean((-1, -2))
                         for r, c in self.patches], -1).mean(-1).clamp(0, 1)
        p1 = 0.05 + 0.9 * e
        return torch.log(torch.stack([1 - p1, p1], -1))


EVIDENCE = [(0, 3), (1, 1), (2, 2), (3, 0)]


def evidence_image(patch: int = 16) -> torch.Tensor:
    x = torch.zeros(3, 4 * patch, 4 * patch)
    for r, c in EVIDENCE:
        x[:, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 1.0
    return x


def test_deletion_drops_exactly_when_the_evidence_goes():
    model = EvidenceClassifier(EVIDENCE)
    truth = np.zeros(GRID)
    for r, c in EVIDENCE:
        truth[r, c] = 1.0
    worst = 1.0 - truth  # ranks the evidence last
    curves = faithfulness(model, evidence_image(), {"truth": truth, "worst": worst},
                          target=1, steps=16)
    k = np.arange(17)
    present = np.clip(4 - k, 0, 4) / 4  # the evidence goes first: one patch per step
    np.testing.assert_allclose(curves["truth"].deletion, 0.05 + 0.9 * present, atol=1e-6)
    # ranked last, the evidence stays until the last four steps
    np.testing.assert_allclose(curves["worst"].deletion,
                               0.05 + 0.9 * np.clip(16 - k, 0, 4) / 4, atol=1e-6)
    # top-1 is class 1 while more than half the evidence is present (p1 > 0.5)
    np.testing.assert_array_equal(curves["truth"].positive, (present > 0.5).astype(float))
    np.testing.assert_array_equal(curves["truth"].negative,
                                  (np.clip(16 - k, 0, 4) / 4 > 0.5).astype(float))
    # insertion: once the four evidence patches are back, the image's evidence is whole
    np.testing.assert_allclose(curves["truth"].insertion[4:], 0.95, atol=1e-6)
    assert curves["truth"].insertion[0] < 0.95
    a, b = curves["truth"].aucs(), curves["worst"].aucs()
    assert a["deletion_auc"] < b["deletion_auc"] and a["positive_auc"] < b["positive_auc"]
    assert a["insertion_auc"] > b["insertion_auc"]
    # the area is the trapezoid rule over the fractions, checked by a loop
    f, d = curves["truth"].fractions, curves["truth"].deletion
    area = sum((f[i + 1] - f[i]) * (d[i] + d[i + 1]) / 2 for i in range(16))
    assert a["deletion_auc"] == pytest.approx(area)


def test_random_baseline_expectation():
    """Under a uniformly random ranking, k removed patches leave |S| (1 - k/n) evidence
    patches on average (hypergeometric mean): E[p1] = 0.05 + 0.9 (1 - k/n)."""
    model = EvidenceClassifier(EVIDENCE, patch=4)
    x = evidence_image(patch=4)
    maps = {f"r{s}": random_map(GRID, s) for s in range(150)}
    curves = faithfulness(model, x, maps, target=1, steps=8, batch_size=512)
    mean = np.mean([c.deletion for c in curves.values()], 0)
    f = curves["r0"].fractions
    np.testing.assert_allclose(mean, 0.05 + 0.9 * (1 - f), atol=0.04)
    assert len({tuple(c.deletion) for c in curves.values()}) > 10  # the seeds differ


def test_batched_forwards_count_and_steps():
    calls = []

    def forward(x):
        calls.append(len(x))
        return torch.zeros(len(x), 3)

    maps = {"a": random_map(GRID, 0), "b": random_map(GRID, 1)}
    faithfulness(forward, torch.zeros(3, 64, 64), maps, 0, steps=10, batch_size=7)
    assert sum(calls) == forwards_needed(2, 10) and max(calls) == 7
    np.testing.assert_array_equal(step_counts(16, 4), [0, 4, 8, 12, 16])


def test_perturbed_images_are_made_a_batch_at_a_time(monkeypatch):
    """``--steps 100000`` made all 100000 perturbed images of a set at once (60 GB at
    224 px, a MemoryError in errors.csv); the curves do not depend on the batch size."""
    from vitexplorer.core import evaluate

    made = []
    real = evaluate.perturbed

    def counted(*args, **kwargs):
        out = real(*args, **kwargs)
        made.append(len(out))
        return out

    monkeypatch.setattr(evaluate, "perturbed", counted)
    model = EvidenceClassifier(EVIDENCE, patch=4)
    x = evidence_image(patch=4)
    maps = {"a": random_map(GRID, 0), "b": random_map(GRID, 1)}
    small = faithfulness(model, x, maps, target=1, steps=40, batch_size=5)
    assert max(made) <= 5
    whole = faithfulness(model, x, maps, target=1, steps=40, batch_size=1000)
    for name in maps:
        for field in ("deletion", "insertion", "positive", "negative"):
            np.testing.assert_allclose(getattr(small[name], field),
                                       getattr(whole[name], field), atol=1e-6)
