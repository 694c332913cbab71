"""What an :class:`~vitexplorer.core.analysis.Analysis` shows as the last expression of a
notebook cell: its image, top classes and the grid of every head's map.

Jupyter calls ``_repr_html_`` (or ``_repr_png_`` where HTML is not shown); both are built
here from the maps the analysis already holds, so displaying it never runs the model.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from vitexplorer.core.constants import DEFAULT_CMAP
from vitexplorer.core.render import colorize, display_range, normalise

if TYPE_CHECKING:
    from vitexplorer.core.analysis import Analysis

#: side of one head's tile and the gap between tiles, in pixels
CELL, GAP = 40, 2
#: width of the image thumbnail, in pixels
THUMBNAIL_WIDTH = 256


def head_grid(analysis: Analysis, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """RGB uint8: one tile per head, layers as rows (0 at the top) and heads as columns;
    each head's map (class-token row over patches) scaled to its own range, nearest-neighbour
    enlarged so that its patches stay visible."""
    maps = analysis.head_maps().numpy()
    n_l, n_h, gh, gw = maps.shape
    scale = max(1, CELL // max(gh, gw))
    th, tw = gh * scale, gw * scale
    out = np.full((n_l * (th + GAP) - GAP, n_h * (tw + GAP) - GAP, 3), 255, np.uint8)
    for li in range(n_l):
        for h in range(n_h):
            m = maps[li, h]
            tile = colorize(normalise(m, display_range(m)), cmap)
            r, c = li * (th + GAP), h * (tw + GAP)
            out[r:r + th, c:c + tw] = tile.repeat(scale, 0).repeat(scale, 1)
    return out


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _img_tag(rgb: np.ndarray, alt: str) -> str:
    data = base64.b64encode(png_bytes(rgb)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{alt}" style="margin:4px">'


def thumbnail(analysis: Analysis) -> np.ndarray:
    img = analysis.image
    h, w = img.shape[:2]
    if w <= THUMBNAIL_WIDTH:
        return img
    size = (THUMBNAIL_WIDTH, max(1, round(h * THUMBNAIL_WIDTH / w)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR))


def to_html(analysis: Analysis) -> str:
    """Caption (source, model, heads), the image, the top-5 classes and the head grid."""
    esc = html.escape
    n_l, n_h = analysis.num_layers, analysis.num_heads
    rows = "".join(f"<tr><td>{esc(name)}</td><td>{p:.1%}</td></tr>"
                   for _, name, p in analysis.top_k(5))
    classes = (f'<table style="display:inline-block;vertical-align:top;margin:4px">'
               f"<tr><th>class</th><th>p</th></tr>{rows}</table>" if rows else "")
    caption = (f"<b>{esc(str(analysis.source))}</b> · {esc(analysis.model_label)} · "
               f"{n_l} layers × {n_h} heads · {analysis.layout.grid[0]}×"
               f"{analysis.layout.grid[1]} patches")
    grid = _img_tag(head_grid(analysis), "head maps")
    return (f"<div>{caption}<br>{_img_tag(thumbnail(analysis), 'image')}{classes}<br>"
            f"<small>head maps: layers 0-{n_l - 1} top to bottom, heads 0-{n_h - 1} left to "
            f"right</small><br>{grid}</div>")
