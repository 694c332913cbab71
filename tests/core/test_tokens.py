"""Artifact tokens: norms checked against a hand-run forward, flags on a planted hidden
state, absorbed attention against a loop."""

from __future__ import annotations

import numpy as np
import torch

from vitexplorer.core.capture import TokenLayout
from vitexplorer.core.tokens import (
    absorbed_share,
    artifacts_of,
    find_artifacts,
    masked_maps,
    token_norms,
)

LAYOUT = TokenLayout(1, True, 0, 0, (2, 3))


def test_norms_match_a_hand_run_forward(tiny_loaded):
    model = tiny_loaded.model
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    got = token_norms(model, x)
    with torch.no_grad():
        h = model.norm_pre(model._pos_embed(model.patch_embed(x)))
        want = []
        for blk in model.blocks:
            h = blk(h)
            want.append(h.norm(dim=-1))
    torch.testing.assert_close(got, torch.stack(want, 1), rtol=1e-4, atol=1e-4)


def test_planted_high_norm_tokens_are_flagged(tiny_loaded):
    """Block 1's output is scaled by 50 at patch tokens 4 and 11 (row-major): exactly those
    are flagged at block 1, none at block 0, and block 2 reads them as its artifact keys."""
    model = tiny_loaded.model
    planted = [4, 11]

    def boost(_m, _a, y):
        y = y.clone()
        y[:, [1 + t for t in planted]] *= 50.0
        return y

    handle = model.blocks[1].register_forward_hook(boost)
    try:
        art = artifacts_of(model, torch.zeros(1, 3, 64, 64) + 0.3)
    finally:
        handle.remove()
    gw = art.layout.grid[1]
    flagged = {int(r) * gw + int(c) for r, c in zip(*np.nonzero(art.flags[1]), strict=True)}
    assert flagged == set(planted)
    assert not art.flags[0].any()
    assert art.attended()[2].sum() == art.flags[1].sum() and not art.attended()[0].any()
    listing = art.listing()[1]["tokens"]
    assert {t["row"] * gw + t["col"] for t in listing} == set(planted)
    assert all(t["ratio"] > 10 for t in listing)


def test_flags_use_the_patch_median_not_the_prefix():
    # patch median 2 (threshold 20); with the class token's 500 counted it would be 3 (30)
    norms = np.array([[500.0, 1, 1, 1, 3, 3, 22]])
    art = find_artifacts(norms, LAYOUT, factor=10.0)
    assert art.median[0] == 2.0
    np.testing.assert_array_equal(art.flags[0].ravel(), [0, 0, 0, 0, 0, 1])


def test_absorbed_share_and_masked_maps_against_loops():
    rng = np.random.default_rng(0)
    rows = rng.random((2, 3, 7))
    keys = np.zeros((2, 2, 3), bool)
    keys[1, 0, 2] = keys[1, 1, 0] = True
    got = absorbed_share(rows, keys, LAYOUT)
    for li in range(2):
        for h in range(3):
            on = sum(rows[li, h, 1 + t] for t in range(6) if keys[li].ravel()[t])
            assert np.isclose(got[li, h], on / rows[li, h].sum())
    maps = rng.random((2, 3, 2, 3))
    m = masked_maps(maps, keys)
    assert (m[1][:, keys[1]] == 0).all()
    np.testing.assert_allclose(m.sum(axis=(-1, -2)), 1.0)
    np.testing.assert_allclose(m[0], maps[0] / maps[0].sum(axis=(-1, -2), keepdims=True))
