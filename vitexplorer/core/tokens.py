"""High-norm artifact tokens (Darcet et al. 2024, "Vision Transformers Need Registers").

Large ViTs repurpose a few patch tokens of low information (about 2% of them, from the middle
layers on) as global stores: their output norm jumps to about 10x the others', and the class
token's attention piles onto them, so attention maps show bright specks on background. Per
block this module measures the norm of every output token, flags the patch tokens whose norm
exceeds ``factor`` times the median patch-token norm of that block, tells how much of each
head's map mass they absorb, and gives the head maps with them masked out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vitexplorer.core.capture import TokenLayout, as_batch, model_lock, token_layout

#: a token is an artifact when its norm exceeds this multiple of the block's median
#: patch-token norm (the paper's artifacts sit near 10x the others; for DINOv2 ViT-L it
#: separates them at an absolute norm of 150)
HIGH_NORM_FACTOR = 10.0


def token_norms(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """``[B, L, N]`` L2 norm of every token at the output of every block (one forward)."""
    pixels = as_batch(model, pixels)
    out: list[torch.Tensor | None] = [None] * len(model.blocks)

    def make(i: int):
        def hook(_m: nn.Module, _args, y: torch.Tensor) -> None:
            out[i] = torch.linalg.vector_norm(y.float(), dim=-1).cpu()
        return hook

    handles = [b.register_forward_hook(make(i)) for i, b in enumerate(model.blocks)]
    try:
        with model_lock(model), torch.inference_mode():
            model(pixels)
    finally:
        for h in handles:
            h.remove()
    return torch.stack(out, 1)


@dataclass
class ArtifactTokens:
    """The output-token norms of one image and the high-norm patch tokens of each block.

    ``norms`` ``[L, N]`` (prefix tokens first); ``median`` ``[L]`` median patch-token norm;
    ``flags`` bool ``[L, gh, gw]``: patch tokens above ``factor`` x median.
    """

    norms: np.ndarray
    median: np.ndarray
    flags: np.ndarray
    layout: TokenLayout
    factor: float

    def patch_norms(self) -> np.ndarray:
        """``[L, gh, gw]`` norms of the patch tokens (where they sit on the image)."""
        return self.norms[:, self.layout.num_prefix:].reshape(-1, *self.layout.grid)

    def attended(self) -> np.ndarray:
        """bool ``[L, gh, gw]``: the artifacts among the keys block l's attention reads,
        those flagged at the output of block l - 1 (none for block 0)."""
        keys = np.zeros_like(self.flags)
        keys[1:] = self.flags[:-1]
        return keys

    def listing(self) -> list[dict]:
        """Per block, the flagged tokens: row, column, norm and norm / median."""
        out = []
        pn = self.patch_norms()
        for li in range(len(self.flags)):
            rows, cols = np.nonzero(self.flags[li])
            out.append({"layer": li, "median_norm": float(self.median[li]),
                        "tokens": [{"row": int(r), "col": int(c), "norm": float(pn[li, r, c]),
                                    "ratio": float(pn[li, r, c] / self.median[li])}
                                   for r, c in zip(rows, cols, strict=True)]})
        return out


def find_artifacts(norms: np.ndarray, layout: TokenLayout,
                   factor: float = HIGH_NORM_FACTOR) -> ArtifactTokens:
    """Flag the patch tokens of each block whose output norm exceeds ``factor`` times the
    block's median patch-token norm (``norms`` ``[L, N]`` from :func:`token_norms`)."""
    norms = np.asarray(norms, np.float64)
    patch = norms[:, layout.num_prefix:]
    median = np.median(patch, axis=1)
    flags = (patch > factor * median[:, None]).reshape(-1, *layout.grid)
    return ArtifactTokens(norms, median, flags, layout, factor)


def absorbed_share(rows: np.ndarray, keys: np.ndarray, layout: TokenLayout) -> np.ndarray:
    """``[L, H]`` share of each head's map row (``rows`` ``[L, H, N]``, the class-token row
    or the mean attention received, all tokens) that lands on the artifact tokens ``keys``
    ``[L, gh, gw]`` (:meth:`ArtifactTokens.attended`): ``sum_{t in keys_l} a_lh[t] /
    sum_t a_lh[t]``."""
    rows = np.asarray(rows, np.float64)
    on = (rows[..., layout.num_prefix:] * keys.reshape(len(keys), 1, -1)).sum(-1)
    return on / np.maximum(rows.sum(-1), 1e-300)


def masked_maps(maps: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Head maps ``[L, H, gh, gw]`` with each block's artifact keys ``[L, gh, gw]`` set to 0
    and the rest renormalised to sum 1 (a map of only artifacts becomes all zero)."""
    m = np.where(keys[:, None], 0.0, np.asarray(maps, np.float64))
    total = m.sum(axis=(-1, -2), keepdims=True)
    return np.divide(m, total, out=np.zeros_like(m), where=total > 0)


def artifacts_of(model: nn.Module, pixels: torch.Tensor,
                 factor: float = HIGH_NORM_FACTOR) -> ArtifactTokens:
    """:func:`find_artifacts` of one image ``[1, 3, H, W]`` (or ``[3, H, W]``)."""
    norms = token_norms(model, pixels)[0].numpy()
    return find_artifacts(norms, token_layout(model, tuple(pixels.shape[-2:])), factor)
