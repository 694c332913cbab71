"""Validation on a trained model: do the head scores agree with the raw attention?

Trains a small timm ViT (128 px, patch 16, 4 blocks x 4 heads) on CPU to name the shape of a
flat-coloured object (ellipse, rectangle, triangle) laid over crops of natural textures
(``tests/data``: grass, gravel, brick) near their own scale, every image with its exact
mask (:func:`sample`). Saves the weights as ``.safetensors``. Then, on held-out images,
scores every head with :meth:`vitexplorer.core.analysis.Analysis.head_table` against the
exact mask and compares each score with a measurement made independently from the raw
attention (the class-token row recomputed from each block's input with its own q/k
projections, in float64) and the exact mask alone (:func:`independent`):

- ``fg_score`` vs the density ratio of mass per object patch to mass per background patch
  and ``fg_jaccard`` vs the mass on the object;
- ``edge_lift`` vs the mass on the outline band (pixels within BAND px of the mask's
  boundary) over a uniform map's;
- ``texture_lift`` vs the mass on the texture region (pixels farther than BAND px outside
  the object) over a uniform map's.

Spearman's rho per score over all (image, layer, head); the foreground, edge and texture
labels' precision / recall against the same rules applied to the independent measurements
(:func:`independent_labels`); and the folder profile's confident groups (Wilson 95% lower
bound > 1/2, :mod:`vitexplorer.core.profile`) for the trained model and for the same
architecture at random init (the control: it should have none).

Usage: ``python -m validation.train_small_vit [--steps 1500] [--out DIR]`` from the
repository root; seeded; prints the training time and the results table.
The test suite runs a shortened version (``tests/core/test_trained_vit.py``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

from vitexplorer.core.analysis import analyze
from vitexplorer.core.heads import (
    EDGE_LIFT,
    TEXTURE_MAX_EDGE_LIFT,
    TEXTURE_MIN_LIFT,
    TEXTURE_SHARE,
)
from vitexplorer.core.images import load_image
from vitexplorer.core.models import LoadedModel, model_data_config
from vitexplorer.core.profile import aggregate

SIZE, PATCH = 128, 16
GRID = SIZE // PATCH
BAND = 3  # px: the independent outline band, pixels within BAND of the mask's boundary
SHAPES = ("ellipse", "rectangle", "triangle")
TEXTURES = ("grass", "gravel", "brick")
WEIGHTS = "tiny_shapes_vit.safetensors"  # the file name main() saves under --out
DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def textures() -> list[np.ndarray]:
    """The grey textures, float32 ``[H, W]``."""
    return [load_image(DATA / f"{n}.png").mean(2, dtype=np.float32) for n in TEXTURES]


def sample(rng: np.random.Generator, texs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """One image ``[SIZE, SIZE, 3]`` uint8, its exact object mask and the shape's class.

    The background is a crop of a texture near its own scale (side SIZE..1.5 SIZE reduced to
    SIZE), flipped and rotated at random, its contrast scaled by 0.4..1.0 (as the composites of
    ``validation/composites.py``); the object a flat colour 30-80 grey levels beyond the
    crop's 90th (or below its 10th) percentile, so it differs from the texture in brightness
    as well as in hue, with 2 levels of noise.
    """
    tex = texs[rng.integers(len(texs))]
    side = int(rng.integers(SIZE, SIZE * 3 // 2))
    y, x = rng.integers(0, tex.shape[0] - side), rng.integers(0, tex.shape[1] - side)
    back = cv2.resize(tex[y:y + side, x:x + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    back = np.rot90(back[:, ::-1] if rng.random() < 0.5 else back, int(rng.integers(4)))
    mean = float(back.mean())
    back = mean + float(rng.uniform(0.4, 1.0)) * (back - mean)
    cls = int(rng.integers(len(SHAPES)))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    r = rng.uniform(0.14, 0.31) * SIZE
    cx, cy = rng.uniform(r, SIZE - r, 2)
    if cls == 0:
        cv2.ellipse(mask, (round(cx), round(cy)), (round(r), round(r * rng.uniform(0.6, 1.0))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif cls == 1:
        w, h = r * rng.uniform(0.7, 1.0), r * rng.uniform(0.5, 0.9)
        cv2.rectangle(mask, (round(cx - w), round(cy - h)), (round(cx + w), round(cy + h)), 1, -1)
    else:
        a = rng.uniform(0, 2 * np.pi)
        pts = [(cx + r * np.cos(a + k * 2 * np.pi / 3), cy + r * np.sin(a + k * 2 * np.pi / 3))
               for k in range(3)]
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    if rng.random() < 0.5:
        level = np.percentile(back, 90) + rng.uniform(30, 80)
    else:
        level = np.percentile(back, 10) - rng.uniform(30, 80)
    colour = np.clip(level, 10, 245) + rng.normal(0, 15, 3)
    noise = rng.normal(0, 2, (SIZE, SIZE)).astype(np.float32)
    inside = mask > 0
    img = np.stack([np.where(inside, c + noise, back) for c in colour], -1)
    return np.clip(img, 0, 255).astype(np.uint8), inside, cls


def build(seed: int) -> torch.nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(img_size=SIZE, patch_size=PATCH, num_classes=len(SHAPES),
                             embed_dim=96, depth=4, num_heads=4, mlp_ratio=2.0)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5


PEAK_LR = 2e-3
WARMUP = 0.1  # share of the steps the one-cycle schedule spends rising to PEAK_LR


def one_cycle(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule over ``steps`` steps (Smith & Topin, 2019), warm-up WARMUP.

    torch's OneCycleLR ends the warm-up at step ``pct_start * total_steps - 1`` and divides
    by that, so a warm-up of exactly one step (``steps`` = 10 here) divides by zero at the
    first step (pytorch/pytorch#180187); that warm-up is made two steps long. A shorter one
    is none (the rate starts near the peak and falls), a longer one is as asked."""
    total = max(steps, 1)
    pct = WARMUP if WARMUP * total != 1 else 2 / total
    return torch.optim.lr_scheduler.OneCycleLR(opt, PEAK_LR, total_steps=total, pct_start=pct)


