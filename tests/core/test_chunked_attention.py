"""The chunked attention gives torch's scaled dot-product attention and hands over every
probability once; the streamed capture's reductions of it equal float64 computations written
out independently, across chunk boundaries (prefix rows, partial chunks, no class token)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import small_model
from vitexplorer.core import chunked_attention as ca
from vitexplorer.core.capture import TokenLayout, capture
from vitexplorer.core.maps import patch_distances, range_means, range_sums
from vitexplorer.core.stream import stream


def _sdpa64(q, k, v, mask=None, scale=None):
    """softmax(q k^T scale + mask) v in float64 (a bool mask keeps True entries)."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-2, -1) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if mask is not None:
        s = s.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else s + mask.double()
    p = s.softmax(-1)
    return p @ v, p


@pytest.mark.parametrize("kind", ["none", "float", "bool", "scale"])
def test_attention_is_sdpa_and_every_row_reaches_the_sink_once(kind):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 11, 4) * 2 for _ in range(3))
    mask, scale = None, None
    if kind == "float":  # per head and query row, as BEiT's relative position bias
        mask = torch.randn(1, 3, 11, 11)
    elif kind == "bool":
        mask = torch.rand(2, 1, 11, 11) > 0.3
        mask[..., 0] = True  # every row keeps a key
    elif kind == "scale":
        scale = 0.7
    chunks, scores = {}, {}

    def sink(r0, p, s):
        chunks[r0] = p.clone()
        scores[r0] = None if s is None else s.clone()

    out = ca.attention(q, k, v, sink, mask, scale, rows=4)
    ref_out, ref_p = _sdpa64(q, k, v, mask, scale)
    assert sorted(chunks) == [0, 4, 8]
    for r0, s in scores.items():  # the scores the chunk is the softmax of; none with infinities
        if kind == "bool":
            assert s is None
        else:
            torch.testing.assert_close(s.softmax(-1), chunks[r0])
    torch.testing.assert_close(torch.cat([chunks[r] for r in sorted(chunks)], -2).double(),
                               ref_p, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.double(), ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        out, torch.nn.functional.scaled_dot_product_attention(q, k, v, mask, scale=scale),
        atol=1e-5, rtol=1e-5)


def _reductions64(a: np.ndarray, n_prefix: int, has_cls: bool, grid, patch):
    """Rows, head mean, mean distance, row entropy and distance z of ``a`` [B, L, H, N, N],
    float64, from the definitions (maps.range_stats' docstring; Raghu et al. 2021 for the
    distance; the z from the permutation mean and variance of each row's distance)."""
    gh, gw = grid
    centres = np.array([((i // gw + 0.5) * patch[0], (i % gw + 0.5) * patch[1])
                        for i in range(gh * gw)])
    dist = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))
    rows = a[..., 0, :] if has_cls else a.mean(-2)
    pp = a[..., n_prefix:, n_prefix:]
    pp = pp / pp.sum(-1, keepdims=True)
    distance = (pp * dist).sum(-1).mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(pp > 0, pp * np.log(pp), 0.0)
    entropy = (-plogp.sum(-1) / np.log(gh * gw)).mean(-1)
    n = gh * gw
    expect = dist.mean(-1)
    var = ((pp ** 2).sum(-1) - 1 / n) * ((dist - expect[:, None]) ** 2).sum(-1) / (n - 1)
    z = ((pp * dist).sum(-1) - expect) / np.sqrt(var)
    return rows, a.mean(2), distance, entropy, z.mean(-1)


