"""Measures of maps: agreement with object masks, and faithfulness to the classifier.

Mask agreement, the DINO protocol (Caron et al. 2021, "Emerging Properties in
Self-Supervised Vision Transformers", Table 4 / Fig. 4): a map's region ``R60`` is the fewest
patches holding 60% of its mass (:func:`~vitexplorer.core.render.mass_region`); its Jaccard
index with the object mask ``M`` is ``|M ∩ R60| / |M ∪ R60|``, counted in image pixels.

Faithfulness (Petsiuk et al. 2018, "RISE", deletion / insertion; Chefer et al. 2021,
"Transformer Interpretability Beyond Attention Visualization", positive / negative
perturbation): patches are removed (or inserted) in the order a map ranks them and the
model's output is read after each step. Every method is reported next to a random map,
because these metrics can fail to separate methods from random attributions (Wu et al.,
CVPR 2024).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vitexplorer.core.constants import MASS_SHARE
from vitexplorer.core.errors import Cancelled, ImageError
from vitexplorer.core.images import Geometry, grid_coverage, opened_image
from vitexplorer.core.maps import mass_region

#: the four curves each method gets (see :class:`Curves`)
CURVES = ("deletion", "insertion", "positive", "negative")


# ------------------------------------------------------------------------ mask agreement
def load_label_mask(path: str | Path, image_shape: tuple[int, int]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(foreground, void)`` bool ``[H, W]`` from a mask file.

    Palette PNGs (PASCAL VOC ``SegmentationClass``/``SegmentationObject``) are read as class
    indices: foreground = any index 1..254, void = 255 (the boundary band VOC leaves
    unlabelled, excluded from the Jaccard index as in VOC's own evaluation). Any other mode
    is a binary mask read as :func:`~vitexplorer.core.masks.load_mask` reads it for the head
    tables (16-bit by its full range, float over its finite values, transparency as
    background), no void. The file is opened and checked as an image is
    (:func:`~vitexplorer.core.images.opened_image`), and its EXIF orientation applied, as to
    the image the mask belongs to. A mask of another size, or one marking no object (its
    Jaccard index would be 0 whatever the map), is an :class:`ImageError`.
    """
    from PIL import ImageOps

    from vitexplorer.core.masks import load_mask

    with opened_image(path) as im:
        palette = im.mode == "P"
        if palette:
            im.load()
            idx = np.asarray(ImageOps.exif_transpose(im))  # a palette stays a palette
    if not palette:
        return load_mask(path, image_shape), np.zeros(tuple(image_shape), bool)
    fg, void = (idx > 0) & (idx < 255), idx == 255
    if fg.shape != tuple(image_shape):
        raise ImageError(path, f"mask is {fg.shape[1]}x{fg.shape[0]} but the image is "
                               f"{image_shape[1]}x{image_shape[0]}")
    if not fg.any():
        raise ImageError(path, "the mask marks no object (no class index 1..254)")
    return fg, void


