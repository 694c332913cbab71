"""Figures of the evaluation and the comparison of two models (matplotlib object API, no
pyplot; written through :func:`vitexplorer.core.figures.save_figure`)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from vitexplorer.core.constants import METHOD_LABELS
from vitexplorer.core.evaluate import CURVES

CURVE_TITLES = {"deletion": "Deletion (RISE): p(target) ↓",
                "insertion": "Insertion (RISE): p(target) ↑",
                "positive": "Positive perturbation: top-1 = target ↓",
                "negative": "Negative perturbation: top-1 = target ↑"}


def curves_figure(records: list[dict]) -> Figure:
    """Mean perturbation curves over images, one line per method, the random map dashed."""
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    methods = list(dict.fromkeys(m for r in records for m in r.get("curves", {})))
    n = sum(1 for r in records if r.get("curves"))
    for ax, name in zip(axes, CURVES, strict=True):
        for m in methods:
            got = [r["curves"][m] for r in records if m in r.get("curves", {})]
            x = np.asarray(got[0]["fractions"]) * 100
            y = np.mean([g[name] for g in got], 0)
            auc = np.mean([g[f"{name}_auc"] for g in got])
            style = dict(color="0.4", linestyle="--") if m == "random" else {}
            ax.plot(x, y, label=f"{METHOD_LABELS.get(m, m)} (AUC {auc:.3g})", **style)
        ax.set_title(CURVE_TITLES[name], fontsize=9)
        ax.set_xlabel("patches " + ("inserted" if name == "insertion" else "removed") + " (%)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    model = records[0].get("model", "")
    fig.suptitle(f"Faithfulness over {n} images: {model}", fontsize=10)
    return fig
