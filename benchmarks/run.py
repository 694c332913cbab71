"""Benchmarks as ratios against a plain timm forward measured in the same run.

Absolute times on shared machines are noise; ratios are what the targets speak of. Every
case uses random-init models (no weights needed). ``--quick`` runs in about two minutes on
2 CPU cores; ``--only NAME`` runs one case. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vitexplorer.core.analysis import Analysis  # noqa: E402
from vitexplorer.core.capture import capture  # noqa: E402
from vitexplorer.core.errors import ModelError  # noqa: E402
from vitexplorer.core.images import load_image, preprocess  # noqa: E402
from vitexplorer.core.masks import clear_grabcuts  # noqa: E402
from vitexplorer.core.models import load_model, resolve_device  # noqa: E402
from vitexplorer.core.stream import stream  # noqa: E402

IMAGES = REPO / "tests" / "data"


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2
                ) -> dict[str, float]:
    """Median time of each function, run round-robin so machine noise hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def plain(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """timm's own forward, fused attention on: the reference of every case."""
    for b in model.blocks:
        b.attn.fused_attn = True

    def run():
        with torch.inference_mode():
            return model(x)
    return run


def row(case, ours, ref, target, higher_is_better=False, unit="s", note=""):
    ratio = None if ours is None or ref in (None, 0) else ours / ref
    ok = None if ratio is None or target is None else (
        ratio >= target if higher_is_better else ratio <= target)
    return dict(case=case, ours=ours, reference=ref, ratio=ratio, target=target,
                direction=">=" if higher_is_better else "<=", unit=unit,
                result="" if ok is None else ("PASS" if ok else "FAIL"), note=note)


def _setup(name: str, device: str, **kw):
    loaded = load_model(name, "random", device, **kw)
    rgb = load_image(IMAGES / "chelsea.png")
    pre = preprocess(rgb, loaded.data_config, "crop", loaded.patch_size)
    x = torch.from_numpy(pre.pixels)[None].to(loaded.device)
    return loaded, pre, x


def case_capture(repeats: int, device: str) -> list[dict]:
    loaded, _, x = _setup("vit_base_patch16_224", device)
    model = loaded.model
    fns = {"ref": plain(model, x), "ours": lambda: capture(model, x)}
    import copy

    from timm.utils import AttentionExtract

    peer_model = copy.deepcopy(model)
    for b in peer_model.blocks:  # the peer needs non-fused attention too
        b.attn.fused_attn = False
    extractor = AttentionExtract(peer_model, method="hook")

    def peer():
        with torch.inference_mode():
            return extractor(x)
    fns["peer"] = peer
    t = interleaved(fns, repeats)
    return [row("capture every head, ViT-B/16 @224, batch 1", t["ours"], t["ref"], 1.10),
            row("  timm AttentionExtract (peer), same model", t["peer"], t["ref"], None,
                note=f"ours is {t['peer'] / t['ours']:.2f}x faster than the peer")]


def full_analysis(loaded, pre, x, mask=None) -> Analysis:
    """What a full view of one image computes: the capture, every map family, the scores
    (against ``mask``, else the head table's default foreground: GrabCut in the centre box,
    computed anew: the GrabCut kept for compare slots would otherwise answer every repeat)."""
    clear_grabcuts()
    a = Analysis.from_stream(stream(loaded.model, x), 0, loaded, pre, "crop", "bench")
    a.head_maps()
    a.head_rollout_maps()
    a.map("rollout")
    a.head_table(mask=mask)
    return a


def case_full_analysis(repeats: int, device: str) -> list[dict]:
    from vitexplorer.core.masks import box_grabcut, centre_box

    loaded, pre, x = _setup("vit_base_patch16_224", device)
    image = pre.display
    given = box_grabcut(image, centre_box(image.shape[:2]))[0]
    t = interleaved({"ref": plain(loaded.model, x),
                     "ours": lambda: full_analysis(loaded, pre, x),
                     "given": lambda: full_analysis(loaded, pre, x, given),
                     "grabcut": lambda: box_grabcut(image, centre_box(image.shape[:2]))},
                    repeats)
    return [row("full analysis of one image (maps, rollouts, scores), ViT-B/16",
                t["ours"], t["ref"], 1.30),
            row("  same with the foreground mask given (a mask file or a drawn mask)",
                t["given"], t["ref"], None),
            row(f"  centre-box GrabCut foreground of the {image.shape[1]}x{image.shape[0]} "
                "image (the scores' model-free default)", t["grabcut"], t["ref"], None)]


def case_class_map(repeats: int, device: str) -> list[dict]:
    from vitexplorer.core.capture import token_layout
    from vitexplorer.core.rollout import relevance_map
    from vitexplorer.core.stream import class_products

    loaded, _, x = _setup("vit_base_patch16_224", device)
    layout = token_layout(loaded.model, tuple(x.shape[-2:]))

    def ours():
        _, cams = class_products(loaded.model, x, [0])
        return relevance_map(cams[0], layout)

    t = interleaved({"ref": plain(loaded.model, x), "ours": ours}, repeats)
    return [row("class-specific map (relevance), ViT-B/16", t["ours"], t["ref"], 3.5)]


def case_ablation(repeats: int, device: str) -> list[dict]:
    from vitexplorer.core.importance import head_importance

    loaded, _, x = _setup("vit_small_patch16_224", device)
    model = loaded.model
    n = len(model.blocks) * model.blocks[0].attn.num_heads
    t = interleaved({"ref": plain(model, x), "ours": lambda: head_importance(model, x)},
                    max(3, repeats // 3), warmup=1)
    return [row(f"head importance, all {n} heads of ViT-S/16 (ref: L*H forwards)",
                t["ours"], t["ref"] * n, 0.5)]


def case_faithfulness(repeats: int, device: str) -> list[dict]:
    """Deletion/insertion/perturbation curves of 3 methods + a random map on one image,
    against the plain batched forwards of the same number of images (what any
    implementation must run)."""
    from vitexplorer.core.evaluate import faithfulness, forwards_needed, random_map

    loaded, pre, x = _setup("vit_small_patch16_224", device)
    a = Analysis.from_stream(stream(loaded.model, x), 0, loaded, pre, "crop", "bench")
    target = a.ensure_gradients()
    maps = {m: a.map(m, target=target) for m in ("rollout", "grad-rollout", "relevance")}
    maps["random"] = random_map(a.layout.grid, 0)
    n, bs = forwards_needed(len(maps)), 32
    ref_fn = plain(loaded.model, x.expand(bs, -1, -1, -1).contiguous())
    last = x.expand(n % bs, -1, -1, -1).contiguous()

    def ref():
        for _ in range(n // bs):
            ref_fn()
        with torch.inference_mode():
            loaded.model(last)

    t = interleaved({"ref": ref, "ours": lambda: faithfulness(loaded.model, x[0], maps,
                                                                target, 10, bs)},
                    max(3, repeats // 3), warmup=1)
    return [row(f"faithfulness curves, 4 maps ({n} perturbed images), ViT-S/16 "
                "(ref: the same forwards)", t["ours"], t["ref"], 1.15)]


def case_batch(repeats: int, device: str, n_images: int) -> list[dict]:
    from vitexplorer.core.batch import BatchOptions, run_batch
    from vitexplorer.core.render import encode, overlay

    loaded, _, _ = _setup("vit_small_patch16_224", device)
    tmp = Path(tempfile.mkdtemp(prefix="vitexplorer-bench-"))
    try:
        src = tmp / "in"
        src.mkdir()
        names = sorted(IMAGES.glob("*.png"))
        for i in range(n_images):  # one pixel marked per copy: every file's pixels differ,
            # as in a real folder (the shared GrabCut would answer a repeated image at once)
            pixels = np.array(Image.open(names[i % len(names)]))
            pixels.reshape(-1)[0] = (int(pixels.reshape(-1)[0]) + 1 + i) % 256
            Image.fromarray(pixels).save(src / f"{i:04d}.png")
        pres = [preprocess(load_image(p), loaded.data_config, "crop", loaded.patch_size).pixels
                for p in sorted(src.iterdir())]
        batches = [torch.from_numpy(np.stack(pres[i:i + 8])).to(loaded.device)
                   for i in range(0, len(pres), 8)]

        def ref():
            for b in plain(loaded.model, batches[0]) and batches:
                with torch.inference_mode():
                    loaded.model(b)

        runs = iter(range(10_000))

        def ours(scores: bool):
            opts = BatchOptions(model="vit_small_patch16_224", weights="random",
                                outputs=("overlay", "json"), batch_size=8, workers=2,
                                scores=scores)
            return lambda: run_batch([src], tmp / f"out{next(runs)}", loaded, opts)

        paths = sorted(src.iterdir())

        def io():
            """What any tool must do besides the forward to turn these files into overlay
            PNGs: decode, the model's resize, blend, encode (one core, as here)."""
            for path in paths:
                pre = preprocess(load_image(path), loaded.data_config, "crop",
                                 loaded.patch_size)
                flat = np.full(pre.geometry.grid, 1.0 / np.prod(pre.geometry.grid), np.float32)
                img = overlay(pre.display, flat, pre.geometry, "inferno", 0.6)
                encode(img, "png")

        def attention():
            for b in batches:
                capture(loaded.model, b)

        t = interleaved({"ref": ref, "plain": ours(False), "scores": ours(True), "io": io,
                         "attention": attention}, max(2, repeats // 4), warmup=1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ref_rate = n_images / t["ref"]
    # Serial bounds: the forward already keeps both cores busy, so the I/O mostly adds to
    # its time (threads can hide only a little of it in the forward's idle moments).
    io_bound = t["ref"] / (t["ref"] + t["io"])
    capture_bound = t["ref"] / (t["attention"] + t["io"])
    per_image = 1000 / n_images
    return [row(f"batch throughput ({n_images} images, overlays + JSON), ViT-S/16, batch 8",
                n_images / t["plain"], ref_rate, 0.85, higher_is_better=True, unit="img/s"),
            row("  same with every head's scores in each JSON (+ folder profile)",
                n_images / t["scores"], ref_rate, None, higher_is_better=True, unit="img/s"),
            row("  serial bound: forward, then decode/resize/overlay/PNG of the same files",
                ref_rate * io_bound, ref_rate, None, higher_is_better=True, unit="img/s",
                note=f"I/O {t['io'] * per_image:.0f} ms/img vs forward "
                     f"{t['ref'] * per_image:.0f} ms/img"),
            row("  serial bound with the non-fused attention any capture needs",
                ref_rate * capture_bound, ref_rate, None, higher_is_better=True,
                unit="img/s", note=f"capture forward {t['attention'] * per_image:.0f} ms/img"),
            row("  ours against that bound (the target proposed for 2 cores)",
                n_images / t["plain"], ref_rate * capture_bound, 0.85,
                higher_is_better=True, unit="img/s")]


MEMORY_SCRIPT = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[2]))
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
import numpy as np
from PIL import Image
from vitexplorer.core.models import load_model
from vitexplorer.core.analysis import analyze
import vitexplorer.core.heads, vitexplorer.core.masks  # code is not the analysis' cost
loaded = load_model(sys.argv[3], "random", input_size=int(sys.argv[4]) or None)
img = (np.random.default_rng(0).random((int(sys.argv[5]), int(sys.argv[6]), 3)) * 255
       ).astype(np.uint8)
base = rss("VmRSS")  # right after the model load: no warm-up forward hides anything
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to now
a = analyze(loaded, img)
a.head_maps(); a.head_rollout_maps(); a.map("rollout"); a.head_table()
print(base, rss("VmHWM"))
"""


def peak_above_load(threads: int, name: str, input_size: int | None,
                    image_hw: tuple[int, int], timeout: float) -> tuple[float | None, str]:
    """Peak RSS (MB) of a full analysis of a random ``image_hw`` image above the RSS right
    after the model load, in a subprocess (nothing else in it); (None, the error's last
    line) when it fails."""
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(REPO), str(threads), name,
                          str(input_size or 0), *map(str, image_hw)],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1][:80]
    base, peak = (int(v) for v in out.stdout.split())
    return (peak - base) / 2**20, ""


def case_memory(threads: int, name: str = "vit_large_patch16_384") -> list[dict]:
    extra_mb, error = peak_above_load(threads, name, None, (480, 640), 1200)
    if extra_mb is None:
        return [row(f"memory, {name} full analysis", None, None, None, note=error)]
    return [row(f"memory, {name} full analysis: peak RSS above after-load (MB)", extra_mb,
                300.0, 1.0, unit="MB")]


#: the start of the GUI benchmarks' scripts: an offscreen window on the model ``argv[2]`` with
#: random weights, loaded; ``wait(signal)`` runs the event loop until the signal (or 300 s)
GUI_WINDOW = r"""
import os, sys, tempfile
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, sys.argv[1])
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QTimer, QEventLoop
app = QApplication([])
from vitexplorer.gui.main_window import MainWindow
from vitexplorer.gui.settings import Settings
w = MainWindow(Settings(tempfile.mktemp(suffix=".ini")), model=sys.argv[2], weights="random")
w.show()
def wait(sig, ms=300000):
    l = QEventLoop(); sig.connect(l.quit); QTimer.singleShot(ms, l.quit); l.exec()
w.load_model(sys.argv[2], "random")
while w.state.a.loaded is None: app.processEvents()
"""

GUI_SCRIPT = GUI_WINDOW + r"""
import time, statistics
forwards = []
w.state.a.loaded.model.register_forward_hook(lambda *a: forwards.append(1))
# event-loop stall while the model runs in a worker
gaps, last = [], [time.perf_counter()]
def tick():
    now = time.perf_counter(); gaps.append(now - last[0]); last[0] = now
timer = QTimer(); timer.setInterval(5); timer.timeout.connect(tick)
last[0] = time.perf_counter(); timer.start()
w.open_path(sys.argv[3]); wait(w.analysis_shown)
timer.stop()
stall = max(gaps) * 1000
n0 = len(forwards)
times = []
for i in range(40):
    t0 = time.perf_counter()
    a = w.state.a.analysis
    w.state.select_head(i % a.num_layers, (i * 7) % a.num_heads)
    times.append((time.perf_counter() - t0) * 1000)
print(statistics.median(times), stall, len(forwards) - n0)
"""

START_SCRIPT = r"""
import os, sys, time
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, sys.argv[1])
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication
app = QApplication([])
from vitexplorer.gui.main_window import MainWindow
from vitexplorer.gui.settings import Settings
import tempfile
class First(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint:
            print("PAINTED", flush=True)
            os._exit(0)
        return False
w = MainWindow(Settings(tempfile.mktemp(suffix=".ini")))
f = First(); w.installEventFilter(f)
w.show()
app.exec()
"""


def case_gui(threads: int) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", GUI_SCRIPT, str(REPO), "vit_base_patch16_224",
                          str(IMAGES / "chelsea.png")], capture_output=True, text=True,
                         timeout=600, env=env)
    if out.returncode != 0:
        return [row("GUI", None, None, None, note=out.stderr.strip()[-80:])]
    switch, stall, forwards = out.stdout.split()[-3:]
    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", START_SCRIPT, str(REPO)],
                           capture_output=True, text=True, timeout=120, env=env)
        if "PAINTED" in p.stdout:
            starts.append(time.perf_counter() - t0)
    start = statistics.median(starts) if starts else None
    return [row(f"GUI head switch, ViT-B/16 (median ms; {forwards} forwards)", float(switch),
                16.0, 1.0, unit="ms"),
            row("GUI longest event-loop stall during a ViT-B/16 forward (ms)", float(stall),
                50.0, 1.0, unit="ms"),
            row("GUI start to first paint (s, process start included)", start, 1.5, 1.0,
                unit="s")]


OFFLINE_GUI_SCRIPT = r"""
import os, sys, tempfile
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, sys.argv[1])
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from vitexplorer.gui.main_window import MainWindow
from vitexplorer.gui.settings import Settings
w = MainWindow(Settings(tempfile.mktemp(suffix=".ini")))
w.show()
w.start(None)
def poll():
    if w.banner.isVisible():
        print("BANNER", w.banner.label.text().replace(chr(10), " ")[:60], flush=True)
        os._exit(0)
t = QTimer(); t.timeout.connect(poll); t.start(20)
QTimer.singleShot(120000, lambda: os._exit(1))
app.exec()
"""


def case_offline(repeats: int = 2) -> list[dict]:
    """Start to the offline message without a network and without HF_HUB_OFFLINE (the hub
    client's retry ladder took 53-93 s before). Reference: the same command with
    HF_HUB_OFFLINE=1 (imports and model build, no network at all), so the ratio is the
    wait the probe adds; the GUI row's reference is the issue's absolute target, 5 s.
    Skipped where the hub answers (it would download)."""
    from vitexplorer.core.hub import hub_reachable

    if hub_reachable()[0]:
        return [row("offline message (skipped: the hub is reachable here)", None, None, None)]
    import tempfile

    home = tempfile.mkdtemp()
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_HOME=home, XDG_CONFIG_HOME=home, PYTHONPATH=str(REPO))
    export = [sys.executable, "-m", "vitexplorer", "export", str(IMAGES / "chelsea.png"),
              "-o", str(Path(home) / "o.png")]
    times: dict[str, list[float]] = {"cli": [], "offline-mode": [], "gui": []}
    for _ in range(repeats):
        for name, cmd, extra, mark in (
                ("cli", export, {}, "--weights random"),
                ("offline-mode", export, {"HF_HUB_OFFLINE": "1"}, "--weights random"),
                ("gui", [sys.executable, "-c", OFFLINE_GUI_SCRIPT, str(REPO)], {}, "BANNER")):
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                               env={**env, **extra})
            if mark in p.stdout + p.stderr:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) if v else None for k, v in times.items()}
    return [row("CLI start to the offline message, no network (ref: HF_HUB_OFFLINE=1)",
                med["cli"], med["offline-mode"], 1.25, unit="s",
                note="" if med["cli"] is None else f"absolute {med['cli']:.1f} s, target 5 s"),
            row("GUI start to the offline banner, no network (s)", med["gui"], 5.0, 1.0,
                unit="s")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default=None, help="run one case: capture, analysis, "
                        "class, ablation, faithfulness, batch, memory, gui, photos, "
                        "input-size, gui-photo, offline")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" /
                        "latest.json")
    args = parser.parse_args()
    try:  # a GPU asked for on a machine without one: one line, before any case runs
        resolve_device(args.device)
    except ModelError as exc:
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    repeats = 5 if args.quick else 15
    cases = {
        "capture": lambda: case_capture(repeats, args.device),
        "analysis": lambda: case_full_analysis(repeats, args.device),
        "class": lambda: case_class_map(repeats, args.device),
        "ablation": lambda: case_ablation(repeats, args.device),
        "faithfulness": lambda: case_faithfulness(repeats, args.device),
        "batch": lambda: case_batch(repeats, args.device, 24 if args.quick else 64),
        "memory": lambda: case_memory(args.threads, "vit_base_patch16_384" if args.quick
                                      else "vit_large_patch16_384"),
        "gui": lambda: case_gui(args.threads),
        "offline": lambda: case_offline(1 if args.quick else 2),
    }
    from benchmarks.photos import cases as photo_cases  # camera photos, input sizes

    cases.update(photo_cases(repeats, args.device, args.threads, args.quick))
    rows = []
    print(f"{'case':72} {'ours':>9} {'ref':>9} {'ratio':>6} {'target':>8}  result")
    for name, fn in cases.items():
        if args.only and name != args.only:
            continue
        for r in fn():
            rows.append(r)

            def f(v, p=4):
                return "-" if v is None else f"{v:.{p}f}"
            target = "-" if r["target"] is None else f"{r['direction']}{r['target']:.2f}"
            print(f"{r['case'][:72]:72} {f(r['ours'], 3):>9} {f(r['reference'], 3):>9} "
                  f"{f(r['ratio'], 2):>6} {target:>8}  {r['result']} {r['note']}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(machine=platform.machine(), processor=platform.processor(),
                python=platform.python_version(), torch=torch.__version__,
                timm=timm.__version__, threads=args.threads, device=args.device,
                quick=args.quick, date=time.strftime("%Y-%m-%d %H:%M"))
    args.out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    return 0 if all(r["result"] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
