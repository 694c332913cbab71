"""Foreground masks, from the user first and from the model last.

In order of preference: a user's mask file (or one drawn and edited by hand in the GUI);
GrabCut (Rother et al. 2004, SIGGRAPH) initialised with a box the user draws or types
(``--box``), optionally refined by foreground / background scribbles; the model-free default,
GrabCut initialised with the centre box (:func:`centre_box`); and two masks made from the
model's own rollout (its 60%-mass region, Caron et al. 2021, DINO; or GrabCut seeded by
it). Scored against a rollout mask, a head's foreground label measures its agreement with
the model's rollout, not with the object, and every table says so (:data:`MASK_NAMES`).

Masks are bool ``[H, W]`` over the ORIGINAL image; :func:`vitexplorer.core.images.grid_coverage`
turns them into the per-token share the head scores use.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np

from vitexplorer.core.constants import MASS_SHARE
from vitexplorer.core.errors import ImageError, OutputError, UsageError
from vitexplorer.core.files import same_file, write_atomic
from vitexplorer.core.images import Geometry, load_image, map_to_image
from vitexplorer.core.maps import mass_region

MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")
#: what the head tables call the foreground of each mask mode
MASK_NAMES = {
    "centre": "GrabCut in the centre box (model-free)",
    "box": "GrabCut in the given box",
    "scribbles": "GrabCut in the given box with scribbles",
    "edited": "edited by hand",
    "rollout": "agreement with the model's rollout (its 60%-mass region)",
    "grabcut": "agreement with the model's rollout (GrabCut seeded by it)",
}
#: the centre box leaves this share of the width and height free on each side
CENTRE_INSET = 0.1
#: colour-model / cut rounds of a box GrabCut. 3 instead of OpenCV's sample 5: 26% less
#: time (0.49 -> 0.37 s per 400 x 328 image on one core) at the same quality: mean IoU with
#: the true object 0.533 vs 0.532 over 126 composites (a photo's region in a silhouette over
#: another photo, random size and place), and IoU >= 0.90 with the 5-round mask on the 9
#: test photos (``python -m validation.grabcut_rounds``; a 256 px work copy instead drops
#: to 0.42-0.58 on two of them)
GRABCUT_ITERATIONS = 3
#: GrabCut "found nothing" below this share of its box (the object is not in it)
MIN_GRABCUT_SHARE = 0.01
#: :func:`shared_box_grabcut` keeps at most this many masks, and this many bytes of them
GRABCUT_KEPT, GRABCUT_KEPT_BYTES = 8, 64 * 2**20


@dataclass
class Foreground:
    """A foreground mask, what made it (``source``: file, box, scribbles, edited, centre,
    rollout, grabcut), its name in tables, and a warning when the method failed and a
    fallback stands in."""

    mask: np.ndarray
    source: str
    name: str
    warning: str | None = None


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` (pixels of the original image, x1 > x0, y1 > y0) as integers."""
    try:
        x0, y0, x1, y1 = (round(float(v)) for v in text.split(","))
    except (ValueError, OverflowError):
        raise ValueError(f"box {text!r}: give four numbers x0,y0,x1,y1") from None
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {text!r}: x1 must exceed x0 and y1 must exceed y0")
    return x0, y0, x1, y1


def centre_box(shape: tuple[int, int], inset: float = CENTRE_INSET) -> tuple[int, int, int, int]:
    """The model-free default box: the image less ``inset`` of its width and height on each
    side. Photographs put their subject near the centre (photographers' framing; the
    centre bias of fixation data, Tatler 2007), and GrabCut needs only that the object be
    inside the box and some background outside it: the mask then follows the image's own
    colours, not the model under study."""
    h, w = shape
    return round(w * inset), round(h * inset), round(w * (1 - inset)), round(h * (1 - inset))