def token_areas(foreground: np.ndarray, void: np.ndarray, geometry: Geometry
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per token, the image pixels of the object and the pixels that count at all
    (on the image, inside the model's view, not void), ``[gh, gw]`` each, in pixels (exact
    box integrals, :func:`~vitexplorer.core.images.grid_coverage`)."""
    x0, y0, x1, y1 = geometry.box
    gh, gw = geometry.grid
    cell = (x1 - x0) / gw * (y1 - y0) / gh
    counted = ~void
    obj = grid_coverage(foreground & counted, geometry).astype(np.float64) * cell
    valid = grid_coverage(counted, geometry).astype(np.float64) * cell
    return obj, valid


def region_jaccard(maps: np.ndarray, obj: np.ndarray, valid: np.ndarray,
                   mass: float = MASS_SHARE) -> np.ndarray:
    """Jaccard index between the object and each map's ``mass`` region, ``[...]`` for maps
    ``[..., gh, gw]``: with per-token object pixels ``o_t`` and counted pixels ``v_t``
    (:func:`token_areas`) and ``R`` the region's tokens,
    ``J = sum_R o / (sum_all o + sum_R v - sum_R o)`` (pixels, the region upsampled by
    nearest neighbour as in DINO's visualisation). 0 when both are empty."""
    region = mass_region(maps, mass)
    inter = (region * obj).sum(axis=(-1, -2))
    union = obj.sum() + (region * valid).sum(axis=(-1, -2)) - inter
    return np.divide(inter, union, out=np.zeros(np.shape(inter)), where=union > 0)


def random_map(grid: tuple[int, int], seed: int) -> np.ndarray:
    """The random attribution every method is reported next to: i.i.d. uniform patch values
    (its ranking is a uniformly random permutation of the patches)."""
    rng = np.random.default_rng(seed)
    m = rng.random(grid)
    return (m / m.sum()).astype(np.float32)


# --------------------------------------------------------------------------- faithfulness
@dataclass
class Curves:
    """One method's perturbation curves on one image, each ``[S]`` over ``fractions``.

    ``deletion`` (RISE): probability of the target as the map's highest patches are
    replaced by the baseline (lower area = more faithful); ``insertion`` (RISE): the
    probability as its highest patches are put back onto a blurred image (higher = better);
    ``positive`` / ``negative`` (Chefer et al.): whether the top-1 class is still the target
    as the highest / lowest patches are removed (lower / higher area = better).
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    positive: np.ndarray
    negative: np.ndarray

    def aucs(self) -> dict[str, float]:
        """Area under each curve over the removed (inserted) fraction 0..1, trapezoidal;
        positive / negative in percent (the area of a top-1 accuracy, as Chefer reports)."""
        out = {}
        f = self.fractions
        for name in CURVES:
            y = getattr(self, name)
            area = float(np.sum(np.diff(f) * (y[1:] + y[:-1]) / 2))
            out[f"{name}_auc"] = area * 100 if name in ("positive", "negative") else area
        return out

    def to_dict(self) -> dict:
        return {"fractions": self.fractions.tolist(),
                **{k: getattr(self, k).tolist() for k in CURVES}, **self.aucs()}


def step_counts(n_patches: int, steps: int) -> np.ndarray:
    """Patches removed at each of ``steps + 1`` points: ``round(n * k / steps)``, k=0..steps."""
    return np.round(np.arange(steps + 1) * n_patches / steps).astype(int)


def blurred(pixels: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """The insertion canvas: the image under a Gaussian blur (RISE: kernel 11, sigma 5)."""
    import cv2

    arr = pixels.detach().cpu().numpy().transpose(1, 2, 0)
    out = cv2.GaussianBlur(np.ascontiguousarray(arr), (11, 11), sigma)
    return torch.from_numpy(out.transpose(2, 0, 1).copy()).to(pixels)


def perturbed(pixels: torch.Tensor, canvas: torch.Tensor, order: np.ndarray,
              counts: Iterable[int], grid: tuple[int, int]) -> torch.Tensor:
    """``[S, 3, H, W]``: for each count k, ``pixels`` with the patches ``order[:k]`` taken
    from ``canvas`` (deletion: canvas = baseline; insertion: swap the two)."""
    gh, gw = grid
    ph, pw = pixels.shape[-2] // gh, pixels.shape[-1] // gw
    counts = list(counts)
    rank = np.empty(gh * gw, int)
    rank[order] = np.arange(gh * gw)
    taken = torch.from_numpy(rank[None, :] < np.asarray(counts)[:, None])  # [S, P]
    taken = taken.reshape(len(counts), 1, gh, gw).to(pixels.device)
    taken = taken.repeat_interleave(ph, -2).repeat_interleave(pw, -1)
    return torch.where(taken, canvas, pixels)


Forward = Callable[[torch.Tensor], torch.Tensor]


def faithfulness(
    forward: Forward, pixels: torch.Tensor, maps: dict[str, np.ndarray], target: int,
    steps: int = 10, batch_size: int = 32, baseline: torch.Tensor | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Curves]:
    """The :class:`Curves` of every map in ``maps`` (``[gh, gw]`` each) for class
    ``target`` on one image ``pixels`` ``[3, H, W]`` (the model's normalised input).

    Removed patches take ``baseline`` (default 0, the normalised input's mean colour, as
    Chefer et al. zero the normalised pixels); insertion starts from :func:`blurred`.
    Patches are ranked by the map (stable, highest first); ``steps`` points from 0% to 100%.
    The images shared by all methods (the original, the fully removed, the fully blurred)
    are run once; the rest go through ``forward`` (``[B, 3, H, W] -> logits``) in batches,
    made as they are needed (memory: one batch, not every perturbed image).
    ``should_stop`` is asked before each batch (:class:`Cancelled` when it says so): an
    image at a large input size runs minutes of forwards.
    """
    grid = next(iter(maps.values())).shape
    n = grid[0] * grid[1]
    counts = step_counts(n, steps)
    inner = counts[1:-1]
    base = torch.zeros_like(pixels) if baseline is None else baseline.to(pixels)
    canvas = blurred(pixels)
    def parts():  # original, all removed, all blurred; then three sets per map, each made
        yield torch.stack([pixels, base, canvas])  # a batch at a time (--steps 100000 made
        for m in maps.values():  # 100000 images at once: 60 GB at 224 px)
            order = np.argsort(-np.asarray(m, np.float64).ravel(), kind="stable")
            for src, dst, o in ((pixels, base, order), (pixels, base, order[::-1]),
                                (canvas, pixels, order)):
                for i in range(0, len(inner), batch_size):
                    yield perturbed(src, dst, o, inner[i:i + batch_size], grid)

    logits = torch.cat(list(_batched(forward, parts(), batch_size, should_stop)))
    prob = logits.softmax(-1)[:, target].numpy().astype(np.float64)
    top1 = (logits.argmax(-1) == target).numpy().astype(np.float64)
    k = len(inner)
    out = {}
    for i, name in enumerate(maps):
        s = 3 + 3 * k * i
        dele, neg, ins = slice(s, s + k), slice(s + k, s + 2 * k), slice(s + 2 * k, s + 3 * k)

        def removal(values: np.ndarray, part: slice) -> np.ndarray:
            return np.concatenate([[values[0]], values[part], [values[1]]])

        out[name] = Curves(counts / n, removal(prob, dele),
                           np.concatenate([[prob[2]], prob[ins], [prob[0]]]),
                           removal(top1, dele), removal(top1, neg))
    return out


def _batched(forward: Forward, parts: Iterable[torch.Tensor], batch_size: int,
             should_stop: Callable[[], bool] | None = None) -> Iterable[torch.Tensor]:
    """Logits of the images in ``parts`` (tensors ``[k, 3, H, W]``), run ``batch_size`` at a
    time: only one batch and one part are held at once, whatever the number of steps."""
    pending: list[torch.Tensor] = []
    held = 0

    def run(batch: torch.Tensor) -> torch.Tensor:
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled")
        return forward(batch).float().cpu()

    with torch.inference_mode():
        for part in parts:
            pending.append(part)
            held += len(part)
            while held >= batch_size:
                chunk = torch.cat(pending)
                yield run(chunk[:batch_size])
                rest = chunk[batch_size:]
                pending, held = ([rest] if len(rest) else []), len(rest)
        if held:
            yield run(torch.cat(pending))


def forwards_needed(n_maps: int, steps: int = 10) -> int:
    """How many images :func:`faithfulness` runs: 3 shared + 3 curves x (steps - 1) each."""
    return 3 + 3 * n_maps * (steps - 1)
