"""Safe image decoding to RGB uint8 and the geometry between model input and original pixels.

Every failure raises :class:`ImageError` naming the file and the reason; Pillow's
decompression-bomb guard stays on.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vitexplorer.core.errors import ImageError

ResizePolicy = Literal["crop", "stretch", "letterbox", "native"]
RESIZE_POLICIES: tuple[str, ...] = ("crop", "stretch", "letterbox", "native")


def load_image(
    path: str | Path, background: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """Decode ``path`` to an ``[H, W, 3]`` uint8 RGB array, EXIF orientation applied.

    Handles modes 1, L, LA, P (with transparency), RGBA (composited on ``background``), CMYK,
    I;16 / I (16-bit grey, scaled by its full 16-bit range) and 16-bit RGB PNG; animated files
    give frame 0.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "it is a folder, not a file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(path, exc.strerror or str(exc)) from exc
    if size == 0:
        raise ImageError(path, "the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.seek(0)
                im.load()
                rgb = _to_rgb(ImageOps.exif_transpose(im), background)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            path, f"too large to decode safely (over {Image.MAX_IMAGE_PIXELS:,} pixels)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(path, "not an image file (format not recognised)") from exc
    except PermissionError as exc:
        raise ImageError(path, "permission denied") from exc
    except OSError as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = f"the file is truncated ({reason})"
        raise ImageError(path, reason) from exc
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(path, f"corrupt image data ({exc})") from exc
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageError(path, "the image has no pixels")
    return rgb


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8; why: timm models expect 3 channels in [0, 255]."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        grey = np.clip(np.round(a / hi * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        grey = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255.0
        return np.repeat(np.round(grey).astype(np.uint8)[:, :, None], 3, axis=2)
    if (mode == "P" and "transparency" in im.info) or mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        base = Image.new("RGBA", im.size, (*background, 255))
        return np.asarray(Image.alpha_composite(base, im).convert("RGB")).copy()
    return np.asarray(im.convert("RGB")).copy()


@dataclass(frozen=True)
class Geometry:
    """Where the model input lies on the original image.

    ``box`` = (x0, y0, x1, y1) is the rectangle of ORIGINAL image pixel coordinates (pixel
    edges, continuous) that the whole model input covers. It may extend outside the image
    (letterbox padding) or cover part of it (centre crop). ``grid`` = (rows, cols) of patch
    tokens, ``input_size`` = (height, width) of the model input in pixels.
    """

    image_size: tuple[int, int]  # (height, width) of the original image
    input_size: tuple[int, int]
    grid: tuple[int, int]
    box: tuple[float, float, float, float]

    def scaled(self, factor: float) -> Geometry:
        """The same geometry on the image resized by ``factor`` (for a display-sized copy)."""
        h, w = self.image_size
        return Geometry((max(1, round(h * factor)), max(1, round(w * factor))), self.input_size,
                        self.grid, tuple(v * factor for v in self.box))

    def image_to_grid(self, x: float, y: float) -> tuple[int, int] | None:
        """The (row, col) token under original-image pixel (x, y), None outside the input."""
        x0, y0, x1, y1 = self.box
        gh, gw = self.grid
        col = math.floor((x + 0.5 - x0) / (x1 - x0) * gw)
        row = math.floor((y + 0.5 - y0) / (y1 - y0) * gh)
        return (row, col) if 0 <= row < gh and 0 <= col < gw else None

    def grid_to_image_affine(self) -> np.ndarray:
        """2x3 affine matrix taking token-grid coordinates (cell edges) to original pixels."""
        x0, y0, x1, y1 = self.box
        gh, gw = self.grid
        return np.array([[(x1 - x0) / gw, 0.0, x0], [0.0, (y1 - y0) / gh, y0]])


@dataclass(frozen=True)
class Preprocessed:
    """A model-ready image: ``pixels`` float32 [3, H, W] normalised, and its geometry."""

    pixels: np.ndarray
    geometry: Geometry
    display: np.ndarray  # the original RGB image the maps are placed on
    model_view: np.ndarray  # uint8 [H, W, 3]: what the model sees, before normalisation


_PIL_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def preprocess(
    rgb: np.ndarray,
    data_config: dict,
    policy: ResizePolicy = "crop",
    patch_size: tuple[int, int] = (16, 16),
    pad_value: tuple[int, int, int] | None = None,
) -> Preprocessed:
    """Resize and normalise ``rgb`` for a model, remembering exactly where the input came from.

    ``data_config`` is timm's ``resolve_model_data_config`` (input_size, mean, std,
    interpolation, crop_pct). Policies:

    - ``crop``: timm's eval transform: shorter side to ``floor(size / crop_pct)`` then centre
      crop (identical pixels to ``timm.data.create_transform`` on the same PIL image);
    - ``stretch``: resize both sides to the model size (aspect not kept);
    - ``letterbox``: fit inside the model size keeping aspect, pad with the mean colour;
    - ``native``: keep aspect at about the model's pixel count, each side a multiple of the
      patch size (needs a model built with ``dynamic_img_size=True``).
    """
    h, w = rgb.shape[:2]
    _, th, tw = data_config["input_size"]
    mean = np.asarray(data_config["mean"], dtype=np.float32)
    std = np.asarray(data_config["std"], dtype=np.float32)
    resample = _PIL_FILTERS.get(data_config.get("interpolation", "bicubic"), Image.BICUBIC)
    im = Image.fromarray(rgb)
    if policy == "crop":
        crop_pct = float(data_config.get("crop_pct") or 1.0)
        if data_config.get("crop_mode", "center") == "squash":
            sh, sw = math.floor(th / crop_pct), math.floor(tw / crop_pct)
        else:
            short = math.floor(min(th, tw) / crop_pct)
            if h <= w:
                sh, sw = short, int(short * w / h)
            else:
                sh, sw = int(short * h / w), short
        resized = np.asarray(im.resize((sw, sh), resample))
        top, left = round((sh - th) / 2.0), round((sw - tw) / 2.0)
        out = resized[top : top + th, left : left + tw]
        sx, sy = w / sw, h / sh
        box = (left * sx, top * sy, (left + tw) * sx, (top + th) * sy)
    elif policy == "stretch":
        out = np.asarray(im.resize((tw, th), resample))
        box = (0.0, 0.0, float(w), float(h))
    elif policy == "letterbox":
        scale = min(th / h, tw / w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        fill = pad_value or tuple(round(m * 255) for m in mean)
        out = np.empty((th, tw, 3), np.uint8)
        out[:] = fill
        top, left = (th - nh) // 2, (tw - nw) // 2
        out[top : top + nh, left : left + nw] = np.asarray(im.resize((nw, nh), resample))
        sx, sy = w / nw, h / nh
        box = (-left * sx, -top * sy, (tw - left) * sx, (th - top) * sy)
    elif policy == "native":
        ph, pw = patch_size
        area = th * tw
        scale = math.sqrt(area / (h * w))
        th = max(ph, round(h * scale / ph) * ph)
        tw = max(pw, round(w * scale / pw) * pw)
        out = np.asarray(im.resize((tw, th), resample))
        box = (0.0, 0.0, float(w), float(h))
    else:
        raise ValueError(f"unknown resize policy {policy!r}; choose one of {RESIZE_POLICIES}")
    pixels = (out.astype(np.float32) / 255.0 - mean) / std
    grid = (th // patch_size[0], tw // patch_size[1])
    geometry = Geometry(image_size=(h, w), input_size=(th, tw), grid=grid, box=box)
    return Preprocessed(np.ascontiguousarray(pixels.transpose(2, 0, 1)), geometry, rgb,
                        np.ascontiguousarray(out))


def grid_coverage(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Share of each token's rectangle of the original image covered by ``mask``,
    ``[rows, cols]`` float32 in [0, 1] (parts of a token outside the image count as 0).

    Exact box integrals over an integral image, so it does not depend on the image size.
    """
    import cv2

    h, w = geometry.image_size
    integral = cv2.integral(np.ascontiguousarray(mask, dtype=np.float64))
    x0, y0, x1, y1 = geometry.box
    gh, gw = geometry.grid
    xs = np.clip(np.round(x0 + (x1 - x0) * np.arange(gw + 1) / gw).astype(int), 0, w)
    ys = np.clip(np.round(y0 + (y1 - y0) * np.arange(gh + 1) / gh).astype(int), 0, h)
    total = (integral[ys[1:, None], xs[None, 1:]] - integral[ys[:-1, None], xs[None, 1:]]
             - integral[ys[1:, None], xs[None, :-1]] + integral[ys[:-1, None], xs[None, :-1]])
    cell = ((x1 - x0) / gw) * ((y1 - y0) / gh)
    return np.clip(total / cell, 0.0, 1.0).astype(np.float32)


def map_to_image(grid_map: np.ndarray, geometry: Geometry, mode: str = "bilinear") -> np.ndarray:
    """Place a ``[rows, cols]`` token-grid map on the original image pixels, ``[H, W]`` float32.

    Each token cell covers its exact rectangle of the original image (via ``Geometry.box``);
    pixels outside the model input (cropped away) get 0.
    """
    import cv2

    h, w = geometry.image_size
    m = np.ascontiguousarray(grid_map, dtype=np.float32)
    aff = geometry.grid_to_image_affine()
    # cv2 samples pixel centres: grid cell centre c+0.5 maps to pixel centre; shift by half.
    full = np.array([[aff[0, 0], 0, aff[0, 2] + 0.5 * aff[0, 0] - 0.5],
                     [0, aff[1, 1], aff[1, 2] + 0.5 * aff[1, 1] - 0.5]])
    interp = cv2.INTER_NEAREST if mode == "nearest" else cv2.INTER_LINEAR
    out = cv2.warpAffine(m, full, (w, h), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    x0, y0, x1, y1 = geometry.box
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    out[(ys < y0) | (ys > y1), :] = 0.0
    out[:, (xs < x0) | (xs > x1)] = 0.0
    return out
