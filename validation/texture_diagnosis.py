"""Why the texture label agrees least with the independent rule on the trained ViT.

Recomputes every figure of the README's paragraph "Why the texture label agrees least" from
the weights ``python -m validation.train_small_vit`` saves, on the same 40 held-out images
x 16 heads its :func:`~validation.train_small_vit.evaluate` scores (same seed):

- the false positives (our texture label, not the independent one) and false negatives,
  and which term of each rule they fail (share >= TEXTURE_SHARE, lift >= TEXTURE_MIN_LIFT,
  edge / band lift < TEXTURE_MAX_EDGE_LIFT);
- the lift's ceiling: a head with all its mass on texture has a lift of 1 / (the image's
  mean texture), for our texture map (:func:`vitexplorer.core.features.patch_features`)
  and for the independent texture region (pixels farther than BAND px outside the object);
- where our map's lower mean comes from: patches straddling the outline band (our map is
  0 where less than MIN_AWAY_SHARE of a patch lies over OUTLINE_GAP px from any outline)
  and faint texture in patches wholly in the texture region;
- how many false negatives counting those faint patches as 1 recovers.

Usage: ``python -m validation.texture_diagnosis [WEIGHTS | --out DIR]`` from the repository
root (DIR as given to train_small_vit; default its own); about 10 s on one core.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from validation.train_small_vit import (
    WEIGHTS,
    as_loaded,
    band_and_texture,
    build,
    coverage,
    independent,
    independent_labels,
    raw_cls_rows,
    sample,
    textures,
)
from vitexplorer.core.analysis import analyze
from vitexplorer.core.features import MIN_AWAY_SHARE, OUTLINE_GAP, outline_pixels, patch_features
from vitexplorer.core.heads import (
    TEXTURE_MAX_EDGE_LIFT,
    TEXTURE_MIN_LIFT,
    TEXTURE_SHARE,
    edge_texture_labels,
    edge_texture_scores,
)

N_IMAGES, SEED = 40, 7  # evaluate()'s held-out images (train_small_vit's --images, seed)


@dataclass
class Image:
    """One held-out image: patch maps ``[GRID, GRID]``, head values ``[L, H]``."""

    texture: np.ndarray  # our texture map
    region: np.ndarray  # share of each patch in the independent texture region
    band: np.ndarray  # share of each patch in the outline band
    away: np.ndarray  # share of each patch over OUTLINE_GAP px from any outline
    ours: dict[str, np.ndarray]  # texture_share, texture_lift, edge_lift of the head table
    theirs: dict[str, np.ndarray]  # the independent measurements
    label: np.ndarray  # bool: our texture label
    truth: np.ndarray  # bool: the independent texture label
    faint_label: np.ndarray  # bool: our label with the faint patches counted as 1


def away_from_outlines(image: np.ndarray) -> np.ndarray:
    """Each patch's share of pixels farther than OUTLINE_GAP px from any outline, as
    :func:`~vitexplorer.core.features.patch_features` measures it (``PatchFeatures`` does
    not keep it; the 128 px image is its own working copy, WORK_SIDE being 384)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    near = cv2.dilate(outline_pixels(grey).astype(np.uint8),
                      np.ones((2 * OUTLINE_GAP + 1,) * 2, np.uint8))
    return coverage(near == 0)


def faint_as_one(texture: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Our texture map with every patch wholly in the texture region counted as 1."""
    return np.where(region == 1, 1.0, texture)


def measure(model: torch.nn.Module, n_images: int = N_IMAGES, seed: int = SEED) -> list[Image]:
    """Both sides' texture terms on the held-out images evaluate() scores."""
    loaded = as_loaded(model, "trained")
    rng, texs = np.random.default_rng(seed), textures()
    out = []
    for i in range(n_images):
        img, mask, _ = sample(rng, texs)
        an = analyze(loaded, img, "stretch", source=f"trained #{i}")
        table = an.head_table(mask=mask, mask_name="exact mask")
        feats = patch_features(an.image, an.geometry, an.valid_tokens())  # as the table's
        band, region = band_and_texture(mask)
        ind = independent(raw_cls_rows(model, img), mask)
        faint = edge_texture_scores(an.head_maps().numpy(),
                                    replace(feats, texture=faint_as_one(feats.texture, region)))
        out.append(Image(
            feats.texture.astype(np.float64), region, band, away_from_outlines(img),
            {k: table.scores[k] for k in ("texture_share", "texture_lift", "edge_lift")},
            ind, table.labels["edge_texture"] == "texture",
            independent_labels(ind)["texture"], edge_texture_labels(faint) == "texture"))
    return out


def failing_terms(share: np.ndarray, lift: np.ndarray, edge: np.ndarray,
                  which: np.ndarray) -> dict[str, int]:
    """How many of the heads ``which`` fail each term of the texture rule: share below
    TEXTURE_SHARE, lift below TEXTURE_MIN_LIFT, edge (band) lift TEXTURE_MAX_EDGE_LIFT or
    more."""
    return {"share": int((which & (share < TEXTURE_SHARE)).sum()),
            "lift": int((which & (lift < TEXTURE_MIN_LIFT)).sum()),
            "band": int((which & (edge >= TEXTURE_MAX_EDGE_LIFT)).sum())}


def gap_parts(texture: np.ndarray, region: np.ndarray, band: np.ndarray) -> dict[str, float]:
    """The image's mean texture-region share minus our map's mean, split by where it
    arises: patches touching the outline band, patches wholly in the texture region, the
    rest (object interiors). The parts sum to the gap."""
    deficit = (region - texture) / texture.size
    straddle, wholly = band > 0, (band == 0) & (region == 1)
    return {"straddling": float(deficit[straddle].sum()), "wholly": float(deficit[wholly].sum()),
            "rest": float(deficit[~straddle & ~wholly].sum())}


def straddling_counts(texture: np.ndarray, band: np.ndarray, away: np.ndarray) -> dict[str, int]:
    """Patches touching the outline band; those our map sets to 0; those it cannot measure
    (less than MIN_AWAY_SHARE of the patch away from outlines, so 0 by definition)."""
    straddle = band > 0
    return {"patches": int(straddle.sum()), "zero": int((straddle & (texture == 0)).sum()),
            "unmeasurable": int((straddle & (away < MIN_AWAY_SHARE)).sum())}


def faint_counts(texture: np.ndarray, region: np.ndarray) -> dict[str, int]:
    """Patches wholly in the texture region; those whose texture is below 1 (faint); 0."""
    wholly = region == 1
    return {"patches": int(wholly.sum()), "below_1": int((wholly & (texture < 1)).sum()),
            "zero": int((wholly & (texture == 0)).sum())}


def _span(values: np.ndarray) -> str:
    return f"{values.min():.2f}-{values.max():.2f}" if values.size else "-"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.2f}" if whole else "-"


