"""Attention computed a few query rows at a time, each chunk of probabilities handed to a
reducer while it is still in cache: the streamed capture's path for the families below.

timm's non-fused attention (what a hook on ``attn_drop`` needs) writes ``softmax(q k^T)`` of
every head to memory (ViT-S/16 at 480 px: 6 x 901^2 floats, 19 MB per block), reads it back
for ``attn @ v``, and every reduction of the capture reads it again. Here the model runs its
fused branch, and its call of ``F.scaled_dot_product_attention`` inside a captured block is
answered by :func:`attention`: for query rows ``r0:r1`` of all heads,
``P = softmax(q[r0:r1] k^T · scale + mask[r0:r1])`` (Vaswani et al. 2017, eq. 1, with
torch's ``attn_mask`` semantics: a float mask is added, a bool mask keeps True entries),
``out[r0:r1] = P v``, and ``sink(r0, P, S)`` with ``S`` the scores ``P`` is the softmax of
(None where a mask makes some of them infinite). Only a chunk of ``P`` ever exists
(:data:`CHUNK_ELEMENTS`).

The call is intercepted with a :class:`~torch.overrides.TorchFunctionMode` (thread-local:
other threads and models in the process are untouched) and only while a captured block's
attention module runs (SigLIP's pooling head also calls it and is left alone). Families
whose attention modules are not in :data:`CHUNKED_MODULES` keep the hook path of
:func:`vitexplorer.core.capture.recording`; ``tests/core/test_stream.py`` checks every listed
family against it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from vitexplorer.core.capture import StopCheck, attention_modules, model_lock
from vitexplorer.core.errors import Cancelled

#: (module, class name) of the attention modules whose fused branch is one
#: ``F.scaled_dot_product_attention(q, k, v, attn_mask=..., dropout_p=...)`` on ``[B, H, N, d]``
#: after every projection, norm, rotary embedding (EVA) and relative bias (BEiT, as the mask)
CHUNKED_MODULES = {
    ("timm.layers.attention", "Attention"),  # ViT, DeiT, DINO(v2), CLIP, SigLIP, *_gap_*
    ("timm.models.eva", "EvaAttention"),
    ("timm.models.beit", "Attention"),
}

#: elements of one chunk of probabilities ``[B, H, rows, N]`` (float32: 4 MB, within L3).
#: ViT-S/16 at 480 px on one thread: 2^18 to 2^20 cost the same, 2^16 9% more, 2^22 18% more;
#: fewer chunks mean fewer thread barriers when other processes share the cores
CHUNK_ELEMENTS = 2**20

#: ``sink(r0, p, s)``: ``p`` ``[B, H, rows, N]`` are the probabilities of query rows
#: ``r0 : r0 + rows`` of every head and ``s`` the finite scores they are the softmax of, or
#: None (valid during the call only: copy what is kept)
ChunkSink = Callable[[int, torch.Tensor, torch.Tensor | None], None]


def supports(model: nn.Module) -> bool:
    """Whether every captured attention module of ``model`` is one :func:`recording` answers."""
    return all((type(m).__module__, type(m).__name__) in CHUNKED_MODULES
               and hasattr(m, "fused_attn") for m in attention_modules(model))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sink: ChunkSink,
              attn_mask: torch.Tensor | None = None, scale: float | None = None,
              rows: int | None = None) -> torch.Tensor:
    """``softmax(q k^T · scale + attn_mask) v`` for ``q``, ``k``, ``v`` ``[B, H, N, d]``
    (``scale`` defaults to ``d^-1/2`` as in torch), ``rows`` query rows at a time (default:
    :data:`CHUNK_ELEMENTS` per chunk), each chunk's probabilities and scores given to
    ``sink`` (no scores when the mask holds infinities)."""
    b, h, n, d = q.shape
    if rows is None:
        rows = max(1, CHUNK_ELEMENTS // (b * h * k.shape[-2]))
    q = q * (d ** -0.5 if scale is None else scale)
    kt = k.transpose(-2, -1)
    finite = attn_mask is None or (attn_mask.is_floating_point()
                                   and bool(torch.isfinite(attn_mask).all()))
    # [B, N, H, d] memory: the caller's transpose(1, 2).reshape is then a view
    out = torch.empty(b, n, h, v.shape[-1], dtype=v.dtype, device=v.device).transpose(1, 2)
    for r0 in range(0, n, rows):
        s = torch.matmul(q[:, :, r0:r0 + rows], kt)
        if attn_mask is not None:  # [..., N or 1, N], broadcast over batch and heads
            m = attn_mask if attn_mask.shape[-2] == 1 else attn_mask[..., r0:r0 + rows, :]
            if m.dtype == torch.bool:
                s.masked_fill_(~m, float("-inf"))
            else:
                s += m
        p = s.softmax(-1)
        out[:, :, r0:r0 + rows] = torch.matmul(p, v)
        sink(r0, p, s if finite else None)
    return out


class _Intercept(TorchFunctionMode):
    """Answers ``F.scaled_dot_product_attention`` with :func:`attention` while ``block`` is
    set (by the attention modules' hooks); every other call passes through."""

    def __init__(self, sink: Callable[[int, int, torch.Tensor, torch.Tensor | None], None]):
        super().__init__()
        self.sink = sink
        self.block: int | None = None
        self.answered = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention or self.block is None:
            return func(*args, **kwargs)
        q, k, v, *rest = args
        named = dict(zip(("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"),
                         rest, strict=False)) | kwargs
        if named.get("dropout_p", 0.0) or named.get("is_causal") or named.get("enable_gqa"):
            raise RuntimeError("chunked attention: dropout, causal masks and grouped heads "
                               "are not supported (is the model in eval mode?)")
        i = self.block
        self.answered = True
        return attention(q, k, v, lambda r0, p, s: self.sink(i, r0, p, s),
                         named.get("attn_mask"), named.get("scale"))


@contextmanager
def recording(model: nn.Module,
              sink: Callable[[int, int, torch.Tensor, torch.Tensor | None], None],
              should_stop: StopCheck = None) -> Iterator[None]:
    """Forwards inside the ``with`` give ``sink(block, r0, p, s)`` every chunk of every captured
    block's attention (:func:`attention`); ``should_stop`` is polled after each block (True:
    :class:`Cancelled`). The fused branch is switched on for the captured modules and each
    module's ``fused_attn`` restored afterwards (as :func:`.capture.recording` does)."""
    modules = attention_modules(model)
    mode = _Intercept(sink)
    handles = []
    owner = threading.get_ident()

    def make_pre(i: int):
        def pre(_mod: nn.Module, _args: tuple) -> None:
            if threading.get_ident() == owner:  # another thread's forward is not recorded
                mode.block, mode.answered = i, False
        return pre

    def post(_mod: nn.Module, _args: tuple, _out: torch.Tensor) -> None:
        if threading.get_ident() != owner:
            return
        mode.block = None
        if not mode.answered:
            raise RuntimeError(f"{type(_mod).__name__} made no scaled_dot_product_attention "
                               "call: this family needs the hook path (capture.recording)")
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled")

    with model_lock(model):
        previous = [m.fused_attn for m in modules]
        try:
            for i, m in enumerate(modules):
                m.fused_attn = True
                handles.append(m.register_forward_pre_hook(make_pre(i)))
                handles.append(m.register_forward_hook(post))
            with mode:
                yield
        finally:
            for handle in handles:
                handle.remove()
            for m, prev in zip(modules, previous, strict=True):
                m.fused_attn = prev
