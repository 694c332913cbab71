"""Report: how many GrabCut rounds and how large a work copy the default foreground needs.

The head table's model-free foreground is GrabCut in the centre box (``core.masks``); it
costs more than a small model's forward. Photo composites with an exact object: a region of
one photograph inside a silhouette (the horse, an ellipse, a star; random scale 0.6-1.2 and
shift up to 40 px) over another photograph, for every ordered pair of the 7 photos and
textures in ``shared/images`` (126 images, 328 x 400). For each (work size, rounds): the mean,
median and 10th percentile of the IoU with the true object, how often it is 0.1 worse or
better than (320, 5), and the time per image; then the IoU of each setting with the (320, 5)
mask on the test photos themselves (no truth there: agreement only).

Usage: ``python -m validation.grabcut_rounds [SHARED_IMAGES]`` from the repository root
(seeded; about 6 minutes on one core).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from validation.composites import CANVAS, silhouette
from vitexplorer.core.images import load_image
from vitexplorer.core.masks import box_grabcut, centre_box

PHOTOS = ("astronaut", "chelsea", "coins", "camera", "brick", "grass", "gravel")
SETTINGS = ((320, 5), (320, 3), (256, 5), (256, 3), (200, 5))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def photo_composites(folder: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB image, true object mask) for every ordered photo pair and silhouette."""
    h, w = CANVAS
    photos = {n: cv2.resize(load_image(folder / f"{n}.png"), (w, h),
                            interpolation=cv2.INTER_AREA) for n in PHOTOS}
    rng = np.random.default_rng(0)
    out = []
    for fg, bg in itertools.permutations(PHOTOS, 2):
        for kind in ("horse", "ellipse", "star"):
            scale = rng.uniform(0.6, 1.2)
            dx, dy = rng.integers(-40, 41, 2)
            warp = np.float32([[scale, 0, (1 - scale) * w / 2 + dx],
                               [0, scale, (1 - scale) * h / 2 + dy]])
            mask = cv2.warpAffine(silhouette(kind, folder).astype(np.uint8), warp, (w, h),
                                  flags=cv2.INTER_NEAREST) > 0
            soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.0)[..., None]
            image = (soft * photos[fg] + (1 - soft) * photos[bg]).astype(np.uint8)
            out.append((f"{fg}/{bg}/{kind}", image, mask))
    return out


def main(folder: Path) -> None:
    cases = photo_composites(folder)
    scores = {s: [] for s in SETTINGS}
    seconds = dict.fromkeys(SETTINGS, 0.0)
    for _, image, truth in cases:
        box = centre_box(image.shape[:2])
        for size, rounds in SETTINGS:
            t0 = time.perf_counter()
            mask, _ = box_grabcut(image, box, iterations=rounds, work_size=size)
            seconds[(size, rounds)] += time.perf_counter() - t0
            scores[(size, rounds)].append(iou(mask, truth))
    ref = np.array(scores[SETTINGS[0]])
    print(f"{len(cases)} photo composites: IoU with the true object")
    for s in SETTINGS:
        r = np.array(scores[s])
        print(f"  work {s[0]} px, {s[1]} rounds: mean {r.mean():.3f} median {np.median(r):.3f} "
              f"p10 {np.percentile(r, 10):.3f}; 0.1 worse than (320, 5) {(r < ref - 0.1).sum()}, "
              f"better {(r > ref + 0.1).sum()}; {seconds[s] / len(cases):.3f} s/image")
    print("test photos: IoU with the (320, 5) mask")
    for path in sorted(folder.glob("*.png")):
        image = load_image(path)
        box = centre_box(image.shape[:2])
        base, _ = box_grabcut(image, box, iterations=5, work_size=320)
        agree = [iou(box_grabcut(image, box, iterations=r, work_size=s)[0], base)
                 for s, r in SETTINGS[1:]]
        print(f"  {path.name}: " + ", ".join(f"{s}/{r} {a:.2f}"
                                             for (s, r), a in zip(SETTINGS[1:], agree,
                                                                  strict=True)))


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "images"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
