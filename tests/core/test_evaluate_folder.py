"""The evaluate folder runner: outputs, VOC palette masks, errors, resume."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TEST_IMAGES
from vitexplorer.core.evaluate import load_label_mask
from vitexplorer.core.evaluate_folder import EvaluateOptions, run_evaluate, summary_rows
from vitexplorer.core.run_folder import BatchError, RunLock


def folder(root: Path) -> tuple[Path, Path]:
    images, masks = root / "img", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for name in ("chelsea", "horse"):
        rgb = Image.open(TEST_IMAGES / f"{name}.png").convert("RGB").resize((80, 60))
        rgb.save(images / f"{name}.jpg")
    Image.open(TEST_IMAGES / "coins.png").convert("RGB").resize((50, 40)).save(
        images / "nomask.png")
    (images / "broken.jpg").write_bytes(b"not an image")
    # VOC style: palette indices, 0 background, 255 void boundary, 1..20 classes
    idx = np.zeros((60, 80), np.uint8)
    idx[10:50, 20:60] = 8
    idx[9, 20:60] = 255
    pal = Image.fromarray(idx, "P")
    pal.putpalette([0, 0, 0, 128, 0, 0] * 128)
    pal.save(masks / "chelsea.png")
    binary = np.zeros((60, 80), np.uint8)
    binary[:, 40:] = 255
    Image.fromarray(binary, "L").save(masks / "horse.png")
    return images, masks


def test_palette_mask_classes_and_void(tmp_path):
    _, masks = folder(tmp_path)
    fg, void = load_label_mask(masks / "chelsea.png", (60, 80))
    assert fg.sum() == 40 * 40 and void.sum() == 40
    fg, void = load_label_mask(masks / "horse.png", (60, 80))
    assert fg.sum() == 60 * 40 and not void.any()


def test_label_mask_is_turned_by_its_exif_and_bounded_before_decoding(tmp_path, monkeypatch):
    from vitexplorer.core.errors import ImageError

    idx = np.zeros((60, 80), np.uint8)
    idx[:20, :40] = 8  # the object in the top-left corner, upright
    pal = Image.fromarray(idx, "P").transpose(Image.Transpose.ROTATE_90)  # stored sideways
    pal.putpalette([0, 0, 0, 128, 0, 0] * 128)
    exif = Image.Exif()
    exif[0x0112] = 6  # a viewer turns it 90 degrees clockwise
    pal.save(tmp_path / "m.png", exif=exif.tobytes())
    fg, _ = load_label_mask(tmp_path / "m.png", (60, 80))
    assert fg[:20, :40].all() and fg.sum() == 20 * 40
    for bound in (3000, 1000):  # over the bomb bound (Pillow warns), over twice (it raises)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", bound)
        with pytest.raises(ImageError, match="too large"):
            load_label_mask(tmp_path / "m.png", (60, 80))


def test_evaluate_folder_outputs_errors_and_resume(tmp_path, tiny_loaded):
    images, masks = folder(tmp_path)
    out = tmp_path / "out"
    opts = EvaluateOptions(model="vit_tiny_patch16_224", weights="random",
                           masks=str(masks), steps=4, layers=(1, 2))
    result = run_evaluate([images], out, tiny_loaded, opts)
    assert result.done == 2
    failed = {Path(p).name for p, _ in result.failed}
    assert failed == {"broken.jpg", "nomask.png"}
    errors = list(csv.DictReader((out / "errors.csv").open()))
    assert {Path(r["file"]).name for r in errors} == failed
    record = json.loads((out / "img" / "chelsea.jpg.json").read_text())
    assert set(record["jaccard"]) == {"rollout", "grad-rollout", "relevance", "random"}
    assert set(record["head_jaccard"]) == {"1", "2"}
    assert len(record["head_jaccard"]["2"]) == tiny_loaded.model.blocks[0].attn.num_heads
    assert all(0 <= v <= 1 for v in record["jaccard"].values())
    assert set(record["curves"]["random"]) >= {"deletion", "insertion", "deletion_auc"}
    for name in ("per_image.csv", "per_head.csv", "summary.csv", "summary.md",
                 "curves.png", "run.json"):
        assert (out / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["weights_sha256"] == tiny_loaded.weights_sha256()
    assert run["options"]["masks"] == str(masks)
    assert run["input_size"] == [64, 64] and run["patch_size"] == [16, 16]
    # resume skips the finished images; other options are refused
    again = run_evaluate([images], out, tiny_loaded, opts, resume=True)
    assert again.skipped == 2 and again.done == 0
    with pytest.raises(BatchError, match="other options"):
        run_evaluate([images], out, tiny_loaded,
                     EvaluateOptions(masks=str(masks), steps=5), resume=True)
    with pytest.raises(BatchError, match="already holds"):
        run_evaluate([images], out, tiny_loaded, opts)


def two_images(root: Path) -> Path:
    """``broken.jpg`` (sorted first, so it fails first) and one good image."""
    root.mkdir()
    (root / "broken.jpg").write_bytes(b"not an image")
    Image.open(TEST_IMAGES / "chelsea.png").convert("RGB").resize((80, 60)).save(
        root / "chelsea.jpg")
    return root


def test_errors_csv_survives_a_crash_midway(tmp_path, tiny_loaded):
    """A failure is in errors.csv as soon as it happens, not only when the run ends."""
    images = two_images(tmp_path / "img")
    out = tmp_path / "out"
    opts = EvaluateOptions(model="vit_tiny_patch16_224", weights="random",
                           methods=("rollout",), faithfulness=False)

    def crash(done, total, failed):  # the process dies right after the first failure
        if failed:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        run_evaluate([images], out, tiny_loaded, opts, progress=crash)
    rows = list(csv.reader((out / "errors.csv").open()))
    assert rows[0] == ["file", "reason"]
    assert [Path(r[0]).name for r in rows[1:]] == ["broken.jpg"]
    # the crash released the folder: a resumed run goes on and keeps the error list
    again = run_evaluate([images], out, tiny_loaded, opts, resume=True)
    assert again.done == 1
    rows = list(csv.reader((out / "errors.csv").open()))
    assert [Path(r[0]).name for r in rows[1:]] == ["broken.jpg"]


def test_one_evaluate_run_per_folder(tmp_path, tiny_loaded):
    images = two_images(tmp_path / "img")
    out = tmp_path / "out"
    out.mkdir()
    opts = EvaluateOptions(model="vit_tiny_patch16_224", weights="random",
                           methods=("rollout",), faithfulness=False)
    lock = RunLock(out, "evaluate")  # another run holds the folder
    try:
        with pytest.raises(BatchError, match=rf"'{re.escape(str(out))}' is in use by another run "
                                             rf"\(evaluate: pid \d+"):
            run_evaluate([images], out, tiny_loaded, opts)
    finally:
        lock.release()
    assert not (out / "run.json").exists(), "the refused run wrote into the folder"
    assert run_evaluate([images], out, tiny_loaded, opts).done == 1


def test_evaluate_never_writes_among_its_inputs(tmp_path, tiny_loaded):
    """As batch: an output folder that is or holds an input folder is refused (its results
    would be mixed with the inputs and read back by a resumed run)."""
    images = two_images(tmp_path / "img")
    opts = EvaluateOptions(model="vit_tiny_patch16_224", weights="random",
                           methods=("rollout",), faithfulness=False)
    for out in (images, tmp_path):
        with pytest.raises(BatchError, match="never written among the inputs"):
            run_evaluate([images], out, tiny_loaded, opts)
    assert sorted(p.name for p in images.iterdir()) == ["broken.jpg", "chelsea.jpg"]


def test_summary_best_head_rows():
    """Best head per image = mean of per-image maxima; best single head = the argmax of
    per-head means (here different heads win on different images)."""
    recs = [{"source": "a", "jaccard": {"rollout": 0.2}, "head_jaccard": {"3": [0.9, 0.1]}},
            {"source": "b", "jaccard": {"rollout": 0.4}, "head_jaccard": {"3": [0.2, 0.5]}}]
    rows = {r["method"]: r for r in summary_rows(recs)}
    assert rows["rollout"]["jaccard"] == pytest.approx(0.3)
    assert rows["best head per image"]["jaccard"] == pytest.approx(0.7)
    assert rows["best single head 3.0"]["jaccard"] == pytest.approx(0.55)


def test_a_bad_mask_is_named_in_the_errors_not_its_image(tmp_path, tiny_loaded):
    """The reason of a failure caused by the mask names the mask file: 'not an image file'
    beside a good photo read as if the photo were broken (batch and evaluate)."""
    from vitexplorer.core.batch import BatchOptions, run_batch

    images, masks = folder(tmp_path)
    (masks / "chelsea.png").write_bytes(b"not a png")
    Image.new("L", (30, 20)).save(masks / "horse.png")
    opts = EvaluateOptions(model="vit_tiny_patch16_224", weights="random", masks=str(masks),
                           faithfulness=False)
    got = dict(run_evaluate([images], tmp_path / "ev", tiny_loaded, opts).failed)
    bopts = BatchOptions(model="vit_tiny_patch16_224", weights="random", masks=str(masks))
    got_b = dict(run_batch([images], tmp_path / "b", tiny_loaded, bopts).failed)
    for failed in (got, got_b):
        assert failed[str(images / "chelsea.jpg")].startswith(f"'{masks / 'chelsea.png'}': ")
        assert failed[str(images / "horse.jpg")] == (f"'{masks / 'horse.png'}': mask is 30x20 "
                                                      "but the image is 80x60")
        assert "'" not in failed[str(images / "broken.jpg")]  # the image itself: as before


def test_a_stop_asked_within_an_image_ends_the_run_there(tmp_path, tiny_loaded):
    """Cancel is asked within an image's forwards (one image's faithfulness curves run
    minutes at a large input size), not only between images; the image stopped midway is
    neither written nor counted as failed, and a resumed run does it."""
    images = two_images(tmp_path / "img")
    out = tmp_path / "out"
    opts = EvaluateOptions(model="vit_tiny_patch16_224", weights="random",
                           methods=("rollout",), steps=6, batch_size=4)
    asked = []

    def stop_midway() -> bool:  # the stream asks once per block, then each curve batch
        asked.append(1)
        return len(asked) > len(tiny_loaded.model.blocks) + 2

    result = run_evaluate([images], out, tiny_loaded, opts, should_stop=stop_midway)
    assert result.interrupted and result.done == 0
    assert len(asked) == len(tiny_loaded.model.blocks) + 3  # stopped in the curves' forwards
    assert sorted(p.name for p in out.rglob("*.json")) == ["run.json"]
    errors = list(csv.reader((out / "errors.csv").open()))[1:]
    assert [Path(r[0]).name for r in errors] == ["broken.jpg"]  # not chelsea: not failed
    again = run_evaluate([images], out, tiny_loaded, opts, resume=True)
    assert again.done == 1
    assert sorted(p.name for p in out.rglob("*.json")) == ["chelsea.jpg.json", "run.json"]


def _object(shape=(60, 80)) -> np.ndarray:
    obj = np.zeros(shape, bool)
    obj[10:40, 20:50] = True
    return obj


@pytest.mark.parametrize("kind", ["16-bit dark background", "float 0..1", "transparent"])
def test_binary_masks_read_alike_for_head_tables_and_evaluate(tmp_path, kind):
    """16-bit was clipped by evaluate's convert("L") (a background at 3% of 65535 became
    object) and float 0..1 read as empty, while the head tables scaled both; a transparent
    background counted as object in the head tables (composited on white)."""
    from vitexplorer.core.masks import load_mask

    obj = _object()
    if kind == "16-bit dark background":
        im = Image.fromarray(np.where(obj, 65535, 2000).astype(np.uint16))
    elif kind == "float 0..1":
        im = Image.fromarray(obj.astype(np.float32), "F")
    else:
        rgba = np.zeros((60, 80, 4), np.uint8)
        rgba[obj] = 255
        im = Image.fromarray(rgba, "RGBA")
    path = tmp_path / ("m.tif" if kind == "float 0..1" else "m.png")
    im.save(path)
    fg, void = load_label_mask(path, (60, 80))
    assert (fg == obj).all() and not void.any()
    assert (load_mask(path, (60, 80)) == obj).all()


@pytest.mark.parametrize("kind", ["black", "palette background only"])
def test_a_mask_marking_no_object_is_named(tmp_path, kind):
    from vitexplorer.core.errors import ImageError
    from vitexplorer.core.masks import load_mask

    if kind == "black":
        Image.fromarray(np.zeros((60, 80), np.uint8)).save(tmp_path / "m.png")
    else:
        idx = np.zeros((60, 80), np.uint8)
        idx[5] = 255  # void only
        pal = Image.fromarray(idx, "P")
        pal.putpalette([0, 0, 0, 128, 0, 0] * 128)
        pal.save(tmp_path / "m.png")
    with pytest.raises(ImageError, match=r"m\.png.*marks no object"):
        load_label_mask(tmp_path / "m.png", (60, 80))
    if kind == "black":
        with pytest.raises(ImageError, match=r"m\.png.*marks no object"):
            load_mask(tmp_path / "m.png", (60, 80))
