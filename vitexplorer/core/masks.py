"""Foreground masks: a user's mask file, GrabCut seeded by the model's rollout, or the rollout
thresholded at 60% of its mass (Caron et al. 2021, DINO).

Masks are bool ``[H, W]`` over the ORIGINAL image; :func:`vitexplorer.core.images.grid_coverage`
turns them into the per-token share the head scores use.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vitexplorer.core.constants import MASS_SHARE
from vitexplorer.core.errors import ImageError
from vitexplorer.core.images import Geometry, load_image, map_to_image
from vitexplorer.core.maps import mass_region

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")


def find_mask_file(image: str | Path, mask_dir: str | Path | None = None) -> Path | None:
    """The mask of ``image``: ``<stem>_mask.<ext>`` next to it, or ``<stem>.<ext>`` /
    ``<stem>_mask.<ext>`` in ``mask_dir``; None when there is none."""
    image = Path(image)
    folders = [Path(mask_dir)] if mask_dir else []
    folders.append(image.parent)
    for folder in folders:
        names = [f"{image.stem}_mask"] + ([image.stem] if folder != image.parent else [])
        for name in names:
            for ext in MASK_SUFFIXES:
                p = folder / f"{name}{ext}"
                if p.is_file() and p.resolve() != image.resolve():
                    return p
    return None


def load_mask(path: str | Path, image_shape: tuple[int, int]) -> np.ndarray:
    """A mask file as bool ``[H, W]``: pixels brighter than mid-grey are foreground.

    It must have the image's size (EXIF orientation applied to both); otherwise an
    :class:`ImageError` says so instead of silently stretching it.
    """
    grey = load_image(path).mean(axis=2)
    if grey.shape != tuple(image_shape):
        raise ImageError(path, f"mask is {grey.shape[1]}x{grey.shape[0]} but the image is "
                               f"{image_shape[1]}x{image_shape[0]}")
    return grey > 127


def rollout_mask(rollout_map: np.ndarray, geometry: Geometry,
                 mass: float = MASS_SHARE) -> np.ndarray:
    """Foreground = the fewest tokens holding ``mass`` of the fused rollout, on image pixels."""
    region = mass_region(rollout_map, mass).astype(np.float32)
    return map_to_image(region, geometry, "nearest") > 0.5


def grabcut_mask(image: np.ndarray, rollout_map: np.ndarray, geometry: Geometry,
                 iterations: int = 4, work_size: int = 320) -> np.ndarray:
    """GrabCut (Rother et al. 2004, SIGGRAPH) seeded by the model's own rollout: tokens holding
    the top 40% of the mass are probable foreground, the bottom half of tokens probable
    background, everything else and the pixels outside the model's view definite background
    only where the rollout is lowest. Runs on a copy at most ``work_size`` pixels wide."""
    h, w = image.shape[:2]
    scale = min(1.0, work_size / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else image
    geom = geometry.scaled(scale)
    geom = Geometry(small.shape[:2], geom.input_size, geom.grid, geom.box)
    fg = map_to_image(mass_region(rollout_map, 0.4).astype(np.float32), geom, "nearest") > 0.5
    low = rollout_map <= np.quantile(rollout_map, 0.5)
    bg = map_to_image(low.astype(np.float32), geom, "nearest") > 0.5
    seed = np.full(small.shape[:2], cv2.GC_PR_BGD, np.uint8)
    seed[fg] = cv2.GC_PR_FGD
    seed[bg] = cv2.GC_BGD
    if not fg.any() or (seed == cv2.GC_BGD).all():
        return rollout_mask(rollout_map, geometry)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(np.ascontiguousarray(small[:, :, ::-1]), seed, None, bgd, fgd, iterations,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate colour models (flat images): fall back to the rollout
        return rollout_mask(rollout_map, geometry)
    out = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    if scale < 1:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_NEAREST)
    return out.astype(bool)
