"""Statistics of attention maps shared by the capture, the head scores and the views.

Engine layer (see :mod:`vitexplorer.core`): the streamed capture (:mod:`~vitexplorer.core.stream`)
computes :func:`range_stats` as each block runs; the head scores (:mod:`~vitexplorer.core.heads`),
the masks and the GUI's head panel read :func:`mass_region` and :func:`map_entropy`. Importing
this module does not import torch (the window starts without it).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from vitexplorer.core.constants import MASS_SHARE

if TYPE_CHECKING:
    import torch

    from vitexplorer.core.capture import TokenLayout


def mass_region(grid_map: np.ndarray, mass: float = MASS_SHARE) -> np.ndarray:
    """Boolean mask of the fewest patches holding ``mass`` of the map's total
    (Caron et al. 2021, DINO: "we keep 60% of the mass"): sort descending, keep while the
    cumulative sum is below ``mass`` plus the patch that crosses it.

    Works on one map ``[gh, gw]`` or a stack ``[..., gh, gw]`` at once (vectorised).
    """
    m = np.asarray(grid_map, dtype=np.float64)
    shape = m.shape
    flat = m.reshape(-1, shape[-2] * shape[-1])
    total = flat.sum(-1, keepdims=True)
    share = np.divide(flat, total, out=np.zeros_like(flat), where=total > 0)
    order = np.argsort(-share, axis=-1, kind="stable")
    csum = np.cumsum(np.take_along_axis(share, order, -1), axis=-1)
    keep = (csum < mass - 1e-12).sum(-1, keepdims=True) + 1  # ... plus the crossing patch
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[-1])[None].repeat(len(flat), 0), -1)
    out = (ranks < keep) & (total > 0)
    return out.reshape(shape)



def map_entropy(maps: np.ndarray) -> np.ndarray:
    """Normalised Shannon entropy ``H(A) / log(n)`` of each map over its n patches
    (1 = uniform, 0 = one patch), for ``[..., gh, gw]``."""
    m = np.asarray(maps, np.float64)
    flat = m.reshape(*m.shape[:-2], -1)
    flat = flat / np.maximum(flat.sum(-1, keepdims=True), 1e-12)
    h = -(flat * np.log(np.maximum(flat, 1e-30))).sum(-1)
    return h / np.log(flat.shape[-1])



@lru_cache(maxsize=8)
def patch_distances(grid: tuple[int, int], patch_size: tuple[int, int]) -> torch.Tensor:
    """``[P, P]`` distances in input pixels between the centres of a grid's patches."""
    import torch

    gh, gw = grid
    ys, xs = np.meshgrid((np.arange(gh) + 0.5) * patch_size[0],
                         (np.arange(gw) + 0.5) * patch_size[1], indexing="ij")
    pos = torch.from_numpy(np.stack([ys.ravel(), xs.ravel()], -1)).float()
    return torch.cdist(pos, pos)


