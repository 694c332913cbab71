"""A capture that reduces each block's attention as the block runs, instead of keeping it:
the one the app runs (window, CLI, batch; :func:`vitexplorer.core.analysis.analyze`).

The full attention of ViT-L/16 at 384 px is 24 x 16 x 577^2 floats (0.5 GB); every map and
score of an :class:`~vitexplorer.core.analysis.Analysis` needs far less of it. As each block
runs, the hook keeps only:

- the heads' map rows ``map_row(A_l)`` ``[H, N]`` (head maps, per-head rollout, sinks),
- the head-mean matrix ``mean_h(A_l)`` ``[N, N]`` (fused rollout),
- each head's mean attention distance and row entropy (local / global / uniform),
- the arguments the block's attention module was called with (``[N, D]`` per image), so
  any block's full attention can be recomputed on demand from them alone
  (:func:`layer_attention`: a patch query, max/min head fusion) without a new forward.

The gradient methods likewise keep only :func:`~vitexplorer.core.rollout.class_products`
per block, formed in a gradient hook during the backward (:func:`class_products`).
"""

from __future__ import annotations

import os
import threading
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn

from vitexplorer.core import chunked_attention
from vitexplorer.core import rollout as ro
from vitexplorer.core.capture import (
    FULL_PRECISION_LIMIT,
    StopCheck,
    TokenLayout,
    as_batch,
    attention_modules,
    check_tokens,
    recording,
    token_layout,
)
from vitexplorer.core.errors import ModelError, UsageError
from vitexplorer.core.maps import patch_distances, range_means, range_sums

#: What one attention module was called with: positional and keyword arguments.
Call = tuple[tuple, dict]


@dataclass
class Streamed:
    """What :func:`stream` keeps of one forward over a batch of ``B`` images (CPU tensors
    except ``calls``, which stay on the model's device).

    ``rows`` ``[B, L, H, N]``; ``fused`` ``[B, L, N, N]`` (mean over heads; float16 above
    :data:`~vitexplorer.core.capture.FULL_PRECISION_LIMIT`: ViT-B/16 at 1024 px would keep
    805 MB, rounding 5e-4 relative, rollout computes in float32); ``distance``
    (input pixels), ``entropy`` and ``distance_z`` ``[B, L, H]`` (None when not asked for);
    ``calls[l]`` block l's attention call (``calls`` None when not asked for).
    """

    rows: torch.Tensor
    fused: torch.Tensor
    distance: torch.Tensor | None
    entropy: torch.Tensor | None
    logits: torch.Tensor
    layout: TokenLayout
    patch_size: tuple[int, int]
    calls: list[Call] | None
    distance_z: torch.Tensor | None = None


def _record_calls(model: nn.Module, calls: list[Call | None], stack: ExitStack) -> None:
    """Keep what each attention module is called with (hooks removed when ``stack``
    closes). The token input of every block is copied into one buffer allocated at the first
    block: kept as the model's own tensors, the blocks' inputs would pin the allocator's heap
    between the large attention temporaries of the forward, and the process would keep tens
    of MB more than it holds (measured on ViT-L/16 @384)."""
    buffer: list[torch.Tensor] = []
    owner = threading.get_ident()

    def make(i: int):
        def pre_hook(_mod: nn.Module, args: tuple, kwargs: dict) -> None:
            if threading.get_ident() != owner:  # another thread's plain forward
                return
            x = args[0]
            if not buffer:
                buffer.append(torch.empty(len(calls), *x.shape, dtype=x.dtype,
                                          device=x.device))
            buffer[0][i].copy_(x)
            calls[i] = ((buffer[0][i], *args[1:]), kwargs)
        return pre_hook

    for i, m in enumerate(attention_modules(model)):
        stack.callback(m.register_forward_pre_hook(make(i), with_kwargs=True).remove)