def train(steps: int, seed: int = 0, batch: int = 48,
          held_out: int = 300) -> tuple[torch.nn.Module, float]:
    """AdamW, one-cycle schedule (peak PEAK_LR); returns the model and its accuracy on
    ``held_out`` new images."""
    rng = np.random.default_rng(seed)
    texs = textures()
    model = build(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=PEAK_LR, weight_decay=0.05)
    sched = one_cycle(opt, steps)
    model.train()
    for _ in range(steps):
        imgs, _masks, ys = zip(*(sample(rng, texs) for _ in range(batch)), strict=True)
        loss = torch.nn.functional.cross_entropy(model(to_tensor(np.stack(imgs))),
                                                 torch.tensor(ys))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    test = np.random.default_rng(seed + 1000)
    imgs, _masks, ys = zip(*(sample(test, texs) for _ in range(held_out)), strict=True)
    with torch.no_grad():
        pred = model(to_tensor(np.stack(imgs))).argmax(1).numpy()
    return model, float((pred == np.array(ys)).mean())


def raw_cls_rows(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """``[L, H, GRID, GRID]`` float64: each block's class-token row over patches, recomputed
    from the block's input with its own qkv projection (independent of vitexplorer's
    capture), renormalised over patches."""
    rows = []

    def hook(attn, inputs, _out):
        x = inputs[0]
        b, n, c = x.shape
        qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads)
        q, k = qkv.permute(2, 0, 3, 1, 4)[:2]
        q, k = attn.q_norm(q), attn.k_norm(k)
        a = ((q.double() @ k.double().transpose(-2, -1)) * attn.scale).softmax(-1)
        r = a[0, :, 0, 1:]
        rows.append((r / r.sum(-1, keepdim=True)).reshape(-1, GRID, GRID).numpy())

    handles = [blk.attn.register_forward_hook(hook) for blk in model.blocks]
    try:
        with torch.no_grad():
            model(to_tensor(image[None]))
    finally:
        for h in handles:
            h.remove()
    return np.stack(rows)


def coverage(mask: np.ndarray) -> np.ndarray:
    """Exact share of each patch's pixels in ``mask`` (float64 block means)."""
    return mask.reshape(GRID, PATCH, GRID, PATCH).mean(axis=(1, 3), dtype=np.float64)


def band_and_texture(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each patch's share of the outline band (pixels within BAND of the mask's boundary)
    and of the texture region (pixels farther than BAND outside the object)."""
    k = np.ones((2 * BAND + 1,) * 2, np.uint8)
    u8 = mask.astype(np.uint8)
    grown = cv2.dilate(u8, k)
    return coverage((grown - cv2.erode(u8, k)) > 0), coverage(grown == 0)


def independent(rows: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The raw-attention measurements, ``[L, H]`` each, from the exact mask alone: the
    density ratio (mass per object patch over mass per background patch, object patches
    those at least half covered), the mass on the object (pixel coverage), and the mass on
    the outline band (pixels within BAND of the mask's boundary) and on the texture region
    (pixels farther than BAND outside the object), each over a uniform map's."""
    cover = coverage(mask)
    obj = cover >= 0.5
    m_obj = rows[..., obj].sum(-1)
    ratio = (m_obj / obj.sum()) / np.maximum((1 - m_obj) / (~obj).sum(), 1e-12)
    band, texture = band_and_texture(mask)
    return {"density_ratio": ratio, "object_mass": (rows * cover).sum((-1, -2)),
            "band_lift": (rows * band).sum((-1, -2)) / band.mean(),
            "texture_mass": (rows * texture).sum((-1, -2)),
            "texture_region_lift": (rows * texture).sum((-1, -2)) / texture.mean()}


