"""Head importance by ablation: remove one head's output and see how the prediction moves.

For block l and head h the head's slice of the attention output (the input of
``attn.proj``) is set to zero (Michel et al. 2019, "Are Sixteen Heads Really Better than
One?"). Reported per head: the drop in the target class log-probability
``log p_c(x) - log p_c(x; h ablated)`` and ``KL(p(x) || p(x; h ablated))``.

Cost: the activations entering each block are recorded in one forward; the H ablations of
block l then run blocks l..L-1 only, batched H at a time. That is H * sum_l (L - l) block
evaluations = H (L + 1) / 2 forward-equivalents instead of L * H full forwards.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from vitexplorer.core.capture import StopCheck, model_lock
from vitexplorer.core.errors import Cancelled, UsageError
from vitexplorer.core.models import check_supported


def _tail(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Final norm and classifier, shared by the ViT, EVA and BEiT families in timm."""
    return model.forward_head(model.norm(x))


@contextmanager
def _ablate(attn: nn.Module, heads: int):
    """Zero head b's slice of the projection input for batch element b."""
    def pre(_mod, args):
        o = args[0]
        b, n, c = o.shape
        hd = c // heads
        o = o.view(b, n, heads, hd).clone()
        idx = torch.arange(b, device=o.device)
        o[idx, :, idx % heads, :] = 0
        return (o.view(b, n, c),)

    handle = attn.proj.register_forward_pre_hook(pre)
    try:
        yield
    finally:
        handle.remove()


def head_importance(
    model: nn.Module, pixels: torch.Tensor, target: int | None = None,
    should_stop: StopCheck = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """``{"logprob_drop": [L, H], "kl": [L, H], "target": int}`` for one image ``[1, 3, H, W]``.

    ``progress(done, total)`` is called after each block with the heads ablated so far of
    the ``L * H`` (a window's determinate progress bar).
    """
    check_supported(model)
    if not getattr(model, "num_classes", 0):
        raise UsageError("head importance is the drop in a class's log-probability, and the "
                         "model has no classifier head (num_classes 0, a backbone such as "
                         "DINOv2's)")
    blocks = model.blocks
    n_heads = blocks[0].attn.num_heads
    inputs: list[tuple] = []
    handles = [b.register_forward_pre_hook(
        lambda _m, args, kwargs: inputs.append((args, kwargs)), with_kwargs=True)
        for b in blocks]
    with model_lock(model), torch.inference_mode():
        try:
            logits = model(pixels)
        finally:
            for h in handles:
                h.remove()
        logp = F.log_softmax(logits.float(), -1)[0]
        target = int(logp.argmax()) if target is None else target
        drop = torch.zeros(len(blocks), n_heads)
        kl = torch.zeros(len(blocks), n_heads)
        for li in range(len(blocks)):
            if should_stop is not None and should_stop():
                raise Cancelled("cancelled")
            args, kwargs = inputs[li]
            x = args[0].expand(n_heads, *args[0].shape[1:])
            rest = tuple(a.expand(n_heads, *a.shape[1:]) if isinstance(a, torch.Tensor) and
                         a.shape[:1] == (1,) and a.ndim >= 3 else a for a in args[1:])
            with _ablate(blocks[li].attn, n_heads):
                x = blocks[li](x, *rest, **kwargs)
            for blk in blocks[li + 1:]:
                x = blk(x, *rest, **kwargs)
            lp = F.log_softmax(_tail(model, x).float(), -1)
            drop[li] = logp[target] - lp[:, target]
            kl[li] = (logp.exp() * (logp - lp)).sum(-1)
            if progress is not None:
                progress((li + 1) * n_heads, len(blocks) * n_heads)
    return {"logprob_drop": drop, "kl": kl, "target": target}