def range_stats(attn: torch.Tensor, layout: TokenLayout, dist: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean attention distance (Raghu et al. 2021, "Do Vision Transformers See Like
    Convolutional Neural Networks?", Fig. 3), row entropy and the distance's shuffle
    z-score of the heads of one block ``attn`` ``[..., H, N, N]``, each ``[..., H]``:
    ``d = mean_i sum_j A'_ij ||p_i - p_j||`` over patch queries i and patch keys j, with A'
    the rows renormalised over patches, p the patch centres in input pixels (``dist`` =
    :func:`patch_distances`), and ``e = mean_i H(A'_i) / log(n_patches)``.

    ``z = mean_i (d_i - E_i) / sqrt(V_i)``: how far each query's distance lies beyond the
    same row shuffled over the n patch keys, in standard deviations of the shuffled rows
    (the null of the class-token scores, :func:`vitexplorer.core.heads.shuffle_z`, applied to
    every query's row: a random permutation of the row's values keeps its own sharpness).
    With ``D_i = dist[i]``, ``E_i = mean_j D_ij`` and
    ``V_i = (sum_j A'_ij^2 - 1/n) sum_j (D_ij - E_i)^2 / (n - 1)`` (the permutation moments
    of a linear statistic, Hoeffding 1948); a row with ``V_i = 0`` (uniform) counts 0. Local
    heads lie far below their shuffled rows (z << 0), heads that look far away above them.

    The streamed capture forms the same sums chunk by chunk as each block runs
    (:func:`range_sums`); here a few heads at a time, so the temporaries stay near 4 MB.
    """
    import torch

    n = attn.shape[-1] - layout.num_prefix
    step = max(1, 2**20 // max(1, attn[..., 0, :, :].numel()))
    parts = [range_sums(attn[..., h:h + step, :, :], 0, layout, dist)
             for h in range(0, attn.shape[-3], step)]
    return range_means(*(torch.cat(x, -1) for x in zip(*parts, strict=True)), n)


def range_means(d: torch.Tensor, ent: torch.Tensor, z: torch.Tensor, n: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sums of :func:`range_sums` over every query row of a block as the statistics of
    :func:`range_stats`: means over the ``n`` patch rows, the entropy also over ``log n``."""
    return d / n, ent / (n * math.log(n)), z / n


def range_sums(chunk: torch.Tensor, first_row: int, layout: TokenLayout, dist: torch.Tensor,
               logits: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sums over query rows behind :func:`range_stats`, of the query rows
    ``first_row : first_row + rows`` in ``chunk`` ``[..., H, rows, N]`` (prefix rows are
    skipped): ``sum_i d_i``, ``sum_i H(A'_i)`` (natural log) and ``sum_i z_i``, ``[..., H]``
    each; summed over every chunk of a block and divided by the patch count (the entropy
    also by ``log(n_patches)``) they are :func:`range_stats`.

    ``logits``: the finite scores ``S`` the chunk is the softmax of (the chunked attention
    has them). Then ``log A_ij = S_ij - L_i`` with ``L_i = logsumexp_j S_ij``, so the
    entropy needs no logarithm per element: ``sum_j A_ij log A_ij = sum_j A_ij S_ij - L_i
    s_i`` over patch keys (``s_i`` their mass), and ``L_i = max_j S_ij - log max_j A_ij``
    (softmax keeps the order; ``max_j A_ij >= 1/N``: no underflow). The per-element log
    was two thirds of this function's time."""
    import torch

    p = layout.num_prefix
    skip = max(0, p - first_row)
    c = chunk[..., skip:, p:].float()  # rows are renormalised analytically below
    i0 = first_row + skip - p  # patch index of the first query row kept
    dist = dist[i0:i0 + c.shape[-2]].to(c.device)
    n = c.shape[-1]
    expect = dist.mean(-1)  # E_i
    spread = ((dist - expect[:, None]) ** 2).sum(-1) / max(n - 1, 1)
    s = c.sum(-1).clamp_min_(1e-12)  # row mass on patches
    # with A' = A / s: sum_j A'_ij d_ij = (sum_j A_ij d_ij) / s_i and
    # H(A'_i) = (sum_j -A_ij log A_ij) / s_i + log s_i  (no normalised copy is made;
    # in-place steps and no xlogy or entr: each measured faster on these sizes)
    di = torch.linalg.vecdot(c, dist).div_(s)
    var = (torch.linalg.vecdot(c, c) / (s * s) - 1.0 / n).clamp_min_(0.0) * spread
    sd = var.sqrt()
    z = torch.where(sd > 1e-6, (di - expect) / sd.clamp_min(1e-6), torch.zeros_like(sd))
    if logits is None:
        neg_ent = c.clamp_min(1e-30).log_().mul_(c).sum(-1)
    else:
        # softmax is monotone: the largest probability sits at the largest score
        lse = (logits[..., skip:, :].amax(-1)
               - chunk[..., skip:, :].amax(-1).float().log())
        neg_ent = torch.linalg.vecdot(c, logits[..., skip:, p:].float()) - lse * s
    return di.sum(-1), (torch.log(s) - neg_ent / s).sum(-1), z.sum(-1)
