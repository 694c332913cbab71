"""Loading weights from files the tests write, refusing unsafe pickles, offline errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from vitexplorer.core.errors import ModelError, UnsupportedModelError
from vitexplorer.core.models import (
    is_cached,
    load_model,
    read_state_dict,
    supported_models,
)

ARCH = "vit_tiny_patch16_224"
KW = {"img_size": 64, "depth": 2}


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(3)
    model = timm.create_model(ARCH, pretrained=False, **KW).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        y = model(x)
    return model, x, y


def _out(loaded, x):
    with torch.inference_mode():
        return loaded.model(x)


def test_safetensors_round_trip_is_exact(tmp_path, reference):
    model, x, y = reference
    path = tmp_path / "weights é.safetensors"
    save_file(model.state_dict(), str(path))
    loaded = load_model(ARCH, path, **KW)
    assert torch.equal(_out(loaded, x), y)
    assert loaded.weights == str(path) and not loaded.random_weights
    assert "weights é.safetensors" in loaded.label


@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict", "module-prefix"])
def test_pth_round_trip_with_wrappers(tmp_path, reference, wrap):
    model, x, y = reference
    sd = model.state_dict()
    obj = {"plain": sd, "model": {"model": sd, "epoch": 3},
           "state_dict": {"state_dict": sd},
           "module-prefix": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    assert torch.equal(_out(load_model(ARCH, path, **KW), x), y)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": _Evil(marker)}, path)
    with pytest.raises(ModelError, match="Refused"):
        read_state_dict(path)
    assert not marker.exists(), "the pickle's code must never run"


def test_wrong_architecture_names_mismatched_keys(tmp_path, reference):
    model, _, _ = reference
    path = tmp_path / "tiny.safetensors"
    save_file(model.state_dict(), str(path))
    with pytest.raises(ModelError, match="do not fit") as info:
        load_model("vit_small_patch16_224", path, img_size=64, depth=3)
    msg = str(info.value)
    assert "shape mismatches" in msg and "missing keys" in msg and "blocks.2" in msg


def test_unknown_suffix_and_missing_file(tmp_path):
    bad = tmp_path / "w.npz"
    bad.write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown type"):
        read_state_dict(bad)
    with pytest.raises(ModelError, match="does not exist"):
        read_state_dict(tmp_path / "nope.safetensors")
    with pytest.raises(ModelError, match="Unknown model"):
        load_model("not_a_model_xyz", "random")


def test_random_weights_are_labelled(tiny_loaded):
    assert tiny_loaded.random_weights
    assert "random weights" in tiny_loaded.label
    assert tiny_loaded.data_config["input_size"] == (3, 64, 64)
    assert tiny_loaded.class_names and len(tiny_loaded.class_names) == 1000


def test_unsupported_architecture_on_load():
    with pytest.raises(UnsupportedModelError, match="not supported, because"):
        load_model("swin_tiny_patch4_window7_224", "random")


def test_differential_attention_is_not_offered_nor_loaded():
    """Differential attention (Ye et al. 2024, timm's DiffAttention) softmaxes two maps per
    head and uses their difference: the dropout hook saw 2 x H distributions, shown as H
    heads' maps that the model never uses."""
    from vitexplorer.core.models import check_supported

    assert not any(n.startswith("vit_dwee") for n in supported_models(pretrained=False))
    with pytest.raises(UnsupportedModelError, match="differential attention"):
        load_model("vit_dwee_patch16_reg1_gap_256", "random", input_size=32, depth=1)
    renamed = timm.create_model("vit_tiny_patch16_224", attn_layer="diff", img_size=32, depth=1)
    with pytest.raises(UnsupportedModelError, match="differential attention"):
        check_supported(renamed)


def _run(code: str, env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, cwd=Path(__file__).resolve().parents[2])


def test_offline_gives_one_message_with_three_ways_out(tmp_path):
    code = (
        "from vitexplorer.core.models import load_model\n"
        "from vitexplorer.core.errors import WeightsUnavailableError\n"
        "try:\n    load_model('vit_small_patch16_224.dino')\n"
        "except WeightsUnavailableError as e:\n    print('CAUGHT', e)\n"
    )
    res = _run(code, {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert "CAUGHT" in res.stdout, res.stderr
    for way in ("connect", "local weights file", "random weights"):
        assert way in res.stdout
    assert "Traceback" not in res.stderr


def test_cache_marks_and_supported_list(tmp_path):
    assert "vit_small_patch16_224.dino" in supported_models()
    assert not any(n.startswith("swin") or n.startswith("convnext") for n in supported_models())
    snap = tmp_path / "hub" / "models--timm--vit_small_patch16_224.dino" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    code = ("from vitexplorer.core.models import is_cached\n"
            "print(is_cached('vit_small_patch16_224.dino'), is_cached('vit_base_patch16_224'))")
    res = _run(code, {"HF_HUB_CACHE": str(tmp_path / "hub")})
    assert res.stdout.split() == ["True", "False"], res.stderr
    assert is_cached("vit_small_patch16_224.dino", set()) is False


def test_parameter_counts_per_architecture_cached_and_prioritised(tmp_path, monkeypatch):
    """Counts on the meta device equal a real model's; one count per architecture; a
    cache file makes the second run count nothing; a wanted name goes first; a stop keeps
    what was counted."""
    import json
    from collections import deque

    from vitexplorer.core import models
    from vitexplorer.core.errors import Cancelled

    names = ["deit_tiny_patch16_224.fb_in1k", "vit_tiny_patch16_224.augreg_in21k",
             "vit_tiny_patch16_224.augreg_in21k_ft_in1k", "eva02_tiny_patch14_224.mim_in22k"]
    real = {n: sum(p.numel() for p in timm.create_model(n.split(".")[0]).parameters())
            for n in names}
    calls, order = [], []
    count = models.count_parameters
    monkeypatch.setattr(models, "count_parameters", lambda a: calls.append(a) or count(a))
    cache = tmp_path / "counts.json"
    got = models.parameter_counts(names, cache, lambda n, c: order.append(n),
                                  priority=deque([names[3]]))
    assert got == real
    assert order[0] == names[3] and sorted(order) == sorted(names)
    assert sorted(calls) == sorted({n.split(".")[0] for n in names})  # tags share a count
    calls.clear()
    assert models.parameter_counts(names, cache) == real and calls == []
    cache.write_text(json.dumps({"timm": "0.0", "counts": {"deit_tiny_patch16_224": 1}}))
    assert models.parameter_counts(names[:1], cache) == {names[0]: real[names[0]]}
    cache.write_text("not json")
    calls.clear()
    with pytest.raises(Cancelled):
        models.parameter_counts(names, cache, should_stop=lambda: len(calls) >= 2)
    assert len(json.loads(cache.read_text())["counts"]) == 2


def test_native_resize_needs_a_model_whose_grid_follows_the_input(tiny_loaded):
    """A fixed-grid model fed a native-aspect input failed in timm's assertion ('Input
    height (176) doesn't match model (224)'); BEiT, whose relative position bias is fixed
    to one grid, failed on an unexpected keyword."""
    import numpy as np

    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.constants import resize_model_kwargs
    from vitexplorer.core.errors import UsageError

    with pytest.raises(UsageError, match="--resize native needs"):
        analyze(tiny_loaded, np.zeros((40, 90, 3), np.uint8), "native")
    with pytest.raises(ModelError, match=r"'beit_base_patch16_224' cannot follow .* native"):
        load_model("beit_base_patch16_224", "random", input_size=32, depth=1,
                   **resize_model_kwargs("native"))


def test_random_weights_are_the_same_beside_other_builds(tmp_path):
    # seed-0 demo weights drawn from torch's global generator: a build running beside it in
    # another thread (the GUI's slot B, a job given up on) took some of its numbers
    import threading

    kw = {"img_size": 64, "depth": 4}
    alone = load_model(ARCH, "random", **kw).model.state_dict()
    torch.manual_seed(5)
    path = tmp_path / "w.safetensors"
    save_file(timm.create_model(ARCH, pretrained=False, **kw).state_dict(), str(path))
    results = []

    def build(weights):
        for _ in range(4):
            results.append((weights, load_model(ARCH, weights, **kw).model.state_dict()))

    threads = [threading.Thread(target=build, args=(w,)) for w in ("random", str(path))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seeded = [sd for w, sd in results if w == "random"]
    assert len(seeded) == 4
    for sd in seeded:
        assert all(torch.equal(sd[k], alone[k]) for k in alone)


def test_random_weights_are_the_same_beside_a_pretrained_build(monkeypatch):
    # a pretrained model is built with timm's random init before its weights are loaded:
    # drawn beside a seeded demo build, it took some of that build's numbers too. Here the
    # "cached pretrained" build is timm's random init (no weights can be downloaded)
    import threading

    from vitexplorer.core import models

    kw = {"img_size": 64, "depth": 4}
    alone = load_model(ARCH, "random", **kw).model.state_dict()
    create = timm.create_model
    monkeypatch.setattr(models, "is_cached", lambda *a, **k: True)
    monkeypatch.setattr(models, "hub_offline", lambda: False)
    monkeypatch.setattr(timm, "create_model",
                        lambda *a, pretrained=False, **k: create(*a, pretrained=False, **k))
    seeded = []

    def build(weights):
        for _ in range(4):
            sd = load_model(ARCH, weights, **kw).model.state_dict()
            if weights == "random":
                seeded.append(sd)

    threads = [threading.Thread(target=build, args=(w,)) for w in ("random", "pretrained")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seeded) == 4
    for sd in seeded:
        assert all(torch.equal(sd[k], alone[k]) for k in alone)
