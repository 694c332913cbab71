"""Maps against hand-made attention matrices and float64 plain-loop references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitexplorer.core import rollout as ro
from vitexplorer.core.capture import TokenLayout

CLS = TokenLayout(num_prefix=1, has_class_token=True, num_distill=0, num_registers=0,
                  grid=(2, 3))
REG = TokenLayout(num_prefix=3, has_class_token=True, num_distill=0, num_registers=2,
                  grid=(2, 2))
GAP = TokenLayout(num_prefix=0, has_class_token=False, num_distill=0, num_registers=0,
                  grid=(2, 3))


def maps(a, layout, fusion="mean", discard=0.0):
    """Fused and per-head rollout maps from the full attention."""
    return ro.rollout_maps(ro.fuse_heads(a, fusion), layout, discard, ro.map_row(a, layout))


def random_attention(layers, heads, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(layers, heads, n, n, generator=g, dtype=torch.float64) * 2,
                         -1)


# ---- plain loops in float64 (no matrix ops), written from the papers' formulas ----

def matmul(a, b):
    n, k, m = len(a), len(b), len(b[0])
    return [[sum(a[i][t] * b[t][j] for t in range(k)) for j in range(m)] for i in range(n)]


def loop_rollout(a, fusion="mean", discard=0.0, n_prefix=1, upto=None):
    L, H, N = len(a), len(a[0]), len(a[0][0])
    r = [[1.0 if i == j else 0.0 for j in range(N)] for i in range(N)]
    for layer in range(L if upto is None else upto + 1):
        f = [[0.0] * N for _ in range(N)]
        for i in range(N):
            for j in range(N):
                vals = [a[layer][h][i][j] for h in range(H)]
                f[i][j] = {"mean": sum(vals) / H, "max": max(vals), "min": min(vals)}[fusion]
        f = loop_discard(f, discard, n_prefix)
        for i in range(N):
            row = [0.5 * f[i][j] + (0.5 if i == j else 0.0) for j in range(N)]
            s = sum(row)
            f[i] = [v / s for v in row]
        r = matmul(f, r)
    return r


def loop_discard(f, ratio, n_prefix):
    N = len(f)
    cells = [(f[i][j], i, j) for i in range(N) for j in range(N) if j >= n_prefix and i != j]
    k = int(len(cells) * ratio)
    for _, i, j in sorted(cells)[:k]:
        f[i][j] = 0.0
    return f


def loop_map(m, layout):
    N = len(m)
    row = m[0] if layout.has_class_token else [sum(m[i][j] for i in range(N)) / N for j in range(N)]
    patches = row[layout.num_prefix:]
    s = sum(patches)
    return np.array([v / s for v in patches]).reshape(layout.grid)


def test_hand_made_two_block_rollout():
    # N = 2 (class + one patch) -- no, use 3 tokens: class, two patches, by hand.
    lay = TokenLayout(1, True, 0, 0, (1, 2))
    a1 = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    a2 = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    # Â1 = [[.5,.5,0],[0,1,0],[0,0,1]], Â2 = [[.5,0,.5],[0,1,0],[0,0,1]]
    # R1 = Â1: class row over patches [.5, 0] -> [1, 0]
    # R2 = Â2 Â1 = [[.25,.25,.5],[0,1,0],[0,0,1]]: class row over patches [.25,.5] -> [1/3,2/3]
    fused, heads = maps(torch.stack([a1, a2]), lay)
    np.testing.assert_allclose(fused[0].numpy(), [[1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(fused[1].numpy(), [[1 / 3, 2 / 3]], rtol=1e-6)
    # head of block 2 through R1: class row of (0.5 A2 + 0.5 I) Â1 = [.25, .25, .5]
    np.testing.assert_allclose(heads[1, 0].numpy(), [[1 / 3, 2 / 3]], rtol=1e-6)


def test_identity_block_leaves_rollout_unchanged():
    a = random_attention(3, 4, 7)
    with_identity = torch.cat([a[:2], torch.eye(7, dtype=a.dtype).expand(1, 4, 7, 7), a[2:]])
    r = maps(a, CLS)[0]
    r_id = maps(with_identity, CLS)[0]
    torch.testing.assert_close(r_id[2], r[1])
    torch.testing.assert_close(r_id[3], r[2])


@pytest.mark.parametrize("layout", [CLS, REG, GAP], ids=["cls", "registers", "no-cls"])
@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("discard", [0.0, 0.3])
def test_rollout_matches_loop_reference(layout, fusion, discard):
    n = layout.num_tokens
    a = random_attention(3, 2, n, seed=n)
    fused_maps = maps(a, layout, fusion, discard)[0]
    alone, none = ro.rollout_maps(ro.fuse_heads(a, fusion), layout, discard)
    assert none is None
    torch.testing.assert_close(alone, fused_maps)
    for upto in range(3):
        ref = loop_rollout(a.tolist(), fusion, discard, layout.num_prefix, upto=upto)
        np.testing.assert_allclose(fused_maps[upto].numpy(), loop_map(ref, layout), atol=1e-6)


@pytest.mark.parametrize("layout", [CLS, REG, GAP], ids=["cls", "registers", "no-cls"])
def test_head_maps_and_per_head_rollout_match_loops(layout):
    n = layout.num_tokens
    a = random_attention(3, 2, n, seed=3)
    al = a.tolist()
    rows = ro.map_row(a, layout)
    hm = ro.head_maps(rows, layout)
    hr = maps(a, layout)[1]
    for layer in range(3):
        below = (loop_rollout(al, upto=layer - 1, n_prefix=layout.num_prefix) if layer
                 else [[float(i == j) for j in range(n)] for i in range(n)])
        for h in range(2):
            np.testing.assert_allclose(hm[layer, h].numpy(), loop_map(al[layer][h], layout),
                                       atol=1e-6)
            mixed = [[0.5 * al[layer][h][i][j] + (0.5 if i == j else 0) for j in range(n)]
                     for i in range(n)]
            np.testing.assert_allclose(hr[layer, h].numpy(),
                                       loop_map(matmul(mixed, below), layout), atol=1e-6)


@pytest.mark.parametrize("layout", [CLS, GAP], ids=["cls", "no-cls"])
def test_gradient_methods_match_loops(layout):
    n = layout.num_tokens
    a = random_attention(3, 2, n, seed=5)
    g = torch.randn(a.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    al, gl = a.tolist(), g.tolist()
    # Chefer et al. 2021: R <- R + mean_h((grad * A)^+) R
    r = [[float(i == j) for j in range(n)] for i in range(n)]
    gr = [[float(i == j) for j in range(n)] for i in range(n)]
    for layer in range(3):
        cam = [[sum(max(gl[layer][h][i][j] * al[layer][h][i][j], 0.0) for h in range(2)) / 2
                for j in range(n)] for i in range(n)]
        upd = matmul(cam, r)
        r = [[r[i][j] + upd[i][j] for j in range(n)] for i in range(n)]
        # vit-explain gradient rollout: relu(mean_h(A * grad)), 0.5 I, row-normalise
        fused = [[max(sum(gl[layer][h][i][j] * al[layer][h][i][j] for h in range(2)) / 2, 0.0)
                  for j in range(n)] for i in range(n)]
        for i in range(n):
            row = [0.5 * fused[i][j] + (0.5 if i == j else 0.0) for j in range(n)]
            fused[i] = [v / sum(row) for v in row]
        gr = matmul(fused, gr)
    weighted, cams = ro.class_products(a, g)
    np.testing.assert_allclose(ro.relevance_map(cams, layout).numpy(), loop_map(r, layout),
                               atol=1e-6)
    np.testing.assert_allclose(ro.grad_rollout_map(weighted, layout).numpy(),
                               loop_map(gr, layout), atol=1e-6)


def test_discard_zeroes_exactly_the_lowest_eligible_entries():
    """Distinct random entries, so the lowest ``ratio`` of the eligible ones is one set; the
    class column (tiny here: it must survive anyway) and the diagonal are never eligible."""
    n = CLS.num_tokens
    f = torch.rand(n, n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    f[:, 0] = 1e-4
    out = ro.discard_lowest(f, 0.5, CLS)
    eligible = [(i, j) for i in range(n) for j in range(1, n) if i != j]
    k = int(len(eligible) * 0.5)
    dropped = set(sorted(eligible, key=lambda ij: f[ij].item())[:k])
    for i in range(n):
        for j in range(n):
            assert out[i, j].item() == (0.0 if (i, j) in dropped else f[i, j].item()), (i, j)
    assert ro.discard_lowest(f, 0.0, CLS) is f


def test_prefix_share_and_patch_maps_exclude_registers():
    a = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    a[0, 0, :, 1] = 0.5  # half of every row on register 0
    a[0, 0, :, 3:] = 0.125
    share = ro.prefix_share(ro.map_row(a, REG), REG)
    assert share.item() == pytest.approx(0.5)
    m = ro.head_maps(ro.map_row(a, REG), REG)
    np.testing.assert_allclose(m[0, 0].numpy(), np.full((2, 2), 0.25))


def test_maps_sum_to_one():
    a = random_attention(2, 3, CLS.num_tokens).float()
    rows = ro.map_row(a, CLS)
    for m in (ro.head_maps(rows, CLS), maps(a, CLS)[1]):
        np.testing.assert_allclose(m.sum((-1, -2)).numpy(), 1.0, atol=1e-5)
