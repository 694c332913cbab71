"""Comparing two models: a model against itself, against a copy with its heads permuted,
and against a model of another patch size."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from tests.conftest import TEST_IMAGES
from vitexplorer.core.compare import compare_models, js_cross

IMAGES = [TEST_IMAGES / "chelsea.png", TEST_IMAGES / "coins.png"]


def test_js_cross_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 40)) ** 3, rng.random((3, 40)) ** 3
    a[0, :20] = 0  # disjoint supports reach 1
    b[0, 20:] = 0
    a, b = a / a.sum(-1, keepdims=True), b / b.sum(-1, keepdims=True)
    want = np.array([[jensenshannon(x, y, base=2) for y in b] for x in a])
    np.testing.assert_allclose(js_cross(a, b, chunk=2), want, atol=1e-7)
    assert js_cross(a[:1], b[:1])[0, 0] == pytest.approx(1.0)


def permuted_heads(model: torch.nn.Module, perms: list[np.ndarray]) -> torch.nn.Module:
    """A copy whose head j of block l is the original's head perms[l][j]: the rows of q, k
    and v and the columns of the output projection move together, so the function (and
    every map) is unchanged, only the head order."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for blk, perm in zip(m.blocks, perms, strict=True):
            attn = blk.attn
            h, d = attn.num_heads, attn.head_dim
            idx = torch.as_tensor(perm)
            w = attn.qkv.weight.view(3, h, d, -1)
            w.copy_(w[:, idx].clone())
            if attn.qkv.bias is not None:
                b = attn.qkv.bias.view(3, h, d)
                b.copy_(b[:, idx].clone())
            p = attn.proj.weight.view(-1, h, d)
            p.copy_(p[:, idx].clone())
    return m


def test_model_against_itself_matches_every_head_to_itself(tiny_loaded):
    comp = compare_models(tiny_loaded, tiny_loaded, IMAGES)
    np.testing.assert_allclose(np.diag(comp.cost), 0.0, atol=1e-6)
    assert sorted(comp.matches) == [(i, i) for i in range(len(comp.cells[0]))]
    assert comp.rollout_distance == pytest.approx(0.0, abs=1e-6)
    off = comp.cost[~np.eye(len(comp.cost), dtype=bool)]
    assert off.min() > 1e-4  # the heads differ: the identity is the only zero-cost pairing


def test_permuted_copy_recovers_the_permutation(tiny_loaded):
    rng = np.random.default_rng(1)
    n_l = len(tiny_loaded.model.blocks)
    n_h = tiny_loaded.model.blocks[0].attn.num_heads
    perms = [rng.permutation(n_h) for _ in range(n_l)]
    other = dataclasses.replace(tiny_loaded, model=permuted_heads(tiny_loaded.model, perms))
    comp = compare_models(tiny_loaded, other, IMAGES[:1], scores=False)
    got = {comp.cells[0][i]: comp.cells[1][j] for i, j in comp.matches}
    want = {(li, int(perms[li][j])): (li, j) for li in range(n_l) for j in range(n_h)}
    assert got == want
    assert max(comp.cost[m] for m in comp.matches) < 1e-6
    la, ha, cost = comp.match_of(1, 0, 0)
    assert (la, ha) == (0, int(perms[0][0])) and cost < 1e-6


def test_other_patch_size_and_outputs(tiny_loaded):
    from vitexplorer.core.models import load_model
    from vitexplorer.core.science_figures import comparison_figure

    b = load_model("vit_small_patch8_224", "random", img_size=64, depth=2, num_heads=2,
                   embed_dim=64)
    comp = compare_models(tiny_loaded, b, IMAGES[:1])
    k_a, k_b = len(comp.cells[0]), len(comp.cells[1])
    assert comp.cost.shape == (k_a, k_b) and len(comp.matches) == min(k_a, k_b) == 4
    assert np.isfinite(comp.cost).all() and (comp.cost >= 0).all() and (comp.cost <= 1).all()
    # the Hungarian pairing is the cheapest of all injective pairings (brute force)
    total = sum(comp.cost[m] for m in comp.matches)
    best = min(sum(comp.cost[i, j] for j, i in enumerate(rows_a))
               for rows_a in itertools.permutations(range(k_a), k_b))
    assert total == pytest.approx(best)
    rows = comp.rows()
    assert [r["js_distance"] for r in rows] == sorted(r["js_distance"] for r in rows)
    assert {"group_a", "group_b", "fg_score_a", "fg_score_b"} <= set(rows[0])
    data = json.loads(comp.to_json())
    assert len(data["cost"]) == k_a and data["model_b"].endswith("(random weights)")
    assert data["input_size"] == {"a": [64, 64], "b": [64, 64]}
    assert data["grid"] == {"a": [4, 4], "b": [8, 8]}  # /16 and /8 patches
    assert comp.to_csv().count("\n") == 5
    fig = comparison_figure(comp, n_pairs=2, size=64)
    assert len(fig.axes) >= 9


def test_artifact_tokens_in_compare_mode(tiny_loaded):
    """B = A with two planted high-norm tokens after block 1 (a stand-in for a model without
    registers): only B reports them, per block and per head."""
    planted = copy.deepcopy(tiny_loaded.model)

    def boost(_m, _a, y):
        y = y.clone()
        y[:, [3, 8]] *= 50.0
        return y

    planted.blocks[1].register_forward_hook(boost)
    other = dataclasses.replace(tiny_loaded, model=planted)
    comp = compare_models(tiny_loaded, other, IMAGES[:1], scores=False, tokens=True)
    flagged_a, flagged_b = (art["flagged_per_block"] for art in comp.artifacts)
    assert flagged_a.sum() == 0 and flagged_b[1] == 2
    rows = comp.rows()
    assert all(r["artifact_share_a"] == 0 for r in rows)
    assert max(r["artifact_share_b"] for r in rows) > 0
    data = json.loads(comp.to_json())
    assert data["artifact_tokens_per_block"]["b"][1] == 2


def test_a_camera_photo_is_compared_on_a_display_copy(tmp_path, tiny_loaded, monkeypatch):
    # decoded once, at the window's display size; the canvas makes the answer the same
    from PIL import Image

    from vitexplorer.core import images
    from vitexplorer.core.images import load_image

    photo = tmp_path / "camera.jpg"
    Image.open(IMAGES[0]).convert("RGB").resize((3300, 2475)).save(photo, quality=95)
    torch.manual_seed(1)
    other = dataclasses.replace(tiny_loaded, model=copy.deepcopy(tiny_loaded.model))
    for p in other.model.blocks[-1].attn.parameters():
        p.data.normal_(0, 0.2)
    full = compare_models(tiny_loaded, other, [load_image(photo)])
    decoded = []
    real_decode = images._decode_open
    monkeypatch.setattr(images, "_decode_open",
                        lambda *a, **k: decoded.append(real_decode(*a, **k)) or decoded[-1])
    comp = compare_models(tiny_loaded, other, [photo])
    assert [d.pixels.shape[:2] for d in decoded] == [(1238, 1650)]  # 1/2, not 2475 x 3300
    np.testing.assert_allclose(comp.cost, full.cost, atol=0.02)
    assert comp.matches == full.matches