PAIRS = (("fg_score", "density_ratio"), ("fg_jaccard", "object_mass"),
         ("edge_lift", "band_lift"), ("texture_lift", "texture_region_lift"))


def independent_labels(ind: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The labels :mod:`vitexplorer.core.heads` gives, at the same thresholds, applied to
    the independent measurements (the mask's band and texture region for the image
    features)."""
    edge = ind["band_lift"] >= EDGE_LIFT
    texture = (~edge & (ind["texture_mass"] >= TEXTURE_SHARE)
               & (ind["texture_region_lift"] >= TEXTURE_MIN_LIFT)
               & (ind["band_lift"] < TEXTURE_MAX_EDGE_LIFT))
    return {"foreground": ind["density_ratio"] >= 3, "edge": edge, "texture": texture}


LABELS = (("foreground", "fg_bg"), ("edge", "edge_texture"), ("texture", "edge_texture"))


def as_loaded(model: torch.nn.Module, name: str) -> LoadedModel:
    """``model`` as vitexplorer loads it, with the training's normalisation (:func:`to_tensor`)."""
    cfg = model_data_config(model)
    cfg.update(mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    return LoadedModel(model, name, name, "random", cfg, torch.device("cpu"))


def evaluate(model: torch.nn.Module, n_images: int, seed: int = 7, name: str = "model") -> dict:
    """Spearman per score, label precision / recall, confident groups over ``n_images``."""
    loaded = as_loaded(model, name)
    rng = np.random.default_rng(seed)
    texs = textures()
    tables, ours, theirs = [], {k: [] for k, _ in PAIRS}, {k: [] for _, k in PAIRS}
    got = {label: [] for label, _ in LABELS}
    want = {label: [] for label, _ in LABELS}
    for i in range(n_images):
        img, mask, _ = sample(rng, texs)
        table = analyze(loaded, img, "stretch", source=f"{name} #{i}").head_table(
            mask=mask, mask_name="exact mask")
        tables.append(table)
        ind = independent(raw_cls_rows(model, img), mask)
        for a, b in PAIRS:
            ours[a].append(table.scores[a].ravel())
            theirs[b].append(ind[b].ravel())
        truth = independent_labels(ind)
        for label, axis in LABELS:
            got[label].append(table.labels[axis].ravel() == label)
            want[label].append(truth[label].ravel())
    rho = {a: float(spearmanr(np.concatenate(ours[a]), np.concatenate(theirs[b]))[0])
           for a, b in PAIRS}
    out: dict = {"rho": rho}
    for label, _ in LABELS:
        g, w = np.concatenate(got[label]), np.concatenate(want[label])
        out[f"{label}_precision"] = float((g & w).sum() / g.sum()) if g.any() else None
        out[f"{label}_recall"] = float((g & w).sum() / w.sum()) if w.any() else None
        out[f"{label}_n"] = int(w.sum())
    groups, _share, low = aggregate(tables).group_share()
    sure = (low > 0.5) & (groups != "none")
    out["confident"] = sorted(f"{li}.{h}:{groups[li, h]}" for li, h in zip(*np.nonzero(sure),
                                                                           strict=True))
    return out


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def report(rows: dict[str, dict]) -> str:
    """The results as a markdown table (one column per model)."""
    names = list(rows)
    lines = ["| measure | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for a, b in PAIRS:
        lines.append(f"| Spearman `{a}` vs raw {b.replace('_', ' ')} | "
                     + " | ".join(f"{rows[n]['rho'][a]:.2f}" for n in names) + " |")
    for label, _ in LABELS:
        lines.append(f"| {label} label precision / recall (n true) | " + " | ".join(
            f"{_ratio(rows[n][label + '_precision'])} / {_ratio(rows[n][label + '_recall'])}"
            f" ({rows[n][label + '_n']})" for n in names) + " |")
    lines.append("| confident groups (Wilson lower bound > 0.5) | " + " | ".join(
        (", ".join(rows[n]["confident"]) or "none") for n in names) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--images", type=int, default=40, help="held-out images scored")
    ap.add_argument("--out", type=Path, default=Path("runs") / "small_vit")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # on a shared 2-core machine one thread trains fastest
    t0 = time.perf_counter()
    model, acc = train(args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / WEIGHTS
    save_file(model.state_dict(), str(weights))
    print(f"trained {args.steps} steps in {time.perf_counter() - t0:.0f} s, held-out accuracy "
          f"{acc:.1%} (chance 33%); weights in {weights}")
    rows = {"trained": evaluate(model, args.images, name="trained"),
            "random init": evaluate(build(0).eval(), args.images, name="random-init")}
    print(report(rows))


if __name__ == "__main__":
    main()
