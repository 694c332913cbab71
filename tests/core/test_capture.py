"""Capture returns softmax(q k^T * scale + bias) of every head, for every supported family."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F

from tests.conftest import small_model
from vitexplorer.core.capture import capture, recording
from vitexplorer.core.errors import UnsupportedModelError
from vitexplorer.core.stream import class_products

FAMILIES = {
    # name: (kwargs, expected prefix tokens, has class token, registers, distillation)
    "vit_small_patch16_224": ({"depth": 3}, 1, True, 0, 0),
    "deit_tiny_distilled_patch16_224": ({"depth": 3}, 2, True, 0, 1),
    "vit_small_patch14_reg4_dinov2": ({"depth": 3, "img_size": 112}, 5, True, 4, 0),
    "eva02_tiny_patch14_224": ({"depth": 3}, 1, True, 0, 0),
    "beit_base_patch16_224": ({"depth": 3}, 1, True, 0, 0),
    "vit_base_patch16_clip_224": ({"depth": 3}, 1, True, 0, 0),
    "vit_medium_patch16_gap_256": ({"depth": 3}, 0, False, 0, 0),
    "vit_base_patch16_siglip_224": ({"depth": 3}, 0, False, 0, 0),
    # EVA with registers: timm keeps their count in reg_token alone (no num_reg_tokens)
    "vit_small_patch16_dinov3": ({"depth": 3, "img_size": 64}, 5, True, 4, 0),
}


def _rotate(x: torch.Tensor, emb: torch.Tensor, half: bool) -> torch.Tensor:
    """Rotary embedding written out: x * cos + rot(x) * sin (EVA-02, Su et al. RoFormer)."""
    sin, cos = emb.tensor_split(2, -1)
    if half:
        x1, x2 = x.chunk(2, -1)
        rot = torch.cat([-x2, x1], -1)
    else:
        rot = torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)
    return x * cos + rot * sin


def reference_attention(attn_mod, x: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """Independent float64 recomputation of one block's attention from its own weights."""
    m = attn_mod
    x = x.double()
    b, n, _ = x.shape
    heads = m.num_heads

    def lin(w, bias=None):
        return F.linear(x, w.double(), None if bias is None else bias.double())

    if getattr(m, "qkv", None) is not None:
        bias = m.qkv.bias
        if getattr(m, "q_bias", None) is not None:
            bias = torch.cat((m.q_bias, m.k_bias, m.v_bias))
        qkv = lin(m.qkv.weight, bias).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k = qkv[0], qkv[1]
    else:
        q = lin(m.q_proj.weight, m.q_proj.bias).reshape(b, n, heads, -1).transpose(1, 2)
        k = lin(m.k_proj.weight, m.k_proj.bias).reshape(b, n, heads, -1).transpose(1, 2)
    if hasattr(m, "q_norm"):
        q = m.q_norm.double()(q)
        k = m.k_norm.double()(k)
        m.q_norm.float()
        m.k_norm.float()
    rope = kwargs.get("rope")
    if rope is not None:
        p = m.num_prefix_tokens
        half = getattr(m, "rotate_half", False)
        rope = rope.double()
        q = torch.cat([q[:, :, :p], _rotate(q[:, :, p:], rope, half)], 2)
        k = torch.cat([k[:, :, :p], _rotate(k[:, :, p:], rope, half)], 2)
    logits = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if getattr(m, "relative_position_bias_table", None) is not None:
        logits = logits + m._get_rel_pos_bias().double()
    if kwargs.get("shared_rel_pos_bias") is not None:
        logits = logits + kwargs["shared_rel_pos_bias"].double()
    return logits.softmax(-1)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_matches_independent_recomputation(name):
    kwargs, n_prefix, has_cls, n_reg, n_dist = FAMILIES[name]
    model = small_model(name, **kwargs)
    size = model.pretrained_cfg["input_size"][1:] if "img_size" not in kwargs else (
        kwargs["img_size"],) * 2
    torch.manual_seed(1)
    x = torch.randn(1, 3, *size)
    seen = {}

    def pre(_mod, args, kw):
        seen["x"], seen["kw"] = args[0].detach(), {k: v for k, v in kw.items()
                                                   if isinstance(v, torch.Tensor)}
        if len(args) > 1 and isinstance(args[1], torch.Tensor):
            seen["kw"]["rope" if "eva" in name else "shared_rel_pos_bias"] = args[1]

    h = model.blocks[1].attn.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        cap = capture(model, x)
    finally:
        h.remove()
    lay = cap.layout
    assert (lay.num_prefix, lay.has_class_token, lay.num_registers, lay.num_distill) == (
        n_prefix, has_cls, n_reg, n_dist)
    n_layers, n_heads = len(model.blocks), model.blocks[0].attn.num_heads
    assert cap.attentions.shape == (1, n_layers, n_heads, lay.num_tokens, lay.num_tokens)
    assert math.prod(lay.grid) + lay.num_prefix == lay.num_tokens
    torch.testing.assert_close(cap.attentions.sum(-1), torch.ones(cap.attentions.shape[:-1]),
                               atol=1e-5, rtol=0)
    ref = reference_attention(model.blocks[1].attn, seen["x"], seen["kw"])
    assert (cap.attentions[0, 1].double() - ref[0]).abs().max().item() < 1e-5


