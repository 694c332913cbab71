"""Safe image decoding to RGB uint8 and the geometry between model input and original pixels.

Every failure raises :class:`ImageError` naming the file and the reason; Pillow's
decompression-bomb guard stays on. :func:`decode` decodes at the size the work needs (JPEG
DCT-domain scaling, ``Image.draft``): a 12 MP photo costs a fraction of a full decode, and
the geometry stays the one of the original pixels.
"""

from __future__ import annotations

import math
import os
import stat
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vitexplorer.core.discovery import AVIF_BRANDS, HEIF_BRANDS
from vitexplorer.core.errors import ImageError, file_kind

#: the longest side may be at most this many times the shortest: preprocessing resizes the
#: short side to the model's size (a 1 x 4000 strip would become 256 x 1,024,000 pixels) and
#: figures keep the aspect, so the work stays bounded by what is drawn
MAX_ASPECT = 20

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
    return decode(path, None, background).pixels


#: ``need((height, width)) -> (height, width)``: the least size, in pixels of the upright
#: original, that a reduced decode must keep on each axis.
SizeNeed = Callable[[tuple[int, int]], tuple[int, int]]


@dataclass(frozen=True)
class Decoded:
    """An image decoded in full or at a reduced size.

    ``pixels`` ``[h, w, 3]`` uint8; ``size`` (height, width) of the original image, upright;
    ``box`` (x0, y0, x1, y1): the original image's extent in ``pixels`` coordinates. A JPEG
    decoded at 1/k (DCT scaling) has ``ceil(W / k)`` columns of which the first ``W / k`` hold
    the image (the rest is the encoder's block padding), so ``box`` is exact, not the ratio
    of the two sizes.
    """

    pixels: np.ndarray
    size: tuple[int, int]
    box: tuple[float, float, float, float]

    @classmethod
    def full(cls, rgb: np.ndarray) -> Decoded:
        h, w = rgb.shape[:2]
        return cls(rgb, (h, w), (0.0, 0.0, float(w), float(h)))

    @property
    def is_full(self) -> bool:
        h, w = self.size
        return self.pixels.shape[:2] == (h, w) and self.box == (0.0, 0.0, float(w), float(h))


def decode(
    path: str | Path,
    need: SizeNeed | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Decoded:
    """Decode ``path`` (as :func:`load_image`), reduced by the largest integer factor that
    still keeps ``need(original size)`` pixels on each axis; ``need=None`` decodes in full.

    JPEG is reduced while decoding (``Image.draft``: libjpeg's scaled IDCT by 1/2, 1/4 or
    1/8); other formats are decoded in full and box-reduced (``Image.reduce``) at once, so
    what follows works on the small copy.
    """
    with opened_image(path) as im:
        out = _decode_open(im, need, background)
    if out.pixels.shape[0] < 1 or out.pixels.shape[1] < 1:
        raise ImageError(path, "the image has no pixels")
    return out


#: per thread, the image file being opened and decoded (:func:`reading_now`)
_reading = threading.local()


def reading_now() -> Path | None:
    """The image file this thread is opening or decoding (:func:`opened_image`), else None.
    Why: Pillow's warnings (broken EXIF, a truncated tag) name no file; a handler of
    ``warnings.showwarning`` runs in the warning's thread and can name it."""
    return getattr(_reading, "path", None)


@contextmanager
def opened_image(path: str | Path) -> Iterator[Image.Image]:
    """``path`` opened by Pillow at its first frame, its size within :func:`check_size`'s
    bounds, for the ``with`` body to decode; every failure there or here (a folder, a FIFO,
    an empty, truncated, corrupt or unknown file, a decompression bomb) is an
    :class:`ImageError` naming the file and the reason. Images and mask files open alike."""
    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "it is a folder, not a file")
    if path.is_symlink() and not path.exists():
        raise ImageError(path, "a broken symbolic link (its target is missing or it loops)")
    try:
        st = path.stat()
    except OSError as exc:
        raise ImageError(path, exc.strerror or str(exc)) from exc
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the decoder forever
        raise ImageError(path, f"not a regular file ({file_kind(st.st_mode)})")
    if st.st_size == 0:
        raise ImageError(path, "the file is empty")
    _reading.path = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.seek(0)
                check_size(path, im.size)
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            path, f"too large to decode safely (over {Image.MAX_IMAGE_PIXELS:,} pixels)"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(path, _unknown_format(path)) from exc
    except PermissionError as exc:
        raise ImageError(path, "permission denied") from exc
    except OSError as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = f"the file is truncated ({reason})"
        elif "broken data stream" in reason and _arithmetic_jpeg(path):
            reason = ("an arithmetic-coded JPEG, which Pillow cannot decode beyond 64 KB "
                      "(convert it to the usual Huffman coding: jpegtran -copy all)")
        raise ImageError(path, reason) from exc
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(path, f"corrupt image data ({exc})") from exc
    finally:
        _reading.path = None


