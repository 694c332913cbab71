"""The science commands, run as a user runs them."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from vitexplorer.cli import main

TINY = ["--model", "vit_tiny_patch16_224", "--weights", "random"]


def test_evaluate_command(tmp_path, images_dir, capsys):
    shutil.copy(images_dir / "coins.png", tmp_path / "coins.png")
    h, w = np.asarray(Image.open(tmp_path / "coins.png")).shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "masks" / "coins.png")
    out = tmp_path / "out"
    rc = main(["evaluate", str(tmp_path / "coins.png"), "-o", str(out), "--masks",
               str(tmp_path / "masks"), *TINY, "--methods", "rollout", "--steps", "3", "-q",
               "--input-size", "64"])
    assert rc == 0
    import json

    assert json.loads((out / "coins.png.json").read_text())["grid"] == [4, 4]
    assert json.loads((out / "run.json").read_text())["options"]["input_size"] == 64
    shown = capsys.readouterr().out
    assert "| rollout | 1 |" in shown and "| random | 1 |" in shown
    assert "best head per image" in shown
    assert main(["evaluate", str(tmp_path), "-o", str(out), *TINY, "--methods",
                 "head"]) == 2
    assert main(["evaluate", str(tmp_path / "coins.png"), "-o", str(tmp_path / "o2"),
                 "--masks", str(tmp_path / "nowhere"), *TINY]) == 2  # as batch
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "coins.png"), "-o", str(tmp_path / "o3"), *TINY,
                 "--layers", "0,12"]) == 2  # vit_tiny has blocks 0-11
    assert "--layers 12: not an index from 0 to 11" in capsys.readouterr().err


def test_compare_command(tmp_path, images_dir, capsys):
    """One architecture with two weight files (one written here), and usage errors."""
    import timm
    from safetensors.torch import save_file

    torch_model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    save_file(torch_model.state_dict(), str(tmp_path / "other.safetensors"))
    out = tmp_path / "cmp"
    rc = main(["compare", str(images_dir / "coins.png"), "-o", str(out), "--model",
               "vit_tiny_patch16_224", "--weights", "random", "--weights",
               str(tmp_path / "other.safetensors"), "--pairs", "2", "--input-size", "64",
               "--tokens"])
    assert rc == 0
    shown = capsys.readouterr().out
    assert "36 matched heads" in shown and "other.safetensors" in shown
    assert shown.count("high-norm patch tokens per block") == 2
    assert (out / "comparison.json").is_file() and (out / "matches.csv").is_file()
    assert (out / "comparison.png").read_bytes().startswith(b"\x89PNG")
    assert main(["compare", str(images_dir / "coins.png"), "-o", str(out), *TINY]) == 2
    assert main(["compare", str(images_dir / "coins.png"), "-o", str(out), "--model",
                 "vit_tiny_patch16_224", "--weights", "random", "--weights", "random"]) == 1


def test_heads_tokens_columns(tmp_path, images_dir):
    import csv
    import json

    js, cs, fig = tmp_path / "t.json", tmp_path / "t.csv", tmp_path / "t.png"
    rc = main(["heads", str(images_dir / "coins.png"), *TINY, "--tokens", "--json", str(js),
               "--csv", str(cs), "--figure", str(fig)])
    assert rc == 0
    data = json.loads(js.read_text())
    assert len(data["meta"]["artifact_tokens"]) == 12
    assert all(0 <= h["artifact_share"] <= 1 for h in data["heads"])
    assert "artifact_share" in next(csv.DictReader(cs.open()))
    assert (tmp_path / "t_tokens.png").read_bytes().startswith(b"\x89PNG")


def test_science_figures_take_the_figure_options(tmp_path, images_dir, capsys):
    """compare and evaluate size and title their figures as export does; a bad size is a
    usage error before any model loads."""
    cmp_out, ev_out = tmp_path / "cmp", tmp_path / "ev"
    rc = main(["compare", str(images_dir / "coins.png"), "-o", str(cmp_out), "--model",
               "vit_tiny_patch16_224", "--model", "vit_tiny_patch16_224", "--weights",
               "random", "--input-size", "64", "--pairs", "1", "--preset", "single",
               "--dpi", "100", "--format", "svg", "--title", "Tiny against itself"])
    assert rc == 0
    svg = (cmp_out / "comparison.svg").read_text()
    assert "Tiny against itself" in svg and 'width="252pt"' in svg  # 3.5 in x 72 pt
    rc = main(["evaluate", str(images_dir / "coins.png"), "-o", str(ev_out), *TINY,
               "--methods", "rollout", "--steps", "3", "-q", "--input-size", "64",
               "--width", "600px", "--dpi", "100"])
    assert rc == 0
    assert Image.open(ev_out / "curves.png").size[0] == 600
    capsys.readouterr()
    assert main(["compare", str(images_dir / "coins.png"), "-o", str(tmp_path / "c2"),
                 *TINY, "--model", "vit_tiny_patch16_224", "--width", "wide"]) == 2
    assert "wide" in capsys.readouterr().err and not (tmp_path / "c2").exists()


def test_evaluate_refuses_an_output_among_its_inputs_before_loading(tmp_path, images_dir,
                                                                    capsys):
    """As batch: one line naming the folder, exit 1, before any model is loaded (the model
    named here does not exist: its error would come first otherwise), nothing written."""
    images = tmp_path / "img"
    images.mkdir()
    shutil.copy(images_dir / "coins.png", images / "coins.png")
    for out in (images, tmp_path):
        assert main(["evaluate", str(images), "-o", str(out), "--model", "no_such_model_xyz",
                     "--weights", "random"]) == 1
        err = capsys.readouterr().err
        assert f"The output folder '{out}'" in err and "never written among the inputs" in err
    assert sorted(p.name for p in images.iterdir()) == ["coins.png"]


def test_compare_and_evaluate_build_their_models_for_the_native_policy(tmp_path, images_dir):
    """--resize native keeps the image's aspect, so the model's grid must follow it: export,
    heads and batch built it so, compare and evaluate did not (a traceback from timm's
    input-size assertion, or every image failing with it)."""
    rc = main(["compare", str(images_dir / "chelsea.png"), "-o", str(tmp_path / "c"), "--model",
               "vit_tiny_patch16_224", "--model", "deit_tiny_patch16_224", "--weights",
               "random", "--input-size", "64", "--resize", "native", "--pairs", "1"])
    assert rc == 0
    rc = main(["evaluate", str(images_dir / "chelsea.png"), "-o", str(tmp_path / "e"), *TINY,
               "--methods", "rollout", "--steps", "2", "-q", "--input-size", "64",
               "--no-faithfulness", "--resize", "native"])
    assert rc == 0
    assert (tmp_path / "e" / "errors.csv").read_text().splitlines() == ["file,reason"]
    # no one size for the run: each image ran at its own grid (its JSON says which)
    run = json.loads((tmp_path / "e" / "run.json").read_text())
    assert run["input_size"] is None and run["patch_size"] == [16, 16]
    record = json.loads(next((tmp_path / "e").rglob("chelsea.png.json")).read_text())
    assert record["grid"][1] > record["grid"][0]  # 451 x 300: wider, not the square 4 x 4


def test_science_option_errors_are_usage_errors_before_any_work(tmp_path, images_dir, capsys):
    """Each was seen otherwise: compare --device foo and --size 100000 tracebacks (torch's
    device parser, OpenCV's allocator: 33 GB), evaluate --steps 100000 hours of forwards
    (60 GB before faithfulness made a batch at a time), evaluate --methods ',' a run of
    the random map alone, evaluate --class 5000 'RuntimeError: index
    5000 is out of bounds' per image in errors.csv, --batch-size 0 taken as 1, a --masks
    file 'does not exist' (exit 1; batch says 'is not a folder', exit 2)."""
    img = str(images_dir / "coins.png")
    pair = ["--model", "vit_tiny_patch16_224", "--weights", "random", "--weights", "random"]
    cases = [(["compare", img, "-o", str(tmp_path / "c"), *pair, "--device", "foo"], "--device"),
             (["compare", img, "-o", str(tmp_path / "c"), *pair, "--size", "100000"], "--size"),
             (["compare", img, "-o", str(tmp_path / "c"), *pair, "--pairs", "0"], "--pairs"),
             (["evaluate", img, "-o", str(tmp_path / "e"), *TINY, "--batch-size", "0"],
              "--batch-size"),
             (["evaluate", img, "-o", str(tmp_path / "e"), *TINY, "--steps", "100000"],
              "--steps"),
             (["evaluate", img, "-o", str(tmp_path / "e"), *TINY, "--methods", ","],
              "--methods takes"),
             (["evaluate", img, "-o", str(tmp_path / "e"), *TINY, "--masks", img],
              "--masks"),
             (["evaluate", img, "-o", str(tmp_path / "e"), *TINY, "--class", "5000"],
              "--class 5000 is out of range")]
    for argv, word in cases:
        try:
            rc = main(argv)
        except SystemExit as stop:
            rc = stop.code
        err = capsys.readouterr().err
        assert rc == 2 and word in err and "Traceback" not in err, (argv, rc, err)
    assert not (tmp_path / "e" / "run.json").exists()
    assert not (tmp_path / "c" / "comparison.json").exists()


def test_an_unreadable_masks_folder_is_refused_before_any_work(tmp_path, images_dir,
                                                               unreadable_folder, capsys):
    """Every image failed with 'PermissionError: [Errno 13] ...' in errors.csv instead."""
    masks = unreadable_folder
    for command in (["evaluate", "--steps", "2"], ["batch", "-q"]):
        out = tmp_path / command[0]
        assert main([command[0], str(images_dir / "coins.png"), "-o", str(out), *TINY,
                     "--masks", str(masks), *command[1:]]) == 2
        assert f"--masks '{masks}' cannot be read: Permission denied" in \
            capsys.readouterr().err
        assert not (out / "run.json").exists()
