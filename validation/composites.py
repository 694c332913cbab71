"""Composite test images with an exact foreground: a flat object over a natural texture.

Every texture of ``shared/images`` (brick, grass, gravel) and textures cut from its
photographs (the cat's fur, the camera-man's lawn) fill the background; a silhouette (the
horse, an ellipse, a five-pointed star) is the object, a flat grey brighter or darker than the
texture. ``contrast`` scales the texture's deviation from its mean (1.0 = its real contrast).
The object edge is softened by a 1-px blur, as in a photograph.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vitexplorer.core.images import load_image

#: textures cut from the photographs: file -> (x0, y0, x1, y1) of a region with no object
PHOTO_CROPS = {"chelsea.png": (150, 0, 330, 80), "camera.png": (400, 330, 512, 512)}
TEXTURES = ("brick.png", "grass.png", "gravel.png")
SILHOUETTES = ("horse", "ellipse", "star")
CANVAS = (328, 400)  # h, w: the horse's size


@dataclass
class Composite:
    name: str
    image: np.ndarray  # uint8 RGB [H, W, 3]
    mask: np.ndarray  # bool [H, W], exact object


def texture_sources(folder: Path) -> dict[str, np.ndarray]:
    """Grey float textures: whole files and the photo crops, keyed by a short name."""
    out = {}
    for name in TEXTURES:
        if (folder / name).is_file():
            out[Path(name).stem] = load_image(folder / name).mean(2)
    for name, (x0, y0, x1, y1) in PHOTO_CROPS.items():
        if (folder / name).is_file():
            out[f"{Path(name).stem}-crop"] = load_image(folder / name)[y0:y1, x0:x1].mean(2)
    return out


def fill(texture: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``texture`` tiled by mirroring (no seams) to ``shape``."""
    h, w = shape
    th, tw = texture.shape
    reps = (-(-h // th) + 1, -(-w // tw) + 1)
    row = np.concatenate([texture, texture[:, ::-1]] * (reps[1] // 2 + 1), 1)
    full = np.concatenate([row, row[::-1]] * (reps[0] // 2 + 1), 0)
    return full[:h, :w].astype(np.float32)


def silhouette(kind: str, folder: Path) -> np.ndarray:
    h, w = CANVAS
    if kind == "horse":
        return load_image(folder / "horse.png").mean(2) < 128
    m = np.zeros((h, w), np.uint8)
    if kind == "ellipse":
        cv2.ellipse(m, (w // 2 + 20, h // 2), (110, 70), 20, 0, 360, 1, -1)
    elif kind == "star":
        ang = np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 130, 55)
        pts = np.stack([w / 2 + rad * np.cos(ang), h / 2 + 10 - rad * np.sin(ang)], 1)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    else:
        raise ValueError(kind)
    return m > 0


def composite(texture: np.ndarray, mask: np.ndarray, contrast: float, brighter: bool,
              mirrored: bool = False, seed: int = 0) -> np.ndarray:
    """The object (flat grey 60 levels beyond the texture's 90th / 10th percentile, clipped,
    with 2 levels of noise) over the texture at ``contrast``; RGB uint8."""
    t = fill(texture, mask.shape)
    mean = float(t.mean())
    t = mean + contrast * (t - mean)
    level = np.percentile(t, 90) + 60 if brighter else np.percentile(t, 10) - 60
    level = float(np.clip(level, 15, 240))
    noise = np.random.default_rng(seed).normal(0, 2, mask.shape)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)
    img = soft * (level + noise) + (1 - soft) * t
    img = np.clip(img, 0, 255).astype(np.uint8)
    if mirrored:
        img = img[:, ::-1]
    return np.repeat(img[..., None], 3, 2)


def all_composites(folder: Path, contrasts=(0.4, 0.7, 1.0)):
    """Every texture x silhouette x contrast x (brighter, darker) x (plain, mirrored)."""
    textures = texture_sources(folder)
    for tname, tex in textures.items():
        for sname in SILHOUETTES:
            mask = silhouette(sname, folder)
            for c in contrasts:
                for brighter in (True, False):
                    for mirrored in (False, True):
                        img = composite(tex, mask, c, brighter, mirrored)
                        m = mask[:, ::-1] if mirrored else mask
                        name = (f"{tname}/{sname}/c{c}/{'bright' if brighter else 'dark'}"
                                f"{'/mirror' if mirrored else ''}")
                        yield Composite(name, img, m.copy())
