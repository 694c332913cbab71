"""The streamed capture keeps exactly the reductions of the full attention, and recomputes any
block's full attention from that block's inputs, for every supported family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import small_model
from tests.core.test_capture import FAMILIES
from vitexplorer.core import rollout as ro
from vitexplorer.core.analysis import analyze
from vitexplorer.core.capture import capture
from vitexplorer.core.errors import Cancelled
from vitexplorer.core.maps import patch_distances, range_stats
from vitexplorer.core.stream import layer_attention, stream


def _model_and_input(name, batch=2):
    kwargs = FAMILIES[name][0]
    model = small_model(name, **kwargs)
    size = (kwargs["img_size"],) * 2 if "img_size" in kwargs else \
        model.pretrained_cfg["input_size"][1:]
    torch.manual_seed(2)
    return model, torch.randn(batch, 3, *size)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_stream_keeps_the_reductions_of_the_full_attention(name):
    model, x = _model_and_input(name)
    full = capture(model, x)
    s = stream(model, x)
    a, lay = full.attentions, full.layout
    assert s.layout == lay
    torch.testing.assert_close(s.rows, ro.map_row(a, lay), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(s.fused, a.mean(2), atol=1e-6, rtol=1e-5)
    d, e, z = range_stats(a, lay, patch_distances(lay.grid, s.patch_size))
    torch.testing.assert_close(s.distance, d, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(s.entropy, e, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(s.distance_z, z, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s.logits, full.logits)
    for layer in range(len(model.blocks)):  # rope (EVA), relative bias (BEiT), registers
        torch.testing.assert_close(layer_attention(model, layer, s.calls[layer]),
                                   a[:, layer], atol=1e-6, rtol=1e-5)


def test_hooks_and_flags_are_restored_after_a_stream_and_after_a_cancel():
    model, x = _model_and_input("vit_small_patch16_224", batch=1)
    model.blocks[0].attn.fused_attn = True
    before = [b.attn.fused_attn for b in model.blocks]
    stream(model, x)
    calls = []
    with pytest.raises(Cancelled):
        stream(model, x, should_stop=lambda: calls.append(1) or len(calls) >= 2)
    assert len(calls) == 2
    for b in model.blocks:
        assert not b.attn.attn_drop._forward_hooks
        assert not b.attn._forward_pre_hooks and not b.attn._forward_hooks
    assert [b.attn.fused_attn for b in model.blocks] == before


def test_analysis_recomputes_layers_and_max_min_fusion(tiny_loaded, images_dir):
    a = analyze(tiny_loaded, images_dir / "horse.png")
    full = capture(tiny_loaded.model, a.model_input()).attentions[0]
    for fusion in ("max", "min"):
        torch.testing.assert_close(a.fused_attention(fusion), ro.fuse_heads(full, fusion),
                                   atol=1e-6, rtol=1e-5)
        fused, heads = ro.rollout_maps(ro.fuse_heads(full, fusion), a.layout, 0.2,
                                       ro.map_row(full, a.layout))
        torch.testing.assert_close(a.head_rollout_maps(fusion, 0.2), heads, atol=1e-6,
                                   rtol=1e-5)
        torch.testing.assert_close(a.rollout_maps(fusion, 0.2), fused, atol=1e-6, rtol=1e-5)
    for layer in (0, 2, 1):
        assert not a.has_layer(layer)
        torch.testing.assert_close(a.layer(layer), full[layer], atol=1e-6, rtol=1e-5)
        assert a.has_layer(layer)
    assert [a.has_layer(i) for i in range(3)] == [False, True, True], "two layers kept"


def test_batched_stream_gives_each_image_its_own_analysis(tiny_loaded, images_dir):
    from vitexplorer.core.analysis import Analysis, preprocess_image

    pres = [preprocess_image(tiny_loaded, images_dir / n) for n in ("horse.png", "coins.png")]
    s = stream(tiny_loaded.model, torch.stack([torch.from_numpy(p.pixels) for p in pres]))
    for i, (pre, name) in enumerate(zip(pres, ("horse.png", "coins.png"), strict=True)):
        batched = Analysis.from_stream(s, i, tiny_loaded, pre, "crop", name)
        single = analyze(tiny_loaded, images_dir / name)
        torch.testing.assert_close(batched.head_maps(), single.head_maps(), atol=1e-5,
                                   rtol=1e-4)
        torch.testing.assert_close(batched.layer(1), single.layer(1), atol=1e-5, rtol=1e-4)


def test_without_ranges_the_maps_are_the_same_and_scoring_says_why(tiny_loaded, images_dir):
    from vitexplorer.core.analysis import Analysis, preprocess_image

    pre = preprocess_image(tiny_loaded, images_dir / "horse.png")
    x = torch.from_numpy(pre.pixels)[None]
    full, bare = stream(tiny_loaded.model, x), stream(tiny_loaded.model, x, ranges=False)
    assert bare.distance is None and bare.entropy is None and bare.distance_z is None
    torch.testing.assert_close(bare.rows, full.rows)
    torch.testing.assert_close(bare.fused, full.fused)
    a = Analysis.from_stream(bare, 0, tiny_loaded, pre, "crop", "horse")
    with pytest.raises(ValueError, match="without the head statistics"):
        a.head_table()


def test_without_inputs_nothing_is_recomputed_and_the_gui_path_never_computes(
        tiny_loaded, images_dir):
    from vitexplorer.core.analysis import Analysis, preprocess_image

    pre = preprocess_image(tiny_loaded, images_dir / "coins.png")
    s = stream(tiny_loaded.model, torch.from_numpy(pre.pixels)[None], keep_inputs=False)
    assert s.calls is None
    bare = Analysis.from_stream(s, 0, tiny_loaded, pre, "crop", "coins")
    assert bare.map("rollout").shape == (4, 4)
    with pytest.raises(ValueError, match="kept no block inputs"):
        bare.layer(0)
    with pytest.raises(ValueError, match="kept no block inputs"):
        bare.map("rollout", fusion="max")
    a = analyze(tiny_loaded, images_dir / "coins.png")
    assert a.patch_query(2, 0, 1, 1, compute=False) is None and not a.has_layer(2)
    row, col = a.patch_query(2, 0, 1, 1)
    got = a.patch_query(2, 0, 1, 1, compute=False)
    np.testing.assert_array_equal(got[0], row)
    np.testing.assert_array_equal(got[1], col)


def test_class_products_refuse_inference_mode(tiny_loaded):
    from vitexplorer.core.stream import class_products

    with torch.inference_mode(), pytest.raises(RuntimeError, match="outside inference_mode"):
        class_products(tiny_loaded.model, torch.randn(1, 3, 64, 64), [0])


@pytest.mark.parametrize("record", ["stream", "capture"])
def test_another_threads_plain_forward_is_neither_recorded_nor_broken(record):
    """While one thread records (the chunked path of stream, the hook path of capture), a
    plain forward of the same model in another thread (an evaluation's perturbed images)
    runs untouched and leaves the recording as it would be alone. Fails when the hooks act
    on every thread's forward: the other forward raises (chunked) or its attention
    overwrites the recorded one (hooks)."""
    import threading

    model, x = _model_and_input("vit_small_patch16_224", batch=1)
    other = torch.randn_like(x) * 3
    with torch.inference_mode():
        expected = model(other)
    run = stream if record == "stream" else capture
    alone = run(model, x)
    got: dict = {}

    def plain() -> None:
        try:
            with torch.inference_mode():
                got["logits"] = model(other)
        except Exception as exc:  # reported by the assertion below
            got["error"] = exc

    def midway() -> bool:  # polled after each block: run the other forward once, there
        if not got:
            got["started"] = True
            t = threading.Thread(target=plain)
            t.start()
            t.join()
        return False

    mixed = run(model, x, should_stop=midway)
    assert "error" not in got, got.get("error")
    torch.testing.assert_close(got["logits"], expected, atol=1e-5, rtol=1e-5)
    if record == "stream":
        torch.testing.assert_close(mixed.rows, alone.rows)
        torch.testing.assert_close(mixed.fused, alone.fused)
        torch.testing.assert_close(mixed.distance, alone.distance)
    else:
        torch.testing.assert_close(mixed.attentions, alone.attentions)


def test_class_methods_on_a_headless_model_are_a_usage_error():
    """DINOv2 / EVA-02 backbones have no classifier (num_classes 0): grad-rollout,
    relevance and head importance have no class to explain. It was a ValueError, shown by
    the CLI as a traceback."""
    from vitexplorer.core.errors import UsageError
    from vitexplorer.core.importance import head_importance
    from vitexplorer.core.models import load_model

    loaded = load_model("vit_tiny_patch16_224", "random", img_size=32, depth=1, num_classes=0)
    a = analyze(loaded, np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(UsageError, match=r"grad-rollout and relevance .* no classifier head"):
        a.ensure_gradients()
    with pytest.raises(UsageError, match=r"head importance .* no classifier head"):
        head_importance(loaded.model, a.model_input())
