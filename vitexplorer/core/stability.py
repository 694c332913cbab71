"""Label stability: recompute head labels under small perturbations of the image.

A label a user can trust should not flip when the image is mirrored, rescaled by 5% or its
colours jitter slightly. Each perturbation costs one forward; the foreground mask is
perturbed with the image (so fg/bg labels are compared on the same object).
"""

from __future__ import annotations

import cv2
import numpy as np

from vitexplorer.core.analysis import Analysis, analyze
from vitexplorer.core.capture import StopCheck
from vitexplorer.core.constants import AXES
from vitexplorer.core.errors import Cancelled
from vitexplorer.core.models import LoadedModel

PERTURBATIONS = ("hflip", "scale+5%", "scale-5%", "jitter")


def perturb(image: np.ndarray, mask: np.ndarray, kind: str, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """The image and its mask under one perturbation: horizontal flip, +/-5% scale
    (resize about the centre, cropped or edge-padded back to size), or colour jitter
    (brightness and contrast +/-5%, per-channel gain +/-3%, seeded)."""
    h, w = image.shape[:2]
    if kind == "hflip":
        return image[:, ::-1].copy(), mask[:, ::-1].copy()
    if kind.startswith("scale"):
        f = 1.05 if "+" in kind else 0.95
        m = np.float32([[f, 0, (1 - f) * w / 2], [0, f, (1 - f) * h / 2]])
        img = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        msk = cv2.warpAffine(mask.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_REPLICATE) > 0
        return img, msk
    if kind == "jitter":
        rng = np.random.default_rng(seed)
        gain = rng.uniform(0.97, 1.03, 3) * rng.uniform(0.95, 1.05)
        mean = image.reshape(-1, 3).mean(0)
        contrast = rng.uniform(0.95, 1.05)
        out = (image.astype(np.float32) - mean) * contrast + mean
        return np.clip(out * gain, 0, 255).astype(np.uint8), mask
    raise ValueError(f"unknown perturbation {kind!r}; choose from {PERTURBATIONS}")


def label_stability(
    loaded: LoadedModel, analysis: Analysis, mask: np.ndarray | None = None,
    mode: str = "rollout", kinds: tuple[str, ...] = PERTURBATIONS,
    should_stop: StopCheck = None,
) -> dict[str, np.ndarray]:
    """Per axis, the share ``[L, H]`` of perturbations under which each head keeps its label.

    The foreground mask of the unperturbed image (given, or from the model's rollout) is
    perturbed with the image, so changes measure the heads, not the mask.
    """
    base = analysis.head_table(mode, mask)
    fg = analysis.foreground_mask(mode, mask)
    kept = {axis: np.zeros(base.shape) for axis in AXES}
    for kind in kinds:
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled")
        img, msk = perturb(analysis.image, fg, kind)
        other = analyze(loaded, img, analysis.policy, source=f"{analysis.source} [{kind}]",
                        should_stop=should_stop)
        table = other.head_table(mask=msk, mask_name="perturbed")
        for axis in AXES:
            kept[axis] += table.labels[axis] == base.labels[axis]
    return {axis: v / len(kinds) for axis, v in kept.items()}