def _total(counts: list[dict]) -> dict:
    return {k: sum(c[k] for c in counts) for k in counts[0]}


def report(images: list[Image]) -> str:
    """The paragraph's figures, one per line, in its order."""
    def heads(get) -> np.ndarray:
        return np.concatenate([get(im).ravel() for im in images])

    ours, truth = heads(lambda im: im.label), heads(lambda im: im.truth)
    fp, fn = ours & ~truth, truth & ~ours
    share, lift, edge = (heads(lambda im, k=k: im.ours[k])
                         for k in ("texture_share", "texture_lift", "edge_lift"))
    i_share, i_lift, i_band = (heads(lambda im, k=k: im.theirs[k])
                               for k in ("texture_mass", "texture_region_lift", "band_lift"))
    f_ind, f_ours = failing_terms(i_share, i_lift, i_band, fp), failing_terms(share, lift, edge, fn)
    mean_t = np.array([im.texture.mean() for im in images])
    mean_r = np.array([im.region.mean() for im in images])
    gap = _total([gap_parts(im.texture, im.region, im.band) for im in images])
    strad = _total([straddling_counts(im.texture, im.band, im.away) for im in images])
    faint = _total([faint_counts(im.texture, im.region) for im in images])
    both = int((ours & truth).sum())
    n = len(images)
    return "\n".join([
        f"{n} images x {images[0].label.size} heads; texture label: ours {ours.sum()}, "
        f"independent {truth.sum()}, both {both} (precision {_share(both, ours.sum())}, "
        f"recall {_share(both, truth.sum())})",
        f"false positives {fp.sum()}: failing the independent share {f_ind['share']}, "
        f"lift {f_ind['lift']}, band {f_ind['band']}",
        f"  their independent share {_span(i_share[fp])}, our lift {_span(lift[fp])}, "
        f"independent lift {_span(i_lift[fp])}",
        f"false negatives {fn.sum()}: failing our share {f_ours['share']}, "
        f"lift {f_ours['lift']}, band {f_ours['band']}",
        f"mean texture over images: our map {mean_t.mean():.2f}, independent region "
        f"{mean_r.mean():.2f} (gap {mean_r.mean() - mean_t.mean():.2f})",
        f"lift ceiling 1 / mean, median over images: ours {np.median(1 / mean_t):.2f}, "
        f"independent {np.median(1 / mean_r):.2f}",
        f"images whose object and band cover less than 1/11 (independent ceiling below "
        f"{TEXTURE_MIN_LIFT}): {(1 / mean_r < TEXTURE_MIN_LIFT).sum()} of {n}",
        f"gap from patches straddling the band {gap['straddling'] / n:.2f}, wholly in the "
        f"texture region {gap['wholly'] / n:.2f}, object interiors {gap['rest'] / n:.2f}",
        f"straddling patches {strad['patches']}: 0 in our map {strad['zero']}, less than "
        f"{MIN_AWAY_SHARE} over {OUTLINE_GAP} px from outlines {strad['unmeasurable']}; "
        f"mean share in the texture region "
        f"{np.concatenate([im.region[im.band > 0] for im in images]).mean():.2f}",
        f"patches wholly in the texture region {faint['patches']}: below 1 "
        f"{faint['below_1']}, 0 {faint['zero']}",
        f"false negatives recovered counting those as 1: "
        f"{(fn & heads(lambda im: im.faint_label)).sum()} of {fn.sum()}",
    ])


def load(path: Path) -> torch.nn.Module:
    """train_small_vit's model with the weights in ``path``; exits with a one-line reason."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        sys.exit(f"{path}: no such file (python -m validation.train_small_vit --out DIR "
                 "writes it)")
    model = build(0)
    try:
        model.load_state_dict(load_file(str(path)))
    except (SafetensorError, RuntimeError) as err:
        sys.exit(f"{path}: not train_small_vit's weights ({str(err).splitlines()[0]})")
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="?", type=Path, help=f"the {WEIGHTS} file")
    ap.add_argument("--out", type=Path, default=Path("runs") / "small_vit",
                    help="the folder train_small_vit saved it in (when WEIGHTS is not given)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(report(measure(load(args.weights or args.out / WEIGHTS))))


if __name__ == "__main__":
    main()