@pytest.mark.parametrize("name,kwargs", [
    ("vit_small_patch14_reg4_dinov2", {"depth": 2, "img_size": 56}),  # 5 prefix rows
    ("vit_medium_patch16_gap_256", {"depth": 2, "img_size": 64}),  # no class token
])
def test_streamed_reductions_equal_float64_definitions_across_chunks(name, kwargs, monkeypatch):
    model = small_model(name, **kwargs)
    assert ca.supports(model)
    torch.manual_seed(3)
    x = torch.randn(2, 3, kwargs["img_size"], kwargs["img_size"])
    heads = model.blocks[0].attn.num_heads
    full = capture(model, x)  # timm's own non-fused attention, through the attn_drop hook
    n = full.attentions.shape[-1]
    # 3 query rows per chunk: the first chunk is all prefix rows (registers), the second
    # straddles them, the last is partial
    monkeypatch.setattr(ca, "CHUNK_ELEMENTS", 3 * 2 * heads * n)
    s = stream(model, x)
    rows, fused, distance, entropy, z = _reductions64(
        full.attentions.double().numpy(), full.layout.num_prefix,
        full.layout.has_class_token, full.layout.grid, s.patch_size)
    np.testing.assert_allclose(s.rows.numpy(), rows, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(s.fused.numpy(), fused, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(s.distance.numpy(), distance, rtol=1e-5)
    np.testing.assert_allclose(s.entropy.numpy(), entropy, rtol=1e-5)
    np.testing.assert_allclose(s.distance_z.numpy(), z, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s.logits, full.logits, atol=1e-4, rtol=1e-4)


def test_entropy_from_the_scores_equals_the_float64_definition_on_peaked_rows():
    """Rows sharp enough that float32 probabilities underflow to 0 (trained heads look like
    this): the entropy read from the scores (no log of tiny probabilities) against float64."""
    torch.manual_seed(5)
    grid, n_prefix = (5, 6), 2
    layout = TokenLayout(n_prefix, True, 1, 0, grid)
    n = n_prefix + grid[0] * grid[1]
    s = torch.randn(2, 3, n, n) * torch.tensor([1.0, 10.0, 60.0])[:, None, None]
    # the prefix keys score as high as the row's best patch: they hold up to two thirds of
    # the mass, and the patch share renormalised is still representable in float32
    s[..., :n_prefix] = s[..., n_prefix:].amax(-1, keepdim=True)
    p = s.softmax(-1)
    assert (p == 0).any()  # the sharpest head underflows
    dist = patch_distances(grid, (16, 16))
    with_scores = [range_sums(p[..., r0:r0 + 7, :], r0, layout, dist, s[..., r0:r0 + 7, :])
                   for r0 in range(0, n, 7)]
    entropy = range_means(*(sum(x) for x in zip(*with_scores, strict=True)), 30)[1]
    a = s.double().softmax(-1)[..., n_prefix:, n_prefix:]
    a = a / a.sum(-1, keepdim=True)
    want = -torch.special.xlogy(a, a).sum(-1).mean(-1) / math.log(30)
    torch.testing.assert_close(entropy.double(), want, rtol=1e-5, atol=1e-6)


def test_families_outside_the_list_keep_the_hook_path_with_the_same_results(monkeypatch):
    model = small_model("vit_small_patch16_224", depth=2, img_size=64)
    x = torch.randn(1, 3, 64, 64)
    chunked = stream(model, x)
    monkeypatch.setattr(ca, "CHUNKED_MODULES", set())
    assert not ca.supports(model)
    hooked = stream(model, x)
    for got, want in ((chunked.rows, hooked.rows), (chunked.fused, hooked.fused),
                      (chunked.distance, hooked.distance), (chunked.entropy, hooked.entropy),
                      (chunked.distance_z, hooked.distance_z)):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_a_listed_module_that_makes_no_sdpa_call_is_an_error_not_a_silent_gap():
    model = small_model("vit_small_patch16_224", depth=2, img_size=64)
    attn = model.blocks[1].attn
    forward = attn.forward

    def non_fused(*args, **kwargs):  # a module whose forward ignores the fused flag
        attn.fused_attn = False
        return forward(*args, **kwargs)

    attn.forward = non_fused
    try:
        with pytest.raises(RuntimeError, match="no scaled_dot_product_attention call"):
            stream(model, torch.randn(1, 3, 64, 64))
    finally:
        del attn.forward
    assert not attn._forward_hooks and not attn._forward_pre_hooks