def stream(model: nn.Module, pixels: torch.Tensor, should_stop: StopCheck = None,
           ranges: bool = True, keep_inputs: bool = True) -> Streamed:
    """One forward of ``pixels`` ``[B, 3, H, W]``, reducing each block's attention as it is
    made (see the module docstring); ``should_stop`` is polled after every block.
    ``ranges=False`` skips the distance and entropy statistics (the head scores' only use
    of the full attention); ``keep_inputs=False`` keeps no block inputs (nothing can be
    recomputed then: a batch, which never needs to).

    The families of :mod:`~vitexplorer.core.chunked_attention` are reduced a chunk of query
    rows at a time, inside the attention itself; the others from timm's materialised
    attention (:func:`~vitexplorer.core.capture.recording`)."""
    pixels = as_batch(model, pixels)
    layout = token_layout(model, tuple(pixels.shape[-2:]))
    gh, gw = layout.grid
    patch_size = (pixels.shape[-2] // gh, pixels.shape[-1] // gw)
    n_blocks = len(model.blocks)
    check_memory(len(pixels), n_blocks, layout)
    dist = patch_distances(layout.grid, patch_size).to(pixels.device)
    out: dict[str, torch.Tensor] = {}
    calls: list[Call | None] = [None] * n_blocks

    def sink(i: int, r0: int, p: torch.Tensor, scores: torch.Tensor | None = None) -> None:
        """Reduce query rows ``r0 : r0 + rows`` of block i's attention ``p`` [B, H, rows, N]
        (the softmax of ``scores`` where the chunked attention has them)."""
        b, h, rows, n = p.shape
        if not out:
            check_tokens(n, layout)
            out["rows"] = torch.zeros(b, n_blocks, h, n)
            out["fused"] = torch.empty(b, n_blocks, n, n, dtype=fused_dtype(b, n_blocks, n))
            if ranges:
                out["distance"] = torch.zeros(b, n_blocks, h)
                out["entropy"] = torch.zeros(b, n_blocks, h)
                out["distance_z"] = torch.zeros(b, n_blocks, h)
        if layout.has_class_token:  # map_row: the class-token row ...
            if r0 == 0:
                out["rows"][:, i] = p[:, :, 0]
        else:  # ... or the mean over query rows (divided once every row is in)
            out["rows"][:, i] += p.sum(-2).cpu()
            if r0 + rows == n:
                out["rows"][:, i] /= n
        out["fused"][:, i, r0:r0 + rows] = p.mean(1)
        if ranges:
            for key, total in zip(("distance", "entropy", "distance_z"),
                                  range_sums(p, r0, layout, dist, scores), strict=True):
                out[key][:, i] += total.cpu()

    with ExitStack() as stack:
        if chunked_attention.supports(model):
            stack.enter_context(chunked_attention.recording(model, sink, should_stop))
        else:
            stack.enter_context(recording(model, should_stop=should_stop,
                                          sink=lambda i, attn: sink(i, 0, attn)))
        if keep_inputs:
            _record_calls(model, calls, stack)
        with torch.inference_mode():
            logits = model(pixels)
    distance = entropy = distance_z = None
    if ranges:
        distance, entropy, distance_z = range_means(
            out["distance"], out["entropy"], out["distance_z"], gh * gw)
    return Streamed(out["rows"], out["fused"], distance, entropy, logits.float().cpu(),
                    layout, patch_size, calls if keep_inputs else None, distance_z)


def fused_dtype(b: int, n_blocks: int, n: int) -> torch.dtype:
    """float16 for a head-mean store over :data:`FULL_PRECISION_LIMIT` bytes in float32."""
    return torch.float16 if b * n_blocks * n * n * 4 > FULL_PRECISION_LIMIT else torch.float32


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say: Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(b: int, n_blocks: int, layout: TokenLayout) -> None:
    """Raise :class:`ModelError` before the forward when the head-mean store of ``b``
    images (``[b, L, N, N]``, in the CPU's memory whatever the device) exceeds the
    machine's RAM: it could never be allocated, and the forward's allocator error would
    name no cause (an --input-size of 4096 on a /16 model: 65 538 tokens, 103 GB)."""
    n = layout.num_tokens
    need = b * n_blocks * n * n * fused_dtype(b, n_blocks, n).itemsize
    have = physical_memory()
    if have is not None and need > have:
        gh, gw = layout.grid
        raise ModelError(f"the attention kept for {b} image(s) of {n} tokens ({gh}x{gw} "
                         f"patches) over {n_blocks} blocks needs {need / 2**30:.1f} GiB, more "
                         f"than this machine's {have / 2**30:.1f} GiB of memory; use a "
                         "smaller input size (--input-size)"
                         + (" or batch size (--batch-size)" if b > 1 else ""))


def layer_attention(model: nn.Module, layer: int, call: Call) -> torch.Tensor:
    """Block ``layer``'s full attention ``[B, H, N, N]`` (CPU, float32), recomputed from the
    arguments its attention module got in a :func:`stream` (the same operations on the same
    inputs: equal to what that forward made)."""
    got: list[torch.Tensor] = []
    module = attention_modules(model)[layer]
    with recording(model, sink=lambda i, a: got.append(a)), torch.inference_mode():
        module(*call[0], **call[1])
    return got[0].float().cpu()


def class_products(model: nn.Module, pixels: torch.Tensor, targets: list[int],
                   should_stop: StopCheck = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward and one backward of the ``targets`` logits (one class per image); returns
    :func:`~vitexplorer.core.rollout.class_products` of every block, ``[B, L, N, N]`` each
    (``mean_h(A ⊙ ∂y/∂A)`` and ``mean_h((∂y/∂A ⊙ A)^+)``), formed in a gradient hook so
    neither the attention nor its gradient is kept."""
    if not getattr(model, "num_classes", 0):
        raise UsageError("grad-rollout and relevance explain a class, and the model has no "
                         "classifier head (num_classes 0, a backbone such as DINOv2's); use "
                         "head, head-rollout or rollout")
    if torch.is_inference_mode_enabled():
        raise RuntimeError("class-specific maps need gradients: call outside inference_mode")
    pixels = as_batch(model, pixels)
    n_blocks = len(model.blocks)
    out: dict[str, torch.Tensor] = {}

    def sink(i: int, attn: torch.Tensor) -> None:
        kept = attn.detach()

        def on_grad(grad: torch.Tensor) -> None:
            b, _, n, _ = grad.shape
            if not out:
                out["weighted"] = torch.zeros(b, n_blocks, n, n)
                out["cams"] = torch.zeros(b, n_blocks, n, n)
            weighted, cams = ro.class_products(kept, grad)
            out["weighted"][:, i], out["cams"][:, i] = weighted.cpu(), cams.cpu()

        if attn.requires_grad:
            attn.register_hook(on_grad)

    # Differentiating with respect to the pixels alone runs the backward through every
    # attention map (each lies on a path from the logits to the input) but accumulates no
    # parameter gradients (a ViT-L would need 1.2 GB for them).
    pixels = pixels.detach().requires_grad_(True)
    with recording(model, should_stop=should_stop, sink=sink), torch.enable_grad():
        logits = model(pixels)
        index = torch.tensor(targets, device=logits.device)[:, None]
        torch.autograd.grad(logits.gather(1, index).sum(), pixels)
    return out["weighted"], out["cams"]
