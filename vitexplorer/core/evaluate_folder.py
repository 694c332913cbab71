"""``vitexplorer evaluate``: mask agreement and faithfulness of maps over a folder.

Behaves like :mod:`vitexplorer.core.batch` (the same discovery, output checks, run lock,
atomic writes, ``run.json``, resume and ``errors.csv`` written as failures happen): one
JSON per image, written last so that it marks completion; tables and curve plots are
rebuilt from those JSON files at the end (:func:`summarize_evaluation`), so resumed runs
merge.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vitexplorer import __version__
from vitexplorer.core.analysis import Analysis
from vitexplorer.core.checks import check_resize
from vitexplorer.core.constants import CLASS_METHODS, MASS_SHARE
from vitexplorer.core.discovery import Item, discover, shard_of
from vitexplorer.core.errors import Cancelled, ImageError
from vitexplorer.core.evaluate import (
    CURVES,
    faithfulness,
    load_label_mask,
    random_map,
    region_jaccard,
    token_areas,
)
from vitexplorer.core.files import write_atomic
from vitexplorer.core.images import load_image, preprocess
from vitexplorer.core.masks import find_mask_file
from vitexplorer.core.models import LoadedModel
from vitexplorer.core.run_folder import (
    BatchError,
    BatchResult,
    claim_run,
    items_to_do,
    model_sizes,
    output_lock,
    result_paths,
    result_records,
)
from vitexplorer.core.stream import stream

if TYPE_CHECKING:
    from vitexplorer.core.figures import FigureOptions

EVAL_METHODS = ("rollout", "grad-rollout", "relevance")
RANDOM = "random"


@dataclass
class EvaluateOptions:
    """Everything that changes the results; stored in ``run.json``."""

    model: str = "vit_small_patch16_224.dino"
    weights: str = "pretrained"
    device: str = "cpu"
    masks: str | None = None
    resize: str = "stretch"  # the whole image is seen, so the whole mask counts
    input_size: int | None = None  # the model built for N x N inputs; None: its default
    layers: tuple[int, ...] | None = None  # heads scored on these blocks; None: the last
    methods: tuple[str, ...] = EVAL_METHODS
    target: int | None = None  # None: the predicted class of each image
    steps: int = 10
    mass: float = MASS_SHARE
    seed: int = 0
    faithfulness: bool = True
    format: str = "png"
    batch_size: int = 32

    def result_key(self) -> dict:
        d = asdict(self)
        for k in ("device", "batch_size", "format"):
            d.pop(k)
        return json.loads(json.dumps(d))


def run_evaluate(
    inputs: list[Path], out: Path, loaded: LoadedModel, opts: EvaluateOptions,
    resume: bool = False, overwrite: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    figure: FigureOptions | None = None,
) -> BatchResult:
    """Evaluate every image under ``inputs`` into ``out`` (see the module docstring);
    ``progress(done, total, failed)`` after each image, ``should_stop`` between images and
    within one (its forwards: an image stopped midway is not written);
    ``figure``: size, text and colours of the curves figure (not part of the run's key:
    a resumed run may redraw it differently)."""
    t0 = time.perf_counter()
    bad = [m for m in opts.methods if m not in EVAL_METHODS]
    if bad:
        raise BatchError(f"evaluate supports the methods {', '.join(EVAL_METHODS)}, not "
                         f"{', '.join(bad)}")
    if opts.masks is not None and not Path(opts.masks).is_dir():
        raise BatchError(f"mask folder '{opts.masks}' does not exist or is not a folder")
    check_resize(opts.resize, loaded)
    with output_lock(inputs, out, "evaluate"):
        result = _run_locked(inputs, out, loaded, opts, resume, overwrite, progress,
                             should_stop, figure)
    result.seconds = time.perf_counter() - t0
    return result


def _run_locked(inputs: list[Path], out: Path, loaded: LoadedModel, opts: EvaluateOptions,
                resume: bool, overwrite: bool, progress, should_stop,
                figure: FigureOptions | None) -> BatchResult:
    wh = loaded.weights_sha256()
    claim_run(out, opts.result_key(), wh, resume, overwrite)
    items, errors = discover(inputs, out)
    write_atomic(out / "run.json", json.dumps(_run_record(loaded, opts, wh, inputs), indent=1))
    result = BatchResult.logged(out, errors)
    todo = items_to_do(items, out, resume, overwrite, result)
    try:
        for item in todo:
            try:
                record = evaluate_image(item, loaded, opts, should_stop)
                write_atomic(result_paths(out, item)["json"], json.dumps(record, indent=1))
                result.done += 1
            except Cancelled:  # within the image: nothing of it written, a resume redoes it
                result.interrupted = True
                break
            except ImageError as exc:
                result.fail_image(item.path, exc)
            except Exception as exc:  # one bad file: report it, go on
                result.fail(str(item.path), f"{type(exc).__name__}: {exc}")
            if progress is not None:
                progress(result.done, len(todo), len(result.failed))
            if should_stop is not None and should_stop():
                result.interrupted = True
                break
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        result.close()
    summarize_evaluation(out, opts.format, figure)
    return result


def _run_record(loaded: LoadedModel, opts: EvaluateOptions, wh: str, inputs) -> dict:
    import timm

    return {"vitexplorer": __version__, "command": "evaluate", "model": loaded.spec,
            "weights": loaded.weights, "weights_sha256": wh, "options": opts.result_key(),
            **model_sizes(loaded, opts.resize),
            "inputs": [str(p) for p in inputs],
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "timm": timm.__version__, "numpy": np.__version__},
            "device": opts.device, "batch_size": opts.batch_size}


def evaluate_image(item: Item, loaded: LoadedModel, opts: EvaluateOptions,
                   should_stop: Callable[[], bool] | None = None) -> dict:
    """The per-image record: Jaccard of every scored head and method, and curves.
    ``should_stop`` is asked within the image's forwards (:class:`Cancelled`)."""
    rgb = load_image(item.path)
    mask = None
    if opts.masks is not None:
        mask_path = find_mask_file(item.path, opts.masks)
        if mask_path is None:
            raise ImageError(item.path, f"no mask for it in '{opts.masks}' "
                                        f"({item.path.stem}.png or {item.path.stem}_mask.png)")
        mask = (mask_path, *load_label_mask(mask_path, rgb.shape[:2]))
    pre = preprocess(rgb, loaded.data_config, opts.resize, loaded.patch_size)
    x = torch.from_numpy(pre.pixels)[None].to(loaded.device)
    s = stream(loaded.model, x, should_stop, ranges=False, keep_inputs=False)
    a = Analysis.from_stream(s, 0, loaded, pre, opts.resize, str(item.path))
    classifier = bool(getattr(loaded.model, "num_classes", 0))
    target = (opts.target if opts.target is not None else a.top_k(1)[0][0]) \
        if classifier else None
    maps = {}
    for m in opts.methods:
        if m in CLASS_METHODS:
            if not classifier:
                continue
            a.ensure_gradients(target, should_stop)
        maps[m] = a.map(m, target=target)
    # a random map of its own for each image, the same on every run
    maps[RANDOM] = random_map(a.layout.grid, opts.seed + shard_of(item, 2**31))
    record: dict = {"source": str(item.path), "output": str(item.rel),
                    "model": a.model_label, "grid": list(a.layout.grid), "target": target,
                    "target_name": a.class_name(target) if target is not None else None}
    if mask is not None:
        obj, valid = token_areas(mask[1], mask[2], a.geometry)
        layers = opts.layers if opts.layers is not None else (a.num_layers - 1,)
        heads = a.head_maps().numpy()
        record["mask"] = str(mask[0])
        record["head_jaccard"] = {str(li % a.num_layers): region_jaccard(
            heads[li], obj, valid, opts.mass).tolist() for li in layers}
        record["jaccard"] = {k: float(region_jaccard(v, obj, valid, opts.mass))
                             for k, v in maps.items()}
    if classifier and opts.faithfulness:
        curves = faithfulness(loaded.model, x[0], maps, target, opts.steps, opts.batch_size,
                              should_stop=should_stop)
        record["curves"] = {k: c.to_dict() for k, c in curves.items()}
    return record


