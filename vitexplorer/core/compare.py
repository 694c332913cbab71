"""Compare the heads of two models on the same images: which head of B does what a head of A
does.

The two models may differ in depth, head count, patch size, input size and prefix tokens
(registers), so maps are compared where both exist: on the image's pixels. Each head map is
placed on a common canvas (the original image scaled to ``size`` pixels on its long side;
every token covers its rectangle, nearest neighbour), restricted to the pixels both models
saw, and renormalised to a distribution over those pixels. The cost of pairing head i of A
with head j of B is the Jensen-Shannon distance (Endres & Schindelin 2003; base-2 logs, in
[0, 1]) between their distributions, averaged over the images; heads are paired by the
Hungarian assignment of that cost (Kuhn 1955; ``scipy.optimize.linear_sum_assignment``),
``min(K_A, K_B)`` pairs of minimum total cost.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitexplorer.core.analysis import Analysis, analyze
from vitexplorer.core.constants import DISPLAY_SIDE
from vitexplorer.core.errors import Cancelled, ImageError, VitexplorerError
from vitexplorer.core.images import Geometry, decode_display, map_to_image
from vitexplorer.core.models import LoadedModel
from vitexplorer.core.profile import HeadProfile, aggregate

#: scores of each head shown next to its match (means over the images)
JOINED_SCORES = ("fg_score", "edge_lift", "distance_ratio", "entropy", "prefix_share")


def canvas_geometry(geometry: Geometry, size: int) -> Geometry:
    """``geometry`` on the original image scaled to ``size`` pixels on its long side."""
    h, w = geometry.image_size
    return geometry.scaled(size / max(h, w))


def on_canvas(maps: np.ndarray, geometry: Geometry, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Maps ``[..., gh, gw]`` as ``[..., Hc, Wc]`` on the common canvas (nearest: each token
    keeps its value on its pixels) and the bool ``[Hc, Wc]`` pixels the model saw."""
    g = canvas_geometry(geometry, size)
    flat = np.asarray(maps, np.float32).reshape(-1, *maps.shape[-2:])
    out = np.stack([map_to_image(m, g, "nearest") for m in flat])
    seen = map_to_image(np.ones(maps.shape[-2:], np.float32), g, "nearest") > 0.5
    return out.reshape(*maps.shape[:-2], *out.shape[-2:]), seen