@dataclass(frozen=True)
class Stroke:
    """A brush stroke: a polyline of ``(x, y)`` pixels painted ``radius`` px to each side.
    ``foreground`` True marks object (a foreground scribble, or "add" on a mask), False
    background (a background scribble, or "erase")."""

    points: tuple[tuple[float, float], ...]
    radius: float
    foreground: bool

    def scaled(self, sx: float, sy: float) -> Stroke:
        """The stroke on a copy of the image scaled by ``sx`` x ``sy``."""
        return Stroke(tuple((x * sx, y * sy) for x, y in self.points),
                      self.radius * (sx + sy) / 2, self.foreground)


def paint_strokes(target: np.ndarray, strokes: list[Stroke] | tuple[Stroke, ...],
                  fg_value: int | bool = True, bg_value: int | bool = False) -> np.ndarray:
    """A copy of ``target`` with each stroke painted in order (later strokes win):
    ``fg_value`` under foreground strokes, ``bg_value`` under background ones. A stroke is
    a disc of its radius at every point joined by lines as wide (at least one pixel)."""
    out = target.astype(np.uint8, copy=True)
    for stroke in strokes:
        value = int(fg_value if stroke.foreground else bg_value)
        pts = [(round(x), round(y)) for x, y in stroke.points]
        r = max(0, round(stroke.radius))
        for p in pts:
            cv2.circle(out, p, r, value, -1)
        for p, q in pairwise(pts):
            cv2.line(out, p, q, value, 2 * r + 1)
    return out.astype(target.dtype)


def _work_copy(image: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    """``image`` at most ``work_size`` pixels on its long side (area averaging), and the
    scale applied: GrabCut's cost grows with the pixels, its mask needs no more."""
    h, w = image.shape[:2]
    scale = min(1.0, work_size / max(h, w))
    if scale == 1:
        return image, scale
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA), scale


