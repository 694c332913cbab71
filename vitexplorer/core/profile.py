"""Folder head profiles: aggregate per-image head tables into one view of the data set.

"Head 5.3 is a foreground head on 87% of 400 images (95% lower bound 83%)": for each
head, the frequency of every label, the mean and spread of every score, the number of
images, and how sure the majority group is (:func:`wilson_lower`). This profile, not one
image's table, is the grouping result: one image's labels can be marginal.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass

import numpy as np

from vitexplorer.core.constants import AXES, NULL_SET
from vitexplorer.core.heads import HeadTable

#: z of the two-sided 95% interval; a group is confident when its lower bound passes 1/2
Z95 = 1.959964


def wilson_lower(share: np.ndarray, n: int, z: float = Z95) -> np.ndarray:
    """Lower end of the Wilson score interval of a proportion ``share`` of ``n`` images
    (Wilson 1927): ``(p + z^2/2n - z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``. Unlike
    ``p - z sqrt(p(1-p)/n)`` it stays in [0, 1] and does not collapse at p = 1 (10 of 10
    images: 0.72, not 1)."""
    p = np.asarray(share, np.float64)
    den = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / den


@dataclass
class HeadProfile:
    """Aggregated over ``n_images`` tables of the same model (same L x H)."""

    n_images: int
    label_freq: dict[str, dict[str, np.ndarray]]  # axis -> label -> [L, H] share of images
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.mean.values())).shape

    def majority(self, axis: str) -> tuple[np.ndarray, np.ndarray]:
        """The most frequent label per head on ``axis`` and its share."""
        labels = list(self.label_freq[axis])
        stack = np.stack([self.label_freq[axis][k] for k in labels])
        idx = stack.argmax(0)
        return np.array(labels, dtype=object)[idx], stack.max(0)

    def majority_group(self) -> np.ndarray:
        """Per head, the most frequent non-null label over all axes (AXES order breaks
        ties), or "none" when every axis is mostly null."""
        n_l, n_h = self.shape
        out = np.full((n_l, n_h), "none", dtype=object)
        for li in range(n_l):
            for h in range(n_h):
                best, share = "none", 0.5  # a group needs a majority of the images
                for axis in AXES:
                    for label, freq in self.label_freq[axis].items():
                        if label not in NULL_SET and freq[li, h] > share:
                            best, share = label, freq[li, h]
                out[li, h] = best
        return out

    def group_share(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per head: the majority group, the share of images with that label (0 for
        "none") and its confidence, the Wilson 95% lower bound on that share; a group is
        confident (stable over images drawn like these) when the bound exceeds 1/2."""
        groups = self.majority_group()
        share = np.zeros(groups.shape)
        for idx, g in np.ndenumerate(groups):
            axis = next((a for a in AXES if g in self.label_freq[a]), None)
            if g != "none" and axis is not None:
                share[idx] = self.label_freq[axis][g][idx]
        return groups, share, np.where(share > 0, wilson_lower(share, self.n_images), 0.0)

    def describe(self, layer: int, head: int) -> str:
        groups, share, low = self.group_share()
        g = groups[layer, head]
        if g == "none":
            return f"head {layer}.{head} has no majority group on {self.n_images} images"
        sure = "" if low[layer, head] > 0.5 else ", not confident"
        return (f"head {layer}.{head} is a {g} head on {share[layer, head]:.0%} of "
                f"{self.n_images} images (95% lower bound {low[layer, head]:.0%}{sure})")

    def to_csv(self) -> str:
        n_l, n_h = self.shape
        groups, share, low = self.group_share()
        header = ["layer", "head", "n_images", "group", "group_share", "group_confidence"]
        for axis in AXES:
            header += [f"{axis}:{label}" for label in self.label_freq[axis]]
        header += [f"{k}_mean" for k in self.mean] + [f"{k}_std" for k in self.std]
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        for li in range(n_l):
            for h in range(n_h):
                row = [li, h, self.n_images, groups[li, h], f"{share[li, h]:.4f}",
                       f"{low[li, h]:.4f}"]
                for axis in AXES:
                    row += [f"{v[li, h]:.4f}" for v in self.label_freq[axis].values()]
                row += [f"{v[li, h]:.6g}" for v in self.mean.values()]
                row += [f"{v[li, h]:.6g}" for v in self.std.values()]
                w.writerow(row)
        return buf.getvalue()


def aggregate(tables: list[HeadTable]) -> HeadProfile:
    """Label frequencies and score mean / standard deviation per head over ``tables``."""
    if not tables:
        raise ValueError("no head tables to aggregate")
    shape = tables[0].shape
    if any(t.shape != shape for t in tables):
        raise ValueError("head tables come from models of different shapes")
    freq: dict[str, dict[str, np.ndarray]] = {}
    for axis in AXES:
        seen = Counter(str(v) for t in tables for v in t.labels[axis].ravel())
        freq[axis] = {label: np.mean([t.labels[axis] == label for t in tables], axis=0)
                      for label in sorted(seen)}
    keys = [k for k in tables[0].scores if all(k in t.scores for t in tables)]
    stack = {k: np.stack([t.scores[k] for t in tables]) for k in keys}
    return HeadProfile(len(tables), freq, {k: np.nanmean(v, 0) for k, v in stack.items()},
                       {k: np.nanstd(v, 0) for k, v in stack.items()})
