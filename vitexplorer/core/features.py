"""Per-token image features: object outlines, texture, colour.

Measured on the ORIGINAL image reduced so that its longer side is at most ``WORK_SIDE``
pixels (never enlarged), then averaged over each token's rectangle
(:func:`vitexplorer.core.images.token_means`), so a feature does not depend on the model's
input size (224 or 384) nor, above WORK_SIDE, on the file's size. A smaller image is measured
at its own resolution: enlarging adds no detail, it only magnifies the texture's grain into
the outline scales below (a 64 px crop of brick enlarged 6x has mortar lines as wide as an
object's outline; the trained-model validation, ``validation/train_small_vit.py``, measured
outline AUCs of 0.2-0.5 that way, 0.95-1.0 at the image's own resolution).

Outlines vs texture. An object's outline is a boundary between two regions whose local
statistics differ; inside a stationary texture the statistics are the same on both sides of
any line, however strong its own edges are. The outline strength of a pixel is therefore a
contrast-normalised gradient that must persist across scales:

    b_s(x) = s |grad (G_s * I)(x)| / (sd_{2s}(x) + eps),    b(x) = min_{s in SIGMAS} b_s(x)

``s |grad G_s * I|`` is the scale-normalised gradient (Lindeberg 1998, "Edge detection and
ridge detection with automatic scale selection", gamma = 1), ``sd_{2s}`` the standard
deviation of the image in a Gaussian window of 2s (divisive normalisation, Heeger 1992;
Schwartz & Simoncelli 2001): a step of height h gives b about 0.8 at every scale whatever
h, while a texture with correlation length l gives about l / s, which falls as s grows;
taking the minimum over scales keeps only edges that persist from s = 2 to 8 px (the
persistence criterion of scale-space edge detection, Witkin 1983). The same idea
(a boundary is a change of local statistics, not a strong local gradient) underlies the
half-disc gradients of Martin, Fowlkes & Malik 2004 (PAMI 26(5)); this is its cheap
mean-difference form. Outline pixels:
b >= ``OUTLINE_THRESHOLD`` in connected regions of at least ``OUTLINE_MIN_AREA`` pixels (a
band a few pixels wide along each outline).

Texture: root-mean-square band-pass energy, the two finest difference-of-Gaussian octaves
(sigma 0.7-2 and 2-4 px; cf. Laws 1980 texture energy; the second octave keeps coarse,
low-contrast textures such as brick faces above the sensor noise of a flat object) over
the token's pixels farther than ``OUTLINE_GAP`` px from any outline pixel, mapped from
``TEXTURE_LOW`` .. ``TEXTURE_HIGH`` grey levels to 0..1.
Validated on composites of every texture and photo texture of the test images, contrast
0.4-1.0, input sizes 224 and 384 (``validation/image_features.py``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from vitexplorer.core.images import Geometry, token_means

WORK_SIDE = 384  # px: the longest side the features are measured on (smaller: as it is)
#: px: the shortest side the gradients and blurs can work on; a tinier image (an icon, a
#: 1 x 1 pixel) is enlarged by whole-pixel replication, which adds no texture of its own
MIN_SIDE = 8
SIGMAS = (2.0, 4.0, 8.0)  # px of the working image: an outline must persist over all of them
OUTLINE_EPS = 2.0  # grey levels: noise floor of the local standard deviation
OUTLINE_THRESHOLD = 0.4  # b: a step gives ~0.8, stationary texture ~0.1-0.3
OUTLINE_MIN_AREA = 150  # px of the working image: smaller blobs of b are texture, not outlines
OUTLINE_GAP = 7  # px: texture energy is measured this far from outlines (the DoG support)
TEXTURE_SIGMAS = (0.7, 2.0, 4.0)  # two DoG octaves (px of the working image)
TEXTURE_LOW, TEXTURE_HIGH = 1.0, 2.5  # rms (grey levels) for texture 0 .. 1; sensor noise ~0.6
MIN_AWAY_SHARE = 0.25  # texture only where this share of a token lies away from outlines
SATURATED = 0.2  # HSV saturation above which a pixel has a hue worth counting
HUE_BAND = 20.0  # degrees: width of the hue histogram's bins and the band around the dominant
MIN_IMAGE_SHARE = 0.5  # a token at least this much on image pixels is valid (not padding)


@dataclass
class PatchFeatures:
    """Per-token image measurements, each ``[rows, cols]``."""

    contour: np.ndarray  # share of the token's pixels on object outlines
    texture: np.ndarray  # 0..1 fine-structure energy away from outlines
    saturation: np.ndarray  # mean HSV saturation, 0..1
    hue: np.ndarray  # share of pixels of the image's dominant hue (saturated ones)
    valid: np.ndarray  # bool: the token shows image pixels (not letterbox padding)


def working_copy(image: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, Geometry]:
    """``image`` reduced so its longer side is at most WORK_SIDE (or, below MIN_SIDE,
    enlarged by pixel replication), and the geometry on it."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        up = -(-MIN_SIDE // min(h, w))
        big = np.repeat(np.repeat(image, up, axis=0), up, axis=1)
        geom = geometry.scaled(up)
        return big, Geometry(big.shape[:2], geom.input_size, geom.grid, geom.box)
    scale = WORK_SIDE / max(h, w)
    if scale >= 1:
        return image, geometry
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    geom = geometry.scaled(scale)
    return small, Geometry(small.shape[:2], geom.input_size, geom.grid, geom.box)


