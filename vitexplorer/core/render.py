"""Colormaps, display scaling and overlay compositing on NumPy arrays.

The screen and the exported figures both use these functions, so what a user sees is what a
figure shows. Display scaling is a render option: the maps themselves stay sum-normalised.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

from vitexplorer.core.constants import DEFAULT_CMAP, DEFAULT_OPACITY
from vitexplorer.core.images import Geometry, map_to_image
from vitexplorer.core.maps import mass_region

# the menu's choices: perceptually uniform ones first (they read in greyscale print and for
# colour-blind readers); any other matplotlib colormap name is accepted too
COLORMAPS = ("viridis", "cividis", "magma", "inferno", "plasma", "gray", "turbo", "jet")
Scaling = Literal["minmax", "percentile"]
SCALINGS = ("minmax", "percentile")
Upsample = Literal["bilinear", "nearest"]


def resolve_cmap(name: str) -> str:
    """``name`` if matplotlib knows that colormap, else a ValueError naming some choices."""
    import matplotlib

    if name not in matplotlib.colormaps:
        raise ValueError(f"unknown colormap {name!r}; choose e.g. one of {COLORMAPS} "
                         "(any matplotlib colormap name works)")
    return name


@lru_cache(maxsize=16)
def colormap_lut(name: str) -> np.ndarray:
    """``[256, 3]`` uint8 lookup table of a matplotlib colormap."""
    import matplotlib

    cmap = matplotlib.colormaps[resolve_cmap(name)]
    return np.round(cmap(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def display_range(values: np.ndarray, scaling: Scaling = "minmax",
                  percentile: float = 99.0) -> tuple[float, float]:
    """``(vmin, vmax)`` used to map values onto the colormap: the full range, or the
    ``100 - percentile`` to ``percentile`` percentiles (default 1st-99th, so a single hot
    patch does not wash out the rest). ``values`` may hold one map or a stack of maps (a
    scale shared by all of them)."""
    v = np.asarray(values, dtype=np.float64)
    if scaling == "percentile":
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must lie in (50, 100], not {percentile}")
        lo, hi = np.percentile(v, [100.0 - percentile, percentile])
    elif scaling == "minmax":
        lo, hi = float(v.min()), float(v.max())
    else:
        raise ValueError(f"unknown scaling {scaling!r}; choose one of {SCALINGS}")
    if hi <= lo:
        hi = lo + 1e-12
    return float(lo), float(hi)


def normalise(values: np.ndarray, vrange: tuple[float, float]) -> np.ndarray:
    lo, hi = vrange
    return np.clip((np.asarray(values, np.float32) - lo) / (hi - lo), 0.0, 1.0)


def view_rect(geometry: Geometry) -> tuple[int, int, int, int]:
    """Rows r0:r1 and columns c0:c1 of the original image whose pixel centres lie inside
    the model's view (``Geometry.box``)."""
    h, w = geometry.image_size
    x0, y0, x1, y1 = geometry.box
    r0, r1 = max(0, int(np.ceil(y0 - 0.5))), min(h, int(np.floor(y1 - 0.5)) + 1)
    c0, c1 = max(0, int(np.ceil(x0 - 0.5))), min(w, int(np.floor(x1 - 0.5)) + 1)
    return r0, max(r0, r1), c0, max(c0, c1)


def colorize(unit: np.ndarray, cmap: str) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB through the colormap's lookup table."""
    idx = cv2.convertScaleAbs(np.ascontiguousarray(unit, dtype=np.float32), alpha=255.0)
    return cv2.applyColorMap(idx, colormap_lut(cmap)[:, None, :])