def check_size(source: str | Path, size: tuple[int, int]) -> None:
    """Refuse an image of ``size`` (width, height) before any work on it: strips beyond
    :data:`MAX_ASPECT`, and more pixels than Pillow's decompression-bomb bound. Files are
    checked from their header, arrays (a pasted image, a notebook's array) by their shape,
    so every way in has the same bounds."""
    w, h = size
    if max(h, w) > MAX_ASPECT * max(1, min(h, w)):
        raise ImageError(source, f"the image is {w} x {h} pixels: an aspect ratio over "
                                 f"{MAX_ASPECT}:1 cannot be fitted to the model or drawn as a "
                                 "figure (crop it first)")
    if Image.MAX_IMAGE_PIXELS is not None and w * h > Image.MAX_IMAGE_PIXELS:
        raise ImageError(source, f"the image is {w} x {h} pixels: too large to decode safely "
                                 f"(over {Image.MAX_IMAGE_PIXELS:,} pixels)")


_SIDEWAYS = (5, 6, 7, 8)  # EXIF orientations stored rotated by 90 degrees
#: the EXIF orientations :func:`ImageOps.exif_transpose` turns (a dict: it looks them up so)
_TURNED = dict.fromkeys(range(2, 9))


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation that :func:`_upright` (``exif_transpose``) applies to ``im``:
    1 unless the tag is one of 2-8 as ``exif_transpose`` looks it up. Why: a tag of another
    type (text "6", undefined bytes, 6/0) is not an error, and the geometry and OpenCV's
    turn must be the one Pillow's pixels get."""
    value = im.getexif().get(0x0112, 1)
    return int(value) if value in _TURNED else 1


