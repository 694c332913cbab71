"""Head similarity, clustering, divergence, ablation importance, profiles, stability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import TEST_IMAGES, small_model
from vitexplorer.core.analysis import analyze
from vitexplorer.core.constants import NULL_SET
from vitexplorer.core.heads import HeadTable
from vitexplorer.core.importance import head_importance
from vitexplorer.core.profile import aggregate
from vitexplorer.core.relations import cluster_heads, js_distances, layer_divergence
from vitexplorer.core.stability import PERTURBATIONS, perturb


def loop_js(p, q):
    """Jensen-Shannon distance written out with base-2 logs."""
    p = p / p.sum()
    q = q / q.sum()
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda x, y: sum(a * np.log2(a / b) for a, b in zip(x, y, strict=True) if a > 0)  # noqa: E731
    return np.sqrt(max(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0))


def test_js_distance_matches_the_formula():
    rng = np.random.default_rng(1)
    maps = rng.random((5, 3, 3)) ** 3
    d = js_distances(maps)
    for i in range(5):
        for j in range(5):
            assert d[i, j] == pytest.approx(loop_js(maps[i].ravel(), maps[j].ravel()), abs=1e-9)
    a, b = np.zeros((2, 2)), np.zeros((2, 2))
    a[0, 0], b[1, 1] = 1, 1
    assert js_distances(np.stack([a, b]))[0, 1] == pytest.approx(1.0)


def test_clustering_puts_twins_together_and_orders_them_adjacent():
    rng = np.random.default_rng(2)
    base = rng.random((3, 6, 6)) ** 4
    maps = np.stack([base[0], base[1], base[2], base[0] * 1.0001, base[1] + 1e-6])[None]
    cl = cluster_heads(maps, threshold=0.05)
    assert cl.cluster_of(0, 0) == cl.cluster_of(0, 3)
    assert cl.cluster_of(0, 1) == cl.cluster_of(0, 4)
    assert len({cl.cluster_of(0, h) for h in range(5)}) == 3
    order = cl.ordered_cells()
    pos = {c: i for i, c in enumerate(order)}
    assert abs(pos[(0, 0)] - pos[(0, 3)]) == 1 and abs(pos[(0, 1)] - pos[(0, 4)]) == 1


def test_layer_divergence():
    rng = np.random.default_rng(3)
    same = np.repeat(rng.random((1, 1, 4, 4)), 3, axis=1)
    different = rng.random((1, 3, 4, 4)) ** 6
    div = layer_divergence(np.concatenate([same, different]))
    assert div[0] == pytest.approx(0.0, abs=1e-9) and div[1] > 0.2


def naive_ablation(model, x, layer: int, head: int) -> torch.Tensor:
    """Log-probabilities of one full forward with ``head``'s slice of block ``layer``'s
    projection input zeroed (the head's output removed; no reuse of the block inputs)."""
    attn = model.blocks[layer].attn
    hd = attn.proj.in_features // attn.num_heads

    def zero(_m, args):
        o = args[0].clone()
        o[..., head * hd:(head + 1) * hd] = 0
        return (o,)

    handle = attn.proj.register_forward_pre_hook(zero)
    try:
        with torch.inference_mode():
            return torch.log_softmax(model(x), -1)[0]
    finally:
        handle.remove()


def assert_matches_naive(model, x, cells) -> None:
    got = head_importance(model, x)
    with torch.inference_mode():
        base = torch.log_softmax(model(x), -1)[0]
    target = got["target"]
    assert target == int(base.argmax())
    for li, h in cells:
        lp = naive_ablation(model, x, li, h)
        assert got["logprob_drop"][li, h].item() == pytest.approx(
            (base[target] - lp[target]).item(), abs=1e-4), (li, h)
        kl = (base.exp() * (base - lp)).sum().item()
        assert got["kl"][li, h].item() == pytest.approx(kl, abs=1e-4), (li, h)


def test_ablation_matches_naive_full_forwards():
    model = small_model("vit_small_patch16_224", depth=3, img_size=64)
    assert_matches_naive(model, torch.randn(1, 3, 64, 64), ((0, 0), (1, 4), (2, 5)))


@pytest.mark.parametrize("name", ["eva02_tiny_patch14_224", "beit_base_patch16_224",
                                  "deit_tiny_distilled_patch16_224"])
def test_ablation_reruns_other_families_exactly(name):
    """The blocks rerun from their kept inputs (with EVA's rotary embedding, BEiT's relative
    position bias, DeiT's distillation token) give what a full forward gives, every head.
    timm's initialisation leaves EVA's and BEiT's heads ~1e-5 nats of effect (below the
    tolerance): unit-scale weights make every head matter (drops of 0.03-0.3 nats)."""
    model = small_model(name, depth=2, num_classes=10)
    torch.manual_seed(1)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, p.shape[1] ** -0.5)
            elif p.ndim > 2:
                p.normal_(0.0, 0.1)
            elif "gamma" in pname or pname.endswith(".weight"):  # layer scale, norms
                p.fill_(1.0)
    size = model.pretrained_cfg["input_size"][1:]
    heads = model.blocks[0].attn.num_heads
    assert_matches_naive(model, torch.randn(1, 3, *size),
                         [(li, h) for li in range(2) for h in range(heads)])


