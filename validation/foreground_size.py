"""Report: does the foreground label mean the same for a 5% and a 50% object?

Constructed heads on a 14 x 14 patch grid: an ellipse object covering 5, 10, 25 or 50% of
the patches at a random place; a head map that is ``r`` times denser per patch on the object
(object-selective: r in [3, 10]; background-selective: 1/r; unselective: r = 1), times
log-normal noise (sigma 0.3) per patch. For each size, the share of heads labelled
foreground / background by the score before issue 12 (``(m - a)/(1 - a)`` above the area
``a``, ``(m - a)/a`` below, threshold 0.5) and by :func:`vitexplorer.core.heads.foreground_scores`
(density ratio ``r >= 3`` and shuffle ``z >= 2``).

Usage: ``python -m validation.foreground_size`` from the repository root (seeded; < 10 s).
"""

from __future__ import annotations

import numpy as np

from vitexplorer.core.heads import FG_THRESHOLD, foreground_scores

GRID = 14
SHARES = (0.05, 0.10, 0.25, 0.50)
N_HEADS = 300


def ellipse(share: float, rng: np.random.Generator) -> np.ndarray:
    """bool [GRID, GRID]: the ellipse of about ``share`` of the grid, random aspect and place."""
    yy, xx = np.mgrid[:GRID, :GRID] + 0.5
    aspect = rng.uniform(0.6, 1.6)
    ry = np.sqrt(share * GRID * GRID / np.pi * aspect)
    rx = share * GRID * GRID / (np.pi * ry)
    cy = rng.uniform(min(ry, GRID / 2), max(GRID - ry, GRID / 2))
    cx = rng.uniform(min(rx, GRID / 2), max(GRID - rx, GRID / 2))
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def old_labels(maps: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """The foreground score before issue 12 (kept here only to report the change)."""
    a = cover.mean()
    m = (maps / maps.sum(axis=(-1, -2), keepdims=True) * cover).sum(axis=(-1, -2))
    score = np.where(m >= a, (m - a) / (1 - a), (m - a) / a)
    return np.where(score >= FG_THRESHOLD, "foreground",
                    np.where(score <= -FG_THRESHOLD, "background", "mixed"))


def run(seed: int = 0, n_heads: int = N_HEADS) -> dict[tuple[str, float], tuple[float, float]]:
    """(kind, share) -> (share of heads labelled as their kind: old, new)."""
    rng = np.random.default_rng(seed)
    valid = np.ones((GRID, GRID), bool)
    want = {"object": "foreground", "background": "background", "unselective": "mixed"}
    out = {}
    for share in SHARES:
        hits = {k: [0, 0] for k in want}
        for _ in range(n_heads):
            obj = ellipse(share, rng)
            cover = obj.astype(np.float64)
            r = rng.uniform(3.0, 10.0)
            noise = np.exp(0.3 * rng.standard_normal((3, GRID, GRID)))
            maps = np.stack([np.where(obj, r, 1.0), np.where(obj, 1.0, r), np.ones_like(cover)])
            maps = maps * noise
            new = foreground_scores(maps, cover, valid)["_label"]
            old = old_labels(maps, cover)
            for i, kind in enumerate(want):
                hits[kind][0] += old[i] == want[kind]
                hits[kind][1] += new[i] == want[kind]
        for kind, (o, n) in hits.items():
            out[(kind, share)] = (o / n_heads, n / n_heads)
    return out


def main() -> None:
    res = run()
    print(f"{'heads':<12}{'object share':>13}{'old':>8}{'new':>8}   (share labelled as built)")
    for (kind, share), (old, new) in res.items():
        print(f"{kind:<12}{share:>13.0%}{old:>8.0%}{new:>8.0%}")


if __name__ == "__main__":
    main()