def _decode_open(im: Image.Image, need: SizeNeed | None,
                 background: tuple[int, int, int]) -> Decoded:
    sw, sh = im.size  # as stored
    orientation = _orientation(im) if im.format in ("JPEG", "MPO") else 1
    upright = (sw, sh) if orientation in _SIDEWAYS else (sh, sw)
    factor, stored_box, mode = 1, (0.0, 0.0, float(sw), float(sh)), im.mode
    if need is not None and im.format in ("JPEG", "MPO"):
        nh, nw = need(upright)
        want = (max(1, nh), max(1, nw)) if orientation in _SIDEWAYS else (max(1, nw), max(1, nh))
        drafted = im.draft("RGB", want)
        if drafted is not None:
            stored_box = (0.0, 0.0, *drafted[1][2:])
            factor = im.decoderconfig[0] if im.decoderconfig else 1
    if factor > 1:  # the orientation moves the encoder's block padding with the pixels
        box = _orient_box(stored_box, im.size, orientation)
        h, w = (sw, sh) if orientation in _SIDEWAYS else (sh, sw)
        rgb = _reduced_jpeg(im, mode, factor, orientation) if mode in ("RGB", "L") else None
        if rgb is None:
            im.load()
            rgb = _to_rgb(_upright(im), background)
        return Decoded(rgb, (h, w), box)
    im.load()
    rgb = _to_rgb(_upright(im), background)
    h, w = rgb.shape[:2]
    if need is not None:
        nh, nw = need((h, w))
        k = min(h // max(1, nh), w // max(1, nw))
        if k >= 2:  # Image.reduce: the last row/column averages the pixels it has, k/k exact
            small = np.asarray(Image.fromarray(rgb).reduce(k)).copy()
            return Decoded(small, (h, w), (0.0, 0.0, w / k, h / k))
    return Decoded.full(rgb)


#: OpenCV's flags (IMREAD_REDUCED_GRAYSCALE_k: the scale bits alone) for libjpeg's scaled
#: decode by 1/k
_CV_REDUCED = {2: 16, 4: 32, 8: 64}
#: twice the most a JPEG holds a pixel (colour noise at quality 100, 4:4:4: 4.1 bytes)
_JPEG_MAX_BYTES_PER_PIXEL = 8


def _reduced_jpeg(im: Image.Image, mode: str, factor: int, orientation: int
                  ) -> np.ndarray | None:
    """The 1/``factor`` decode Pillow's draft would give, upright, straight into a NumPy
    array by OpenCV (same libjpeg-turbo scaled IDCT, same pixels), or None where OpenCV
    does not decode it or might not fail where Pillow does (truncated or corrupt data: Pillow
    then decodes and names the fault).

    Why: Pillow holds RGB as 4 bytes a pixel, and copying that out into an array costs a
    third of a 1/2 decode (a 4000 x 3000 photo: 50 -> 38 ms of one core).
    """
    import cv2

    flag = _CV_REDUCED.get(factor)
    # RGB straight from the decoder (OpenCV 4.11+; 4.10 ignores the bit and, the scale bits
    # being IMREAD_REDUCED_GRAYSCALE_k, gives grey): without it Pillow decodes
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    if flag is None or rgb_flag is None:
        return None
    data = _file_bytes(im, _JPEG_MAX_BYTES_PER_PIXEL * factor**2 * im.size[0] * im.size[1])
    if data is None or not _opencv_agrees(data, bool(im.info.get("progressive"))):
        return None
    try:
        rgb = cv2.imdecode(data, flag | rgb_flag | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        return None
    if rgb is None or rgb.shape != (im.size[1], im.size[0], 3):  # im.size: the draft's
        return None
    # exif_transpose's turns; OpenCV's copies are 4-30x faster than NumPy's strided ones
    turn = {2: lambda a: cv2.flip(a, 1), 3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
            4: lambda a: cv2.flip(a, 0), 5: cv2.transpose,
            6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
            7: lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),
            8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE)}
    return turn[orientation](rgb) if orientation in turn else rgb


def _file_bytes(im: Image.Image, limit: int) -> np.ndarray | None:
    """The bytes of the file Pillow holds open for ``im``, read from that open file (not
    reopened by name, where another file may stand by now), or None when it is not a file
    or holds over ``limit`` bytes plus 1 MB. Why the bound: OpenCV needs the whole file in
    memory, Pillow reads up to the EOI, and a file far larger than any JPEG of its pixels
    (a video or junk after the EOI) is left to Pillow (400 MB after a 4000 x 3000 photo:
    2.2 s and 870 MB, against Pillow's 0.07 s)."""
    fp = getattr(im, "fp", None)
    try:
        size = os.fstat(fp.fileno()).st_size
    except (AttributeError, OSError, ValueError):  # not a file on disk (or closed)
        return None
    if size > limit + 2**20:
        return None
    data = np.empty(size, np.uint8)
    where = fp.tell()
    try:
        fp.seek(0)
        got = fp.readinto(data)
    except OSError:
        return None
    finally:
        fp.seek(where)
    return data if got == size else None


#: SOF markers of arithmetic-coded JPEGs (sequential, progressive, lossless; the rest Huffman)
_ARITHMETIC_SOF = (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)


def _first_scan(data: np.ndarray) -> tuple[int, int]:
    """(SOF marker, offset of the first scan's entropy-coded data) of the JPEG ``data``;
    (0, 0) where the segments before a scan do not parse."""
    i, n, sof = 2, data.size, 0
    while i + 4 <= n and data[i] == 0xFF:
        marker = int(data[i + 1])
        if marker == 0xFF:  # a fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # not DHT, JPG, DAC
            sof = marker
        i += 2 + (int(data[i + 2]) << 8 | int(data[i + 3]))
        if marker == 0xDA:
            return sof, i
    return 0, 0


