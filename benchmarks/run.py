"""Benchmarks as ratios against a plain timm forward measured in the same run.

Absolute times on shared machines are noise; ratios are what the targets speak of.
Random-init models, no weights needed. ``--quick`` runs in under two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import timm
import torch

from vitexplorer.core.capture import capture


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


def plain_forward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run():
        with torch.inference_mode():
            return model(x)
    return run


def case_capture(name: str, repeats: int, device: str) -> list[dict]:
    model = timm.create_model(name, pretrained=False).eval().to(device)
    for b in model.blocks:
        b.attn.fused_attn = True  # the reference is timm's fast default
    x = torch.randn(1, 3, *model.pretrained_cfg["input_size"][1:], device=device)
    fns = {"ref": plain_forward(model, x), "ours": lambda: capture(model, x)}
    try:
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
    except Exception as exc:  # the peer is informative, not required
        print(f"timm AttentionExtract unavailable: {exc}")
    t = interleaved(fns, repeats)
    rows = [dict(case=f"capture every head, {name}, batch 1", ours=t["ours"],
                 reference=t["ref"], ratio=t["ours"] / t["ref"], target=1.10)]
    if "peer" in t:
        rows.append(dict(case=f"timm AttentionExtract (peer), {name}", ours=t["peer"],
                         reference=t["ref"], ratio=t["peer"] / t["ref"], target=None))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "latest.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 7 if args.quick else 21
    rows = case_capture("vit_base_patch16_224", repeats, args.device)
    print(f"{'case':58} {'ours s':>8} {'ref s':>8} {'ratio':>6} {'target':>7}  result")
    for r in rows:
        verdict = "" if r["target"] is None or r["ratio"] is None else (
            "PASS" if r["ratio"] <= r["target"] else "FAIL")
        r["result"] = verdict
        fmt = lambda v, p=4: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
        print(f"{r['case'][:58]:58} {fmt(r['ours']):>8} {fmt(r['reference']):>8} "
              f"{fmt(r['ratio'], 2):>6} {fmt(r['target'], 2):>7}  {verdict}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(machine=platform.machine(), python=platform.python_version(),
                torch=torch.__version__, timm=timm.__version__, threads=args.threads,
                device=args.device, repeats=repeats)
    args.out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
