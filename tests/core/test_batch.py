"""The folder runner: a salted folder, resume after SIGKILL, shards, safety of outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, TEST_IMAGES
from vitexplorer.core.batch import (
    BatchOptions,
    _prefetch,
    batch_options,
    parse_indices,
    run_batch,
)
from vitexplorer.core.discovery import Item, discover
from vitexplorer.core.run_folder import BatchError, check_output, summarize

OPTS = dict(model="vit_tiny_patch16_224", weights="random", batch_size=3, workers=2,
            outputs=("overlay", "maps", "json"))


@pytest.fixture(scope="module")
def tiny():
    from vitexplorer.core.models import load_model

    return load_model("vit_tiny_patch16_224", "random", img_size=64, depth=3)


def salted_folder(root: Path) -> dict[str, str]:
    """Good and bad files; returns {name: "ok" | "error"} of what must happen to each."""
    root.mkdir()
    expect = {}
    rgb = np.asarray(Image.open(TEST_IMAGES / "chelsea.png").convert("RGB"))

    def good(name, save):
        save(root / name)
        expect[name] = "ok"

    def bad(name, make):
        make(root / name)
        expect[name] = "error"

    bad("empty.jpg", lambda p: p.write_bytes(b""))
    full = root / "full.jpg"
    Image.fromarray(rgb).save(full, quality=90)
    bad("truncated.jpg", lambda p: p.write_bytes(full.read_bytes()[:2000]))
    full.unlink()
    bad("text.jpg", lambda p: p.write_text("not an image at all"))
    good("cmyk.jpg", lambda p: Image.fromarray(rgb).convert("CMYK").save(p))
    good("sixteen.png", lambda p: cv2.imwrite(str(p), (rgb[:, :, ::-1].astype(np.uint16)
                                                       * 257)))
    pal = Image.fromarray(rgb).convert("P")
    good("palette.png", lambda p: pal.save(p, transparency=0))
    good("rgba.png", lambda p: Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128,
                                                                       np.uint8)])).save(p))
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6
    good("rotated.jpg", lambda p: im.save(p, exif=exif))
    good("one.png", lambda p: Image.new("RGB", (1, 1), (200, 10, 10)).save(p))
    bad("bomb.png", lambda p: Image.new("L", (1200, 1000)).save(p))  # limit lowered in test
    os.symlink("loop_b.jpg", root / "loop_a.jpg")
    os.symlink("loop_a.jpg", root / "loop_b.jpg")
    expect["loop_a.jpg"] = expect["loop_b.jpg"] = "error"
    good("chat été 猫 with spaces.png", lambda p: Image.fromarray(rgb).save(p))
    (root / "folder.jpg").mkdir()  # a directory named like an image
    good("folder.jpg/inside.png", lambda p: Image.fromarray(rgb[:50, :50]).save(p))
    (root / ".hidden.png").write_bytes((TEST_IMAGES / "horse.png").read_bytes())
    no_ext = root / "no_extension"
    no_ext.write_bytes((TEST_IMAGES / "horse.png").read_bytes())  # image by content
    expect["no_extension"] = "ok"
    (root / "notes.txt").write_text("skip me: not an image by content or name")
    return expect


def test_salted_folder(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    expect = salted_folder(tmp_path / "in")
    out = tmp_path / "out"
    res = run_batch([tmp_path / "in"], out, tiny, BatchOptions(**OPTS))
    failed = {Path(f).name: reason for f, reason in res.failed}
    for name, what in expect.items():
        done = (out / "in" / f"{name}.json").exists()
        if what == "ok":
            assert done, f"{name} should have results ({failed.get(Path(name).name)})"
        else:
            assert not done and Path(name).name in failed, name
    assert res.done == sum(v == "ok" for v in expect.values())
    assert "too large" in failed["bomb.png"] and "empty" in failed["empty.jpg"]
    assert "not an image" in failed["text.jpg"] and "truncated" in failed["truncated.jpg"]
    assert "link" in failed["loop_a.jpg"]
    rows = (out / "errors.csv").read_text().splitlines()
    assert rows[0] == "file,reason" and len(rows) == 1 + len(failed)
    rot = json.loads((out / "in" / "rotated.jpg.json").read_text())
    assert rot["image_size"] == [451, 300]  # EXIF applied: the overlay sits on the upright image
    ov = cv2.imread(str(out / "in" / "rotated.jpg__rollout_L2.png"))
    assert ov.shape[:2] == (451, 300)
    maps = np.load(out / "in" / "cmyk.jpg.npz")
    assert maps["head_maps"].dtype == np.float16 and tuple(maps["grid"]) == (4, 4)
    assert not list((tmp_path / "in").rglob("*.json")), "nothing written inside the input"
    assert not (out / "in" / ".hidden.png.json").exists()
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + res.done * 9
    run = json.loads((out / "run.json").read_text())
    assert run["weights_sha256"] and run["versions"]["torch"]
    # the size the model ran at, stated even when --input-size left it at its own
    assert run["options"]["input_size"] is None
    assert run["input_size"] == [64, 64] and run["patch_size"] == [16, 16]
    assert (out / "head_profile.png").read_bytes().startswith(b"\x89PNG")


def one_image_folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(TEST_IMAGES / "coins.png", src / "a.png")
    return src


def test_never_overwrites_and_resume_refuses_other_options(tmp_path, tiny):
    src = one_image_folder(tmp_path)
    out = tmp_path / "out"
    run_batch([src], out, tiny, BatchOptions(**OPTS))
    before = (out / "in" / "a.png.json").stat().st_mtime_ns
    with pytest.raises(BatchError, match="already holds a run"):
        run_batch([src], out, tiny, BatchOptions(**OPTS))
    with pytest.raises(BatchError, match="other options"):
        run_batch([src], out, tiny, BatchOptions(**{**OPTS, "cmap": "gray"}), resume=True)
    res = run_batch([src], out, tiny, BatchOptions(**OPTS), resume=True)
    assert res.skipped == 1 and res.done == 0
    assert (out / "in" / "a.png.json").stat().st_mtime_ns == before


def test_same_names_in_two_folders_do_not_collide(tmp_path, tiny):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(TEST_IMAGES / "coins.png", tmp_path / d / "x.png")
    (tmp_path / "b" / "x.jpg").write_bytes(b"")  # same stem, other suffix
    out = tmp_path / "out"
    res = run_batch([tmp_path / "a", tmp_path / "b"], out, tiny, BatchOptions(**OPTS))
    assert (out / "a" / "x.png.json").exists() and (out / "b" / "x.png.json").exists()
    assert res.done == 2 and len(res.failed) == 1


def test_output_inside_input_is_skipped(tmp_path, tiny):
    src = one_image_folder(tmp_path)
    out = src / "results"
    run_batch([src], out, tiny, BatchOptions(**OPTS))
    res = run_batch([src], out, tiny, BatchOptions(**OPTS), resume=True)
    items, _ = discover([src], out)
    assert [i.path.name for i in items] == ["a.png"]
    assert res.skipped == 1


def test_unwritable_output_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(BatchError, match="Cannot write"):
        check_output(blocker / "out")
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a normal user
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(BatchError, match="Cannot write"):
            check_output(ro)


def test_shards_partition_and_summarize_merges(tmp_path, tiny):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        shutil.copy(TEST_IMAGES / "coins.png", src / f"{i}.png")
    out = tmp_path / "out"
    done = 0
    for k in (1, 2, 3):
        res = run_batch([src], out / f"shard{k}", tiny, BatchOptions(**OPTS, shard=(k, 3)))
        done += res.done
    assert done == 6
    names = sorted(p.name for p in out.rglob("*.png.json"))
    assert names == sorted(f"{i}.png.json" for i in range(6))
    assert summarize(out) == 6
    assert "n_images" in (out / "head_profile.csv").read_text()
    assert ",6," in (out / "head_profile.csv").read_text().splitlines()[1]
    # a run of another model beside them (the same 3 x 3 heads) is not merged into them
    from vitexplorer.core.models import load_model

    other = load_model("deit_tiny_patch16_224", "random", img_size=64, depth=3)
    run_batch([src], out / "deit", other, BatchOptions(**{**OPTS, "model": other.spec}))
    before = (out / "head_profile.csv").read_bytes()
    with pytest.raises(BatchError, match=r"results of 2 models \(deit_tiny_patch16_224 .*; "
                                         r"vit_tiny_patch16_224 .*\); summarize the folder"):
        summarize(out)
    assert (out / "head_profile.csv").read_bytes() == before


def _cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "vitexplorer", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_kill_and_resume_gives_the_same_results(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    names = ("chelsea", "coins", "horse", "grass", "gravel", "brick")
    for i in range(12):
        shutil.copy(TEST_IMAGES / f"{names[i % 6]}.png", src / f"{i:02d}.png")
    common = ["--model", "vit_tiny_patch16_224", "--weights", "random", "--batch-size", "2",
              "--outputs", "overlay,maps,json", "-q"]
    ref = _cli(["batch", str(src), "-o", str(tmp_path / "ref"), *common])
    assert ref.wait(timeout=600) == 0, ref.stderr.read().decode()
    out = tmp_path / "out"
    proc = _cli(["batch", str(src), "-o", str(out), *common])
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.rglob("*.png.json"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.rglob("*.png.json")}
    assert 3 <= len(finished) < 12, "the kill must land mid-run"
    again = _cli(["batch", str(src), "-o", str(out), "--resume", *common])
    assert again.wait(timeout=600) == 0, again.stderr.read().decode()
    for p, t in finished.items():
        assert p.stat().st_mtime_ns == t, f"{p.name} was redone"
    assert not list(out.rglob("*.part"))
    # Identical labels and predictions; numbers equal up to float32 rounding (a resumed run
    # batches the remaining images differently, and BLAS sums in another order).
    refs = sorted((tmp_path / "ref").rglob("*.png.json"))
    assert len(refs) == 12
    for p in refs:
        q = out / p.relative_to(tmp_path / "ref")
        a, b = json.loads(p.read_text()), json.loads(q.read_text())
        assert [x["class"] for x in a["predictions"]] == [x["class"] for x in b["predictions"]]
        for ra, rb in zip(a["heads"], b["heads"], strict=True):
            for key, va in ra.items():
                if isinstance(va, float):
                    assert va == pytest.approx(rb[key], rel=1e-4, abs=1e-6), key
                else:
                    assert va == rb[key], key
        ma = np.load(str(p)[: -len(".json")] + ".npz")
        mb = np.load(str(q)[: -len(".json")] + ".npz")
        np.testing.assert_allclose(ma["head_maps"].astype(np.float32),
                                   mb["head_maps"].astype(np.float32), rtol=2e-3, atol=1e-6)


def test_gradient_methods_are_refused_before_any_work(tmp_path, tiny):
    src = one_image_folder(tmp_path)
    with pytest.raises(BatchError, match="gradient"):
        run_batch([src], tmp_path / "out", tiny, BatchOptions(**{**OPTS,
                                                                "methods": ("relevance",)}))
    assert not (tmp_path / "out").exists()


def test_parse_indices_reads_what_users_type():
    assert parse_indices(None, 4) is None and parse_indices("  ", 4) is None
    assert parse_indices("all", 4) == (0, 1, 2, 3)
    assert parse_indices(" 3, -1,0 ,-4", 4) == (3, 0)  # -1 is 3, -4 is 0: no repeats
    for bad in ("4", "-5", "a", "1,,2", "1.5"):
        with pytest.raises(ValueError, match="not an index from 0 to 3"):
            parse_indices(bad, 4)


def test_batch_options_is_built_from_the_model_and_the_text(tiny_loaded):
    opts = batch_options(tiny_loaded, ("head",), layers="-1", heads="all",
                         outputs=("overlay", "json", "maps"), format="svg")
    assert (opts.model, opts.weights, opts.device) == (tiny_loaded.spec, "random", "cpu")
    assert (opts.layers, opts.heads) == ((2,), (0, 1, 2))
    assert opts.outputs == ("overlay", "json", "maps") and opts.format == "svg"
    assert batch_options(tiny_loaded).outputs == ("overlay", "json")
    for bad in ({"methods": ("relevance",)}, {"outputs": ("movie",)}, {"heads": "3"}):
        with pytest.raises(ValueError):
            batch_options(tiny_loaded, **bad)


def test_box_in_original_pixels_and_mask_source_in_every_record(tmp_path, tiny):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(TEST_IMAGES / "coins.png", src / "x.png")  # 384 x 303
    out = tmp_path / "out"
    run_batch([src], out, tiny, BatchOptions(**{**OPTS, "box": (40, 30, 200, 160)}))
    rec = json.loads((out / "in" / "x.png.json").read_text())
    assert rec["mask_source"] == "box" and "mask_warning" in rec
    assert rec["mask"].endswith("(40, 30, 200, 160)")
    # scored on a half-size copy (192 px overlays): still named in the original's pixels
    run_batch([src], tmp_path / "half", tiny,
              BatchOptions(**{**OPTS, "box": (40, 30, 200, 160), "overlay_size": 192}))
    rec = json.loads((tmp_path / "half" / "in" / "x.png.json").read_text())
    assert rec["mask"].endswith("(40, 30, 200, 160)") and "(20, 15" not in rec["mask"]
    # a box off this image is named as given, on the image's own size, not the copy's
    res = run_batch([src], tmp_path / "off", tiny,
                    BatchOptions(**{**OPTS, "box": (500, 0, 600, 100), "overlay_size": 192}))
    assert res.failed == [(str(src / "x.png"),
                           "the box (500, 0, 600, 100) does not overlap the 384x303 image")]
    with pytest.raises(BatchError, match="mask folder"):
        run_batch([src], tmp_path / "o2", tiny, BatchOptions(**{**OPTS,
                                                                "masks": str(tmp_path / "no")}))


@pytest.mark.parametrize("in_step", [True, False])
def test_prefetch_in_step_decodes_nothing_while_the_consumer_works(in_step):
    """In step (a CPU forward), the next group is submitted only when the consumer asks for
    its first item, so no decode runs during the consumer's forward; free-running keeps
    ``ahead`` in flight. Every item comes back once, in order, either way."""
    import threading

    started: list[int] = []
    lock = threading.Lock()

    def fn(item):
        with lock:
            started.append(item.path)
        return item.path

    items = [Item(i, Path(str(i))) for i in range(7)]
    gen = _prefetch(items, fn, workers=2, ahead=3, in_step=in_step)
    got = [next(gen) for _ in range(3)]  # the consumer has a full batch of 3 ...
    assert [f.result() for _, f in got] == [0, 1, 2]
    # ... and runs its forward: what starts meanwhile? (free-running: two more, as soon as
    # a worker is free; in step: nothing, however long it waits)
    deadline = time.monotonic() + (0.3 if in_step else 20)
    while len(started) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(started) == (3 if in_step else 5)
    rest = [f.result() for _, f in gen]
    assert rest == [3, 4, 5, 6] and sorted(started) == list(range(7))


def test_decoders_and_writers_follow_the_cores_the_run_may_use(tmp_path, tiny, monkeypatch):
    # a 16-core share of a bigger machine: by default 16 decoders and 8 writers, stated in
    # run.json; an explicit --workers wins; SVG figures keep one writer (matplotlib)
    from vitexplorer.core import batch

    monkeypatch.setattr(batch.os, "sched_getaffinity", lambda pid: set(range(16)),
                        raising=False)
    used = []
    real = batch._prefetch
    monkeypatch.setattr(batch, "_prefetch",
                        lambda items, fn, workers, *a: used.append(workers) or
                        real(items, fn, workers, *a))
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(TEST_IMAGES / "coins.png", src / "x.png")
    run_batch([src], tmp_path / "out", tiny, BatchOptions(**{**OPTS, "workers": None}))
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["threads"] == {"decode": 16, "write": 8} and used == [16]
    assert batch.threads(BatchOptions(workers=3)) == (3, 2)
    assert batch.threads(BatchOptions(format="svg")) == (16, 1)