def overlay(
    image: np.ndarray,
    grid_map: np.ndarray,
    geometry: Geometry,
    cmap: str = DEFAULT_CMAP,
    opacity: float = DEFAULT_OPACITY,
    scaling: Scaling = "minmax",
    upsample: Upsample = "bilinear",
    contour: float | None = None,
    contour_color: tuple[int, int, int] = (0, 255, 255),
    vrange: tuple[float, float] | None = None,
) -> np.ndarray:
    """Blend the colour-mapped ``grid_map`` over ``image`` (both placed on original pixels).

    ``out = (1 - opacity) * image + opacity * cmap(scale(map))``; pixels outside the model's
    view (centre crop) keep the image. ``contour`` (e.g. MASS_SHARE) outlines the patches holding
    that share of the mass. ``vrange`` fixes the colour scale (a range shared by several
    maps, see :func:`display_range`); by default it is the map's own ``scaling`` range.
    """
    if vrange is None:
        vrange = display_range(grid_map, scaling)
    image = np.ascontiguousarray(image, dtype=np.uint8)
    # the model's view is an axis-aligned rectangle: blend inside it, keep the rest
    r0, r1, c0, c1 = view_rect(geometry)
    unit = map_to_image(normalise(grid_map, vrange), geometry, upsample, (r0, r1, c0, c1))
    out = image.copy()
    colour = colorize(unit, cmap)
    out[r0:r1, c0:c1] = cv2.addWeighted(image[r0:r1, c0:c1], 1.0 - float(opacity), colour,
                                        float(opacity), 0.0)
    if contour is not None:
        thickness = max(1, round(max(image.shape[:2]) / 450))
        cv2.drawContours(out, [c[:, None] for c in mass_contours(grid_map, contour, geometry)],
                         -1, contour_color, thickness, cv2.LINE_AA)
    return out


def mass_contours(grid_map: np.ndarray, share: float, geometry: Geometry
                  ) -> list[np.ndarray]:
    """The border of the fewest patches holding ``share`` of the map's mass
    (:func:`vitexplorer.core.maps.mass_region`) on the image, as ``(n, 2)`` int x, y
    pixel indices per outer contour (``cv2.findContours``): what :func:`overlay` draws, and
    what the window draws as a line over the image (thin however far it is zoomed)."""
    region = mass_region(grid_map, share).astype(np.float32)
    full = map_to_image(region, geometry, "nearest") > 0.5
    contours, _ = cv2.findContours(full.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [c[:, 0] for c in contours]


#: formats :func:`encode` writes; figures with a colour bar and caption (SVG, PDF, decorated
#: overlays) are matplotlib's
IMAGE_FORMATS = ("png", "jpg", "webp")
#: OpenCV settings of the lossy formats: quality 90 (a fifth to a tenth of the PNG)
LOSSY = {"jpg": [cv2.IMWRITE_JPEG_QUALITY, 90], "webp": [cv2.IMWRITE_WEBP_QUALITY, 90]}


def encode(rgb: np.ndarray, fmt: str) -> bytes:
    """An RGB uint8 image as the bytes of a ``fmt`` file (one of :data:`IMAGE_FORMATS`).

    PNG by fpng (one fixed filter and a fast deflate with its own Huffman tables): on a
    1600 x 1200 camera overlay 10 ms against 74 ms for libpng at level 1 (OpenCV, Huffman
    only, Paeth) and 137 ms for Pillow at level 1, 696 ms at its default level 6, for
    2.5 MB against 1.9, 2.0 and 1.7 MB (one core, benchmarks/README.md); lossless, any PNG
    reader opens it. JPEG and WebP by OpenCV.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if fmt == "png":
        import fpng

        data = fpng.from_ndarray(rgb)  # b"" where it cannot encode
        ok = bool(data)
    else:
        ok, buf = cv2.imencode(f".{fmt}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), LOSSY[fmt])
        data = buf.tobytes() if ok else b""
    if not ok:
        raise OSError(f"{fmt.upper()} encoding failed")
    return data


def stamp(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` with ``text`` in white on a dark band along its top edge (marks that must
    survive in a bare overlay, e.g. random weights), drawn in place when ``image`` is a
    contiguous uint8 array (a fresh overlay: no copy of a camera-size image)."""
    out = np.ascontiguousarray(image, dtype=np.uint8)
    w = out.shape[1]
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, 1.0, 1)
    scale = min(1.5, 0.9 * w / tw)
    thick = max(1, round(scale * 1.5))
    band = int((th + base) * scale) + 2 * thick + 4
    out[:band] = cv2.convertScaleAbs(out[:band], alpha=0.35)
    cv2.putText(out, text, (thick + 2, int(th * scale) + thick + 2), font, scale,
                (255, 255, 255), thick, cv2.LINE_AA)
    return out
