"""Report: do the per-token outline and texture maps separate what they should, on every
composite of a natural texture and a flat object (``validation/composites.py``)?

For every composite and model input size (224, 384; patch 16, stretched):

- outline AUC: the contour map on exact outline tokens (the object's edge crosses them)
  against texture-interior tokens (no object pixel);
- texture AUC: the texture map on texture-interior tokens against object tokens.

AUC = P(score of a positive > score of a negative) + P(tie) / 2 (Mann-Whitney U / n1 n2).
Then the planted ViT (``tests/planted_vit.py``) on every composite at its 224 px input:
are its edge heads (2, 8) labelled edge and its texture head (3) texture?
Usage: ``python -m validation.image_features [IMAGES_DIR]`` (default ``../shared/images``),
from the repository root; prints a table per texture and contrast, worst case per class,
and the planted heads' recovery per texture.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from validation.composites import Composite, all_composites
from vitexplorer.core.features import patch_features
from vitexplorer.core.images import grid_coverage, preprocess

SIZES = (224, 384)


def config(size: int) -> dict:
    return {"input_size": (3, size, size), "mean": (0.5,) * 3, "std": (0.5,) * 3,
            "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "center"}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos n_neg): ties count one half."""
    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def token_classes(comp: Composite, size: int):
    """(features, outline, texture-interior, object) token sets of one composite."""
    pre = preprocess(comp.image, config(size), "stretch", (16, 16))
    cover = grid_coverage(comp.mask, pre.geometry)
    feats = patch_features(comp.image, pre.geometry)
    return feats, (cover > 0.01) & (cover < 0.99), cover <= 0.001, cover >= 0.999


def composite_aucs(comp: Composite, size: int) -> tuple[float, float]:
    feats, outline, texture, obj = token_classes(comp, size)
    return (auc(feats.contour[outline], feats.contour[texture]),
            auc(feats.texture[texture], feats.texture[obj]))


def main(folder: Path) -> int:
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    worst: tuple[float, str] = (1.0, "")
    for comp in all_composites(folder):
        tex, _, contrast, *_ = comp.name.split("/")
        for size in SIZES:
            a = composite_aucs(comp, size)
            rows[f"{tex} {contrast}"].append(a)
            if min(a) < worst[0]:
                worst = (min(a), f"{comp.name} @{size}")
    print("| texture, contrast | composites | outline AUC min / mean | texture AUC min / mean |")
    print("|---|---|---|---|")
    fails = 0
    for key, vals in rows.items():
        v = np.array(vals)
        fails += int((v < 0.9).any(axis=1).sum())
        print(f"| {key} | {len(v)} | {v[:, 0].min():.3f} / {v[:, 0].mean():.3f} | "
              f"{v[:, 1].min():.3f} / {v[:, 1].mean():.3f} |")
    print(f"\nworst AUC {worst[0]:.3f} ({worst[1]}); composites below 0.9: {fails}")
    missed = planted_recovery(folder)
    return 1 if fails or missed else 0


def planted_recovery(folder: Path) -> int:
    """Print, per texture, on how many composites the planted ViT's edge heads (both) and
    texture head get their label; returns the number of composites where one does not."""
    import torch

    from tests.planted_vit import LAYER, planted_vit
    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.models import LoadedModel, model_data_config

    model = planted_vit()
    cfg = model_data_config(model)
    cfg.update(mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    loaded = LoadedModel(model, "planted-vit", "planted-vit", "random", cfg,
                         torch.device("cpu"))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    missed = 0
    for comp in all_composites(folder):
        table = analyze(loaded, comp.image, "stretch").head_table(mask=comp.mask,
                                                                  mask_name="exact")
        labels = table.labels["edge_texture"][LAYER]
        c = counts[comp.name.split("/")[0]]
        c[0] += 1
        edge, texture = labels[2] == labels[8] == "edge", labels[3] == "texture"
        c[1] += int(edge)
        c[2] += int(texture)
        missed += int(not (edge and texture))
    print("\n| texture | composites | planted edge heads recovered | texture head recovered |")
    print("|---|---|---|---|")
    for tex, (n, edge, texture) in counts.items():
        print(f"| {tex} | {n} | {edge} | {texture} |")
    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    print(f"| all | {total[0]} | {total[1]} | {total[2]} |")
    return missed


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "images"
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else default))
