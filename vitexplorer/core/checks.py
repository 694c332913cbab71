"""Up-front checks of user options against a loaded model, before any work is done.

An index the model does not have is an error, never wrapped silently into another layer;
negative indices count from the end and come back as the index they mean, so file names
and captions say the layer that was drawn.
"""

from __future__ import annotations

import torch

from vitexplorer.core.errors import ModelError, UsageError
from vitexplorer.core.models import LoadedModel


def check_index(value: int, count: int, option: str, what: str) -> int:
    """``value`` as an index in ``0..count-1`` (negative from the end), or a
    :class:`UsageError` naming ``option`` and the valid range."""
    if -count <= value < count:
        return value % count
    raise UsageError(f"{option} {value} is out of range: the model has {count} {what} "
                     f"(0..{count - 1}, or -{count}..-1 from the end)")


def check_class(target: int | None, loaded: LoadedModel) -> int | None:
    """A target class the model's head has (0..num_classes-1), or None for top-1."""
    if target is None:
        return None
    n = int(getattr(loaded.model, "num_classes", 0) or 0)
    if n == 0:
        raise UsageError(f"--class {target}: the model '{loaded.label}' has no classifier "
                         "head, so there is no class to explain")
    if not 0 <= target < n:
        raise UsageError(f"--class {target} is out of range: the model has {n} classes "
                         f"(0..{n - 1})")
    return target


def check_resize(policy: str, loaded: LoadedModel) -> None:
    """``native`` needs a model whose token grid follows the input size."""
    if policy == "native" and not getattr(loaded.model, "dynamic_img_size", False):
        raise UsageError(f"--resize native needs a model built with dynamic_img_size; "
                         f"'{loaded.label}' was not (use crop, stretch or letterbox)")


def check_finite(values: torch.Tensor, what: str, source: str) -> None:
    """Raise when the model produced NaN or infinity (broken weights or an overflow): a
    blank figure or ``NaN`` in a table would otherwise say nothing."""
    if not bool(torch.isfinite(values).all()):
        raise ModelError(f"The model produced non-finite {what} (NaN or infinity) for "
                         f"'{source}': its weights are broken or overflow; nothing was drawn")
