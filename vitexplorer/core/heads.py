"""Per-head scores and labels for one image: what each attention head looks at.

Every score is computed from the head's map over patches (class-token row; for models
without a class token the mean attention received, see :mod:`vitexplorer.core.rollout`),
prefix/register tokens excluded and the map renormalised over patches. Per-patch image
features (:mod:`vitexplorer.core.features`) are measured on the original image reduced to at
most a fixed working resolution (never enlarged), so labels depend neither on the model's input
size nor, above it, on the image's size. All scores land in one :class:`HeadTable`.

Labels and thresholds (each a documented constant below):

- foreground / background / mixed: ``fg_score``, a density ratio, and ``fg_z`` (see
  :func:`foreground_scores`); sink when most of the class-token row goes to prefix tokens;
- edge / texture / neither: ``edge_lift`` and ``texture_share`` (:func:`edge_texture_scores`);
- colour / none: ``colour_score``, a lift over a uniform map (:func:`colour_scores`);
- local / global / uniform: ``distance_ratio`` and ``row_entropy`` (:func:`range_stats`,
  :func:`range_scores`).

The primary group (:meth:`HeadTable.group`) compares the labelled axes by how far each
head's score lies beyond the same map shuffled over the image's patches (a permutation
z-score, :func:`shuffle_z`; for local / global the mean over queries of each row's distance
against its shuffled row, :func:`vitexplorer.core.maps.range_stats`), and the table names
the labels that hold too (``also``), those whose image features overlap the group's
(``confounded``) and the axes whose label would flip within a small band around its
thresholds (``marginal``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata

from vitexplorer.core.capture import TokenLayout
from vitexplorer.core.constants import AXES, MASS_SHARE, NULL_LABELS
from vitexplorer.core.features import PatchFeatures, patch_features
from vitexplorer.core.images import Geometry
from vitexplorer.core.maps import map_entropy, mass_region, patch_distances

FG_THRESHOLD = 0.5  # |fg_score| >= 0.5: object patches hold >= 3x the mass per patch (or 1/3)
FG_MIN_Z = 2.0  # ... and the mass inside lies >= 2 sd beyond the same map shuffled
SINK_SHARE = 0.5  # >= 50% of the class-token row on prefix tokens: a sink head
EDGE_LIFT = 2.0  # mass on contour pixels at least twice the uniform map's
TEXTURE_SHARE = 0.6  # >= 60% of the mass on textured patches ...
TEXTURE_MIN_LIFT = 1.1  # ... at least 1.1x a uniform map's share ...
TEXTURE_MAX_EDGE_LIFT = 1.0  # ... with less mass on outlines than a uniform map
COLOUR_LIFT = 1.5  # mass on saturated / dominant-hue pixels at least 1.5x a uniform map's
LOCAL_RATIO = 0.5  # mean attention distance <= half of the uniform head's
GLOBAL_RATIO = 0.85  # ... >= 85% of the uniform head's: reaches about as far as looking everywhere
UNIFORM_ENTROPY = 0.95  # mean normalised row entropy >= 0.95: attends everywhere alike
MARGIN = 0.15  # a label is marginal when a score within 15% of its threshold flips it
CONFOUND_R = 0.6  # two axes' per-patch features correlate this much: they share the mass


class LabelNull(NamedTuple):
    """A label that competes for the primary group: its axis, the column of its shuffle
    z-score, the sign that points that z its way (background holds less mass on the object
    than its shuffled map, a local head's rows reach less far than theirs: z < 0), and the
    image feature whose mass it measures (None for local / global: distance, no feature)."""

    axis: str
    z: str
    sign: float
    feature: str | None


#: every label with a shuffle null (:meth:`HeadTable.group`); those with a feature are the
#: content labels (meta["feature_r"] holds their features' correlations)
LABEL_NULLS = {
    "foreground": LabelNull("fg_bg", "fg_z", 1.0, "cover"),
    "background": LabelNull("fg_bg", "fg_z", -1.0, "cover"),
    "edge": LabelNull("edge_texture", "edge_z", 1.0, "contour"),
    "texture": LabelNull("edge_texture", "texture_z", 1.0, "texture"),
    "colour": LabelNull("colour", "colour_z", 1.0, "colour"),
    "local": LabelNull("range", "distance_z", -1.0, None),
    "global": LabelNull("range", "distance_z", 1.0, None),
}
CONTENT_LABELS = frozenset(k for k, v in LABEL_NULLS.items() if v.feature is not None)


# ---------------------------------------------------------------------------- the labels
def fg_labels(s: dict) -> np.ndarray:
    """foreground: ``fg_score >= FG_THRESHOLD`` and ``fg_z >= FG_MIN_Z``; background: both
    as far below zero; mixed otherwise; sink (overriding) when the head
    sends ``prefix_share >= SINK_SHARE`` of its class-token row to prefix tokens: the map over
    patches is then a renormalised remainder and says little about the image."""
    fg = (s["fg_score"] >= FG_THRESHOLD) & (s["fg_z"] >= FG_MIN_Z)
    bg = (s["fg_score"] <= -FG_THRESHOLD) & (s["fg_z"] <= -FG_MIN_Z)
    label = np.where(fg, "foreground", np.where(bg, "background", "mixed"))
    if "prefix_share" in s:
        label = np.where(s["prefix_share"] >= SINK_SHARE, "sink", label)
    return label.astype(object)


def edge_texture_labels(s: dict) -> np.ndarray:
    edge = s["edge_lift"] >= EDGE_LIFT
    texture = (~edge & (s["texture_share"] >= TEXTURE_SHARE)
               & (s["texture_lift"] >= TEXTURE_MIN_LIFT)
               & (s["edge_lift"] < TEXTURE_MAX_EDGE_LIFT))
    return np.where(edge, "edge", np.where(texture, "texture", "neither")).astype(object)


def colour_labels(s: dict) -> np.ndarray:
    return np.where(s["colour_score"] >= COLOUR_LIFT, "colour", "none").astype(object)


def range_labels(s: dict) -> np.ndarray:
    ratio = s["distance_ratio"]
    return np.where(s["row_entropy"] >= UNIFORM_ENTROPY, "uniform",
                    np.where(ratio <= LOCAL_RATIO, "local",
                             np.where(ratio >= GLOBAL_RATIO, "global", "mid"))).astype(object)


#: per axis: its labelling rule and the (score, threshold) pairs that decide it
RULES = {
    "fg_bg": (fg_labels, (("fg_score", FG_THRESHOLD), ("fg_z", FG_MIN_Z),
                          ("prefix_share", SINK_SHARE))),
    "edge_texture": (edge_texture_labels, (("edge_lift", EDGE_LIFT),
                                           ("texture_share", TEXTURE_SHARE),
                                           ("texture_lift", TEXTURE_MIN_LIFT),
                                           ("edge_lift", TEXTURE_MAX_EDGE_LIFT))),
    "colour": (colour_labels, (("colour_score", COLOUR_LIFT),)),
    "range": (range_labels, (("row_entropy", UNIFORM_ENTROPY), ("distance_ratio", LOCAL_RATIO),
                             ("distance_ratio", GLOBAL_RATIO))),
}


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
        |fg_score| / FG_THRESHOLD, prefix_share / SINK_SHARE, edge_lift / EDGE_LIFT,
        texture_share / TEXTURE_SHARE, colour_score / COLOUR_LIFT,
        LOCAL_RATIO / distance_ratio and distance_ratio / GLOBAL_RATIO."""
        s = {k: float(v[layer, head]) for k, v in self.scores.items()}
        if label in ("foreground", "background"):
            return abs(s["fg_score"]) / FG_THRESHOLD
        if label == "sink":
            return s["prefix_share"] / SINK_SHARE
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

    def _content(self, layer: int, head: int) -> list[str]:
        """The head's non-null labels on the axes that measure mass on an image feature."""
        out = [str(self.labels[a][layer, head]) for a in ("fg_bg", "edge_texture", "colour")]
        return [x for x in out if x in CONTENT_LABELS]

    def _candidates(self, layer: int, head: int) -> list[str]:
        """The head's content labels and its local / global label: those with a null."""
        rng = str(self.labels["range"][layer, head])
        return self._content(layer, head) + ([rng] if rng in LABEL_NULLS else [])

    def _beyond_null(self, label: str, layer: int, head: int) -> float:
        """The label's shuffle z-score pointed its way (:data:`LABEL_NULLS`), or its
        :meth:`strength` in a table without that z column (one built by hand, or read
        from a file written before it existed)."""
        null = LABEL_NULLS[label]
        z = self.scores.get(null.z)
        if z is None or not np.isfinite(z[layer, head]):
            return self.strength(label, layer, head)
        return null.sign * float(z[layer, head])

    def confounded(self, label: str, layer: int, head: int) -> list[str]:
        """The head's other content labels whose image feature correlates with ``label``'s
        at ``|r| >= CONFOUND_R`` over this image's patches (``meta["feature_r"]``): the same
        mass explains both, so the image cannot tell them apart."""
        r = self.meta.get("feature_r", {})
        f = LABEL_NULLS[label].feature if label in LABEL_NULLS else None
        if f is None:  # local / global (or sink, none): no image feature to share
            return []
        return [x for x in self._content(layer, head) if x != label
                and abs(r.get(f"{f}|{LABEL_NULLS[x].feature}", 0.0)) >= CONFOUND_R]

    def group(self, layer: int, head: int) -> str:
        """The head's primary group (its frame colour).

        sink when the fg_bg axis says so. Otherwise, of the head's labels that hold
        (foreground, background, edge, texture, colour, local, global), the one whose score
        lies furthest beyond the same map shuffled over the image's patches (largest z of
        :data:`LABEL_NULLS`: each axis in units of its own null spread, so unrelated axes
        compare; local / global by the mean z of every query's row, the content labels by
        the class-token map's); when that label is confounded with another
        (:meth:`confounded`), the data cannot separate them and the one first in AXES order
        wins (foreground, which the user's mask defines, before edge/texture, before
        colour), the table naming the other. "none" when every axis is null.
        """
        if str(self.labels["fg_bg"][layer, head]) == "sink":
            return "sink"
        candidates = self._candidates(layer, head)
        if not candidates:
            return "none"
        best = max(candidates, key=lambda x: self._beyond_null(x, layer, head))
        tied = [best, *self.confounded(best, layer, head)]
        return min(tied, key=lambda x: AXES.index(LABEL_NULLS[x].axis))

    def groups(self) -> np.ndarray:
        n_l, n_h = self.shape
        return np.array([[self.group(li, h) for h in range(n_h)] for li in range(n_l)])

    def marginal(self) -> np.ndarray:
        """Per head, the axes (";"-joined) whose label changes when one of its deciding
        scores moves by ``MARGIN`` x its threshold (:data:`RULES`): the label is marginal
        on this image. Axes whose scores the table lacks are skipped."""
        out = np.full(self.shape, "", dtype=object)
        for axis, (rule, deciding) in RULES.items():
            keys = {k for k, _ in deciding}
            need = keys - {"prefix_share"}
            if not need <= set(self.scores):
                continue
            s = {k: self.scores[k] for k in keys if k in self.scores}
            base = rule(s)
            flips = np.zeros(self.shape, bool)
            for key, thr in deciding:
                if key not in s:
                    continue
                for sign in (-1, 1):
                    moved = dict(s, **{key: s[key] + sign * MARGIN * abs(thr)})
                    flips |= rule(moved) != base
            out = np.where(flips, np.where(out == "", axis, out + ";" + axis), out)
        return out

    def rows(self) -> list[dict]:
        """One dict per head: layer, head, every score, every label, the primary group, the
        other labels that hold (``also``), those confounded with the group and the
        marginal axes."""
        n_l, n_h = self.shape
        marginal = self.marginal()
        out = []
        for li in range(n_l):
            for h in range(n_h):
                row: dict = {"layer": li, "head": h}
                row.update({k: float(v[li, h]) for k, v in self.scores.items()})
                row.update({k: str(v[li, h]) for k, v in self.labels.items()})
                group = self.group(li, h)
                row["group"] = group
                row["also"] = ";".join(x for x in self._candidates(li, h) if x != group)
                row["confounded"] = ";".join(self.confounded(group, li, h))
                row["marginal"] = str(marginal[li, h])
                out.append(row)
        return out

    def to_csv(self) -> str:
        """The rows, each with the foreground mask they were scored against (``mask``)."""
        rows = [{**r, "mask": self.meta.get("mask", "")} for r in self.rows()]
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


def shuffle_z(maps: np.ndarray, feature: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """How far a head's mass on ``feature`` lies beyond the same map shuffled over the
    image's valid patches, in standard deviations of the shuffled maps.

    For ``S = sum_p m_p f_p`` over ``n`` patches and a uniformly random permutation of ``m``,
    ``E[S] = n m̄ f̄`` and ``Var[S] = sum_p (m_p - m̄)^2 sum_p (f_p - f̄)^2 / (n - 1)`` (the
    permutation moments of a linear statistic, Hoeffding 1948; Wald & Wolfowitz 1944), so
    ``z = (S - E[S]) / sqrt(Var[S])`` without drawing shuffles; 0 where either is constant.
    The null keeps the map's own values and the image's own features: a z compares a
    head's colour mass and its edge mass each against what chance would give them here.
    """
    x = np.asarray(maps, np.float64)[..., valid]
    y = np.asarray(feature, np.float64)[valid]
    n = y.size
    if n < 2:
        return np.zeros(x.shape[:-1])
    expect = x.sum(-1) * y.mean()
    var = ((x - x.mean(-1, keepdims=True)) ** 2).sum(-1) * ((y - y.mean()) ** 2).sum() / (n - 1)
    sd = np.sqrt(np.maximum(var, 0.0))
    return np.where(sd > 1e-12, ((x * y).sum(-1) - expect) / np.maximum(sd, 1e-12), 0.0)


def mass_auc(maps: np.ndarray, inside: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of the head's per-patch mass, object patches against background
    patches: the chance that a random object patch holds more mass than a random background
    patch (ties count a half; Hanley & McNeil 1982). 0.5 when either set is empty."""
    x = np.asarray(maps, np.float64)[..., valid]
    obj = inside[valid]
    n1, n0 = int(obj.sum()), int((~obj).sum())
    if n1 == 0 or n0 == 0:
        return np.full(x.shape[:-1], 0.5)
    ranks = rankdata(x, axis=-1)  # average ranks: ties count a half
    return (ranks[..., obj].sum(-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def foreground_scores(maps: np.ndarray, cover: np.ndarray, valid: np.ndarray) -> dict:
    """Foreground vs background against a mask's per-token coverage ``c_p``, size-free.

    Object patches are the tokens at least half covered. The score is the density ratio

    ``r = (m / n1) / ((1 - m) / n0)``: the mean mass per object patch over the mean mass
    per background patch (``m`` the head's mass on the ``n1`` object patches, ``n0``
    background patches), i.e. the odds ratio of the mass inside against the area inside.
    A map ``r`` times denser on the object gives ``r`` whatever the object's size, and
    swapping object and background turns ``r`` into ``1/r``. Reported as
    ``fg_log_odds = log r`` and as ``fg_score = (r - 1)/(r + 1) = tanh(log r / 2)`` in
    [-1, 1] (0 for a uniform map, +-1 all mass on / off the object). ``FG_THRESHOLD = 0.5``
    means ``r >= 3``: at a 50% object exactly the old score's threshold, and the same
    density contrast at any size. (The old ``(m - a)/(1 - a)`` / ``(m - a)/a`` score needed
    a lift of 6 for a 9% object but only 0.5 for the background; see
    ``validation/foreground_size.py``.) ``fg_z``: the mass on object patches against the
    same map shuffled (:func:`shuffle_z`); a label needs ``|fg_z| >= FG_MIN_Z`` too, so a
    one-patch object in a noisy map is not "foreground" by chance.

    Beside them: ``fg_auc``, the Mann-Whitney AUC of per-patch mass, object vs background
    patches (:func:`mass_auc`), also size-free but blind to magnitude (a map 1% denser on
    every object patch has AUC 1) and pulled to 0.5 by ties (a head on part of the
    background leaves most background patches at zero, as the object: AUC 0.36 on the
    horse test), hence not the label; ``fg_lift = sum_p A_p c_p / mean_p c_p``; and
    ``fg_jaccard`` = |mask ∩ R60| / |mask ∪ R60| (R60 the head's 60%-mass region; Caron et
    al. 2021, DINO, Table 8's measure). Labels: :func:`fg_labels`.
    """
    m = _normalise(maps, valid)
    c = cover * valid
    a = float(c.sum() / max(valid.sum(), 1))
    inside_mass = (m * c).sum(axis=(-1, -2))
    mask = (c >= 0.5) & valid
    n1, n0 = int(mask.sum()), int((valid & ~mask).sum())
    auc = mass_auc(m, mask, valid)
    if n1 and n0:
        on = np.clip((m * mask).sum(axis=(-1, -2)), 1e-9, 1 - 1e-9)
        log_odds = np.log(on / n1) - np.log((1 - on) / n0)
    else:
        log_odds = np.zeros_like(auc)
    regions = mass_region(m, MASS_SHARE) & valid
    union = (regions | mask).sum(axis=(-1, -2))
    jac = np.divide((regions & mask).sum(axis=(-1, -2)), union, out=np.zeros(union.shape),
                    where=union > 0)
    out = {"fg_score": np.tanh(log_odds / 2), "fg_log_odds": log_odds, "fg_auc": auc,
           "fg_lift": inside_mass / a if a > 0 else np.ones_like(inside_mass),
           "fg_jaccard": jac, "fg_z": shuffle_z(m, mask.astype(np.float64), valid)}
    out["_label"] = fg_labels(out)
    return out


def edge_texture_scores(maps: np.ndarray, feats: PatchFeatures) -> dict:
    """Edge vs texture: where the head's mass falls relative to contours and texture.

    ``edge_lift = sum_p A_p contour_p / mean_p contour_p`` (1 for a uniform map, > 1 when
    the head concentrates on outlines; 0 when the image has no contour);
    ``texture_share = sum_p A_p texture_p`` and ``texture_lift`` likewise relative to the mean;
    ``edge_z`` / ``texture_z`` the same masses against shuffled maps (:func:`shuffle_z`).
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
    out = {"edge_lift": e_lift, "texture_share": t_mass, "texture_lift": t_lift,
           "edge_z": shuffle_z(m, feats.contour, v), "texture_z": shuffle_z(m, feats.texture, v)}
    out["_label"] = edge_texture_labels(out)
    return out


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
    colour_score >= COLOUR_LIFT; ``colour_z``: the larger lift's mass against shuffled maps
    (:func:`shuffle_z`). The Pearson correlations ``saturation_r`` / ``hue_r`` are
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
    z = np.where(lifts[0] >= lifts[1], shuffle_z(m, feats.saturation, v),
                 shuffle_z(m, feats.hue, v))
    out = {"colour_score": score, "sat_lift": lifts[0], "hue_lift": lifts[1], "colour_z": z,
           "saturation_r": _pearson(m, feats.saturation, v),
           "hue_r": _pearson(m, feats.hue, v)}
    out["_label"] = colour_labels(out)
    return out


def range_scores(distance: np.ndarray, entropy: np.ndarray, layout: TokenLayout,
                 patch_size: tuple[int, int], distance_z: np.ndarray | None = None) -> dict:
    """Local / global / uniform from the :func:`range_stats` of every head ``[L, H]``.

    ``distance_ratio = d / d_uniform`` (d_uniform: the same for uniform attention);
    ``distance_z`` (when given) the distance's shuffle z-score, which ranks local / global
    against the content labels in :meth:`HeadTable.group`.
    Labels: uniform if row_entropy >= UNIFORM_ENTROPY (no selectivity, whatever the
    distance); else local if distance_ratio <= LOCAL_RATIO, global if >= GLOBAL_RATIO, and
    mid in between. Uniform and mid are this axis's null labels.
    """
    d = np.asarray(distance, np.float64)
    ent = np.asarray(entropy, np.float64)
    d_uniform = float(patch_distances(layout.grid, tuple(patch_size)).double().mean())
    ratio = d / max(d_uniform, 1e-12)
    out = {"distance_px": d, "distance_ratio": ratio, "row_entropy": ent}
    if distance_z is not None:
        out["distance_z"] = np.asarray(distance_z, np.float64)
    out["_label"] = range_labels(out)
    return out


def score_heads(
    maps: np.ndarray,
    ranges: tuple[np.ndarray, ...],
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

    ``maps`` ``[L, H, gh, gw]`` head maps; ``ranges`` the heads' (distance, entropy[,
    distance z]) ``[L, H]`` from :func:`range_stats`; ``image`` the original RGB image and
    ``geometry`` where the model input lies on it; ``cover`` the foreground mask's
    per-token coverage; ``valid`` tokens that show image pixels. The same as
    :func:`mask_free_scores` then :func:`with_foreground` (which is how a new mask is
    scored without measuring the image again).
    """
    valid = np.ones(layout.grid, bool) if valid is None else valid
    feats = patch_features(image, geometry, valid)
    free = mask_free_scores(maps, ranges, layout, feats, patch_size, prefix_share)
    return with_foreground(free, maps, cover, feats, meta)


def mask_free_scores(
    maps: np.ndarray,
    ranges: tuple[np.ndarray, ...],
    layout: TokenLayout,
    feats: PatchFeatures,
    patch_size: tuple[int, int],
    prefix_share: np.ndarray | None = None,
) -> HeadTable:
    """The scores and labels that do not depend on the foreground mask (edge / texture,
    colour, range, entropy, prefix share): computed once per image and model, whatever
    mask the heads are then scored against (:func:`with_foreground`)."""
    parts = [("edge_texture", edge_texture_scores(maps, feats)),
             ("colour", colour_scores(maps, feats)),
             ("range", range_scores(*ranges[:2], layout, patch_size, *ranges[2:]))]
    scores: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for axis, d in parts:
        labels[axis] = d.pop("_label")
        scores.update({k: np.asarray(v, np.float64) for k, v in d.items()})
    scores["entropy"] = map_entropy(maps)
    if prefix_share is not None:
        scores["prefix_share"] = np.asarray(prefix_share, np.float64)
    return HeadTable(scores, labels)


def with_foreground(free: HeadTable, maps: np.ndarray, cover: np.ndarray,
                    feats: PatchFeatures, meta: dict | None = None) -> HeadTable:
    """A new table: ``free`` (:func:`mask_free_scores`, left as it is) plus the scores that
    depend on the foreground's per-token coverage ``cover`` (:func:`foreground_scores`,
    sink heads, :func:`feature_correlations`)."""
    fg = foreground_scores(maps, cover, feats.valid)
    labels = {"fg_bg": fg.pop("_label"), **free.labels}
    scores = {**{k: np.asarray(v, np.float64) for k, v in fg.items()}, **free.scores}
    if "prefix_share" in scores:
        labels["fg_bg"] = fg_labels(scores)  # sink heads
    meta = dict(meta or {})
    meta["feature_r"] = feature_correlations(cover, feats)
    return HeadTable(scores, labels, meta)


def feature_correlations(cover: np.ndarray, feats: PatchFeatures) -> dict[str, float]:
    """Pearson r over the valid patches between every two content features ("cover|colour":
    mask coverage vs colour, colour being the larger |r| of saturation and hue), both
    orders; 0 where a feature is constant. :meth:`HeadTable.confounded` reads them."""
    v = feats.valid
    named = {"cover": [cover], "contour": [feats.contour], "texture": [feats.texture],
             "colour": [feats.saturation, feats.hue]}
    out: dict[str, float] = {}
    for a, fa in named.items():
        for b, fb in named.items():
            if a != b:
                rs = [float(_pearson(x[None], y, v)[0]) for x in fa for y in fb]
                out[f"{a}|{b}"] = max(rs, key=abs)
    return out
