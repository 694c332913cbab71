"""Figures of the evaluation and the comparison of two models (matplotlib object API, no
pyplot; written through :func:`vitexplorer.core.figures.save_figure`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vitexplorer.core.constants import DEFAULT_CMAP, METHOD_LABELS
from vitexplorer.core.evaluate import CURVES
from vitexplorer.core.figures import (
    CHAR_EM,
    PRESETS,
    FigureOptions,
    figure_size,
    figure_style,
    finish,
    new_figure,
    text_height,
    wrap,
)
from vitexplorer.core.render import resolve_cmap

CURVE_TITLES = {"deletion": "Deletion (RISE): p(target) ↓",
                "insertion": "Insertion (RISE): p(target) ↑",
                "positive": "Positive perturbation: top-1 = target ↓",
                "negative": "Negative perturbation: top-1 = target ↑"}


def curves_figure(records: list[dict], options: FigureOptions | None = None) -> Figure:
    """Mean perturbation curves over images, one line per method, the random map dashed;
    2 x 2 panels, stacked on a single column."""
    o = options or FigureOptions()
    methods = list(dict.fromkeys(m for r in records for m in r.get("curves", {})))
    n = sum(1 for r in records if r.get("curves"))
    model = records[0].get("model", "")
    title = f"Faithfulness over {n} images: {model}"
    caption = ("Mean over the images of the target's probability (RISE) or of top-1 = target "
               "(Chefer et al.) as patches are removed or inserted; dashed: a random map; AUC "
               "in the legends.")
    stacked = (o.width or PRESETS[o.preset].width) < 5
    with figure_style(o):
        fw = o.width or PRESETS[o.preset].width
        panel_h = 1.7 if stacked else 2.3
        extra = text_height(wrap(title, fw, o.fs * 1.1), o.fs * 1.1) + \
            text_height(wrap(caption, fw, o.fs * 0.9), o.fs * 0.9) + 0.3
        fig = new_figure(o, figure_size(o, panel_h * (4 if stacked else 2) / fw, extra))
        axes = fig.subplots(4, 1) if stacked else fig.subplots(2, 2)
        for ax, name in zip(axes.ravel(), CURVES, strict=True):
            for m in methods:
                got = [r["curves"][m] for r in records if m in r.get("curves", {})]
                x = np.asarray(got[0]["fractions"]) * 100
                y = np.mean([g[name] for g in got], 0)
                auc = np.mean([g[f"{name}_auc"] for g in got])
                style = dict(color="0.4", linestyle="--") if m == "random" else {}
                ax.plot(x, y, label=f"{METHOD_LABELS.get(m, m)} (AUC {auc:.3g})",
                        linewidth=1.0, **style)
            ax.set_title(CURVE_TITLES[name])
            ax.set_xlabel("patches " + ("inserted" if name == "insertion" else "removed")
                          + " (%)")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3, linewidth=0.5)
            ax.tick_params(length=2)
            ax.legend(fontsize=o.fs * 0.75, frameon=False)
        finish(fig, o, title, caption, "random weights" in model)
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


def comparison_figure(comp, n_pairs: int = 6, size: int = 224, cmap: str = DEFAULT_CMAP,
                      options: FigureOptions | None = None) -> Figure:
    """The fused rollouts and the ``n_pairs`` best-matched heads of two models side by side
    on the first image, over the pixels both models saw: A and B on one colour scale per row
    (share of the map per pixel, min to max of the two), and their difference A - B (blue:
    B higher, red: A higher)."""
    o = options or FigureOptions(cmap=cmap)
    image, both, rows = _pair_rows(comp, size, n_pairs)
    h, w = image.shape[:2]
    fs = o.fs
    title = (f"A: {comp.labels[0]} vs B: {comp.labels[1]}, matched heads (Hungarian on the "
             f"mean JS distance over {comp.n_images} images)")
    caption = (f"Shown on {Path(comp.sources[0]).name}, over the pixels both models saw. "
               "Each row: A and B on one colour scale (share of the map per pixel, min-max "
               "of the two), then A − B (red: A higher, blue: B higher).")
    with figure_style(o):
        fw = o.width or PRESETS[o.preset].width
        bars = 2 * (0.15 + 6 * fs * 0.8 * CHAR_EM / 72)  # two colour bars with tick labels
        pw = (fw - bars) / 3
        titles = [[wrap(t, pw, fs * 0.8) for t in (*row[0][:2], f"A − B, {row[0][2]}")]
                  for row in rows]
        title_h = max(text_height(t, fs * 0.8) for row in titles for t in row)
        extra = text_height(wrap(title, fw, fs * 1.1), fs * 1.1) + \
            text_height(wrap(caption, fw, fs * 0.9), fs * 0.9) + 0.3
        content = len(rows) * (pw * h / w + title_h + 0.1)
        fig = new_figure(o, figure_size(o, content / fw, extra))
        axes = fig.subplots(len(rows), 3, squeeze=False)
        for r, (_, da, db) in enumerate(rows):
            lo = min(float(da[both].min()), float(db[both].min()))
            hi = max(float(da[both].max()), float(db[both].max()), lo + 1e-12)
            for c, d in enumerate((da, db)):
                ax = axes[r, c]
                ax.imshow(image)
                im = ax.imshow(np.ma.masked_where(~both, d), cmap=resolve_cmap(o.cmap),
                               vmin=lo, vmax=hi, alpha=0.65)
                ax.set_title(titles[r][c], fontsize=fs * 0.8)
            _end_ticks(fig.colorbar(im, ax=axes[r, :2], shrink=0.8), (lo, hi), fs)
            lim = max(float(np.abs(da - db).max()), 1e-12)
            ax = axes[r, 2]
            ax.imshow(image)
            im = ax.imshow(np.ma.masked_where(~both, da - db), cmap="RdBu_r", vmin=-lim,
                           vmax=lim, alpha=0.75)
            ax.set_title(titles[r][2], fontsize=fs * 0.8)
            _end_ticks(fig.colorbar(im, ax=ax, shrink=0.8), (-lim, 0.0, lim), fs)
            for ax in axes[r]:
                ax.set_axis_off()
        finish(fig, o, title, caption, any("random weights" in la for la in comp.labels))
    return fig


def _end_ticks(cb, ticks: tuple[float, ...], fs: float) -> None:
    """A small colour bar labelled at its ends (and 0), values in full: no offset text that
    could collide with the next row."""
    cb.set_ticks(list(ticks), labels=[f"{t:.2g}" for t in ticks])
    cb.ax.tick_params(labelsize=fs * 0.7, length=2, width=0.5)
    cb.outline.set_linewidth(0.5)


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
                 f"heads of block {layer}", fontsize=8, parse_math=False)  # a file's '$'s
    return fig