def outline_strength(grey: np.ndarray) -> np.ndarray:
    """``b(x)`` of the module docstring on a float grey image (the working copy)."""
    grey = grey.astype(np.float32)
    out = None
    for s in SIGMAS:
        smooth = cv2.GaussianBlur(grey, (0, 0), s)
        gy, gx = np.gradient(smooth)
        mean = cv2.GaussianBlur(grey, (0, 0), 2 * s)
        sq = cv2.GaussianBlur(grey * grey, (0, 0), 2 * s)
        sd = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        b = s * np.hypot(gx, gy) / (sd + OUTLINE_EPS)
        out = b if out is None else np.minimum(out, b)
    return out


def outline_pixels(grey: np.ndarray) -> np.ndarray:
    """bool map of outline pixels: b >= OUTLINE_THRESHOLD in regions >= OUTLINE_MIN_AREA."""
    band = (outline_strength(grey) >= OUTLINE_THRESHOLD).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(band, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= OUTLINE_MIN_AREA
    return keep[lab]


def patch_features(image: np.ndarray, geometry: Geometry,
                   valid: np.ndarray | None = None) -> PatchFeatures:
    """Outline, texture and colour measurements of each token of ``geometry`` on the
    original RGB ``image``.

    - contour_p: share of the token's pixels on outlines (:func:`outline_pixels`);
    - texture_p: DoG energy away from outlines (module docstring); 0 when less than a
      quarter (MIN_AWAY_SHARE) of the token is away from outlines;
    - saturation_p: mean HSV saturation; hue_p: share of pixels with saturation > SATURATED
      whose hue lies within HUE_BAND degrees of the image's dominant hue (saturation-weighted
      hue histogram of HUE_BAND-degree bins).
    """
    small, geom = working_copy(image, geometry)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    outline = outline_pixels(grey)
    far = cv2.dilate(outline.astype(np.uint8),
                     np.ones((2 * OUTLINE_GAP + 1,) * 2, np.uint8)) == 0
    blurred = [cv2.GaussianBlur(grey, (0, 0), s) for s in TEXTURE_SIGMAS]
    energy = sum((a - b) ** 2 for a, b in itertools.pairwise(blurred))
    far_share = token_means(far.astype(np.float32), geom)
    rms = np.sqrt(np.maximum(token_means(energy * far, geom), 0.0)
                  / np.maximum(far_share, 1e-6))
    texture = np.clip((rms - TEXTURE_LOW) / (TEXTURE_HIGH - TEXTURE_LOW), 0.0, 1.0)
    texture[far_share < MIN_AWAY_SHARE] = 0.0
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hue, sat = hsv[..., 0] * (360.0 / 256.0), hsv[..., 1] / 255.0
    hist, _ = np.histogram(hue, bins=round(360 / HUE_BAND), range=(0, 360), weights=sat)
    dominant = (np.argmax(hist) + 0.5) * HUE_BAND
    diff = np.abs((hue - dominant + 180.0) % 360.0 - 180.0)
    in_hue = ((diff <= HUE_BAND) & (sat > SATURATED)).astype(np.float32)
    if valid is None:
        valid = token_means(np.ones(small.shape[:2], np.float32), geom) >= MIN_IMAGE_SHARE
    f32 = np.float32
    return PatchFeatures(token_means(outline.astype(f32), geom).astype(f32),
                         (texture * valid).astype(f32), token_means(sat, geom).astype(f32),
                         token_means(in_hue, geom).astype(f32), valid)
