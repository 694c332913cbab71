"""Per-head scores and labels for one image: what each attention head looks at.

Every score is computed from the head's map over patches (class-token row; for models
without a class token the mean attention received, see :mod:`vitexplorer.core.rollout`),
prefix/register tokens excluded and the map renormalised over patches. Per-patch image
features (:mod:`vitexplorer.core.features`) are measured on the original image at a fixed
working resolution, so labels depend neither on the image's size nor on the model's input
size. All scores land in one :class:`HeadTable`.

Labels and thresholds (each a documented constant below):

- foreground / background / mixed: ``fg_score`` in [-1, 1] (see :func:`foreground_scores`);
- edge / texture / neither: ``edge_lift`` and ``texture_share`` (:func:`edge_texture_scores`);
- colour / none: ``colour_score``, a lift over a uniform map (:func:`colour_scores`);
- local / global / uniform: ``distance_ratio`` and ``row_entropy`` (:func:`range_stats`,
  :func:`range_scores`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import numpy as np

from vitexplorer.core.capture import TokenLayout
from vitexplorer.core.constants import AXES, MASS_SHARE, NULL_LABELS, NULL_SET
from vitexplorer.core.features import PatchFeatures, patch_features
from vitexplorer.core.images import Geometry
from vitexplorer.core.maps import map_entropy, mass_region, patch_distances

FG_THRESHOLD = 0.5  # |fg_score| >= 0.5: at least half of the possible excess mass
EDGE_LIFT = 2.0  # mass on contour pixels at least twice the uniform map's
TEXTURE_SHARE = 0.6  # >= 60% of the mass on textured patches ...
TEXTURE_MIN_LIFT = 1.1  # ... at least 1.1x a uniform map's share ...
TEXTURE_MAX_EDGE_LIFT = 1.0  # ... with less mass on outlines than a uniform map
COLOUR_LIFT = 1.5  # mass on saturated / dominant-hue pixels at least 1.5x a uniform map's
LOCAL_RATIO = 0.5  # mean attention distance <= half of the uniform head's
GLOBAL_RATIO = 0.85
UNIFORM_ENTROPY = 0.95  # mean normalised row entropy >= 0.95: attends everywhere alike




@dataclass
class HeadTable:
    """Scores ``[L, H]`` per column and labels ``[L, H]`` per axis; one row per head."""

    scores: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.scores.values())).shape

    def strength(self, label: str, layer: int, head: int) -> float:
        """How far a head's score lies past its label's threshold (1 = at the threshold):
        |fg_score| / FG_THRESHOLD, edge_lift / EDGE_LIFT, texture_share / TEXTURE_SHARE,
        colour_score / COLOUR_LIFT, LOCAL_RATIO / distance_ratio and
        distance_ratio / GLOBAL_RATIO."""
        s = {k: float(v[layer, head]) for k, v in self.scores.items()}
        if label in ("foreground", "background"):
            return abs(s["fg_score"]) / FG_THRESHOLD
        if label == "edge":
            return s["edge_lift"] / EDGE_LIFT
        if label == "texture":
            return s["texture_share"] / TEXTURE_SHARE
        if label == "colour":
            return s["colour_score"] / COLOUR_LIFT
        if label == "local":
            return LOCAL_RATIO / max(s["distance_ratio"], 1e-9)
        if label == "global":
            return s["distance_ratio"] / GLOBAL_RATIO
        return 0.0

    def group(self, layer: int, head: int) -> str:
        """The head's primary group (its frame colour): of its non-null labels, the one whose
        score lies furthest past its threshold (:meth:`strength`); "none" if all are null."""
        labels = [str(self.labels[a][layer, head]) for a in AXES]
        labels = [x for x in labels if x not in NULL_SET]
        if not labels:
            return "none"
        return max(labels, key=lambda x: self.strength(x, layer, head))

    def groups(self) -> np.ndarray:
        n_l, n_h = self.shape
        return np.array([[self.group(li, h) for h in range(n_h)] for li in range(n_l)])

    def rows(self) -> list[dict]:
        """One dict per head: layer, head, every score, every label, the primary group."""
        n_l, n_h = self.shape
        out = []
        for li in range(n_l):
            for h in range(n_h):
                row: dict = {"layer": li, "head": h}
                row.update({k: float(v[li, h]) for k, v in self.scores.items()})
                row.update({k: str(v[li, h]) for k, v in self.labels.items()})
                row["group"] = self.group(li, h)
                out.append(row)
        return out

    def to_csv(self) -> str:
        rows = self.rows()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def to_json(self) -> str:
        return json.dumps({"meta": self.meta, "heads": self.rows()}, indent=1)

    @classmethod
    def from_rows(cls, rows: list[dict], meta: dict | None = None) -> HeadTable:
        n_l = max(r["layer"] for r in rows) + 1
        n_h = max(r["head"] for r in rows) + 1
        score_keys = [k for k, v in rows[0].items() if isinstance(v, float)]
        scores = {k: np.full((n_l, n_h), np.nan) for k in score_keys}
        labels = {k: np.full((n_l, n_h), NULL_LABELS[k], dtype=object) for k in AXES}
        for r in rows:
            for k in score_keys:
                scores[k][r["layer"], r["head"]] = r[k]
            for k in AXES:
                labels[k][r["layer"], r["head"]] = r[k]
        return cls(scores, labels, meta or {})


# ---------------------------------------------------------------------------- the scores
def _normalise(maps: np.ndarray, valid: np.ndarray) -> np.ndarray:
    m = np.asarray(maps, np.float64) * valid
    return m / np.maximum(m.sum(axis=(-1, -2), keepdims=True), 1e-12)


def foreground_scores(maps: np.ndarray, cover: np.ndarray, valid: np.ndarray) -> dict:
    """Foreground vs background from a mask's per-token coverage ``c_p``.

    With ``a = mean_p c_p`` (mask area share) and ``m = sum_p A_p c_p`` (head mass inside):
    ``fg_lift = m / a``; ``fg_score = (m - a) / (1 - a)`` when ``m >= a`` else ``(m - a) / a``,
    in [-1, 1]: +1 all mass on the mask, 0 as a uniform map, -1 all mass off it.
    ``fg_jaccard`` = |mask ∩ R60| / |mask ∪ R60| with R60 the head's 60%-mass region and the
    mask taken as tokens at least half covered (Caron et al. 2021, DINO, Table 8's measure).
    Labels: foreground if fg_score >= FG_THRESHOLD, background if <= -FG_THRESHOLD.
    """
    m = _normalise(maps, valid)
    c = cover * valid
    a = float(c.sum() / max(valid.sum(), 1))
    inside = (m * c).sum(axis=(-1, -2))
    if a <= 0 or a >= 1:
        score = np.zeros_like(inside)
    else:
        score = np.where(inside >= a, (inside - a) / (1 - a), (inside - a) / a)
    mask = (c >= 0.5)
    regions = mass_region(m, MASS_SHARE) & valid
    union = (regions | mask).sum(axis=(-1, -2))
    jac = np.divide((regions & mask).sum(axis=(-1, -2)), union, out=np.zeros(union.shape),
                    where=union > 0)
    label = np.where(score >= FG_THRESHOLD, "foreground",
                     np.where(score <= -FG_THRESHOLD, "background", "mixed")).astype(object)
    return {"fg_score": score, "fg_lift": inside / a if a > 0 else np.ones_like(inside),
            "fg_jaccard": jac, "_label": label}


def edge_texture_scores(maps: np.ndarray, feats: PatchFeatures) -> dict:
    """Edge vs texture: where the head's mass falls relative to contours and texture.

    ``edge_lift = sum_p A_p contour_p / mean_p contour_p`` (1 for a uniform map, > 1 when
    the head concentrates on outlines; 0 when the image has no contour);
    ``texture_share = sum_p A_p texture_p`` and ``texture_lift`` likewise relative to the mean.
    Labels: edge if edge_lift >= EDGE_LIFT; texture if texture_share >= TEXTURE_SHARE,
    texture_lift >= TEXTURE_MIN_LIFT and edge_lift < TEXTURE_MAX_EDGE_LIFT (mass on
    textured patches, more than a uniform map puts there, less on outlines); neither
    otherwise. A uniform map is neither (both lifts are 1), and so is every map of an image
    that is textured everywhere: no head can be more textured than uniform there.
    """
    v = feats.valid
    m = _normalise(maps, v)
    mean_c = feats.contour[v].mean() if v.any() else 0.0
    mean_t = feats.texture[v].mean() if v.any() else 0.0
    e_mass = (m * feats.contour).sum(axis=(-1, -2))
    t_mass = (m * feats.texture).sum(axis=(-1, -2))
    e_lift = e_mass / mean_c if mean_c > 0 else np.zeros_like(e_mass)
    t_lift = t_mass / mean_t if mean_t > 0 else np.zeros_like(t_mass)
    edge = e_lift >= EDGE_LIFT
    texture = (~edge & (t_mass >= TEXTURE_SHARE) & (t_lift >= TEXTURE_MIN_LIFT)
               & (e_lift < TEXTURE_MAX_EDGE_LIFT))
    label = np.where(edge, "edge", np.where(texture, "texture", "neither")).astype(object)
    return {"edge_lift": e_lift, "texture_share": t_mass, "texture_lift": t_lift,
            "_label": label}


def _pearson(m: np.ndarray, f: np.ndarray, valid: np.ndarray) -> np.ndarray:
    x = m[..., valid]
    y = f[valid]
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean()
    den = np.sqrt((xc ** 2).sum(-1) * (yc ** 2).sum())
    return np.where(den > 1e-12, (xc * yc).sum(-1) / np.maximum(den, 1e-12), 0.0)


def colour_scores(maps: np.ndarray, feats: PatchFeatures) -> dict:
    """Colour selectivity as a lift: ``sat_lift = sum_p A_p s_p / mean_p s_p`` (saturation)
    and ``hue_lift`` likewise for the share of dominant-hue pixels; ``colour_score`` is the
    larger. A uniform map scores 1 however the image looks; label colour if
    colour_score >= COLOUR_LIFT. The Pearson correlations ``saturation_r`` / ``hue_r`` are
    reported too, but not used for the label: a correlation ignores how large the map's
    variations are, so a nearly uniform map can correlate strongly.
    """
    v = feats.valid
    m = _normalise(maps, v)
    lifts = []
    for f in (feats.saturation, feats.hue):
        mean = f[v].mean() if v.any() else 0.0
        mass = (m * f).sum(axis=(-1, -2))
        lifts.append(mass / mean if mean > 1e-6 else np.ones_like(mass))
    score = np.maximum(*lifts)
    label = np.where(score >= COLOUR_LIFT, "colour", "none").astype(object)
    return {"colour_score": score, "sat_lift": lifts[0], "hue_lift": lifts[1],
            "saturation_r": _pearson(m, feats.saturation, v),
            "hue_r": _pearson(m, feats.hue, v), "_label": label}


def range_scores(distance: np.ndarray, entropy: np.ndarray, layout: TokenLayout,
                 patch_size: tuple[int, int]) -> dict:
    """Local / global / uniform from the :func:`range_stats` of every head ``[L, H]``.

    ``distance_ratio = d / d_uniform`` (d_uniform: the same for uniform attention).
    Labels: uniform if row_entropy >= UNIFORM_ENTROPY (no selectivity, whatever the
    distance); else local if distance_ratio <= LOCAL_RATIO, global if >= GLOBAL_RATIO, and
    mid in between. Uniform and mid are this axis's null labels.
    """
    d = np.asarray(distance, np.float64)
    ent = np.asarray(entropy, np.float64)
    d_uniform = float(patch_distances(layout.grid, tuple(patch_size)).double().mean())
    ratio = d / max(d_uniform, 1e-12)
    label = np.where(ent >= UNIFORM_ENTROPY, "uniform",
                     np.where(ratio <= LOCAL_RATIO, "local",
                              np.where(ratio >= GLOBAL_RATIO, "global", "mid"))
                     ).astype(object)
    return {"distance_px": d, "distance_ratio": ratio, "row_entropy": ent, "_label": label}


def score_heads(
    maps: np.ndarray,
    ranges: tuple[np.ndarray, np.ndarray],
    layout: TokenLayout,
    image: np.ndarray,
    geometry: Geometry,
    cover: np.ndarray,
    patch_size: tuple[int, int],
    valid: np.ndarray | None = None,
    prefix_share: np.ndarray | None = None,
    meta: dict | None = None,
) -> HeadTable:
    """Every score and label of every head.

    ``maps`` ``[L, H, gh, gw]`` head maps; ``ranges`` the heads' (distance, entropy)
    ``[L, H]`` from :func:`range_stats`; ``image`` the original RGB image and ``geometry``
    where the model input lies on it; ``cover`` the foreground mask's per-token coverage;
    ``valid`` tokens that show image pixels.
    """
    valid = np.ones(layout.grid, bool) if valid is None else valid
    feats = patch_features(image, geometry, valid)
    parts = [("fg_bg", foreground_scores(maps, cover, valid)),
             ("edge_texture", edge_texture_scores(maps, feats)),
             ("colour", colour_scores(maps, feats)),
             ("range", range_scores(*ranges, layout, patch_size))]
    scores: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for axis, d in parts:
        labels[axis] = d.pop("_label")
        scores.update({k: np.asarray(v, np.float64) for k, v in d.items()})
    scores["entropy"] = map_entropy(maps)
    if prefix_share is not None:
        scores["prefix_share"] = np.asarray(prefix_share, np.float64)
    return HeadTable(scores, labels, dict(meta or {}))