@pytest.mark.parametrize("name", ["vit_small_patch16_224", "eva02_tiny_patch14_224"])
def test_capture_leaves_logits_and_fused_flag_intact(name):
    kwargs = FAMILIES[name][0]
    model = small_model(name, **kwargs)
    other = small_model("deit_tiny_distilled_patch16_224", depth=3)
    for m in model.blocks:
        m.attn.fused_attn = True
    other.blocks[0].attn.fused_attn = True
    x = torch.randn(2, 3, *model.pretrained_cfg["input_size"][1:])
    with torch.inference_mode():
        plain = model(x)
    cap = capture(model, x)
    torch.testing.assert_close(cap.logits, plain, atol=1e-4, rtol=1e-4)
    assert all(b.attn.fused_attn for b in model.blocks), "fused_attn must be restored"
    assert other.blocks[0].attn.fused_attn, "another model must not be touched"
    assert not any(b.attn.attn_drop._forward_hooks for b in model.blocks), "hooks removed"
    assert cap.attentions.shape[0] == 2


def test_restores_previous_value_even_when_it_was_false():
    model = small_model("vit_small_patch16_224", depth=3)
    model.blocks[0].attn.fused_attn = False
    model.blocks[1].attn.fused_attn = True
    with recording(model) as store:
        assert not any(b.attn.fused_attn for b in model.blocks)
    assert store == [None] * 3
    assert model.blocks[0].attn.fused_attn is False
    assert model.blocks[1].attn.fused_attn is True


def test_hooks_removed_when_forward_fails():
    model = small_model("vit_small_patch16_224", depth=3)
    with pytest.raises(RuntimeError), recording(model):
        model(torch.randn(1, 5, 224, 224))
    assert not any(b.attn.attn_drop._forward_hooks for b in model.blocks)


def test_class_products_match_retained_gradients():
    model = small_model("vit_small_patch16_224", depth=3)
    x = torch.randn(1, 3, 224, 224)
    # reference: autograd with every attention map's gradient retained, products in float64
    kept = []

    def keep(_i, a):
        a.retain_grad()
        kept.append(a)

    with recording(model, sink=keep), torch.enable_grad():
        model(x)[0, 7].backward()
    model.zero_grad(set_to_none=True)
    weighted, cams = class_products(model, x, [7])
    assert weighted.shape == cams.shape == (1, 3, 197, 197)
    for i, a in enumerate(kept):
        p = a.detach().double() * a.grad.double()
        torch.testing.assert_close(weighted[0, i].double(), p.mean(1)[0], atol=1e-9, rtol=1e-4)
        torch.testing.assert_close(cams[0, i].double(), p.clamp_min(0).mean(1)[0], atol=1e-9,
                                   rtol=1e-4)
    assert cams.abs().sum() > 0
    other, _ = class_products(model, x, [3])
    assert not torch.allclose(other, weighted), "gradients must depend on the class"
    assert all(p.grad is None for p in model.parameters()), "no parameter gradients"


@pytest.mark.parametrize("name", ["swin_tiny_patch4_window7_224", "convnext_atto",
                                  "resnet18"])
def test_unsupported_models_get_a_clear_error(name):
    model = timm.create_model(name, pretrained=False)
    with pytest.raises(UnsupportedModelError, match="not supported, because"):
        capture(model, torch.randn(1, 3, 224, 224))


def test_dynamic_image_size_gives_non_square_grid():
    model = small_model("vit_small_patch16_224", depth=2, dynamic_img_size=True)
    cap = capture(model, torch.randn(1, 3, 160, 256))
    assert cap.layout.grid == (10, 16)
    assert cap.attentions.shape[-1] == 161


def test_should_stop_abandons_the_forward_within_one_block():
    from vitexplorer.core.errors import Cancelled

    model = small_model("vit_small_patch16_224", depth=3)
    before = [b.attn.fused_attn for b in model.blocks]
    calls = []

    def stop():
        calls.append(1)
        return len(calls) >= 2

    with pytest.raises(Cancelled):
        capture(model, torch.randn(1, 3, 224, 224), should_stop=stop)
    assert len(calls) == 2
    assert not any(b.attn.attn_drop._forward_hooks for b in model.blocks)
    assert [b.attn.fused_attn for b in model.blocks] == before


def test_concurrent_captures_on_one_model_do_not_mix():
    import threading

    model = small_model("vit_small_patch16_224", depth=3)
    xs = [torch.randn(1, 3, 224, 224) for _ in range(4)]
    expected = [capture(model, x).attentions for x in xs]
    got: dict[int, torch.Tensor] = {}

    def run(i):
        got[i] = capture(model, xs[i]).attentions

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        torch.testing.assert_close(got[i], expected[i])


def test_large_captures_are_stored_in_float16_and_still_analysed(monkeypatch):
    import vitexplorer.core.capture as cap_mod
    from vitexplorer.core import rollout as ro

    model = small_model("vit_small_patch16_224", depth=3)
    x = torch.randn(1, 3, 224, 224)
    full = capture(model, x)
    monkeypatch.setattr(cap_mod, "FULL_PRECISION_LIMIT", 1000)
    half = capture(model, x)
    assert full.attentions.dtype == torch.float32 and half.attentions.dtype == torch.float16
    torch.testing.assert_close(half.attentions.float(), full.attentions, atol=1e-3, rtol=1e-2)
    lay = half.layout
    a16, a32 = half.attentions[0], full.attentions[0]
    f16, h16 = ro.rollout_maps(ro.fuse_heads(a16), lay, 0.0, ro.map_row(a16, lay))
    f32, h32 = ro.rollout_maps(ro.fuse_heads(a32), lay, 0.0, ro.map_row(a32, lay))
    assert f16.dtype == torch.float32
    torch.testing.assert_close(f16, f32, atol=1e-4, rtol=1e-2)
    torch.testing.assert_close(h16, h32, atol=1e-4, rtol=1e-2)
