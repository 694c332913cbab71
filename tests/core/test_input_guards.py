"""Hostile inputs to the loaders get a message that says what is wrong (issue 14):
renamed weights, NaN weights, special files, extreme strips, AVIF in a folder."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image, features

from tests.conftest import special_file
from vitexplorer.core.analysis import analyze
from vitexplorer.core.batch import BatchOptions, run_batch
from vitexplorer.core.errors import ImageError, ModelError
from vitexplorer.core.images import MAX_ASPECT, load_image
from vitexplorer.core.models import load_model, read_state_dict

KW = dict(img_size=32, depth=1)


# ------------------------------------------------------------- messages that mislead
def test_safetensors_named_pth_is_read_by_content(tmp_path):
    from safetensors.torch import save_file

    state = {"w": torch.arange(6.0).reshape(2, 3)}
    path = tmp_path / "renamed.pth"
    save_file(state, str(path))
    assert torch.equal(read_state_dict(path)["w"], state["w"])


def test_weights_folder_is_called_a_folder(tmp_path):
    with pytest.raises(ModelError, match="is a folder"):
        read_state_dict(tmp_path)


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "unreadable"])
def test_unreadable_weights_say_why(tmp_path, kind):
    """torch said 'EOFError', '101' and '[Errno 22] Invalid argument' for the first three,
    safetensors 'No such file or directory' for a file it may not read."""
    import os

    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(64, 64)}, good)
    path = tmp_path / ("w.safetensors" if kind == "unreadable" else "w.pth")
    path.write_bytes({"empty": b"", "text": b"hello", "truncated": good.read_bytes()[:3000],
                      "unreadable": good.read_bytes()}[kind])
    want = {"empty": "the file is empty", "text": "not a PyTorch weights file",
            "truncated": "truncated or corrupt", "unreadable": "Permission denied"}[kind]
    if kind == "unreadable":
        path.chmod(0)
        if os.access(path, os.R_OK):
            pytest.skip("running as root: a mode 000 file stays readable")
    with pytest.raises(ModelError, match=f"'{path}': .*{want}"):
        read_state_dict(path)


def test_nan_weights_are_reported_not_drawn_blank(tmp_path):
    loaded = load_model("vit_tiny_patch16_224", "random", **KW)
    with torch.no_grad():
        loaded.model.blocks[0].attn.qkv.weight.fill_(float("nan"))
    try:
        with pytest.raises(ModelError, match="non-finite"):
            analyze(loaded, np.full((32, 32, 3), 128, np.uint8))
    finally:
        torch.manual_seed(0)
        torch.nn.init.normal_(loaded.model.blocks[0].attn.qkv.weight, std=0.02)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_special_files_are_named_as_such(tmp_path, kind):
    p = tmp_path / "x.png"
    special_file(p, kind)
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(err=_error_of(load_image, p)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "decoding a special file blocks"
    assert "not a regular file" in box["err"] and "empty" not in box["err"]


def _error_of(fn, *args) -> str:
    try:
        fn(*args)
    except ImageError as exc:
        return str(exc)
    return ""


# --------------------------------------------------------------------- bounded work
@pytest.mark.parametrize("size", [(1, 4000), (10000, 5), (1, 40000)])
def test_extreme_strips_get_a_clear_error(tmp_path, size):
    p = tmp_path / "strip.png"
    Image.new("RGB", size[::-1], (90, 120, 30)).save(p)
    with pytest.raises(ImageError, match="aspect ratio"):
        load_image(p)


def test_arrays_have_the_bounds_of_files(tiny_loaded, monkeypatch):
    """A pasted image or a notebook's array is refused like a file of its size, before the
    preprocessing would resize a 1 x 4000 strip to 224 x 896,000 pixels."""
    from vitexplorer.core.analysis import analyze

    with pytest.raises(ImageError, match=r"'clipboard'.*4000 x 1 pixels.*aspect ratio"):
        analyze(tiny_loaded, np.zeros((1, 4000, 3), np.uint8), source="clipboard")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(ImageError, match=r"'image'.*101 x 100 pixels: too large"):
        analyze(tiny_loaded, np.zeros((100, 101, 3), np.uint8))
    assert analyze(tiny_loaded, np.zeros((100, 100, 3), np.uint8)).image.shape == (100, 100, 3)


def test_wide_but_sane_images_pass(tmp_path):
    p = tmp_path / "pano.png"
    Image.new("RGB", (MAX_ASPECT * 10, 10)).save(p)
    assert load_image(p).shape == (10, MAX_ASPECT * 10, 3)


# ------------------------------------------------------------ silently skipped inputs
@pytest.mark.skipif(not features.check("avif"), reason="this Pillow decodes no AVIF")
def test_avif_in_a_folder_is_processed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(src / "a.avif")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
        src / "no_suffix", format="AVIF")
    loaded = load_model("vit_tiny_patch16_224", "random", **KW)
    res = run_batch([src], tmp_path / "out", loaded,
                    BatchOptions(model="vit_tiny_patch16_224", weights="random",
                                 outputs=("json",), workers=1))
    assert res.done == 2 and not res.failed


@pytest.mark.parametrize("brand", [b"heic", b"mif1"])
def test_a_heic_photo_is_named_and_reported_from_a_folder(tmp_path, brand):
    """A HEIC photo (Pillow has no decoder) was 'not an image file', and in a folder it
    was passed over unsaid: its name has no image suffix Pillow knows."""
    from vitexplorer.core.discovery import discover

    photo = tmp_path / "in" / "IMG_0001.HEIC"
    photo.parent.mkdir()
    photo.write_bytes(b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00mif1heic"
                      + bytes(200))
    with pytest.raises(ImageError, match=r"IMG_0001.HEIC': a HEIF/HEIC image, which Pillow "
                                         r"cannot decode"):
        load_image(photo)
    items, errors = discover([photo.parent], tmp_path / "out")
    assert [it.path for it in items] == [photo] and not errors
