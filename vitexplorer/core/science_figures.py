"""Figures of the evaluation and the comparison of two models (matplotlib object API, no
pyplot; written through :func:`vitexplorer.core.figures.save_figure`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vitexplorer.core.constants import DEFAULT_CMAP, METHOD_LABELS
from vitexplorer.core.evaluate import CURVES

CURVE_TITLES = {"deletion": "Deletion (RISE): p(target) ↓",
                "insertion": "Insertion (RISE): p(target) ↑",
                "positive": "Positive perturbation: top-1 = target ↓",
                "negative": "Negative perturbation: top-1 = target ↑"}


def curves_figure(records: list[dict]) -> Figure:
    """Mean perturbation curves over images, one line per method, the random map dashed."""
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    methods = list(dict.fromkeys(m for r in records for m in r.get("curves", {})))
    n = sum(1 for r in records if r.get("curves"))
    for ax, name in zip(axes, CURVES, strict=True):
        for m in methods:
            got = [r["curves"][m] for r in records if m in r.get("curves", {})]
            x = np.asarray(got[0]["fractions"]) * 100
            y = np.mean([g[name] for g in got], 0)
            auc = np.mean([g[f"{name}_auc"] for g in got])
            style = dict(color="0.4", linestyle="--") if m == "random" else {}
            ax.plot(x, y, label=f"{METHOD_LABELS.get(m, m)} (AUC {auc:.3g})", **style)
        ax.set_title(CURVE_TITLES[name], fontsize=9)
        ax.set_xlabel("patches " + ("inserted" if name == "insertion" else "removed") + " (%)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    model = records[0].get("model", "")
    fig.suptitle(f"Faithfulness over {n} images: {model}", fontsize=10)
    return fig


def _pair_rows(comp, size: int, n_pairs: int) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """The first image on the canvas, the pixels both models saw, and per shown pair
    (titles, density A, density B) over those pixels (0 elsewhere)."""
    import cv2

    from vitexplorer.core.compare import canvas_geometry, on_canvas

    xa, xb = comp.first
    ma, seen_a = on_canvas(xa.head_maps().numpy(), xa.geometry, size)
    mb, seen_b = on_canvas(xb.head_maps().numpy(), xb.geometry, size)
    ra, _ = on_canvas(xa.map("rollout")[None], xa.geometry, size)
    rb, _ = on_canvas(xb.map("rollout")[None], xb.geometry, size)
    both = seen_a & seen_b

    def density(m: np.ndarray) -> np.ndarray:
        d = np.where(both, m, 0.0)
        return d / max(d.sum(), 1e-300)

    hc, wc = canvas_geometry(xa.geometry, size).image_size
    image = cv2.resize(xa.image, (wc, hc), interpolation=cv2.INTER_AREA)
    rows = [((f"{comp.labels[0]}\nfused rollout", f"{comp.labels[1]}\nfused rollout",
              f"JS {comp.rollout_distance:.3f} (mean)"), density(ra[0]), density(rb[0]))]
    for i, j in sorted(comp.matches, key=lambda m: comp.cost[m])[:n_pairs]:
        (la, ha), (lb, hb) = comp.cells[0][i], comp.cells[1][j]
        rows.append(((f"A {la}.{ha}", f"B {lb}.{hb}", f"JS {comp.cost[i, j]:.3f}"),
                     density(ma[la, ha]), density(mb[lb, hb])))
    return image, both, rows


def comparison_figure(comp, n_pairs: int = 6, size: int = 224, cmap: str = DEFAULT_CMAP
                      ) -> Figure:
    """The fused rollouts and the ``n_pairs`` best-matched heads of two models side by side
    on the first image, over the pixels both models saw: A and B on one colour scale per row
    (share of the map per pixel, min to max of the two), and their difference A - B (blue:
    B higher, red: A higher)."""
    image, both, rows = _pair_rows(comp, size, n_pairs)
    h, w = image.shape[:2]
    cell = 2.2
    fig = Figure(figsize=(3 * cell * w / h * 1.25 + 0.5, cell * len(rows) + 0.9),
                 layout="constrained")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, (titles, da, db) in enumerate(rows):
        lo = min(float(da[both].min()), float(db[both].min()))
        hi = max(float(da[both].max()), float(db[both].max()), lo + 1e-12)
        for c, d in enumerate((da, db)):
            ax = axes[r, c]
            ax.imshow(image)
            im = ax.imshow(np.ma.masked_where(~both, d), cmap=cmap, vmin=lo, vmax=hi,
                           alpha=0.65)
            ax.set_title(titles[c], fontsize=7)
        fig.colorbar(im, ax=axes[r, :2], shrink=0.8, label="share per pixel")
        lim = max(float(np.abs(da - db).max()), 1e-12)
        ax = axes[r, 2]
        ax.imshow(image)
        im = ax.imshow(np.ma.masked_where(~both, da - db), cmap="RdBu_r", vmin=-lim,
                       vmax=lim, alpha=0.75)
        ax.set_title(f"A − B, {titles[2]}", fontsize=7)
        fig.colorbar(im, ax=ax, shrink=0.8)
        for ax in axes[r]:
            ax.set_axis_off()
    fig.suptitle(f"A: {comp.labels[0]}  vs  B: {comp.labels[1]}, matched heads "
                 f"(Hungarian on the mean JS distance over {comp.n_images} images); "
                 f"shown on {Path(comp.sources[0]).name}", fontsize=8)
    return fig


def tokens_figure(analysis, art, cmap: str = DEFAULT_CMAP) -> Figure:
    """Artifact tokens of one image: the output-token norms of every block (flagged tokens
    ringed), then the heads of the block whose maps they take most from, as captured and
    with them masked out (Darcet et al. 2024)."""
    from vitexplorer.core.tokens import absorbed_share, masked_maps

    keys = art.attended()
    share = absorbed_share(analysis.rows.numpy(), keys, analysis.layout)
    layer = int(share.mean(1).argmax()) if keys.any() else analysis.num_layers - 1
    maps = analysis.head_maps().numpy()
    masked = masked_maps(maps, keys)
    norms = art.patch_norms()
    n_l, n_h = norms.shape[0], analysis.num_heads
    cols = max(n_l, n_h)
    fig = Figure(figsize=(1.3 * cols + 1, 4.6), layout="constrained")
    axes = fig.subplots(3, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for li in range(n_l):
        ax = axes[0, li]
        ax.imshow(norms[li], cmap="viridis")
        r, c = np.nonzero(art.flags[li])
        ax.scatter(c, r, s=30, facecolors="none", edgecolors="red", linewidths=1)
        ax.set_title(f"block {li}: {int(art.flags[li].sum())}", fontsize=6)
    for h in range(n_h):
        for row, m, what in ((1, maps, "as captured"), (2, masked, "artifacts masked")):
            ax = axes[row, h]
            ax.imshow(m[layer, h], cmap=cmap)
            ax.set_title(f"{layer}.{h} {what}" + (f"\nabsorbed {share[layer, h]:.0%}"
                                                  if row == 1 else ""), fontsize=6)
    fig.suptitle(f"{Path(analysis.source).name}: {analysis.model_label}. Top: output-token "
                 f"norms per block (ringed: > {art.factor:g}x the block's median); below: "
                 f"heads of block {layer}", fontsize=8)
    return fig
