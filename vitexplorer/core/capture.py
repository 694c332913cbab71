"""One forward that records the attention probabilities of every block and head.

timm's fused attention (``scaled_dot_product_attention``) never materialises the weights, so
capture sets ``fused_attn = False`` on the captured model's own attention modules (an
instance attribute: other models in the process are untouched) and restores each module's
previous value afterwards. A forward hook on each ``attn.attn_drop`` (applied right after the
softmax in every timm ViT family) reads ``softmax(q k^T * scale + bias)``.

Two captures run on these hooks. The app (window, CLI, batch) runs
:func:`vitexplorer.core.stream.stream`, which reduces each block's attention as it is made.
:func:`capture` keeps every attention matrix, ``[B, L, H, N, N]``: the public "give me all of
it" call for notebooks, and the reference the tests check the streamed reductions against.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from vitexplorer.core.errors import Cancelled
from vitexplorer.core.models import check_supported

StopCheck = Callable[[], bool] | None


@dataclass(frozen=True)
class TokenLayout:
    """Which tokens come first in the sequence (timm order: class, distillation, registers).

    ``num_prefix`` counts every non-patch token; ``grid`` = (rows, cols) of patch tokens.
    """

    num_prefix: int
    has_class_token: bool
    num_distill: int
    num_registers: int
    grid: tuple[int, int]

    @property
    def num_tokens(self) -> int:
        return self.num_prefix + self.grid[0] * self.grid[1]


#: Above this size (bytes, float32) the captured attention is stored as float16: ViT-L/16 at
#: 384 px would hold 24 x 16 x 577^2 floats = 0.5 GB (relative rounding 5e-4 then).
FULL_PRECISION_LIMIT = 256 * 2**20


@dataclass
class Capture:
    """The full attention of one captured forward for a batch of images.

    ``attentions``: ``[B, L, H, N, N]`` on the CPU, rows = queries, prefix tokens first;
    float32, or float16 above :data:`FULL_PRECISION_LIMIT`. (An :class:`Analysis` keeps
    far less: see :mod:`vitexplorer.core.stream`.)
    """

    attentions: torch.Tensor
    logits: torch.Tensor
    layout: TokenLayout


_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.Lock:
    """One lock per model: hooks and the fused flag are per module, so two threads must not
    record on the same model at once (a superseded GUI job finishes or cancels first)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
        return lock


def attention_modules(model: nn.Module) -> list[nn.Module]:
    check_supported(model)
    return [b.attn for b in model.blocks]


def token_layout(model: nn.Module, input_hw: tuple[int, int]) -> TokenLayout:
    """Prefix-token layout and patch grid of ``model`` for an input of ``input_hw`` pixels."""
    num_prefix = int(getattr(model, "num_prefix_tokens", 1))
    has_cls = getattr(model, "cls_token", None) is not None
    num_distill = 1 if getattr(model, "dist_token", None) is not None else 0
    # the rest are registers (EVA keeps their count in reg_token alone, no num_reg_tokens)
    num_reg = num_prefix - int(has_cls) - num_distill
    pe = model.patch_embed
    if getattr(model, "dynamic_img_size", False) and hasattr(pe, "dynamic_feat_size"):
        grid = tuple(pe.dynamic_feat_size(input_hw))
    else:
        grid = tuple(pe.grid_size)
    return TokenLayout(num_prefix, has_cls, num_distill, num_reg, (int(grid[0]), int(grid[1])))


@contextmanager
def recording(
    model: nn.Module, should_stop: StopCheck = None,
    sink: Callable[[int, torch.Tensor], None] | None = None,
) -> Iterator[list[torch.Tensor | None]]:
    """Record each block's attention probabilities during forwards inside the ``with``.

    Yields a list filled in block order (detached). Only forwards of the calling thread are
    recorded: a plain forward another thread runs meanwhile (an evaluation's perturbed
    images) passes through untouched. Non-fused attention and the hooks live
    only inside the context; every module's ``fused_attn`` is restored to its own previous
    value. ``should_stop`` is polled after every block; when it returns True the forward is
    abandoned by raising :class:`Cancelled` (a user's Cancel takes effect within one block).
    ``sink(i, attention)``, when given, receives each block's attention tensor itself
    instead of the list (to reduce it or copy it away at once, or to hook its gradient).
    """
    modules = attention_modules(model)
    store: list[torch.Tensor | None] = [None] * len(modules)
    handles = []
    owner = threading.get_ident()

    def make_hook(i: int):
        def hook(_mod: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            if threading.get_ident() != owner:  # another thread's plain forward
                return
            if sink is not None:
                sink(i, out)
            else:
                store[i] = out.detach()
            if should_stop is not None and should_stop():
                raise Cancelled("cancelled")
        return hook

    with model_lock(model):
        previous = [m.fused_attn for m in modules]
        try:
            for i, m in enumerate(modules):
                m.fused_attn = False
                handles.append(m.attn_drop.register_forward_hook(make_hook(i)))
            yield store
        finally:
            for h in handles:
                h.remove()
            for m, prev in zip(modules, previous, strict=True):
                m.fused_attn = prev


def capture(model: nn.Module, pixels: torch.Tensor, should_stop: StopCheck = None) -> Capture:
    """Run ``model`` on ``pixels`` ``[B, 3, H, W]`` and return every head's full attention."""
    pixels = as_batch(model, pixels)
    layout = token_layout(model, tuple(pixels.shape[-2:]))
    n_blocks = len(model.blocks)
    buffer: list[torch.Tensor] = []

    def sink(i: int, attn: torch.Tensor) -> None:
        """Copy block i's attention into one [B, L, H, N, N] CPU tensor as it is made."""
        if not buffer:
            b, h, n, _ = attn.shape
            dtype = torch.float16 if b * n_blocks * h * n * n * 4 > FULL_PRECISION_LIMIT \
                else torch.float32
            buffer.append(torch.empty(b, n_blocks, h, n, n, dtype=dtype))
        buffer[0][:, i].copy_(attn)

    with recording(model, should_stop=should_stop, sink=sink), torch.inference_mode():
        logits = model(pixels)
    check_tokens(buffer[0].shape[-1], layout)
    return Capture(buffer[0], logits.float().cpu(), layout)


def as_batch(model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """``pixels`` as ``[B, 3, H, W]`` on the model's device (after checking the model)."""
    check_supported(model)
    if pixels.ndim == 3:
        pixels = pixels[None]
    return pixels.to(next(model.parameters()).device)


def check_tokens(n: int, layout: TokenLayout) -> None:
    if n != layout.num_tokens:
        raise RuntimeError(f"captured {n} tokens but the layout expects {layout.num_tokens}")