def _opencv_agrees(data: np.ndarray, progressive: bool) -> bool:
    """Whether OpenCV decodes the JPEG ``data`` only where Pillow does.

    Not where the data is arithmetic-coded: libjpeg cannot suspend its arithmetic decoder,
    and Pillow feeds it by blocks, so Pillow fails on one over a block ("broken data
    stream") that OpenCV decodes. Not where the first scan meets a marker other than
    restarts (RSTn) before the EOI of a single-scan file: OpenCV stops reading at the last
    row, so a marker libjpeg rejects after it (corrupt data: "Unsupported marker type")
    went unread and OpenCV returned pixels where Pillow, which reads on to the EOI, fails.
    A progressive JPEG is read whole before its first row: OpenCV fails on it as Pillow
    does. Anything else (a sequential file of several scans too) is left to Pillow.
    """
    sof, start = _first_scan(data)
    if not start or sof in _ARITHMETIC_SOF:
        return False
    if progressive:
        return True
    scan = data[start:]
    after = scan[np.flatnonzero(scan[:-1] == 0xFF) + 1]  # 0: a stuffed 0xFF byte
    markers = after[(after != 0) & (after != 0xFF) & ((after & 0xF8) != 0xD0)]
    return markers.size > 0 and markers[0] == 0xD9


def _unknown_format(path: Path) -> str:
    """Why Pillow recognised no format in ``path``: a HEIF/HEIC photo (Pillow has no
    decoder for it) or an AVIF one this Pillow build cannot decode is named as such, not
    called "not an image"."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "a HEIF/HEIC image, which Pillow cannot decode (convert it to JPEG or PNG)"
    if head[4:8] == b"ftyp" and head[8:12] in AVIF_BRANDS:
        return "an AVIF image, which this Pillow cannot decode (convert it to JPEG or PNG)"
    return "not an image file (format not recognised)"


def _arithmetic_jpeg(path: Path) -> bool:
    """Whether ``path`` holds an arithmetic-coded JPEG (read for an error message)."""
    try:
        head = np.fromfile(path, np.uint8, count=4 << 20)
    except OSError:
        return False
    return head[:2].tobytes() == b"\xff\xd8" and _first_scan(head)[0] in _ARITHMETIC_SOF


def _upright(im: Image.Image) -> Image.Image:
    """``im`` turned upright by its EXIF orientation, in place: an upright photo is not
    copied (``exif_transpose`` otherwise copies it, 21 ms for a 3000 x 2000 decode)."""
    ImageOps.exif_transpose(im, in_place=True)
    return im


def _orient_box(box: tuple[float, float, float, float], stored: tuple[int, int],
                orientation: int) -> tuple[float, float, float, float]:
    """``box`` on an image of ``stored`` (width, height), after the EXIF ``orientation``
    transpose that :func:`ImageOps.exif_transpose` applies."""
    W, H = stored
    maps = {
        2: lambda x, y: (W - x, y), 3: lambda x, y: (W - x, H - y),
        4: lambda x, y: (x, H - y), 5: lambda x, y: (y, x),
        6: lambda x, y: (H - y, x), 7: lambda x, y: (H - y, W - x),
        8: lambda x, y: (y, W - x),
    }
    f = maps.get(orientation)
    if f is None:
        return box
    (ax, ay), (bx, by) = f(box[0], box[1]), f(box[2], box[3])
    return (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    """Convert any Pillow mode to RGB uint8; why: timm models expect 3 channels in [0, 255]."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        grey = np.clip(np.round(a / hi * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":  # stretched over its finite values: NaN is drawn as the low end, inf
        a = np.asarray(im, dtype=np.float64)  # as the end it points to (not cast garbage)
        finite = a[np.isfinite(a)]
        if finite.size == 0:
            raise ValueError("a float image without one finite pixel value (all NaN or "
                             "infinite)")
        lo, hi = float(finite.min()), float(finite.max())
        a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
        grey = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo) * 255.0
        return np.repeat(np.round(grey).astype(np.uint8)[:, :, None], 3, axis=2)
    if (mode == "P" and "transparency" in im.info) or mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        base = Image.new("RGBA", im.size, (*background, 255))
        return np.asarray(Image.alpha_composite(base, im).convert("RGB")).copy()
    # one copy out of Pillow (np.array), none more: 3000 x 2000 RGB 8 ms instead of 16
    return np.array(im if im.mode == "RGB" else im.convert("RGB"))


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

    def resized(self, size: tuple[int, int]) -> Geometry:
        """The same geometry on a copy of the whole image resized to ``size`` (height, width),
        each axis scaled on its own (rounded sizes keep the placement exact)."""
        (h, w), (nh, nw) = self.image_size, size
        sx, sy = nw / w, nh / h
        x0, y0, x1, y1 = self.box
        return Geometry((nh, nw), self.input_size, self.grid, (x0 * sx, y0 * sy, x1 * sx, y1 * sy))

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
    """A model-ready image: ``pixels`` float32 [3, H, W] normalised, and its geometry.

    ``display`` is the image the maps are placed on and ``geometry`` is on its pixels; it is
    the original image unless a reduced decode or a display size asked for a smaller copy.
    ``original`` is the same geometry on the original pixels (what results record).
    """

    pixels: np.ndarray
    geometry: Geometry
    display: np.ndarray  # the RGB image the maps are placed on
    model_view: np.ndarray  # uint8 [H, W, 3]: what the model sees, before normalisation
    original: Geometry | None = None  # None: ``geometry`` is on the original pixels

    @property
    def original_geometry(self) -> Geometry:
        return self.geometry if self.original is None else self.original


