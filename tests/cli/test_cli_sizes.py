"""``--input-size`` and the batch overlay size and format options, as a user types them."""

from __future__ import annotations

import json

import cv2
from PIL import Image

from vitexplorer.cli import main

TINY = ["--model", "vit_tiny_patch16_224", "--weights", "random", "-q"]


def test_batch_input_size_overlay_size_and_format(tmp_path, images_dir, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.open(images_dir / "coins.png").convert("RGB").save(src / "a.jpg", quality=90)
    h, w = cv2.imread(str(src / "a.jpg")).shape[:2]
    out = tmp_path / "out"
    args = ["batch", str(src), "-o", str(out), *TINY, "--input-size", "96",
            "--overlay-size", "200", "--format", "webp", "--no-scores"]
    assert main(args) == 0
    record = json.loads((out / "in" / "a.jpg.json").read_text())
    assert record["grid"] == [6, 6]  # 96 / 16: the token grid follows the input size
    assert record["image_size"] == [h, w]
    shown = cv2.imread(str(out / "in" / "a.jpg__rollout_L11.webp"))
    assert max(shown.shape[:2]) == 200
    options = json.loads((out / "run.json").read_text())["options"]
    assert options["overlay_size"] == 200 and options["input_size"] == 96
    assert main(["batch", str(src), "-o", str(tmp_path / "o2"), *TINY,
                 "--overlay-size", "huge"]) == 2
    assert "--overlay-size" in capsys.readouterr().err
    assert main(["batch", str(src), "-o", str(tmp_path / "o3"), *TINY,
                 "--input-size", "100"]) == 1
    assert "patches" in capsys.readouterr().err
