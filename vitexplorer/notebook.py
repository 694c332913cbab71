"""``vx.figure``: the core's figures by name, for notebooks and scripts.

A thin switch over :mod:`vitexplorer.core.figures` (the functions the window's export and the
CLI call), so a figure made here is the one ``vitexplorer export`` writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from vitexplorer.core.analysis import Analysis

#: figure kind -> function of vitexplorer.core.figures
FIGURES = {"overlay": "overlay_figure", "grid": "grid_figure", "groups": "group_grid_figure"}


def figure(analysis: Analysis, kind: str = "overlay", **options) -> Figure:
    """A matplotlib ``Figure`` of ``analysis`` (save it with ``.savefig(path)``).

    ``overlay``: one map over the image (``method``, ``layer``, ``head``, ``target``, ...);
    ``grid``: every head of a layer, or of every layer with ``layer=None``; ``groups``: every
    head framed by its group (``table`` defaults to :meth:`Analysis.head_table`).
    ``options`` are those of the core function named in :data:`FIGURES`.
    """
    from vitexplorer.core import figures

    if kind not in FIGURES:
        raise ValueError(f"unknown figure kind {kind!r}; choose one of {', '.join(FIGURES)}")
    if kind == "groups":
        table = options.pop("table", None) or analysis.head_table()
        return figures.group_grid_figure(analysis, table, **options)
    return getattr(figures, FIGURES[kind])(analysis, **options)
