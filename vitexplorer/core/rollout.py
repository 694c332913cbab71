"""Attention maps over patches: raw heads, rollout (fused and per head), gradient methods.

Input is one image's attention ``A`` of shape ``[L, H, N, N]`` (rows = queries, prefix tokens
first, as captured). Every map returned is float32 ``[rows, cols]`` over PATCH tokens only,
normalised to sum to 1; the mass that went to prefix/register tokens is reported separately
by :func:`prefix_share`. For models without a class token the "map" of a matrix ``M`` is the
mean over all query rows of ``M`` (the attention each patch receives), instead of the class
row; :func:`map_row` is the one place that choice is made.
"""

from __future__ import annotations

from typing import Literal

import torch

from vitexplorer.core.capture import TokenLayout

Fusion = Literal["mean", "max", "min"]


def work(x: torch.Tensor) -> torch.Tensor:
    """float16 storage (large models) is computed in float32; float64 stays float64."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def map_row(m: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """The row vector that defines a map: class-token row ``m[..., 0, :]`` when the model has a
    class token, else the mean over query rows ``mean_i m[..., i, :]`` (attention received)."""
    return m[..., 0, :] if layout.has_class_token else m.mean(dim=-2)


def to_patch_map(row: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Drop prefix tokens from ``[..., N]``, renormalise to sum 1, reshape to ``[..., gh, gw]``."""
    p = row[..., layout.num_prefix :]
    p = p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return p.reshape(*p.shape[:-1], *layout.grid)


def head_maps(attn: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Raw head maps ``[L, H, gh, gw]``: ``A[l, h, cls, patches]`` renormalised over patches
    (Caron et al. 2021, DINO, Fig. 1); class-token-free models: mean attention received."""
    return to_patch_map(work(map_row(attn, layout)), layout).float()


def prefix_share(attn: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """``[L, H]`` share of the map row's mass on prefix tokens (class, distillation,
    registers): high values flag attention sinks (Darcet et al. 2024, "Vision Transformers
    Need Registers")."""
    row = work(map_row(attn, layout))
    return row[..., : layout.num_prefix].sum(-1) / row.sum(-1).clamp_min(1e-12)


def fuse_heads(a: torch.Tensor, fusion: Fusion = "mean") -> torch.Tensor:
    """``[..., H, N, N] -> [..., N, N]`` by mean, max or min over heads."""
    if fusion == "mean":
        return a.mean(-3)
    if fusion == "max":
        return a.amax(-3)
    if fusion == "min":
        return a.amin(-3)
    raise ValueError(f"unknown head fusion {fusion!r}: use mean, max or min")


def discard_lowest(a: torch.Tensor, ratio: float, layout: TokenLayout) -> torch.Tensor:
    """Zero the lowest ``ratio`` of the entries of a fused ``[N, N]`` matrix (vit-explain's
    option), never touching attention TO prefix tokens (column < num_prefix) and the
    diagonal, so the class-token entry survives (vit-explain's flattened-index bug dropped it
    except for [0, 0])."""
    if ratio <= 0:
        return a
    a = a.clone()
    n = a.shape[-1]
    eligible = torch.ones(n, n, dtype=torch.bool, device=a.device)
    eligible[:, : layout.num_prefix] = False
    eligible.fill_diagonal_(False)
    values = a[eligible]
    k = int(values.numel() * ratio)
    if k == 0:
        return a
    idx = torch.topk(values, k, largest=False).indices
    values[idx] = 0
    a[eligible] = values
    return a


def rollout_matrices(
    attn: torch.Tensor, layout: TokenLayout, fusion: Fusion = "mean", discard: float = 0.0
) -> torch.Tensor:
    """Attention rollout after each block, ``[L, N, N]`` (Abnar & Zuidema 2020, ACL,
    "Quantifying Attention Flow in Transformers").

    ``Â_l = rownorm(0.5 · fuse_h(A_l) + 0.5 · I)`` (the identity models the residual
    connection; rows renormalised with keepdim after discarding), and
    ``R_l = Â_l Â_(l-1) ... Â_1``; entry ``l`` of the result is ``R_l``.
    """
    n = attn.shape[-1]
    dtype = work(attn[:1, :1, :1, :1]).dtype
    eye = torch.eye(n, dtype=dtype, device=attn.device)
    out = torch.empty(attn.shape[0], n, n, dtype=dtype, device=attn.device)
    r = eye
    for i in range(attn.shape[0]):
        a = discard_lowest(fuse_heads(work(attn[i]), fusion), discard, layout)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        r = a @ r
        out[i] = r
    return out


def rollout_map(rollouts: torch.Tensor, layout: TokenLayout, layer: int = -1) -> torch.Tensor:
    """Fused rollout map up to block ``layer``: the map row of ``R_layer`` over patches."""
    return to_patch_map(map_row(rollouts[layer], layout), layout).float()


def head_rollout_maps(
    attn: torch.Tensor, rollouts: torch.Tensor, layout: TokenLayout
) -> torch.Tensor:
    """Per-head rollout ``[L, H, gh, gw]``: head h of block l propagated through the fused
    rollout of the blocks below it, map row of ``(0.5 A_lh + 0.5 I) R_(l-1)`` (R_0 = I).

    Only the map row is formed (a vector-matrix product per head), not the full product.
    """
    n_layers, _, n, _ = attn.shape
    eye_row = map_row(torch.eye(n, dtype=rollouts.dtype, device=attn.device), layout)
    rows = []
    for i in range(n_layers):
        # map_row is linear: map_row(0.5 A + 0.5 I) = 0.5 map_row(A) + 0.5 map_row(I)
        v = 0.5 * work(map_row(attn[i], layout)).to(rollouts.dtype) + 0.5 * eye_row  # [H, N]
        rows.append(v if i == 0 else v @ rollouts[i - 1])
    return to_patch_map(torch.stack(rows), layout).float()


def grad_rollout_map(
    attn: torch.Tensor, grads: torch.Tensor, layout: TokenLayout, discard: float = 0.0
) -> torch.Tensor:
    """Gradient rollout (vit-explain, J. Gildenblat 2020): per block
    ``G_l = relu(mean_h(A_lh ⊙ ∂y_c/∂A_lh))``, discard, ``Ĝ_l = rownorm(0.5 G_l + 0.5 I)``,
    ``R = Ĝ_L ... Ĝ_1``; map row of R over patches."""
    n = attn.shape[-1]
    eye = torch.eye(n, dtype=grads.dtype, device=attn.device)
    r = eye
    for i in range(attn.shape[0]):
        g = (work(attn[i]) * grads[i]).mean(0).clamp_min(0)
        g = discard_lowest(g, discard, layout)
        g = 0.5 * g + 0.5 * eye
        g = g / g.sum(-1, keepdim=True)
        r = g @ r
    return to_patch_map(map_row(r, layout), layout).float()


def relevance_map(attn: torch.Tensor, grads: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021, "Generic
    Attention-model Explainability"), eq. 6-7: ``R_0 = I``,
    ``R_l = R_(l-1) + mean_h((∂y_c/∂A_lh ⊙ A_lh)^+) R_(l-1)``; map row of ``R_L`` over patches.
    """
    n = attn.shape[-1]
    r = torch.eye(n, dtype=grads.dtype, device=attn.device)
    for i in range(attn.shape[0]):
        cam = (grads[i] * work(attn[i])).clamp_min(0).mean(0)
        r = r + cam @ r
    return to_patch_map(map_row(r, layout), layout).float()
