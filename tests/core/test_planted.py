"""The full pipeline (capture, maps, scores, clustering) recovers heads planted by hand.

The model is documented head by head in tests/planted_vit.py. The image is the horse
silhouette (bright, smooth, edges softened by a 1-px blur as in a photograph) on darkened
grass texture; the foreground mask is the exact silhouette.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import TEST_IMAGES
from tests.planted_vit import EXPECTED, LAYER, TWINS, planted_vit
from vitexplorer.core.analysis import analyze
from vitexplorer.core.images import load_image
from vitexplorer.core.models import LoadedModel, model_data_config
from vitexplorer.core.relations import cluster_heads
from vitexplorer.core.stability import label_stability

AXIS_OF = {"foreground": "fg_bg", "background": "fg_bg", "edge": "edge_texture",
           "texture": "edge_texture", "local": "range", "global": "range",
           "uniform": "range"}


def horse_mask() -> np.ndarray:
    return load_image(TEST_IMAGES / "horse.png").mean(2) < 128


@pytest.fixture(scope="module")
def planted():
    model = planted_vit()
    cfg = model_data_config(model)
    cfg.update(mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    loaded = LoadedModel(model, "planted-vit", "planted-vit", "random", cfg,
                         torch.device("cpu"))
    horse = horse_mask()
    h, w = horse.shape
    grass = load_image(TEST_IMAGES / "grass.png")[:h, :w].astype(np.float32) * 0.4 + 10
    soft = cv2.GaussianBlur(horse.astype(np.float32), (0, 0), 1.0)[..., None]
    image = (soft * 200.0 + (1 - soft) * grass).astype(np.uint8)
    analysis = analyze(loaded, image, "stretch", source="planted horse")
    return analysis, analysis.head_table(mask=horse, mask_name="exact silhouette")


@pytest.mark.parametrize("head", sorted(EXPECTED))
def test_planted_head_is_recovered(planted, head):
    _, table = planted
    expected = EXPECTED[head]
    axis = AXIS_OF[expected]
    got = table.labels[axis][LAYER, head]
    row = {k: round(float(v[LAYER, head]), 3) for k, v in table.scores.items()}
    assert got == expected, f"head {head}: {axis} = {got}, expected {expected}; {row}"


def test_primary_groups(planted):
    _, table = planted
    assert table.group(LAYER, 0) == "foreground" and table.group(LAYER, 1) == "background"
    assert table.group(LAYER, 2) == "edge" and table.group(LAYER, 5) == "none"
    # the local head: its query rows lie closer than their shuffles (distance z about
    # -2.3) further than its class-token row's texture mass lies beyond its shuffle (about
    # 1.1): local frames it, texture is "also"
    rows = table.rows()
    assert table.group(LAYER, 4) == "local"
    assert rows[LAYER * table.shape[1] + 4]["also"] == "texture"
    assert -table.scores["distance_z"][LAYER, 4] > table.scores["texture_z"][LAYER, 4] > 0
    # the dark head's background and texture are the same mass on this image (grass
    # everywhere but the horse), and the table says so instead of picking one silently
    row = rows[LAYER * table.shape[1] + 1]
    assert (row["group"], row["confounded"]) == ("background", "texture")


def test_planted_twins_cluster_together(planted):
    analysis, _ = planted
    cl = cluster_heads(analysis.head_maps().numpy()[LAYER:], threshold=0.2)
    for a, b in TWINS:
        assert cl.cluster_of(0, a) == cl.cluster_of(0, b)
    others = [h for h in EXPECTED if h not in {x for t in TWINS for x in t}]
    assert len({cl.cluster_of(0, h) for h in others}) == len(others)


def test_planted_labels_are_stable(planted):
    """The planted detectors do not care about mirroring, a slight colour jitter or a 5%
    rescale (the texture head's key is the fine-structure energy averaged over each patch's
    neighbourhood, which resampling keeps; a 1-px checkerboard key lost it under rescaling)."""
    analysis, _ = planted
    st = label_stability(analysis.loaded, analysis, mask=horse_mask())
    for head, label in EXPECTED.items():
        share = st[AXIS_OF[label]][LAYER, head]
        assert share == 1.0, (head, label, share)


def test_a_mask_without_a_name_does_not_replace_the_cached_table(planted):
    analysis, _ = planted
    given = analysis.head_table(mask=~horse_mask())
    own = analysis.head_table()
    assert given.meta["mask"] == "given mask" and own.meta["mask_source"] == "centre"
    assert not np.allclose(given.scores["fg_score"], own.scores["fg_score"])


@pytest.fixture(scope="module")
def planted_loaded():
    model = planted_vit()
    cfg = model_data_config(model)
    cfg.update(mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)
    return LoadedModel(model, "planted-vit", "planted-vit", "random", cfg, torch.device("cpu"))


@pytest.mark.parametrize("texture", ["grass", "gravel", "brick"])
def test_edge_and_texture_heads_at_natural_contrast(planted_loaded, texture):
    """Full-contrast texture (the contrast that broke Canny contours), flat object."""
    from validation.composites import composite, silhouette, texture_sources

    tex = texture_sources(TEST_IMAGES)[texture]
    for sil in ("horse", "ellipse", "star"):
        mask = silhouette(sil, TEST_IMAGES)
        image = composite(tex, mask, 1.0, brighter=False)
        table = analyze(planted_loaded, image, "stretch").head_table(mask=mask,
                                                                     mask_name="exact")
        labels = table.labels["edge_texture"][LAYER]
        assert labels[2] == labels[8] == "edge", (texture, sil, labels)
        assert labels[3] == "texture", (texture, sil, table.scores["edge_lift"][LAYER, 3])
