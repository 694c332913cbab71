"""Batch outputs at a bounded size and in compact formats, results on the original geometry."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import TEST_IMAGES
from vitexplorer.core.batch import BatchOptions, run_batch
from vitexplorer.core.images import load_image, preprocess


@pytest.fixture(scope="module")
def tiny():
    from vitexplorer.core.models import load_model

    return load_model("vit_tiny_patch16_224", "random", img_size=64, depth=2)


def camera_folder(root, h=1209, w=1617):
    root.mkdir()
    img = Image.open(TEST_IMAGES / "horse.png").convert("RGB").resize((w, h), Image.BICUBIC)
    img.save(root / "photo.jpg", quality=90)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = 255
    Image.fromarray(mask).save(root / "photo_mask.png")
    return root / "photo.jpg"


@pytest.mark.parametrize("fmt,magic", [("jpg", b"\xff\xd8\xff"), ("webp", b"RIFF")])
def test_bounded_overlays_keep_the_original_geometry(tmp_path, tiny, fmt, magic):
    src = camera_folder(tmp_path / "in")
    opts = BatchOptions(model="vit_tiny_patch16_224", weights="random", format=fmt,
                        overlay_size=400, outputs=("overlay", "maps", "json"), batch_size=2)
    assert run_batch([tmp_path / "in"], tmp_path / "out", tiny, opts).ok
    out = tmp_path / "out" / "in"
    data = (out / f"photo.jpg__rollout_L1.{fmt}").read_bytes()
    assert data.startswith(magic)
    shown = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert shown.shape[:2] == (299, 400)  # long side bounded, aspect kept
    record = json.loads((out / "photo.jpg.json").read_text())
    full = preprocess(load_image(src), tiny.data_config, "crop", tiny.patch_size).geometry
    assert record["image_size"] == [1209, 1617]
    assert record["box"] == pytest.approx(list(full.box), abs=1e-9)
    assert record["mask"] == "mask file"  # the full-size mask fits the smaller copy
    maps = np.load(out / "photo.jpg.npz")
    assert list(maps["image_size"]) == [1209, 1617]
    assert maps["box"] == pytest.approx(list(full.box), abs=1e-9)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["options"]["overlay_size"] == 400


def test_full_size_overlays_on_request(tmp_path, tiny):
    camera_folder(tmp_path / "in", 500, 700)
    opts = BatchOptions(model="vit_tiny_patch16_224", weights="random", overlay_size=None,
                        scores=False)
    assert run_batch([tmp_path / "in"], tmp_path / "out", tiny, opts).ok
    shown = cv2.imread(str(tmp_path / "out" / "in" / "photo.jpg__rollout_L1.png"))
    assert shown.shape[:2] == (500, 700)
    assert BatchOptions().overlay_size == 1600
