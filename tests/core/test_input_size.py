"""Models at another input size (pos-embed resampled), and the float16 store that bounds the
memory of large token grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitexplorer.core.errors import ModelError
from vitexplorer.core.models import load_model


def test_input_size_sets_the_token_grid_and_resamples_file_weights(tmp_path):
    from safetensors.torch import save_file

    from vitexplorer.core.analysis import analyze

    small = load_model("vit_tiny_patch16_224", "random", input_size=64, depth=2)
    save_file(small.model.state_dict(), tmp_path / "w.safetensors")
    big = load_model("vit_tiny_patch16_224", str(tmp_path / "w.safetensors"),
                     input_size=96, depth=2)
    assert big.data_config["input_size"] == (3, 96, 96)
    assert big.model.pos_embed.shape[1] == 1 + 6 * 6
    # the class token's embedding is kept, the patch grid is resampled from 4x4 to 6x6
    assert torch.equal(big.model.pos_embed[0, 0], small.model.pos_embed[0, 0])
    a = analyze(big, (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8))
    assert a.layout.grid == (6, 6) and a.map("rollout").shape == (6, 6)
    with pytest.raises(ModelError, match="whole number of the 16x16 patches of "
                                         "vit_tiny_patch16_224"):
        load_model("vit_tiny_patch16_224", "random", input_size=100, depth=2)


def test_large_grids_keep_the_fused_attention_in_float16(tiny_loaded, monkeypatch):
    from vitexplorer.core import stream as stream_module
    from vitexplorer.core.analysis import analyze

    rgb = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    exact = analyze(tiny_loaded, rgb)
    monkeypatch.setattr(stream_module, "FULL_PRECISION_LIMIT", 0)  # everything is "large"
    half = analyze(tiny_loaded, rgb)
    assert exact.fused.dtype == torch.float32 and half.fused.dtype == torch.float16
    np.testing.assert_allclose(half.map("rollout"), exact.map("rollout"), atol=2e-4)
    np.testing.assert_allclose(half.head_rollout_maps().numpy(),
                               exact.head_rollout_maps().numpy(), atol=2e-4)


def test_an_input_of_one_patch_is_refused_naming_the_size():
    """A 1 x 1 token grid makes every map one value and the entropies 0/0 (NaN in the heads
    JSON); the smallest input that holds a map is two patches per side."""
    with pytest.raises(ModelError, match=r"input size 16x16 holds one 16x16 patch of "
                                         r"vit_tiny_patch16_224 per side.* at least 32"):
        load_model("vit_tiny_patch16_224", "random", input_size=16, depth=1)
    assert load_model("vit_tiny_patch16_224", "random", input_size=32,
                      depth=1).model.patch_embed.grid_size == (2, 2)


def test_an_attention_store_larger_than_the_machine_is_refused_before_the_forward(
        tiny_loaded, monkeypatch):
    """--input-size 4096 on a /16 model keeps 12 x 65538^2 float16 (103 GB): the forward
    died in the allocator with a traceback. The store is b x L x N^2 x 4 bytes here."""
    from vitexplorer.core import stream as stream_module
    from vitexplorer.core.analysis import analyze

    rgb = np.zeros((64, 64, 3), np.uint8)
    need = 1 * 3 * 17 ** 2 * 4  # one image, 3 blocks, 4 x 4 patches + class token, float32
    monkeypatch.setattr(stream_module, "physical_memory", lambda: need - 1)
    with pytest.raises(ModelError, match=r"17 tokens \(4x4 patches\) over 3 blocks .* "
                                         r"smaller input size \(--input-size\)"):
        analyze(tiny_loaded, rgb)
    monkeypatch.setattr(stream_module, "physical_memory", lambda: need)
    assert analyze(tiny_loaded, rgb).layout.grid == (4, 4)


def test_a_model_too_large_to_build_names_the_input_size(monkeypatch):
    """An input size whose position embedding cannot be allocated (100 000 px: 39 M tokens
    of a /16 model) fails in timm's constructor; the message says which option to change.
    The allocator's failure is raised here: a real 30 GB request could succeed lazily on a
    machine that overcommits, and then be killed."""
    import timm

    def refuse(*_a, **_k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. "
                           "DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                           "30000000768 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(timm, "create_model", refuse)
    with pytest.raises(ModelError, match=r"for 100000 px inputs: not enough memory .*"
                                         r"use a smaller input size \(--input-size\)"):
        load_model("vit_tiny_patch16_224", "random", input_size=100000)
    with pytest.raises(ModelError, match=r"Cannot build 'vit_tiny_patch16_224': \[enforce"):
        load_model("vit_tiny_patch16_224", "random")  # not the input size's fault
