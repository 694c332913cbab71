"""Adversarial cases of the commands, grouped by class of failure (issue 14).

Each case was seen to fail before its guard: an input overwritten, an index wrapped into
another layer, a traceback instead of one line, a device replaced by a file.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import special_file
from vitexplorer.cli import main

TINY = ["--model", "vit_tiny_patch16_224", "--weights", "random"]


@pytest.fixture
def victim(tmp_path, images_dir) -> Path:
    p = tmp_path / "victim.png"
    shutil.copy(images_dir / "coins.png", p)
    return p


def _one_line(err: str) -> str:
    """The message, checked to be short and free of a traceback."""
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, "no message"
    return lines[-1]


# ------------------------------------------------------------ data loss and corruption
@pytest.mark.parametrize("spelling", ["same", "relative-absolute", "dotted", "hardlink"])
def test_an_output_is_never_an_input(victim, monkeypatch, capsys, spelling):
    before = victim.read_bytes()
    monkeypatch.chdir(victim.parent)
    image, out = {
        "same": (str(victim), str(victim)),
        "relative-absolute": ("victim.png", str(victim)),
        "dotted": ("./victim.png", f"../{victim.parent.name}/victim.png"),
        "hardlink": (str(victim), "link.png"),
    }[spelling]
    if spelling == "hardlink":
        os.link(victim, out)
    assert main(["export", image, "-o", out, "--force", *TINY]) != 0
    assert "is the input" in _one_line(capsys.readouterr().err)
    assert victim.read_bytes() == before


def test_heads_outputs_never_replace_the_image_or_mask(victim, capsys):
    before = victim.read_bytes()
    assert main(["heads", str(victim), "--json", str(victim), "--force", *TINY]) != 0
    assert "is the input" in _one_line(capsys.readouterr().err)
    mask = victim.with_name("victim_mask.png")
    Image.new("L", (8, 8), 255).save(mask)
    mask_bytes = mask.read_bytes()
    assert main(["heads", str(victim), "--csv", str(mask), "--force", *TINY]) != 0
    assert victim.read_bytes() == before and mask.read_bytes() == mask_bytes
    out = victim.with_name("t.json")
    assert main(["heads", str(victim), "--json", str(out), "--csv", str(out), *TINY]) == 2
    assert not out.exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_only_regular_files_are_written(tmp_path, victim, capsys, kind):
    node = tmp_path / "node.png"
    special_file(node, kind)
    assert main(["export", str(victim), "-o", str(node), "--force", *TINY]) != 0
    assert "not a regular file" in _one_line(capsys.readouterr().err)
    mode = node.lstat().st_mode
    assert (stat.S_ISFIFO if kind == "fifo" else stat.S_ISCHR)(mode), "the node was replaced"


def test_output_name_and_format_checked_before_any_work(tmp_path, victim, capsys):
    out = tmp_path / "x.png"
    assert main(["export", str(victim), "-o", str(out), "--format", "pdf", *TINY]) == 2
    assert "x.pdf" in _one_line(capsys.readouterr().err) and not out.exists()
    js = tmp_path / "h.json"
    assert main(["heads", str(victim), "--json", str(js), "--figure",
                 str(tmp_path / "h.jpg"), *TINY]) == 2
    assert "h.jpg" in _one_line(capsys.readouterr().err)
    assert not js.exists(), "the JSON was written before the figure name was refused"
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert main(["export", str(victim), "-o", str(folder / "x.png"), *TINY]) == 0
    assert main(["export", str(victim), "-o", str(folder), "--format", "png",
                 "--force", *TINY]) != 0
    assert "a_folder" in _one_line(capsys.readouterr().err) and folder.is_dir()


@pytest.mark.parametrize("option", [["--layer", "99"], ["--layer", "-13"], ["--head", "3"],
                                    ["--head", "-4"]])
def test_out_of_range_indices_are_refused_not_wrapped(tmp_path, victim, capsys, option):
    out = tmp_path / "o.png"
    assert main(["export", str(victim), "-o", str(out), *TINY, *option]) == 2
    msg = _one_line(capsys.readouterr().err)
    assert option[0] in msg and "out of range" in msg
    assert not out.exists()


def test_batch_validates_indices_before_any_work(tmp_path, victim, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(victim), "-o", str(out), *TINY, "--layers", "99"]) == 2
    msg = _one_line(capsys.readouterr().err)
    assert "--layers" in msg and "99" in msg
    assert not (out / "run.json").exists()
    assert main(["batch", str(victim), "-o", str(out), *TINY, "--heads", "0,99"]) == 2
    msg = _one_line(capsys.readouterr().err)
    assert "--heads" in msg and "99" in msg
    # negative indices are written as the layer and head they mean
    assert main(["batch", str(victim), "-o", str(out), *TINY, "-q", "--method", "head",
                 "--layers", "-1", "--heads", "-3"]) == 0
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("victim"))
    assert names == ["victim.png.json", "victim.png__head_L11_H0.png"]


# ---------------------------------------------- tracebacks -> one line (exit 2 for usage)
@pytest.mark.parametrize("option", [["--discard", "5"], ["--discard", "1.0"],
                                    ["--discard", "-0.5"], ["--opacity", "5"],
                                    ["--device", "foo"], ["--discard", "nan"]])
def test_bad_option_values_are_usage_errors(tmp_path, victim, capsys, option):
    out = tmp_path / "o.png"
    with pytest.raises(SystemExit) as stop:
        main(["export", str(victim), "-o", str(out), *TINY, "--method", "rollout", *option])
    assert stop.value.code == 2
    assert option[0] in _one_line(capsys.readouterr().err) and not out.exists()


@pytest.mark.parametrize("option", [["--method", "relevance", "--class", "5000"],
                                    ["--method", "grad-rollout", "--class", "-1"]])
def test_class_out_of_range_is_a_usage_error(tmp_path, victim, capsys, option):
    assert main(["export", str(victim), "-o", str(tmp_path / "o.png"), *TINY, *option]) == 2
    assert "--class" in _one_line(capsys.readouterr().err)


def test_native_resize_builds_a_dynamic_model(tmp_path, victim, capsys):
    out = tmp_path / "o.png"
    assert main(["export", str(victim), "-o", str(out), *TINY, "--resize", "native"]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    res = tmp_path / "res"
    assert main(["batch", str(victim), "-o", str(res), *TINY, "-q", "--resize",
                 "native"]) == 0
    assert (res / "victim.png.json").exists()


def test_missing_or_wrong_inputs_are_named(tmp_path, victim, capsys):
    assert main(["batch", str(victim), "-o", str(tmp_path / "r"), *TINY,
                 "--masks", str(tmp_path / "nope")]) == 2
    assert "--masks" in _one_line(capsys.readouterr().err)
    assert main(["heads", str(victim), "--mask", str(tmp_path / "nope.png"), *TINY]) == 2
    assert "--mask" in _one_line(capsys.readouterr().err)
    assert main(["export", str(victim), "-o", str(tmp_path / "o.png"), "--weights",
                 str(tmp_path), "--model", "vit_tiny_patch16_224"]) == 1
    assert "is a folder" in _one_line(capsys.readouterr().err)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert main(["export", str(fifo), "-o", str(tmp_path / "p.png"), *TINY]) == 1
    assert "not a regular file (a FIFO)" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_a_broken_symlink_input_is_named(tmp_path, capsys, kind):
    link = tmp_path / "a.png"
    if kind == "loop":  # resolve() raised RuntimeError on it before Python 3.13
        os.symlink(tmp_path / "b.png", link)
        os.symlink(link, tmp_path / "b.png")
    else:
        os.symlink(tmp_path / "gone.png", link)
    assert main(["export", str(link), "-o", str(tmp_path / "o.png"), *TINY]) == 2
    msg = _one_line(capsys.readouterr().err)
    assert "a.png' is a broken symbolic link" in msg


def test_hf_hub_id_with_random_weights_offline(tmp_path, victim, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["export", str(victim), "-o", str(tmp_path / "o.png"), "--model",
                 "hf-hub:org/no-such-model", "--weights", "random"]) == 1
    assert "--weights random" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("error", [errno.EACCES, errno.ENOSPC])
@pytest.mark.parametrize("command", ["export", "heads", "batch"])
def test_unwritable_or_full_disk_is_one_line(tmp_path, victim, capsys, monkeypatch, error,
                                             command):
    from vitexplorer.core import files

    def refuse(*_a, **_k):
        raise OSError(error, os.strerror(error))

    out = tmp_path / "out"
    args = {"export": ["export", str(victim), "-o", str(out / "o.png")],
            "heads": ["heads", str(victim), "--json", str(out / "t.json")],
            "batch": ["batch", str(victim), "-o", str(out), "-q"]}[command]
    monkeypatch.setattr(files.os, "replace", refuse)
    assert main([*args, *TINY]) == 1
    assert os.strerror(error) in _one_line(capsys.readouterr().err)