def _table(labels: list[str]) -> HeadTable:
    fg = np.array([labels], dtype=object)
    n = len(labels)
    null = {"edge_texture": "neither", "colour": "none", "range": "uniform"}
    return HeadTable({"fg_score": np.array([[1.0 if x == "foreground" else 0.0
                                             for x in labels]])},
                     {"fg_bg": fg, **{k: np.full((1, n), v, dtype=object)
                                      for k, v in null.items()}})


def test_profile_counts_labels_over_images():
    tables = [_table(["foreground", "mixed"]) for _ in range(7)]
    tables += [_table(["mixed", "mixed"]) for _ in range(3)]
    prof = aggregate(tables)
    assert prof.n_images == 10
    assert prof.label_freq["fg_bg"]["foreground"][0, 0] == pytest.approx(0.7)
    assert prof.mean["fg_score"][0, 0] == pytest.approx(0.7)
    assert prof.std["fg_score"][0, 0] == pytest.approx(np.std([1] * 7 + [0] * 3))
    assert list(prof.majority_group()[0]) == ["foreground", "none"]
    # Wilson's 95% interval of 7/10 is 0.397..0.892 (hand-computed, as published tables)
    assert prof.describe(0, 0) == ("head 0.0 is a foreground head on 70% of 10 images "
                                   "(95% lower bound 40%, not confident)")
    _, share, low = prof.group_share()
    assert low[0, 0] == pytest.approx(0.3968, abs=1e-4) and share[0, 1] == low[0, 1] == 0
    sure = aggregate([_table(["foreground", "mixed"]) for _ in range(30)])
    assert sure.group_share()[2][0, 0] == pytest.approx(0.8865, abs=1e-4)  # 30 of 30
    assert "confident" not in sure.describe(0, 0)
    assert "group_share,group_confidence" in prof.to_csv().splitlines()[0]
    assert prof.to_csv().count("\n") == 3
    with pytest.raises(ValueError):
        aggregate([])


def test_perturbations_transform_image_and_mask_together():
    img = np.zeros((40, 60, 3), np.uint8)
    img[10:20, 5:15] = 255
    mask = img[..., 0] > 0
    for kind in PERTURBATIONS:
        out, m = perturb(img, mask, kind)
        assert out.shape == img.shape and m.shape == mask.shape
        if kind != "jitter":
            assert ((out[..., 0] > 128) == m).mean() > 0.97
    flipped, _ = perturb(img, mask, "hflip")
    assert (perturb(flipped, mask, "hflip")[0] == img).all()


@pytest.fixture(scope="module")
def random_vit():
    from vitexplorer.core.models import load_model

    torch.manual_seed(0)
    return load_model("vit_small_patch16_224", "random")


def test_random_init_model_gets_no_confident_labels(random_vit):
    """Random weights attend almost uniformly: nothing strong on any axis."""
    for name in ("chelsea.png", "coins.png"):
        a = analyze(random_vit, TEST_IMAGES / name)
        table = a.head_table()
        groups = table.groups()
        assert (groups == "none").mean() >= 0.9, table.to_csv()
        assert np.abs(table.scores["fg_score"]).max() < 0.3
        assert table.scores["entropy"].min() > 0.9
        assert (table.labels["range"] == "uniform").all()
        assert all(str(v) in NULL_SET for v in table.labels["edge_texture"].ravel())

