"""Benchmark cases on camera-size photos and on other model input sizes (issue 17).

The photos are made at benchmark time from the test images: enlarged to camera sizes (12 to
24 MP), sensor-like noise added (a smooth enlargement would compress and decode unlike a
photo), saved as JPEG quality 90 with an EXIF orientation. Ratios are against a plain timm
forward measured in the same run, as in ``run.py``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.run import (
    GUI_WINDOW,
    IMAGES,
    REPO,
    full_analysis,
    interleaved,
    peak_above_load,
    plain,
    row,
)
from vitexplorer.core.batch import BatchOptions, _decode_item, run_batch
from vitexplorer.core.discovery import Item
from vitexplorer.core.images import preprocess
from vitexplorer.core.masks import box_grabcut, centre_box
from vitexplorer.core.models import load_model
from vitexplorer.core.stream import stream

#: (width, height) as shown, EXIF orientation: landscape and portrait bodies, phones
CAMERA = [((4000, 3000), 1), ((4000, 3000), 6), ((6000, 4000), 1), ((4032, 3024), 8),
          ((4000, 3000), 3), ((5472, 3648), 1), ((3000, 4000), 1), ((4000, 3000), 1)]


def camera_jpeg(src: Path, size: tuple[int, int], orientation: int, seed: int) -> bytes:
    """A photo-like JPEG of ``size`` (width, height) as shown, stored sideways for the
    orientations that rotate it."""
    w, h = size
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    base = Image.open(src).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
    img = np.asarray(base, np.float32)
    img += np.random.default_rng(seed).normal(0, 4, (h, w, 1)).astype(np.float32)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90,
                                                                  exif=exif.tobytes())
    return buf.getvalue()


def camera_folder(root: Path, n: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    sources = sorted(IMAGES.glob("*.png"))
    paths = []
    for i in range(n):
        size, orientation = CAMERA[i % len(CAMERA)]
        p = root / f"IMG_{i:04d}.jpg"
        p.write_bytes(camera_jpeg(sources[i % len(sources)], size, orientation, i))
        paths.append(p)
    return paths


def case_photos(repeats: int, device: str, n: int) -> list[dict]:
    """Batch over camera JPEGs: overlays (+ JSON) and maps + JSON, against the plain
    batched forward of the same images."""
    loaded = load_model("vit_small_patch16_224", "random", device)
    tmp = Path(tempfile.mkdtemp(prefix="vitexplorer-photos-"))
    try:
        paths = camera_folder(tmp / "in", n)
        mpix = np.mean([np.prod(CAMERA[i % len(CAMERA)][0]) for i in range(n)]) / 1e6
        x = torch.randn(8, 3, 224, 224, device=loaded.device)
        forward = plain(loaded.model, x)

        def ref():
            for _ in range(0, n, 8):
                forward()
            if loaded.device.type == "cuda":
                torch.cuda.synchronize()

        runs = iter(range(10_000))

        def ours(**kw):
            opts = BatchOptions(model="vit_small_patch16_224", weights="random",
                                device=device, batch_size=8, workers=2, scores=False, **kw)

            def run():
                result = run_batch([tmp / "in"], tmp / f"out{next(runs)}", loaded, opts)
                assert result.done == n, result.failed
            return run

        def decoded():
            """What maps + JSON must do per photo besides the forward: the reduced decode and
            the model's resize (one thread)."""
            for p in paths:
                _decode_item(Item(p, Path(p.name)), loaded, maps_opts)

        maps_opts = BatchOptions(outputs=("maps", "json"), scores=False)
        fns = {"ref": ref, "decode": decoded, "overlay": ours(outputs=("overlay", "json")),
               "maps": ours(outputs=("maps", "json")),
               "jpg": ours(outputs=("overlay", "json"), format="jpg"),
               "full": ours(outputs=("overlay", "json"), overlay_size=None)}
        t = interleaved(fns, repeats, warmup=1)
        # the warm-up runs, in the order of ``fns``: out0 the 1600 px PNGs, out3 full size
        png_mb, full_mb = (sum(p.stat().st_size for p in (tmp / d).rglob("*.png")) / n / 1e6
                           for d in ("out0", "out3"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    gpu = loaded.device.type == "cuda"
    ref_rate = n / t["ref"]
    label = f"{n} camera JPEGs ({mpix:.0f} MP avg, 4 EXIF orientations), ViT-S/16, batch 8"
    rows = [row(f"photos: overlays + JSON, {label}", n / t["overlay"], ref_rate,
                0.85 if gpu else 0.5, higher_is_better=True, unit="img/s",
                note=f"1600 px PNG overlays, {png_mb:.1f} MB/img (full size: "
                     f"{full_mb:.1f} MB/img)"),
            row("  photos: maps + JSON (no overlays)", n / t["maps"], ref_rate,
                None if gpu else 0.7, higher_is_better=True, unit="img/s"),
            row("  serial bound: forward, then the reduced decode + resize of the same photos",
                n / (t["ref"] + t["decode"]), ref_rate, None, higher_is_better=True,
                unit="img/s", note=f"decode {t['decode'] * 1000 / n:.0f} ms/img vs forward "
                                   f"{t['ref'] * 1000 / n:.0f} ms/img"),
            row("  photos: overlays as JPEG (--format jpg)", n / t["jpg"], ref_rate, None,
                higher_is_better=True, unit="img/s"),
            row("  photos: full-resolution overlays (--overlay-size full)", n / t["full"],
                ref_rate, None, higher_is_better=True, unit="img/s")]
    if not gpu:
        rows.append(row("photos: overlays + JSON on a GPU (target >= 0.85x)", None, None,
                        0.85, higher_is_better=True, unit="img/s",
                        note="unmeasured: run with --device cuda"))
    return rows


def case_input_size(repeats: int, device: str, size: int = 480) -> list[dict]:
    """ViT-S/16 run at ``size`` px (pos-embed resampled at load): full analysis vs plain."""
    loaded = load_model("vit_small_patch16_224", "random", device, input_size=size)
    rgb = np.asarray(Image.open(IMAGES / "chelsea.png").convert("RGB"))
    pre = preprocess(rgb, loaded.data_config, "crop", loaded.patch_size)
    x = torch.from_numpy(pre.pixels)[None].to(loaded.device)
    model = loaded.model
    ref = plain(model, x)  # sets fused attention on

    def non_fused():  # timm's own forward with the attention materialised (the hook path)
        for b in model.blocks:
            b.attn.fused_attn = False
        try:
            with torch.inference_mode():
                return model(x)
        finally:
            for b in model.blocks:
                b.attn.fused_attn = True

    image = pre.display
    given = box_grabcut(image, centre_box(image.shape[:2]))[0]
    t = interleaved({"ref": ref, "ours": lambda: full_analysis(loaded, pre, x),
                     "given": lambda: full_analysis(loaded, pre, x, given),
                     "non_fused": non_fused,
                     "capture": lambda: stream(model, x),
                     "maps": lambda: stream(model, x, ranges=False, keep_inputs=False),
                     "grabcut": lambda: box_grabcut(image, centre_box(image.shape[:2]))},
                    max(3, repeats // 2))
    g = pre.geometry.grid
    return [row(f"full analysis, ViT-S/16 at {size} px ({g[0]}x{g[1]} tokens)", t["ours"],
                t["ref"], 1.3),
            row("  same with the foreground mask given (a mask file or a drawn mask)",
                t["given"], t["ref"], None),
            row("  timm forward with non-fused attention, same size (the hook path's floor)",
                t["non_fused"], t["ref"], None),
            row("  streamed capture with the head statistics (chunked attention)",
                t["capture"], t["ref"], None),
            row("  streamed capture without head statistics (maps only: batch --no-scores)",
                t["maps"], t["ref"], None),
            row(f"  centre-box GrabCut foreground of the {image.shape[1]}x{image.shape[0]} "
                "image (head table default; model-free)", t["grabcut"], t["ref"], None)]


def case_large_input(threads: int, name: str = "vit_base_patch16_224", size: int = 1024
                     ) -> list[dict]:
    """Peak RSS of a full analysis at ``size`` px above the RSS right after the model load
    (a subprocess: nothing else in it)."""
    extra_mb, error = peak_above_load(threads, name, size, (768, 1024), 1800)
    label = f"memory, {name} at {size} px full analysis: peak RSS above after-load (MB)"
    if extra_mb is None:
        return [row(label, None, None, None, note=error)]
    return [row(label, extra_mb, 2500.0, 1.0, unit="MB")]


GUI_PHOTO_SCRIPT = GUI_WINDOW + r"""
import time, statistics
import torch
torch.set_num_threads(int(sys.argv[4]))
from vitexplorer.core.stream import stream
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
model = w.state.a.loaded.model
x = torch.randn(1, 3, *w.state.a.loaded.data_config["input_size"][1:])
fw = []
for i in range(4):
    t0 = time.perf_counter(); stream(model, x); fw.append(time.perf_counter() - t0)
forward = statistics.median(fw[1:])
# warm-up: first-use imports and caches, on another photo of the same size (the same one
# would find its GrabCut kept and leave the measured open more of the cores)
w.open_path(sys.argv[5]); wait(w.analysis_shown)
before = rss()
t0 = time.perf_counter()
w.open_path(sys.argv[3]); wait(w.analysis_shown)
opened = time.perf_counter() - t0
print(opened, forward, (rss() - before) / 2**20)
"""


def case_gui_photo(threads: int) -> list[dict]:
    """GUI: open a 24 MP photo (6000x4000 JPEG) to its first overlay, minus one forward."""
    tmp = Path(tempfile.mkdtemp(prefix="vitexplorer-gui-photo-"))
    try:
        photo, first = tmp / "IMG_24MP.jpg", tmp / "IMG_24MP_warmup.jpg"
        photo.write_bytes(camera_jpeg(IMAGES / "chelsea.png", (6000, 4000), 6, 0))
        first.write_bytes(camera_jpeg(IMAGES / "horse.png", (6000, 4000), 6, 1))
        out = subprocess.run([sys.executable, "-c", GUI_PHOTO_SCRIPT, str(REPO),
                              "vit_small_patch16_224", str(photo), str(threads), str(first)],
                             capture_output=True, text=True, timeout=900)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    label = "GUI open a 24 MP JPEG to its first overlay, minus one forward (s)"
    if out.returncode != 0:
        return [row(label, None, None, None, note=out.stderr.strip()[-80:])]
    opened, forward, grown = (float(v) for v in out.stdout.split()[-3:])
    return [row(label, opened - forward, 1.5, 1.0, note=f"open {opened:.2f} s, forward "
                f"{forward:.2f} s, RSS +{grown:.0f} MB after a first photo")]


def cases(repeats: int, device: str, threads: int, quick: bool) -> dict:
    """The cases ``run.py`` adds to its table (names for ``--only``)."""
    return {"photos": lambda: case_photos(max(2, repeats // 3), device, 8 if quick else 16),
            "input-size": lambda: case_input_size(repeats, device)
            + case_large_input(threads),
            "gui-photo": lambda: case_gui_photo(threads)}


if __name__ == "__main__":  # a quick look without run.py's table
    t0 = time.perf_counter()
    for r in case_photos(2, "cpu", 8):
        print(r)
    print(time.perf_counter() - t0)