# ------------------------------------------------------------------------------ summary
def load_records(out: Path) -> list[dict]:
    """The per-image records under ``out``."""
    return [data for _, data in result_records(out)
            if "source" in data and ("jaccard" in data or "curves" in data)]


def summary_rows(records: list[dict]) -> list[dict]:
    """One row per method (random included) and, with masks, two rows for heads: the best
    head of each image (mean over images of the per-image maximum) and the best single head
    (the head with the highest mean over images)."""
    methods = list(dict.fromkeys(k for r in records
                                 for k in (*r.get("jaccard", {}), *r.get("curves", {}))))
    rows = []
    for m in methods:
        row: dict = {"method": m, "images": len(records)}
        jac = [r["jaccard"][m] for r in records if m in r.get("jaccard", {})]
        row["jaccard"] = float(np.mean(jac)) if jac else None
        for c in CURVES:
            v = [r["curves"][m][f"{c}_auc"] for r in records if m in r.get("curves", {})]
            row[f"{c}_auc"] = float(np.mean(v)) if v else None
        rows.append(row)
    with_heads = [r for r in records if r.get("head_jaccard")]
    if with_heads:
        per_image = [max(max(v) for v in r["head_jaccard"].values()) for r in with_heads]
        rows.append({"method": "best head per image", "images": len(with_heads),
                     "jaccard": float(np.mean(per_image))})
        keys = [(li, h) for li, v in with_heads[0]["head_jaccard"].items()
                for h in range(len(v))]
        if all(r["head_jaccard"].keys() == with_heads[0]["head_jaccard"].keys()
               for r in with_heads):
            means = {k: np.mean([r["head_jaccard"][k[0]][k[1]] for r in with_heads])
                     for k in keys}
            best = max(means, key=means.get)
            rows.append({"method": f"best single head {best[0]}.{best[1]}",
                         "images": len(with_heads), "jaccard": float(means[best])})
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The summary as a Markdown table (Jaccard in %, as the DINO paper reports it)."""
    head = "| method | images | Jaccard (%) | deletion AUC ↓ | insertion AUC ↑ | " \
           "positive AUC (%) ↓ | negative AUC (%) ↑ |"
    lines = [head, "|" + " --- |" * 7]

    def f(v, scale=1.0, p=3):
        return "" if v is None else f"{v * scale:.{p}f}"

    for r in rows:
        lines.append(f"| {r['method']} | {r['images']} | {f(r.get('jaccard'), 100, 1)} | "
                     f"{f(r.get('deletion_auc'))} | {f(r.get('insertion_auc'))} | "
                     f"{f(r.get('positive_auc'), 1, 1)} | {f(r.get('negative_auc'), 1, 1)} |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def summarize_evaluation(out: Path, fmt: str = "png",
                         figure: FigureOptions | None = None) -> int:
    """(Re)build ``per_image.csv``, ``per_head.csv``, ``summary.csv``, ``summary.md`` and
    the mean curves figure from the per-image JSON files. Returns the number of images."""
    records = load_records(out)
    if not records:
        return 0
    per_image, per_head = [], []
    for r in records:
        methods = dict.fromkeys((*r.get("jaccard", {}), *r.get("curves", {})))
        for m in methods:
            row = {"image": r["output"], "method": m, "target": r.get("target"),
                   "jaccard": r.get("jaccard", {}).get(m)}
            row.update({f"{c}_auc": r["curves"][m][f"{c}_auc"]
                        for c in CURVES if m in r.get("curves", {})})
            per_image.append(row)
        for li, values in r.get("head_jaccard", {}).items():
            per_head += [{"image": r["output"], "layer": int(li), "head": h, "jaccard": v}
                         for h, v in enumerate(values)]
    rows = summary_rows(records)
    write_atomic(out / "per_image.csv", _csv(per_image))
    if per_head:
        write_atomic(out / "per_head.csv", _csv(per_head))
    write_atomic(out / "summary.csv", _csv(rows))
    write_atomic(out / "summary.md", markdown_table(rows))
    if any("curves" in r for r in records):
        from vitexplorer.core.figures import save_figure
        from vitexplorer.core.science_figures import curves_figure

        save_figure(curves_figure(records, figure), out / f"curves.{fmt}")
    return len(records)
