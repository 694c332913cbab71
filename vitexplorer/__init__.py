"""vitexplorer: see what every attention head of a Vision Transformer looks at.

The same analysis the window and the CLI use, for notebooks and scripts::

    import vitexplorer as vx

    m = vx.load_model("vit_small_patch16_224.dino")
    a = vx.analyze(m, "cat.jpg")          # one forward; a notebook cell shows the head grid
    a.map("head-rollout", layer=-1, head=3)
    a.head_table()                        # scores and groups of every head
    vx.figure(a, "overlay", method="rollout").savefig("rollout.pdf")

The names below load on first use, so ``import vitexplorer`` (the window's start, ``--version``)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "load_model": "vitexplorer.core.models",
    "LoadedModel": "vitexplorer.core.models",
    "analyze": "vitexplorer.core.analysis",
    "Analysis": "vitexplorer.core.analysis",
    "HeadTable": "vitexplorer.core.heads",
    "capture": "vitexplorer.core.capture",
    "figure": "vitexplorer.notebook",
}
__all__ = ["Analysis", "HeadTable", "LoadedModel", "__version__", "analyze", "capture", "figure",
           "load_model"]

if TYPE_CHECKING:
    from vitexplorer.core.analysis import Analysis, analyze
    from vitexplorer.core.capture import capture
    from vitexplorer.core.heads import HeadTable
    from vitexplorer.core.models import LoadedModel, load_model
    from vitexplorer.notebook import figure


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vitexplorer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