_PIL_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def resize_target(
    size: tuple[int, int],
    data_config: dict,
    policy: ResizePolicy = "crop",
    patch_size: tuple[int, int] = (16, 16),
) -> tuple[int, int]:
    """(height, width) that :func:`preprocess` resizes an image of ``size`` to before its crop
    or padding: the least a reduced decode must keep for the same model input."""
    h, w = size
    _, th, tw = data_config["input_size"]
    if policy == "crop":
        crop_pct = float(data_config.get("crop_pct") or 1.0)
        if data_config.get("crop_mode", "center") == "squash":
            return math.floor(th / crop_pct), math.floor(tw / crop_pct)
        short = math.floor(min(th, tw) / crop_pct)
        return (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    if policy == "stretch":
        return th, tw
    if policy == "letterbox":
        scale = min(th / h, tw / w)
        return max(1, round(h * scale)), max(1, round(w * scale))
    if policy == "native":
        ph, pw = patch_size
        scale = math.sqrt(th * tw / (h * w))
        return max(ph, round(h * scale / ph) * ph), max(pw, round(w * scale / pw) * pw)
    raise ValueError(f"unknown resize policy {policy!r}; choose one of {RESIZE_POLICIES}")


def display_size(size: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    """(height, width) of a copy of an image of ``size`` whose long side is at most
    ``long_side`` (None: the full size)."""
    h, w = size
    if long_side is None or max(h, w) <= long_side:
        return h, w
    f = long_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def preprocess(
    rgb: np.ndarray | Decoded,
    data_config: dict,
    policy: ResizePolicy = "crop",
    patch_size: tuple[int, int] = (16, 16),
    pad_value: tuple[int, int, int] | None = None,
    display_side: int | None = None,
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

    A :class:`Decoded` image is resized from its ``box``, so the geometry is the one of the
    original pixels whatever the decode's reduction. ``display_side`` bounds the long side of
    the display copy (None: the decoded resolution).
    """
    src = rgb if isinstance(rgb, Decoded) else Decoded.full(rgb)
    h, w = src.size
    _, th, tw = data_config["input_size"]
    mean = np.asarray(data_config["mean"], dtype=np.float32)
    resample = _PIL_FILTERS.get(data_config.get("interpolation", "bicubic"), Image.BICUBIC)
    im = Image.fromarray(src.pixels)
    # a reduced decode is already approximate: let Pillow box-reduce by an integer factor
    # first when the resize shrinks more than 3x (4x faster from a 1/2 JPEG decode; Pillow's
    # docs: reducing_gap 3 is close to fair resampling); full decodes stay timm-exact
    gap = None if src.is_full else 3.0

    def resized(dims: tuple[int, int], filt: Image.Resampling = resample) -> np.ndarray:
        return np.asarray(im.resize((dims[1], dims[0]), filt, box=src.box, reducing_gap=gap))

    sh, sw = resize_target((h, w), data_config, policy, patch_size)
    if policy == "crop":
        resized_full = resized((sh, sw))
        top, left = round((sh - th) / 2.0), round((sw - tw) / 2.0)
        out = resized_full[top : top + th, left : left + tw]
        sx, sy = w / sw, h / sh
        box = (left * sx, top * sy, (left + tw) * sx, (top + th) * sy)
    elif policy in ("stretch", "native"):
        th, tw = sh, sw
        out = resized((sh, sw))
        box = (0.0, 0.0, float(w), float(h))
    else:  # letterbox
        fill = pad_value or tuple(round(m * 255) for m in mean)
        out = np.empty((th, tw, 3), np.uint8)
        out[:] = fill
        top, left = (th - sh) // 2, (tw - sw) // 2
        out[top : top + sh, left : left + sw] = resized((sh, sw))
        sx, sy = w / sw, h / sh
        box = (-left * sx, -top * sy, (tw - left) * sx, (th - top) * sy)
    pixels = normalise_input(out, data_config)
    grid = (th // patch_size[0], tw // patch_size[1])
    geometry = Geometry(image_size=(h, w), input_size=(th, tw), grid=grid, box=box)
    if display_side is None and src.is_full:
        display, shown = src.pixels, geometry
    else:
        x0, _, x1, _ = src.box
        side = display_side or round(max(h, w) * (x1 - x0) / w)
        dims = display_size((h, w), side)
        display = display_copy(src, dims)
        shown = geometry.resized(dims)
    return Preprocessed(pixels, shown, display, np.ascontiguousarray(out),
                        None if shown is geometry else geometry)


def decode_display(path: str | Path, long_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``path`` upright at most ``long_side`` pixels on its long side, decoded only as large
    as that (JPEG draft: a figure of a 24 MP photo needs a fraction of its pixels), and the
    photo's full size (height, width)."""
    src = decode(path, lambda size: display_size(size, long_side))
    return display_copy(src, display_size(src.size, long_side)), src.size


def display_copy(src: Decoded, dims: tuple[int, int]) -> np.ndarray:
    """The display copy of ``dims`` (height, width) from the decoded pixels' ``box``: the
    pixels themselves when they are the whole image at that size.

    Below a 2x reduction (what a reduced decode leaves: it stops at the last halving that
    keeps ``dims``) bilinear interpolation reads every source pixel, so it is a fair
    resample there, and OpenCV's costs a fifth of its area average at such non-integer
    factors (2000 x 1500 -> 1600 x 1200: 4 ms against 18-22 ms, one core; mean difference
    0.2 grey levels). Larger reductions: the area average (exact decodes), else Pillow's
    bilinear filter from the exact ``box``.
    """
    import cv2

    if src.is_full and tuple(dims) == src.pixels.shape[:2]:
        return src.pixels
    ph, pw = src.pixels.shape[:2]
    x0, y0, x1, y1 = src.box
    fx, fy = (x1 - x0) / dims[1], (y1 - y0) / dims[0]
    exact = src.box == (0.0, 0.0, float(pw), float(ph))
    if max(fx, fy) < 2.0:
        if exact:
            return cv2.resize(src.pixels, (dims[1], dims[0]), interpolation=cv2.INTER_LINEAR)
        # display pixel centre (x + 0.5) lies at box x0 + (x + 0.5) fx, a source centre + 0.5
        m = np.array([[fx, 0.0, x0 + 0.5 * fx - 0.5], [0.0, fy, y0 + 0.5 * fy - 0.5]])
        return cv2.warpAffine(src.pixels, m, (dims[1], dims[0]),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
    if not exact:
        return np.asarray(Image.fromarray(src.pixels).resize(
            (dims[1], dims[0]), Image.Resampling.BILINEAR, box=src.box, reducing_gap=3.0))
    return cv2.resize(src.pixels, (dims[1], dims[0]), interpolation=cv2.INTER_AREA)


def normalise_input(view: np.ndarray, data_config: dict) -> np.ndarray:
    """``[3, H, W]`` float32 model input from the uint8 ``[H, W, 3]`` view:
    ``(v / 255 - mean) / std`` (timm's ToTensor + Normalize)."""
    mean = np.asarray(data_config["mean"], dtype=np.float32)
    std = np.asarray(data_config["std"], dtype=np.float32)
    pixels = (view.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def token_means(values: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Mean of ``values`` ``[H, W]`` (on the ORIGINAL image) over each token's rectangle,
    ``[rows, cols]`` float64; parts of a token outside the image count as 0.

    Exact box integrals over an integral image; token edges are rounded to pixels and each
    token's mean is over its own rounded rectangle (dividing by the unrounded cell area
    would leave a fully covered token below 1).
    """
    import cv2

    h, w = geometry.image_size
    integral = cv2.integral(np.ascontiguousarray(values, dtype=np.float64))
    x0, y0, x1, y1 = geometry.box
    gh, gw = geometry.grid
    xr = np.round(x0 + (x1 - x0) * np.arange(gw + 1) / gw).astype(int)
    yr = np.round(y0 + (y1 - y0) * np.arange(gh + 1) / gh).astype(int)
    xs, ys = np.clip(xr, 0, w), np.clip(yr, 0, h)
    total = (integral[ys[1:, None], xs[None, 1:]] - integral[ys[:-1, None], xs[None, 1:]]
             - integral[ys[1:, None], xs[None, :-1]] + integral[ys[:-1, None], xs[None, :-1]])
    return total / np.maximum(np.diff(yr)[:, None] * np.diff(xr)[None, :], 1)


def grid_coverage(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Share of each token's rectangle of the original image covered by ``mask``,
    ``[rows, cols]`` float32 in [0, 1] (:func:`token_means`), so it does not depend on the
    image size."""
    return np.clip(token_means(mask, geometry), 0.0, 1.0).astype(np.float32)


def map_to_image(grid_map: np.ndarray, geometry: Geometry, mode: str = "bilinear",
                 rect: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Place a ``[rows, cols]`` token-grid map on the original image pixels, ``[H, W]`` float32.

    Each token cell covers its exact rectangle of the original image (via ``Geometry.box``);
    pixels outside the model input (cropped away) get 0. ``rect`` (r0, r1, c0, c1) computes
    only those rows and columns (an overlay needs the model's view only).
    """
    import cv2

    h, w = geometry.image_size
    r0, r1, c0, c1 = rect if rect is not None else (0, h, 0, w)
    m = np.ascontiguousarray(grid_map, dtype=np.float32)
    aff = geometry.grid_to_image_affine()
    # cv2 samples pixel centres: grid cell centre c+0.5 maps to pixel centre; shift by half.
    full = np.array([[aff[0, 0], 0, aff[0, 2] + 0.5 * aff[0, 0] - 0.5 - c0],
                     [0, aff[1, 1], aff[1, 2] + 0.5 * aff[1, 1] - 0.5 - r0]])
    interp = cv2.INTER_NEAREST if mode == "nearest" else cv2.INTER_LINEAR
    out = cv2.warpAffine(m, full, (c1 - c0, r1 - r0), flags=interp,
                         borderMode=cv2.BORDER_REPLICATE)
    # pixels whose centre (y + 0.5) lies outside [y0, y1] get 0: a band at each side
    x0, y0, x1, y1 = geometry.box
    ya, yb = math.ceil(y0 - 0.5), math.floor(y1 - 0.5) + 1
    xa, xb = math.ceil(x0 - 0.5), math.floor(x1 - 0.5) + 1
    out[: max(0, ya - r0)] = 0.0
    out[max(0, yb - r0):] = 0.0
    out[:, : max(0, xa - c0)] = 0.0
    out[:, max(0, xb - c0):] = 0.0
    return out
