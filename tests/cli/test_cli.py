"""The console commands, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vitexplorer import __version__
from vitexplorer.cli import main
from vitexplorer.core.analysis import analyze

REPO = Path(__file__).resolve().parents[2]
TINY = ["--model", "vit_tiny_patch16_224", "--weights", "random"]
MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_export_formats(tmp_path, images_dir, fmt, capsys):
    out = tmp_path / f"fig.{fmt}"
    rc = main(["export", str(images_dir / "chelsea.png"), "-o", str(out), *TINY,
               "--method", "head-rollout", "--layer", "3", "--head", "1"])
    assert rc == 0
    assert out.read_bytes().startswith(MAGIC[fmt])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_export_options_reach_the_figure(tmp_path, images_dir, tiny_loaded, monkeypatch):
    """Each option changes the picture it should change (decoded pixels compared): a grid of
    every layer is taller than one layer's, the class picks the gradient map, discard and
    fusion each change the rollout, and the default class is the top-1. (The 3-block model
    at 64 px of the core tests stands in for the loaded one: ten exports.)"""
    from PIL import Image

    monkeypatch.setattr("vitexplorer.core.models.load_model", lambda *a, **k: tiny_loaded)

    def export(*extra: str) -> np.ndarray:
        out = tmp_path / f"{'_'.join(extra) or 'default'}.png"
        assert main(["export", str(images_dir / "coins.png"), "-o", str(out), *TINY,
                     *extra]) == 0
        return np.asarray(Image.open(out).convert("RGB"))

    layer, every = export("--grid"), export("--grid", "all")
    assert every.shape[0] > 1.5 * layer.shape[0]
    rel3, rel4 = (export("--method", "relevance", "--class", c) for c in ("3", "4"))
    assert rel3.shape == rel4.shape and not np.array_equal(rel3, rel4)
    rollout = export("--method", "rollout")
    for extra in (("--discard", "0.5"), ("--fusion", "max")):
        assert not np.array_equal(rollout, export("--method", "rollout", *extra)), extra
    top1 = str(analyze(tiny_loaded, images_dir / "coins.png").top_k(1)[0][0])
    assert np.array_equal(export("--method", "grad-rollout"),
                          export("--method", "grad-rollout", "--class", top1))


def test_export_refuses_to_overwrite(tmp_path, images_dir, capsys):
    out = tmp_path / "x.png"
    out.write_bytes(b"keep me")
    assert main(["export", str(images_dir / "horse.png"), "-o", str(out), *TINY]) == 1
    assert out.read_bytes() == b"keep me"
    assert "--force" in capsys.readouterr().err


def test_export_bad_image_is_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_text("hello")
    assert main(["export", str(bad), "-o", str(tmp_path / "o.png"), *TINY]) == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "not an image" in err


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vitexplorer", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300, env={**os.environ, **(env or {})})


def test_version_and_models():
    res = _cli("--version")
    assert res.returncode == 0 and __version__ in res.stdout
    res = _cli("models", "dino")
    assert res.returncode == 0 and "vit_small_patch16_224.dino" in res.stdout


def test_offline_export_message_without_traceback(tmp_path, images_dir):
    res = _cli("export", str(images_dir / "horse.png"), "-o", str(tmp_path / "o.png"),
               env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "--weights random" in res.stderr


def test_offline_message_comes_before_torch_is_imported(tmp_path, images_dir):
    """Nothing cached and the hub switched off: the message is decided from the caches
    alone, so the start does not pay for importing torch and timm (6 of its 6.3 s)."""
    res = _cli("export", str(images_dir / "horse.png"), "-o", str(tmp_path / "o.png"),
               env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path),
                    "TORCH_HOME": str(tmp_path / "torch"), "PYTHONPROFILEIMPORTTIME": "1"})
    assert res.returncode == 1 and "--weights random" in res.stderr
    assert "HF_HUB_OFFLINE is set" in res.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines()
                if line.startswith("import time:")}
    assert "vitexplorer.core.hub" in imported
    assert not imported & {"torch", "timm"}, "imported before the message"


def test_heads_command_writes_table_and_figures(tmp_path, images_dir, capsys):
    import json
    import shutil

    img = tmp_path / "horse.png"
    shutil.copy(images_dir / "horse.png", img)
    from PIL import Image

    Image.open(img).convert("L").point(lambda v: 255 if v < 128 else 0).save(
        tmp_path / "horse_mask.png")
    out = tmp_path / "out"
    rc = main(["heads", str(img), *TINY, "--json", str(out / "t.json"), "--csv",
               str(out / "t.csv"), "--figure", str(out / "grid.svg"), "--importance"])
    assert rc == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[:3] == ["layer", "head", "group"]
    assert len(printed) == 1 + 12 * 3
    data = json.loads((out / "t.json").read_text())
    assert data["meta"]["mask"].endswith("horse_mask.png")
    assert data["meta"]["input_size"] == [224, 224] and data["meta"]["grid"] == [14, 14]
    assert len(data["heads"]) == 36 and "kl" in data["heads"][0]
    assert (out / "t.csv").read_text().count("\n") == 37
    assert (out / "grid.svg").read_bytes().startswith(b"<?xml")
    assert (out / "grid_similarity.svg").exists()
    assert main(["heads", str(img), *TINY, "--json", str(out / "t.json")]) == 1


def test_heads_box_and_model_free_default(tmp_path, images_dir, capsys):
    import json

    out = tmp_path / "t.json"
    rc = main(["heads", str(images_dir / "coins.png"), *TINY, "--json", str(out),
               "--box", "40,30,200,160"])
    assert rc == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["mask_source"] == "box" and "(40, 30, 200, 160)" in meta["mask"]
    assert "foreground: GrabCut in the given box" in capsys.readouterr().err
    assert main(["heads", str(images_dir / "coins.png"), *TINY, "--json", str(out),
                 "--force"]) == 0
    assert json.loads(out.read_text())["meta"]["mask_source"] == "centre"
    with pytest.raises(SystemExit) as exc:
        main(["heads", str(images_dir / "coins.png"), *TINY, "--box", "1,2,3"])
    assert exc.value.code == 2 and "four numbers" in capsys.readouterr().err


def test_heads_scores_a_camera_photo_on_the_windows_display_copy(tmp_path, images_dir,
                                                                  monkeypatch):
    # the table the window shows, from a JPEG draft; a full-size mask file fits that copy
    import json

    from PIL import Image

    from vitexplorer.core import images
    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.constants import DISPLAY_SIDE
    from vitexplorer.core.masks import fitted_mask
    from vitexplorer.core.models import load_model

    photo = tmp_path / "camera.jpg"
    Image.open(images_dir / "horse.png").convert("RGB").resize((3300, 2475)).save(photo)
    mask_file = tmp_path / "camera_mask.png"
    Image.open(images_dir / "horse.png").convert("L").resize((3300, 2475)).point(
        lambda v: 255 if v < 128 else 0).save(mask_file)
    decoded = []
    real_decode = images._decode_open  # every decode's, whoever imported decode by name
    monkeypatch.setattr(images, "_decode_open",
                        lambda *a, **k: decoded.append(real_decode(*a, **k)) or decoded[-1])
    out = tmp_path / "t.json"
    assert main(["heads", str(photo), *TINY, "--json", str(out)]) == 0
    assert decoded[0].pixels.shape[:2] == (1238, 1650)  # libjpeg's 1/2, not 2475 x 3300
    made = json.loads(out.read_text())
    assert made["meta"]["mask"].endswith("camera_mask.png")
    loaded = load_model("vit_tiny_patch16_224", "random")  # seeded: the CLI's weights
    shown = analyze(loaded, photo, display_side=DISPLAY_SIDE)
    assert shown.image.shape[:2] == (1200, 1600)
    want = shown.head_table(mask=fitted_mask(mask_file, (2475, 3300), (1200, 1600)),
                            mask_name=str(mask_file))
    assert [h["fg_score"] for h in made["heads"]] == pytest.approx(
        want.scores["fg_score"].ravel().tolist(), abs=1e-6)


def test_batch_exit_status_and_summarize(tmp_path, images_dir, capsys):
    src = tmp_path / "in"
    src.mkdir()
    import shutil

    shutil.copy(images_dir / "coins.png", src / "a.png")
    args = ["batch", str(src), "-o", str(tmp_path / "out"), *TINY, "-q", "--method",
            "head,rollout", "--layers", "0,11", "--heads", "1"]
    assert main(args) == 0
    files = sorted(p.name for p in (tmp_path / "out" / "in").iterdir())
    assert files == ["a.png.json", "a.png__head_L0_H1.png", "a.png__head_L11_H1.png",
                     "a.png__rollout_L0.png", "a.png__rollout_L11.png"]
    (src / "b.jpg").write_text("broken")
    assert main([*args, "--resume"]) == 1  # one file failed
    assert "b.jpg" in (tmp_path / "out" / "errors.csv").read_text()
    assert main(["summarize", str(tmp_path / "out")]) == 0
    assert main(["summarize", str(tmp_path / "nothing")]) == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["batch", str(src), "-o", str(blocker / "out"), *TINY]) == 1
    assert "Cannot write to the output folder" in capsys.readouterr().err
    assert main(["batch", str(src), "-o", str(tmp_path / "o2"), "--shard", "3/2"]) == 2
    capsys.readouterr()
    assert main(["batch", str(src), "-o", str(tmp_path / "o3"), *TINY, "--heads", "1,3"]) == 2
    assert "--heads 3: not an index from 0 to 2" in capsys.readouterr().err  # 3 heads


def test_summarize_names_an_evaluate_or_compare_output(tmp_path, capsys):
    # summarize rebuilds a batch output; the folders of the other commands hold no
    # per-image head tables, and 'no results' alone sent the user looking for lost files
    ev, cmp = tmp_path / "ev", tmp_path / "cmp"
    ev.mkdir(), cmp.mkdir()
    (ev / "run.json").write_text('{"command": "evaluate", "model": "m"}')
    (ev / "summary.csv").write_text("kept")
    (cmp / "comparison.json").write_text("{}")
    assert main(["summarize", str(ev)]) == 1
    assert f"'{ev}' is an evaluate output, not a batch's" in capsys.readouterr().err
    assert (ev / "summary.csv").read_text() == "kept"
    assert main(["summarize", str(cmp)]) == 1
    assert f"'{cmp}' is a compare output, not a batch's" in capsys.readouterr().err
    assert main(["summarize", str(tmp_path)]) == 1
    assert "no per-image results (*.json)" in capsys.readouterr().err


def test_pillows_warnings_name_each_file_they_come_from(tmp_path, capsys):
    # Pillow warns on broken EXIF data without naming the file; in a batch over thousands
    # of photos the user must know which ones, each of them (not only the first)
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112], exif[0x010E] = 6, "x" * 40
    for name in ("first.jpg", "second.jpg"):
        Image.fromarray(pixels).save(src / name, exif=exif.tobytes()[:-30])  # cut short
    Image.fromarray(pixels).save(src / "fine.jpg")
    args = ["batch", str(src), "-o", str(tmp_path / "out"), *TINY, "-q", "--no-scores",
            "--outputs", "json"]
    assert main(args) == 0
    err = capsys.readouterr().err
    named = [line for line in err.splitlines() if line.startswith("vitexplorer: warning: ")]
    assert sorted(Path(line.split(": ")[2]).name for line in named) == ["first.jpg",
                                                                        "second.jpg"]
    assert all("Truncated File Read" in line for line in named)


def test_a_damaged_result_is_named_by_summarize_and_redone_on_resume(tmp_path, images_dir,
                                                                      capsys):
    """A per-image JSON damaged outside the run was left out of the summary unsaid, and a
    resume counted it as done, so the image was lost from the results."""
    import json
    import shutil

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(images_dir / "coins.png", src / name)
    out = tmp_path / "out"
    args = ["batch", str(src), "-o", str(out), *TINY, "-q", "--input-size", "64"]
    assert main(args) == 0
    damaged = out / "in" / "b.png.json"
    damaged.write_text('{"heads": [', encoding="utf-8")
    capsys.readouterr()
    assert main(["summarize", str(out)]) == 0
    err = capsys.readouterr().err
    assert "b.png.json' is left out: not valid JSON" in err and "summarised 1 images" in err
    assert main([*args, "--resume"]) == 0
    assert "1 images done, 1 already done" in capsys.readouterr().err
    assert json.loads(damaged.read_text(encoding="utf-8"))["heads"]


def test_summarize_names_a_folder_it_cannot_read(unreadable_folder, capsys):
    """It said 'no per-image results', then raised PermissionError from the check of what
    made the folder (a traceback)."""
    folder = unreadable_folder
    assert main(["summarize", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"cannot read the folder '{folder}': Permission denied" in err
