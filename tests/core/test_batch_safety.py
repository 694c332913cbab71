"""The batch runner never loses or mixes results, never reads its own outputs, never hangs
on a special file, and keeps its error list (issue 14), grouped by class of failure."""

from __future__ import annotations

import csv
import errno
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitexplorer.core import batch as batch_mod
from vitexplorer.core.batch import BatchOptions, run_batch
from vitexplorer.core.run_folder import BatchError, RunLock

OPTS = dict(model="vit_tiny_patch16_224", weights="random", batch_size=2, workers=1,
            outputs=("overlay", "json"))


@pytest.fixture(scope="module")
def tiny():
    from vitexplorer.core.models import load_model

    return load_model("vit_tiny_patch16_224", "random", img_size=64, depth=2)


def png(path: Path, seed: int = 0, size: tuple[int, int] = (40, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def sources(out: Path) -> dict[str, str]:
    """{result json (relative to out): source image} of every per-image result."""
    return {str(p.relative_to(out)): json.loads(p.read_text())["source"]
            for p in out.rglob("*.json") if p.name != "run.json"}


# ------------------------------------------------------------ data loss and corruption
def test_same_named_roots_get_unique_outputs(tmp_path, tiny):
    roots = [tmp_path / "x" / "imgs", tmp_path / "y" / "imgs", tmp_path / "z" / "imgs-2"]
    for i, r in enumerate(roots):
        png(r / "a.png", seed=i)
    out = tmp_path / "out"
    res = run_batch(roots, out, tiny, BatchOptions(**OPTS))
    assert res.done == 3 and not res.failed
    got = sources(out)
    assert len(got) == 3 and sorted(got.values()) == sorted(str(r / "a.png") for r in roots)


def test_parent_folder_input_stays_inside_the_output(tmp_path, tiny, monkeypatch):
    work = tmp_path / "imgs" / "work"
    work.mkdir(parents=True)
    png(tmp_path / "imgs" / "a.png")
    monkeypatch.chdir(work)
    res = run_batch([Path("..")], Path("out"), tiny, BatchOptions(**OPTS))
    assert res.done == 1
    assert sorted(p.name for p in work.iterdir()) == ["out"], "results written outside -o"
    assert list(sources(work / "out")) == ["imgs/a.png.json"]


def test_outputs_are_never_inputs(tmp_path, tiny):
    src = tmp_path / "in"
    png(src / "a.png")
    with pytest.raises(BatchError, match="never written among the inputs"):
        run_batch([src], src, tiny, BatchOptions(**OPTS))
    with pytest.raises(BatchError, match="holds the input"):
        run_batch([src], tmp_path, tiny, BatchOptions(**OPTS))
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]
    # an output folder inside an input folder is skipped by the walk, resume after resume
    out = src / "out"
    for resume in (False, True, True):
        res = run_batch([src], out, tiny, BatchOptions(**OPTS), resume=resume)
        assert res.done + res.skipped == 1 and not res.failed
    assert list(sources(out)) == ["in/a.png.json"]


def test_overwrite_replaces_a_different_run_whole(tmp_path, tiny):
    from vitexplorer.core.models import load_model

    src = tmp_path / "in"
    png(src / "a.png")
    png(src / "b.png", seed=1)
    out = tmp_path / "out"
    run_batch([src], out, tiny, BatchOptions(**OPTS))
    assert (out / "head_profile.csv").exists()
    (src / "b.png").unlink()
    other = load_model("vit_tiny_patch16_224", "random", img_size=64, depth=3)
    res = run_batch([src], out, other, BatchOptions(**{**OPTS, "scores": False}),
                    overwrite=True)
    assert res.done == 1
    assert list(sources(out)) == ["in/a.png.json"], "the other run's b.png result stayed"
    assert not (out / "in" / "b.png__rollout_L1.png").exists()
    assert not (out / "head_profile.csv").exists(), "stale head profile of the other run"
    assert json.loads((out / "run.json").read_text())["options"]["scores"] is False


def test_one_run_at_a_time(tmp_path, tiny):
    src = tmp_path / "in"
    png(src / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    lock = RunLock(out)
    try:
        with pytest.raises(BatchError, match=rf"in use by another run \(batch: pid {os.getpid()}"):
            run_batch([src], out, tiny, BatchOptions(**OPTS))
    finally:
        lock.release()
    assert not (out / "run.json").exists()
    assert run_batch([src], out, tiny, BatchOptions(**OPTS)).done == 1


def test_errors_csv_is_written_as_failures_happen(tmp_path, tiny, monkeypatch):
    src = tmp_path / "in"
    (src).mkdir()
    (src / "bad.png").write_text("not an image")
    png(src / "good.png")
    out = tmp_path / "out"
    real = batch_mod.summarize

    def disk_full(o):  # the disk fills up after the images, at the folder summary
        rows = list(csv.reader((o / "errors.csv").open()))
        assert rows[1][0].endswith("bad.png"), "errors.csv must hold the failure by now"
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(batch_mod, "summarize", disk_full)
    with pytest.raises(OSError):
        run_batch([src], out, tiny, BatchOptions(**OPTS))
    monkeypatch.setattr(batch_mod, "summarize", real)
    rows = list(csv.reader((out / "errors.csv").open()))
    assert rows[0] == ["file", "reason"] and rows[1][0].endswith("bad.png")


# -------------------------------------------------------------------------- hangs
def test_fifo_and_unreadable_folder_are_reported_not_read(tmp_path, tiny, monkeypatch):
    src = tmp_path / "in"
    png(src / "a.png")
    os.mkfifo(src / "pipe.png")
    png(src / "locked" / "b.png")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(
        res=run_batch([src, src / "pipe.png"], tmp_path / "out", tiny, BatchOptions(**OPTS))),
        daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the run hangs on a FIFO"
    res = box["res"]
    reasons = {Path(f).name: r for f, r in res.failed}
    assert res.done == 1
    assert "FIFO" in reasons["pipe.png"] and "locked" in reasons
    assert "Permission denied" in reasons["locked"]
    text = (tmp_path / "out" / "errors.csv").read_text()
    assert "pipe.png" in text and "locked" in text