def _grabcut(small: np.ndarray, seed: np.ndarray, iterations: int, shape: tuple[int, int],
             rect: tuple[int, int, int, int] | None = None,
             correct: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """GrabCut (Rother et al. 2004) on the RGB work copy ``small`` from the labelling
    ``seed`` (``cv2.GC_INIT_WITH_MASK``), or from ``rect`` (``cv2.GC_INIT_WITH_RECT``);
    ``correct`` relabels the result for a second run that keeps the colour models. Returns
    the foreground (uint8 0/1) at ``shape``, the original image's (nearest neighbour).
    ``cv2.error`` (degenerate colour models) is left to the caller."""
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    cv2.setRNGSeed(0)  # GrabCut's k-means draws from OpenCV's per-thread RNG: same mask per run
    if rect is not None:
        cv2.grabCut(bgr, seed, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    else:
        cv2.grabCut(bgr, seed, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    if correct is not None:
        seed = correct(seed)
        cv2.grabCut(bgr, seed, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    out = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    if out.shape != tuple(shape):
        out = cv2.resize(out, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return out


def box_grabcut(image: np.ndarray, box: tuple[int, int, int, int],
                iterations: int = GRABCUT_ITERATIONS,
                work_size: int = 320, strokes: list[Stroke] | tuple[Stroke, ...] = ()
                ) -> tuple[np.ndarray, str | None]:
    """GrabCut initialised with a rectangle (``cv2.GC_INIT_WITH_RECT``; Rother et al. 2004):
    outside the box is background, inside probable foreground, colour models iterated.

    ``strokes`` (pixels of ``image``) are the user's corrections of Rother et al.'s
    interactive use (section 3.3): after the box run, pixels under a foreground stroke
    become definite foreground, under a background stroke definite background, and the
    colour models and cut are computed again from that labelling
    (``cv2.GC_INIT_WITH_MASK``). A foreground stroke outside the box adds to the object.

    Returns the mask and None, or, when GrabCut fails (degenerate colour models) or keeps
    less than ``MIN_GRABCUT_SHARE`` of the box, the box itself (with the strokes painted on
    it) and a warning saying so: never an empty mask that would make every head "mixed".
    The warning does not repeat the box: ``image`` may be a display copy, whose pixels are
    not the ones the user named the box in (the mask's name gives it in photo pixels).
    A box outside the image is a ValueError.
    """
    h, w = image.shape[:2]
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(w, box[2]), min(h, box[3])
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {tuple(box)} does not overlap the {w}x{h} image")
    filled = np.zeros((h, w), bool)
    filled[y0:y1, x0:x1] = True
    fallback = paint_strokes(filled, strokes)
    if min(x1 - x0, y1 - y0, w, h) < 8:
        return fallback, "the box is too small for GrabCut: the box is the foreground"
    small, scale = _work_copy(image, work_size)
    sh, sw = small.shape[:2]
    rx0, ry0 = min(int(x0 * scale), sw - 2), min(int(y0 * scale), sh - 2)
    rect = (rx0, ry0, max(2, min(sw, round(x1 * scale)) - rx0),
            max(2, min(sh, round(y1 * scale)) - ry0))

    def corrected(seed: np.ndarray) -> np.ndarray:
        return paint_strokes(seed, [s.scaled(scale, scale) for s in strokes],
                             cv2.GC_FGD, cv2.GC_BGD)

    try:
        out = _grabcut(small, np.zeros((sh, sw), np.uint8), iterations, (h, w), rect,
                       corrected if strokes else None)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
        return fallback, (f"GrabCut failed in box {tuple(box)} ({reason}): the box is the "
                          "foreground")
    # at full size, the strokes exactly as drawn (the work copy blurs them by its scale)
    out = paint_strokes(out.astype(bool) & fallback, strokes)
    if out.sum() < MIN_GRABCUT_SHARE * filled.sum():
        return fallback, (f"GrabCut found no object in the box (it kept {out.mean():.1%} of "
                          "the image): the box is the foreground")
    return out, None


class _GrabCuts:
    """Box GrabCut results by (image pixels, box, strokes), the newest last; a caller
    asking for one being computed waits for it instead of computing it twice."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: OrderedDict[tuple, tuple[np.ndarray, str | None]] = OrderedDict()
        self.running: dict[tuple, threading.Lock] = {}

    def get(self, image: np.ndarray, box: tuple[int, int, int, int],
            strokes: tuple[Stroke, ...]) -> tuple[np.ndarray, str | None]:
        digest = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()
        key = (digest, image.shape, str(image.dtype), tuple(box), strokes)
        with self.lock:
            running = self.running.setdefault(key, threading.Lock())
        with running:
            with self.lock:
                if key in self.kept:
                    self.kept.move_to_end(key)
                    return self.kept[key]
            try:
                mask, warning = box_grabcut(image, box, strokes=strokes)
                mask.flags.writeable = False  # shared by every caller
                with self.lock:
                    self.kept[key] = mask, warning
                    while len(self.kept) > 1 and (
                            len(self.kept) > GRABCUT_KEPT or sum(
                                m.nbytes for m, _ in self.kept.values()) > GRABCUT_KEPT_BYTES):
                        self.kept.popitem(last=False)
            finally:
                with self.lock:
                    self.running.pop(key, None)
            return mask, warning

    def clear(self) -> None:
        with self.lock:
            self.kept.clear()


_grabcuts = _GrabCuts()


def shared_box_grabcut(image: np.ndarray, box: tuple[int, int, int, int],
                       strokes: list[Stroke] | tuple[Stroke, ...] = ()
                       ) -> tuple[np.ndarray, str | None]:
    """:func:`box_grabcut` (default settings), computed once per image, box and strokes:
    the mask is a property of the pixels and the user's seeds, not of the model, so two
    models analysing one image (the GUI's compare mode) or a box undone and redone share
    one run (~0.4 s on one core). The image is known by a digest of
    its pixels, so another image, box or stroke is a new run; the last
    :data:`GRABCUT_KEPT` results are kept (read-only arrays)."""
    return _grabcuts.get(image, box, tuple(strokes))


def clear_grabcuts() -> None:
    """Forget the kept GrabCut results (tests counting GrabCut runs start from none)."""
    _grabcuts.clear()


def drawn_foreground(image: np.ndarray, photo_size: tuple[int, int],
                     box: tuple[int, int, int, int] | None = None,
                     scribbles: list[Stroke] | tuple[Stroke, ...] = (),
                     edits: list[Stroke] | tuple[Stroke, ...] = (),
                     base: Foreground | None = None) -> Foreground:
    """The foreground a user drew on a photo of ``photo_size`` (rows, cols), computed on
    ``image``, a copy of it (the GUI's display copy). ``box``, ``scribbles`` and ``edits``
    are in photo pixels. A box (the centre box when only scribbles are given) seeds
    :func:`box_grabcut` with the scribbles; without either, ``base`` (the mask in use) is
    the starting point. ``edits`` then add to (foreground) or erase from the mask. A box
    that misses the photo is a :class:`UsageError` in the pixels it was given in."""
    sy, sx = (n / o for n, o in zip(image.shape[:2], photo_size, strict=True))
    if box is not None:
        (h, w), (x0, y0, x1, y1) = photo_size, box
        if min(x1, w) <= max(x0, 0) or min(y1, h) <= max(y0, 0):
            raise UsageError(f"the box {tuple(box)} does not overlap the {w}x{h} image")
    implied = box is None and bool(scribbles)  # named so: the user drew no box
    if implied:
        box = centre_box(photo_size)
    if box is not None:
        rect = (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))
        mask, warning = shared_box_grabcut(image, rect, [s.scaled(sx, sy) for s in scribbles])
        source = "scribbles" if scribbles else "box"
        name = (f"GrabCut in the centre box {tuple(box)} with scribbles" if implied else
                f"{MASK_NAMES[source]} {tuple(box)}")
        if scribbles:
            n_fg = sum(s.foreground for s in scribbles)
            name += f" ({n_fg} foreground, {len(scribbles) - n_fg} background)"
        fg = Foreground(mask, source, name, warning)
    elif base is not None:
        fg = base
    else:
        raise ValueError("nothing drawn: give a box, scribbles, or a base mask to edit")
    if edits:
        fg = Foreground(paint_strokes(fg.mask, [s.scaled(sx, sy) for s in edits]), "edited",
                        f"{fg.name}, {MASK_NAMES['edited']} ({len(edits)} strokes)",
                        fg.warning)
    return fg


def mask_outline(mask: np.ndarray) -> list[np.ndarray]:
    """The mask's boundary as closed polygons, ``(n, 2)`` float ``(x, y)`` at pixel
    centres: outer borders and holes (Suzuki & Abe 1985 border following,
    ``cv2.findContours``)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2).astype(np.float64) for c in contours]


def mask_path(image: str | Path) -> Path:
    """Where :func:`find_mask_file` looks first for ``image``'s mask: ``<stem>_mask.png``."""
    image = Path(image)
    return image.with_name(f"{image.stem}_mask.png")


def save_mask(mask: np.ndarray, path: str | Path, photo_size: tuple[int, int],
              overwrite: bool = False) -> Path:
    """Write ``mask`` (bool, on a copy of the photo) as a black/white PNG of ``photo_size``
    (rows, cols), the form :func:`load_mask` reads back; written atomically. An existing
    ``path`` is an :class:`OutputError` unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"'{path}' exists; not overwritten")
    if mask.shape != tuple(photo_size):
        mask = cv2.resize(mask.astype(np.float32), (photo_size[1], photo_size[0]),
                          interpolation=cv2.INTER_LINEAR) >= 0.5
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    if not ok:
        raise OutputError(f"Cannot encode '{path}' as PNG")
    write_atomic(path, png.tobytes())
    return path


def find_mask_file(image: str | Path, mask_dir: str | Path | None = None) -> Path | None:
    """The mask of ``image``: ``<stem>_mask.<ext>`` next to it, or ``<stem>.<ext>`` /
    ``<stem>_mask.<ext>`` in ``mask_dir``; None when there is none. A name that is there
    but is no file (a broken or looping link, a folder) is returned too: loading it says
    what is wrong, where skipping it put another foreground in the mask's place unsaid."""
    image = Path(image)
    folders = [Path(mask_dir)] if mask_dir else []
    folders.append(image.parent)
    for folder in folders:
        names = [f"{image.stem}_mask"] + ([image.stem] if folder != image.parent else [])
        for name in names:
            for ext in MASK_SUFFIXES:
                p = folder / f"{name}{ext}"
                if (p.is_symlink() or p.exists()) and not same_file(p, image):
                    return p
    return None


def load_mask(path: str | Path, image_shape: tuple[int, int]) -> np.ndarray:
    """A mask file as bool ``[H, W]``: pixels brighter than mid-grey are foreground.

    Every mode is read as an image is (16-bit by its full range, float over its finite
    values), transparent pixels as black: a mask drawn as an opaque object on a transparent
    layer is that object whatever colour the layer holds. It must have the image's size
    (EXIF orientation applied to both) and mark some object (an empty mask would score every
    head against nothing); otherwise an :class:`ImageError` says so instead of silently
    stretching it or scoring it.
    """
    grey = load_image(path, background=(0, 0, 0)).mean(axis=2)
    if grey.shape != tuple(image_shape):
        raise ImageError(path, f"mask is {grey.shape[1]}x{grey.shape[0]} but the image is "
                               f"{image_shape[1]}x{image_shape[0]}")
    mask = grey > 127
    if not mask.any():
        raise ImageError(path, "the mask marks no object (no pixel brighter than mid-grey; "
                               "white = object)")
    return mask


def fitted_mask(path: str | Path, original_size: tuple[int, int],
                shape: tuple[int, int]) -> np.ndarray:
    """A mask file of an image of ``original_size`` (checked by :func:`load_mask`) on a
    copy of that image of ``shape`` (a display copy): each pixel takes the majority of the
    mask pixels it covers."""
    mask = load_mask(path, original_size)
    if mask.shape != tuple(shape):
        mask = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]),
                          interpolation=cv2.INTER_AREA) >= 0.5
    return mask


def rollout_mask(rollout_map: np.ndarray, geometry: Geometry,
                 mass: float = MASS_SHARE) -> np.ndarray:
    """Foreground = the fewest tokens holding ``mass`` of the fused rollout, on image pixels."""
    region = mass_region(rollout_map, mass).astype(np.float32)
    return map_to_image(region, geometry, "nearest") > 0.5


def grabcut_mask(image: np.ndarray, rollout_map: np.ndarray, geometry: Geometry,
                 iterations: int = 4, work_size: int = 320
                 ) -> tuple[np.ndarray, str | None]:
    """GrabCut (Rother et al. 2004, SIGGRAPH) seeded by the model's own rollout: tokens holding
    the top 40% of the mass are probable foreground, the bottom half of tokens probable
    background, everything else and the pixels outside the model's view definite background
    only where the rollout is lowest. Runs on a copy at most ``work_size`` pixels wide.
    Returns the mask and None, or the rollout's 60%-mass region and a warning when GrabCut
    fails or keeps almost nothing (``MIN_GRABCUT_SHARE`` of the image)."""
    small, scale = _work_copy(image, work_size)
    geom = geometry.scaled(scale)
    geom = Geometry(small.shape[:2], geom.input_size, geom.grid, geom.box)
    fg = map_to_image(mass_region(rollout_map, 0.4).astype(np.float32), geom, "nearest") > 0.5
    low = rollout_map <= np.quantile(rollout_map, 0.5)
    bg = map_to_image(low.astype(np.float32), geom, "nearest") > 0.5
    seed = np.full(small.shape[:2], cv2.GC_PR_BGD, np.uint8)
    seed[fg] = cv2.GC_PR_FGD
    seed[bg] = cv2.GC_BGD
    fallback = "the rollout's 60%-mass region is the foreground"
    if not fg.any() or (seed == cv2.GC_BGD).all():
        return rollout_mask(rollout_map, geometry), f"GrabCut had no seed: {fallback}"
    try:
        out = _grabcut(small, seed, iterations, image.shape[:2])
    except cv2.error:  # degenerate colour models (flat images): fall back to the rollout
        return rollout_mask(rollout_map, geometry), f"GrabCut failed: {fallback}"
    if out.mean() < MIN_GRABCUT_SHARE:
        return rollout_mask(rollout_map, geometry), f"GrabCut found no object: {fallback}"
    return out.astype(bool), None