def distributions(maps: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """``[K, P]``: each canvas map on the ``seen`` pixels, normalised to sum 1."""
    flat = np.asarray(maps, np.float64).reshape(-1, *maps.shape[-2:])[:, seen]
    return flat / np.maximum(flat.sum(-1, keepdims=True), 1e-300)


def _entropy2(p: np.ndarray) -> np.ndarray:
    return -(p * np.log2(np.where(p > 0, p, 1.0))).sum(-1)


def js_cross(a: np.ndarray, b: np.ndarray, chunk: int = 16) -> np.ndarray:
    """``[Ka, Kb]`` Jensen-Shannon distances between the rows of ``a`` and ``b``
    (distributions over the same pixels): ``sqrt(H(m) - (H(a) + H(b)) / 2)``, ``m = (a+b)/2``,
    base-2 entropies (the JS divergence written with entropies)."""
    ha, hb = _entropy2(a), _entropy2(b)
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        m = (a[i:i + chunk, None, :] + b[None]) / 2
        out[i:i + chunk] = _entropy2(m) - (ha[i:i + chunk, None] + hb[None]) / 2
    return np.sqrt(np.clip(out, 0.0, 1.0))


@dataclass
class Comparison:
    """Two models' heads over ``n_images`` images, and their pairing.

    ``cost`` ``[K_A, K_B]`` mean JS distance (heads in (layer, head) order, ``cells_*``);
    ``matches`` ``(i, j)`` index pairs of the Hungarian assignment; ``rollout_distance``
    the mean JS distance between the two last-layer fused rollouts; ``profiles`` each
    model's head profile over the images (None when no head table could be scored).
    """

    labels: tuple[str, str]
    cells: tuple[list[tuple[int, int]], list[tuple[int, int]]]
    cost: np.ndarray
    matches: list[tuple[int, int]]
    n_images: int
    rollout_distance: float
    sources: list[str]
    profiles: tuple[HeadProfile | None, HeadProfile | None] = (None, None)
    first: tuple[Analysis, Analysis] | None = field(default=None, repr=False)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    #: per model, mean over images of "artifact_share" [L, H] and "flagged_per_block" [L]
    artifacts: tuple[dict | None, dict | None] = (None, None)

    def match_of(self, model: int, layer: int, head: int) -> tuple[int, int, float] | None:
        """(layer, head, cost) of the head of the other model matched to (layer, head) of
        ``model`` (0 = A, 1 = B), or None when it has no match."""
        i = self.cells[model].index((layer, head))
        for a, b in self.matches:
            if (a, b)[model] == i:
                other = (a, b)[1 - model]
                ol, oh = self.cells[1 - model][other]
                return ol, oh, float(self.cost[a, b])
        return None

    def rows(self) -> list[dict]:
        """One row per matched pair, lowest cost first: cells, cost, groups and scores."""
        out = []
        for i, j in sorted(self.matches, key=lambda m: self.cost[m]):
            (la, ha), (lb, hb) = self.cells[0][i], self.cells[1][j]
            row: dict = {"layer_a": la, "head_a": ha, "layer_b": lb, "head_b": hb,
                         "js_distance": float(self.cost[i, j])}
            for side, art, (li, h) in (("a", self.artifacts[0], (la, ha)),
                                       ("b", self.artifacts[1], (lb, hb))):
                if art is not None:
                    row[f"artifact_share_{side}"] = float(art["artifact_share"][li, h])
            for side, prof, (li, h) in (("a", self.profiles[0], (la, ha)),
                                        ("b", self.profiles[1], (lb, hb))):
                if prof is None:
                    continue
                row[f"group_{side}"] = str(prof.majority_group()[li, h])
                for k in JOINED_SCORES:
                    if k in prof.mean:
                        row[f"{k}_{side}"] = float(prof.mean[k][li, h])
            out.append(row)
        return out

    def to_csv(self) -> str:
        rows = self.rows()
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()

    def to_json(self) -> str:
        return json.dumps({"model_a": self.labels[0], "model_b": self.labels[1],
                           "images": self.sources, "n_images": self.n_images,
                           "rollout_js_distance": self.rollout_distance,
                           "mean_match_cost": float(np.mean([self.cost[m]
                                                             for m in self.matches])),
                           "matches": self.rows(),
                           "artifact_tokens_per_block": {
                               side: None if art is None else
                               art["flagged_per_block"].tolist()
                               for side, art in zip("ab", self.artifacts, strict=True)},
                           **self._sizes(),
                           "cells_a": self.cells[0], "cells_b": self.cells[1],
                           "cost": np.round(self.cost, 6).tolist()}, indent=1)

    def _sizes(self) -> dict:
        """Each model's input size and token grid (of the first image: with the native
        policy they follow each image)."""
        if self.first is None:
            return {}
        sides = list(zip("ab", self.first, strict=True))
        return {"input_size": {s: list(x.geometry.input_size) for s, x in sides},
                "grid": {s: list(x.layout.grid) for s, x in sides}}


def head_cells(a: Analysis) -> list[tuple[int, int]]:
    return [(li, h) for li in range(a.num_layers) for h in range(a.num_heads)]


def pair_distributions(a: Analysis, b: Analysis, size: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Head distributions of both models over the pixels both saw (``[K_A, P]``,
    ``[K_B, P]``) and their last-layer fused rollouts (``[1, P]`` each)."""
    ma, seen_a = on_canvas(a.head_maps().numpy(), a.geometry, size)
    mb, seen_b = on_canvas(b.head_maps().numpy(), b.geometry, size)
    ra, _ = on_canvas(a.map("rollout")[None], a.geometry, size)
    rb, _ = on_canvas(b.map("rollout")[None], b.geometry, size)
    both = seen_a & seen_b
    if not both.any():
        raise VitexplorerError(f"the two models saw no common pixel of {a.source}")
    return (distributions(ma, both), distributions(mb, both), distributions(ra, both),
            distributions(rb, both))


def compare_models(
    a: LoadedModel, b: LoadedModel, images: Iterable[str | Path | np.ndarray],
    policy: str = "crop", size: int = 64, scores: bool = True,
    should_stop: Callable[[], bool] | None = None, tokens: bool = False,
) -> Comparison:
    """Analyse every image with both models and pair their heads (module docstring).
    ``scores`` also scores every head of both (the joined head tables); ``tokens`` measures
    both models' artifact tokens (:mod:`vitexplorer.core.tokens`; one more forward each),
    e.g. a model with registers against one without. An image that cannot be decoded is
    skipped and listed in ``skipped``."""
    skipped: list[tuple[str, str]] = []

    def pairs() -> Iterable[tuple[Analysis, Analysis]]:
        for n, img in enumerate(images):
            if should_stop is not None and should_stop():
                raise Cancelled("cancelled")
            src = str(img) if isinstance(img, str | Path) else f"image {n}"
            try:
                # the window's display copy (a camera JPEG decoded at that size): the maps
                # meet on a small canvas, and the scores need no more
                rgb = (decode_display(img, DISPLAY_SIDE)[0] if isinstance(img, str | Path)
                       else img)
            except ImageError as exc:
                skipped.append((src, exc.reason))
                continue
            yield analyze(a, rgb, policy, src), analyze(b, rgb, policy, src)

    try:
        comp = compare_analyses(pairs(), size, scores, (a.label, b.label),
                                (a.model, b.model) if tokens else None)
    except VitexplorerError as exc:
        if skipped and "no images" in str(exc):
            raise VitexplorerError(f"no images to compare ({len(skipped)} could not be "
                                   "read)") from exc
        raise
    comp.skipped = skipped
    return comp


def compare_analyses(pairs: Iterable[tuple[Analysis, Analysis]], size: int = 64,
                     scores: bool = True, labels: tuple[str, str] | None = None,
                     token_models: tuple | None = None) -> Comparison:
    """:func:`compare_models` of analyses already made: ``(A's, B's)`` of each image (the
    GUI pairs the two slots' analyses of the image shown). ``token_models`` (A's and B's
    modules) adds their artifact tokens."""
    cost = None
    arts: tuple[list, list] = ([], [])
    tables: tuple[list, list] = ([], [])
    rollout, sources = [], []
    first = None
    n = 0
    for xa, xb in pairs:
        da, db, ra, rb = pair_distributions(xa, xb, size)
        c = js_cross(da, db)
        cost = c if cost is None else cost + c
        rollout.append(float(js_cross(ra, rb)[0, 0]))
        if scores:
            tables[0].append(xa.head_table())
            tables[1].append(xb.head_table())
        if token_models is not None:
            for out, model, x in zip(arts, token_models, (xa, xb), strict=True):
                out.append(_artifacts(model, x))
        if first is None:
            first = (xa, xb)
        sources.append(xa.source)
        n += 1
    if cost is None:
        raise VitexplorerError("no images to compare")
    cost /= n
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost)
    profiles = (aggregate(tables[0]), aggregate(tables[1])) if scores else (None, None)
    labels = labels or (first[0].model_label, first[1].model_label)
    artifacts = (None, None) if token_models is None else tuple(
        {"artifact_share": np.mean([s for s, _ in got], 0),
         "flagged_per_block": np.mean([f for _, f in got], 0)} for got in arts)
    return Comparison(labels, (head_cells(first[0]), head_cells(first[1])), cost,
                      [(int(i), int(j)) for i, j in zip(rows, cols, strict=True)], n,
                      float(np.mean(rollout)), sources, profiles, first,
                      artifacts=artifacts)


def _artifacts(model, x: Analysis) -> tuple[np.ndarray, np.ndarray]:
    """``x``'s artifact share per head ``[L, H]`` and flagged patch tokens per block ``[L]``."""
    from vitexplorer.core.tokens import absorbed_share, artifacts_of

    device = next(model.parameters()).device
    art = artifacts_of(model, x.model_input().to(device))
    return (absorbed_share(x.rows.numpy(), art.attended(), x.layout),
            art.flags.reshape(len(art.flags), -1).sum(-1).astype(float))
