"""Attention maps over patches: raw heads, rollout (fused and per head), gradient methods.

The attention ``A`` of one image is ``[L, H, N, N]`` (rows = queries, prefix tokens first, as
captured), but no function here needs all of it at once: each takes what a capture keeps of
every block (:mod:`vitexplorer.core.stream`): the heads' map rows ``map_row(A_l)``
``[L, H, N]``, the head-fused matrices ``fuse_heads(A_l)`` ``[L, N, N]``, or the
:func:`class_products` of attention and gradient. Every map returned is float32
``[rows, cols]`` over PATCH tokens only, normalised to sum to 1; the mass that went to
prefix/register tokens is reported separately by :func:`prefix_share`. For models without a
class token the "map" of a matrix ``M`` is the mean over all query rows of ``M`` (the
attention each patch receives), instead of the class row; :func:`map_row` is the one place
that choice is made.
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


def head_maps(rows: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Raw head maps ``[L, H, gh, gw]`` from the map rows ``[L, H, N]`` (:func:`map_row` of
    each head): ``A[l, h, cls, patches]`` renormalised over patches (Caron et al. 2021, DINO,
    Fig. 1); class-token-free models: mean attention received."""
    return to_patch_map(work(rows), layout).float()


def prefix_share(rows: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """``[L, H]`` share of the map row's mass on prefix tokens (class, distillation,
    registers): high values flag attention sinks (Darcet et al. 2024, "Vision Transformers
    Need Registers")."""
    row = work(rows)
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


def rollout_maps(
    fused: torch.Tensor, layout: TokenLayout, discard: float = 0.0,
    rows: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fused rollout maps ``[L, gh, gw]`` and, given ``rows``, per-head rollout maps
    ``[L, H, gh, gw]``.

    Attention rollout (Abnar & Zuidema 2020, ACL, "Quantifying Attention Flow in
    Transformers") from the head-fused attention ``fused[l] = fuse_h(A_l)`` ``[L, N, N]``
    (:func:`fuse_heads`): ``Â_l = rownorm(0.5 · fuse_h(A_l) + 0.5 · I)`` (the identity models
    the residual connection; rows renormalised after discarding), ``R_l = Â_l ... Â_1``, and
    the map of block l is the map row of ``R_l``. Per-head rollout: head h of block l
    propagated through the blocks below it, map row of ``(0.5 A_lh + 0.5 I) R_(l-1)``
    (R_0 = I), from the heads' map rows ``rows`` ``[L, H, N]``.

    A map row is a row vector ``w^T M`` (:func:`map_row` is linear), so each map is a
    vector pushed down through the blocks below it, ``((w^T Â_l) Â_(l-1)) ... Â_1``: all
    L (H + 1) vectors move together, block by block from the top, in
    ``L^2 (H + 1) N^2 / 2`` multiply-adds instead of the ``L N^3`` of forming every ``R_l``
    (``L^2 N^2 / 2`` without the heads).
    """
    n_layers, n = fused.shape[0], fused.shape[-1]
    n_heads = 0 if rows is None else rows.shape[1]
    dtype = work(fused[:1, :1, :1]).dtype
    eye = torch.eye(n, dtype=dtype, device=fused.device)
    w = map_row(eye, layout)  # map_row(M) = w^T M

    def a_hat(i: int) -> torch.Tensor:
        a = discard_lowest(work(fused[i]), discard, layout)
        a = 0.5 * a + 0.5 * eye
        return a / a.sum(-1, keepdim=True)

    # vectors[l] = [fused map of block l; per-head maps of block l], each still to be
    # multiplied by Â_(l-1) ... Â_1 (the fused one also by its own Â_l, first)
    vectors = torch.empty(n_layers, 1 + n_heads, n, dtype=dtype, device=fused.device)
    if rows is not None:
        vectors[:, 1:] = 0.5 * work(rows).to(dtype) + 0.5 * w
    for i in reversed(range(n_layers)):
        a = a_hat(i)
        vectors[i, 0] = w @ a
        if i + 1 < n_layers:
            vectors[i + 1:] = vectors[i + 1:] @ a
    maps = to_patch_map(vectors, layout).float()
    return maps[:, 0], None if rows is None else maps[:, 1:]


def class_products(attn: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two head-fused products of one block's attention and its gradient
    ``∂y_c/∂A`` ``[..., H, N, N]``, all the class-specific methods need of that block:
    ``mean_h(A ⊙ ∂y_c/∂A)`` (gradient rollout) and ``mean_h((∂y_c/∂A ⊙ A)^+)``
    (relevance), each ``[..., N, N]``."""
    p = work(attn) * grad
    return p.mean(-3), p.clamp_min(0).mean(-3)


def grad_rollout_map(
    weighted: torch.Tensor, layout: TokenLayout, discard: float = 0.0
) -> torch.Tensor:
    """Gradient rollout (vit-explain, J. Gildenblat 2020): per block
    ``G_l = relu(mean_h(A_lh ⊙ ∂y_c/∂A_lh))``, discard, ``Ĝ_l = rownorm(0.5 G_l + 0.5 I)``,
    ``R = Ĝ_L ... Ĝ_1``; map row of R over patches. ``weighted`` ``[L, N, N]`` holds
    ``mean_h(A ⊙ ∂y_c/∂A)`` of every block (:func:`class_products`). As in
    :func:`rollout_maps`, the map row is pushed down from the top (vector products only)."""
    n = weighted.shape[-1]
    eye = torch.eye(n, dtype=weighted.dtype, device=weighted.device)
    v = map_row(eye, layout)
    for i in reversed(range(weighted.shape[0])):
        g = discard_lowest(weighted[i].clamp_min(0), discard, layout)
        g = 0.5 * g + 0.5 * eye
        v = v @ (g / g.sum(-1, keepdim=True))
    return to_patch_map(v, layout).float()


def relevance_map(cams: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021, "Generic
    Attention-model Explainability"), eq. 6-7: ``R_0 = I``,
    ``R_l = R_(l-1) + mean_h((∂y_c/∂A_lh ⊙ A_lh)^+) R_(l-1)``; map row of ``R_L`` over
    patches. ``cams`` ``[L, N, N]`` holds ``mean_h((∂y_c/∂A ⊙ A)^+)`` of every block
    (:func:`class_products`). ``R_L = (I + C_L) ... (I + C_1)``, so its map row is pushed
    down from the top: ``v <- v + v C_l``."""
    n = cams.shape[-1]
    v = map_row(torch.eye(n, dtype=cams.dtype, device=cams.device), layout)
    for i in reversed(range(cams.shape[0])):
        v = v + v @ cams[i]
    return to_patch_map(v, layout).float()
