"""Folder runner: discovery, decode prefetch, batched capture, atomic writes, resume, errors.

Used by ``vitexplorer batch`` and the GUI's batch dialog (the same code). Guarantees:

- writes only under the output folder, each file atomically (temporary name + rename);
- never overwrites an existing result unless ``overwrite``; ``resume`` skips every image
  whose JSON (written last, so it marks completion) exists, and refuses to mix runs made
  with other options or weights;
- a bad file becomes one row of ``errors.csv`` and the run goes on;
- decoding runs ``workers`` images ahead of the model, writing overlaps the next batch;
- images are decoded at the size the outputs need (JPEG draft: a 12 MP photo at 1/2 for a
  1600 px overlay, at 1/8 for maps and JSON), results keep the original geometry.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from vitexplorer import __version__
from vitexplorer.core.analysis import Analysis
from vitexplorer.core.constants import (
    DEFAULT_CMAP,
    DEFAULT_MODEL,
    DEFAULT_OPACITY,
    IMAGE_SUFFIXES,
)
from vitexplorer.core.errors import ImageError, VitexplorerError
from vitexplorer.core.files import write_atomic
from vitexplorer.core.heads import HeadTable
from vitexplorer.core.images import (
    Geometry,
    Preprocessed,
    decode,
    display_size,
    preprocess,
    resize_target,
)
from vitexplorer.core.masks import find_mask_file, load_mask
from vitexplorer.core.models import LoadedModel
from vitexplorer.core.stream import stream

OUTPUTS = ("overlay", "grid", "maps", "json")
FORMATS = ("png", "jpg", "webp", "svg", "pdf")
#: default long side of overlays and grids: a screen or a printed page, not the camera's pixels
OVERLAY_SIZE = 1600
BATCH_METHODS = ("head", "head-rollout", "rollout")
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
                    b"II*\x00", b"MM\x00*", b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")


class BatchError(VitexplorerError):
    """The run cannot start (bad output folder, options that clash with a previous run)."""


@dataclass
class BatchOptions:
    """Everything that changes the results; stored in ``run.json`` for reproduction."""

    model: str = DEFAULT_MODEL
    weights: str = "pretrained"
    device: str = "cpu"
    methods: tuple[str, ...] = ("rollout",)
    layers: tuple[int, ...] | None = None  # None: the last layer
    heads: tuple[int, ...] | None = None  # None: every head
    outputs: tuple[str, ...] = ("overlay", "json")
    format: str = "png"
    overlay_size: int | None = OVERLAY_SIZE  # long side of overlays and grids; None: full
    input_size: int | None = None  # the model built at N x N (None: its own size)
    batch_size: int = 8
    workers: int = 2
    resize: str = "crop"
    masks: str | None = None
    mask_mode: str = "rollout"
    scores: bool = True  # head table in each JSON (and the folder profile)
    cmap: str = DEFAULT_CMAP
    opacity: float = DEFAULT_OPACITY
    decorate: bool = False  # overlays as figures: colour bar and caption
    shard: tuple[int, int] = (1, 1)

    def result_key(self) -> dict:
        """The options that must match for a resumed run or a merged shard."""
        d = asdict(self)
        for k in ("batch_size", "workers", "device", "shard"):
            d.pop(k)
        return d


def parse_indices(text: str | None, n: int, name: str = "indices") -> tuple[int, ...] | None:
    """Blocks or heads as a user types them (``--layers``, ``--heads``, the batch dialog):
    blank is None (the default), ``all`` every one of the ``n``, else a comma list of
    integers in ``-n..n-1`` (negative from the end), returned as ``0..n-1`` in the order
    given, without repeats. A ValueError names the option (``name``) and the entry that is
    not one of them."""
    text = (text or "").strip()
    if not text:
        return None
    if text == "all":
        return tuple(range(n))
    out = []
    for entry in text.split(","):
        try:
            i = int(entry)
        except ValueError:
            i = None
        if i is None or not -n <= i < n:
            raise ValueError(f"{name} {entry.strip()}: not an index from 0 to {n - 1} (or "
                             f"-{n} to -1 from the end); give a comma list of them, or 'all'")
        out.append(i % n)
    return tuple(dict.fromkeys(out))


def batch_options(loaded: LoadedModel, methods: tuple[str, ...] = ("rollout",),
                  layers: str | None = None, heads: str | None = None,
                  outputs: tuple[str, ...] = ("overlay",),
                  names: tuple[str, str] = ("layers", "heads"), **options) -> BatchOptions:
    """The one builder of a run's options from what a user chose (the CLI, the batch
    dialog): model, weights and device from ``loaded``; ``layers`` and ``heads`` parsed by
    :func:`parse_indices` against its size; ``json`` always among the outputs. A ValueError
    names an unknown method or output, or a bad index (as ``names`` call the two: the CLI's
    flags, the dialog's fields); ``options`` are the other fields."""
    bad = [m for m in methods if m not in BATCH_METHODS] or \
        [o for o in outputs if o not in OUTPUTS]
    if bad or not methods:
        raise ValueError(f"methods are {', '.join(BATCH_METHODS)} and outputs "
                         f"{', '.join(OUTPUTS)}; {', '.join(bad) or 'no method'} is not one")
    blocks = loaded.model.blocks
    return BatchOptions(
        model=loaded.spec, weights=loaded.weights, device=str(loaded.device),
        methods=tuple(methods), layers=parse_indices(layers, len(blocks), names[0]),
        heads=parse_indices(heads, blocks[0].attn.num_heads, names[1]),
        outputs=tuple(dict.fromkeys((*outputs, "json"))), **options)


@dataclass
class Item:
    """One discovered input file and where its results go (relative to the output)."""

    path: Path
    rel: Path  # output stem, mirroring the input tree


@dataclass
class BatchResult:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


# ---------------------------------------------------------------------------- discovery
def looks_like_image(path: Path) -> bool:
    """By content (magic bytes), not only by extension; unreadable files count as images
    so that they are reported, not silently skipped."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return path.suffix.lower() in IMAGE_SUFFIXES
    if not head:
        return path.suffix.lower() in IMAGE_SUFFIXES
    if head.startswith(IMAGE_SIGNATURES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return path.suffix.lower() in IMAGE_SUFFIXES


def discover(inputs: list[Path], out: Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Image files under ``inputs`` (folders recursively; hidden files and ``out`` skipped),
    in a stable order, each with a unique output stem that mirrors its input tree.
    Returns the items and (path, reason) for inputs that cannot be used."""
    out_resolved = out.resolve()
    items: list[Item] = []
    errors: list[tuple[str, str]] = []
    names: dict[str, int] = {}

    def prefix_for(p: Path) -> str:
        base = p.name or "input"
        n = names.get(base, 0)
        names[base] = n + 1
        return base if n == 0 else f"{base}-{n + 1}"

    for inp in inputs:
        if not os.path.lexists(inp):
            errors.append((str(inp), "no such file or folder"))
            continue
        if inp.is_dir():
            root = prefix_for(inp)
            for dirpath, dirnames, filenames in os.walk(inp, followlinks=False):
                d = Path(dirpath)
                dirnames[:] = sorted(x for x in dirnames if not x.startswith(".")
                                     and (d / x).resolve() != out_resolved)
                stems = {Path(f).stem for f in filenames}
                for f in sorted(filenames):
                    p = d / f
                    if f.startswith("."):
                        continue
                    if p.stem.endswith("_mask") and p.stem[:-5] in stems:
                        continue  # the foreground mask of a sibling image, not an input
                    if p.is_symlink() and not _resolves(p):
                        errors.append((str(p), "broken or looping symbolic link"))
                        continue
                    if looks_like_image(p):
                        rel = Path(root) / p.relative_to(inp)
                        items.append(Item(p, rel.with_name(rel.name)))
        elif _resolves(inp):
            items.append(Item(inp, Path(prefix_for(inp))))
        else:
            errors.append((str(inp), "broken or looping symbolic link"))
    return items, errors


def _resolves(p: Path) -> bool:
    try:
        p.resolve(strict=True)
        return True
    except (OSError, RuntimeError):
        return False


def shard_of(item: Item, n: int) -> int:
    """Stable shard index (0..n-1) of an item, from a hash of its output path."""
    digest = hashlib.sha1(str(item.rel).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % n


# ------------------------------------------------------------------------------ writing
def check_output(out: Path) -> None:
    """Fail before any work when the output folder cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise BatchError(f"Cannot write to the output folder '{out}': "
                         f"{exc.strerror or exc}") from exc


def result_paths(out: Path, item: Item) -> dict[str, Path]:
    base = out / item.rel
    return {"json": base.with_name(base.name + ".json"),
            "maps": base.with_name(base.name + ".npz")}


# ------------------------------------------------------------------------------ running
def display_side(opts: BatchOptions, loaded: LoadedModel) -> int | None:
    """Long side of the image the maps are placed on: the overlay size when images are
    written, else twice the model's input (masks and scores need no more); None: full."""
    if "overlay" in opts.outputs or "grid" in opts.outputs:
        return opts.overlay_size
    return 2 * max(loaded.data_config["input_size"][1:])


def _decode_item(item: Item, loaded: LoadedModel, opts: BatchOptions
                 ) -> tuple[Preprocessed, np.ndarray | None]:
    """Decode at the size the outputs need, preprocess and find the mask of one image
    (runs in a prefetch thread)."""
    side = display_side(opts, loaded)

    def need(size: tuple[int, int]) -> tuple[int, int]:
        mh, mw = resize_target(size, loaded.data_config, opts.resize, loaded.patch_size)
        dh, dw = display_size(size, side)
        return max(mh, dh), max(mw, dw)

    pre = preprocess(decode(item.path, need), loaded.data_config, opts.resize,
                     loaded.patch_size, display_side=side)
    mask_path = find_mask_file(item.path, opts.masks) if opts.scores else None
    mask = None
    if mask_path:
        mask = load_mask(mask_path, pre.original_geometry.image_size)
        dh, dw = pre.display.shape[:2]
        if mask.shape != (dh, dw):  # area share of each display pixel, then the majority
            mask = cv2.resize(mask.astype(np.float32), (dw, dh),
                              interpolation=cv2.INTER_AREA) >= 0.5
    return pre, mask


def _prefetch(items: list[Item], fn: Callable, workers: int, ahead: int
              ) -> Iterator[tuple[Item, Future]]:
    """Yield (item, future) in order, keeping ``ahead`` decodes in flight."""
    with ThreadPoolExecutor(max_workers=max(1, workers),
                            thread_name_prefix="vitexplorer-decode") as pool:
        window: list[tuple[Item, Future]] = []
        for item in items:
            window.append((item, pool.submit(fn, item)))
            if len(window) >= ahead:
                yield window.pop(0)
        while window:
            yield window.pop(0)


def run_batch(
    inputs: list[Path],
    out: Path,
    loaded: LoadedModel,
    opts: BatchOptions,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BatchResult:
    """Process every image under ``inputs`` into ``out``; see the module docstring.

    ``progress(done, total, failed)`` is called after each image; ``should_stop`` is polled
    between batches (Ctrl+C, the GUI's Cancel): the run then stops cleanly after the
    current batch, with every finished image complete on disk.
    """
    from vitexplorer.core.figures import save_figure  # matplotlib only when a run starts

    t0 = time.perf_counter()
    unknown = [m for m in opts.methods if m not in BATCH_METHODS]
    if unknown:
        raise BatchError(f"batch overlays support {', '.join(BATCH_METHODS)}, not "
                         f"{', '.join(unknown)} (the gradient methods need one backward each)")
    check_output(out)
    run_file = out / "run.json"
    wh = loaded.weights_sha256()
    if run_file.exists() and not overwrite:
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        if not resume:
            raise BatchError(f"'{out}' already holds a run; use --resume to continue it or "
                             "--overwrite to replace its results")
        if previous.get("options") != _jsonable(opts.result_key()) or \
                previous.get("weights_sha256") != wh:
            raise BatchError(f"'{out}' holds a run with other options or weights; resume "
                             "it with the same command, or choose another output folder")
    for stale in out.rglob(".*.part"):  # temporaries of a killed run: never results
        stale.unlink(missing_ok=True)
    items, errors = discover(inputs, out)
    k, n = opts.shard
    if n > 1:
        items = [it for it in items if shard_of(it, n) == k - 1]
    write_atomic(run_file, json.dumps(run_record(loaded, opts, wh, inputs), indent=1))
    result = BatchResult(failed=list(errors))
    todo = []
    for it in items:
        if result_paths(out, it)["json"].exists():
            if resume:
                result.skipped += 1
                continue
            if not overwrite:
                result.failed.append((str(it.path), "a result exists already (use --resume "
                                                    "or --overwrite)"))
                continue
        todo.append(it)
    total = len(todo)
    _tick(progress, result, total)  # the count is known before the first image is done
    # two PNG writers: while one waits on the disk or the forward holds the cores, the other
    # encodes (measured 0.59x -> 0.62x the plain forward on 2 cores); SVG/PDF figures are
    # drawn by matplotlib, which promises no thread safety: one writer
    writer = ThreadPoolExecutor(max_workers=2 if opts.format in ENCODERS else 1,
                                thread_name_prefix="vitexplorer-write")
    pending: list[Future] = []
    try:
        batch: list[tuple[Item, Preprocessed, np.ndarray | None]] = []
        decoded = _prefetch(todo, lambda it: _decode_item(it, loaded, opts), opts.workers,
                            max(2 * opts.batch_size, 4))
        for item, fut in decoded:
            try:
                pre, mask = fut.result()
            except ImageError as exc:
                result.failed.append((str(item.path), exc.reason))
                _tick(progress, result, total)
                continue
            except Exception as exc:  # anything else about one file: report, go on
                result.failed.append((str(item.path), f"{type(exc).__name__}: {exc}"))
                _tick(progress, result, total)
                continue
            batch.append((item, pre, mask))
            if len(batch) == opts.batch_size:
                pending += _run_one_batch(batch, loaded, opts, out, writer, save_figure)
                batch = []
                _drain(pending, result, progress, total, keep=opts.batch_size)
                if should_stop is not None and should_stop():
                    result.interrupted = True
                    break
        if batch and not result.interrupted:
            pending += _run_one_batch(batch, loaded, opts, out, writer, save_figure)
        _drain(pending, result, progress, total, keep=0)
    except KeyboardInterrupt:
        result.interrupted = True
        _drain(pending, result, progress, total, keep=0)
    finally:
        writer.shutdown(wait=True)
    summarize(out)
    write_atomic(out / "errors.csv", _errors_csv(result.failed))
    result.seconds = time.perf_counter() - t0
    return result


def _tick(progress, result: BatchResult, total: int) -> None:
    if progress is not None:
        progress(result.done, total, len(result.failed))


def _drain(pending: list[Future], result: BatchResult, progress, total: int,
           keep: int) -> None:
    """Collect finished writes, keeping at most ``keep`` in flight (bounded memory)."""
    while len(pending) > keep or (pending and pending[0].done()):
        fut = pending.pop(0)
        path, error = fut.result()
        if error is None:
            result.done += 1
        else:
            result.failed.append((path, error))
        _tick(progress, result, total)


def _run_one_batch(batch, loaded: LoadedModel, opts: BatchOptions, out: Path,
                   writer: ThreadPoolExecutor, save_figure) -> list[Future]:
    """One batched forward; per-image analysis and writing go to the writer thread."""
    groups: dict[tuple, list] = {}
    for entry in batch:  # images of another token grid (native policy) cannot be stacked
        groups.setdefault(entry[1].pixels.shape, []).append(entry)
    futures = []
    for entries in groups.values():
        pixels = torch.from_numpy(np.stack([e[1].pixels for e in entries]))
        streamed = stream(loaded.model, pixels, ranges=opts.scores, keep_inputs=False)
        for i, (item, pre, mask) in enumerate(entries):
            analysis = Analysis.from_stream(streamed, i, loaded, pre, opts.resize,
                                            str(item.path))
            futures.append(writer.submit(_write_results, item, analysis, mask, opts, out,
                                         save_figure, pre.original_geometry))
    return futures


def _write_results(item: Item, a: Analysis, mask, opts: BatchOptions, out: Path,
                   save_figure, original: Geometry) -> tuple[str, str | None]:
    """Every output of one image; the JSON last, so its presence marks completion.
    ``original``: the geometry on the original pixels (``a`` may hold a smaller copy)."""
    try:
        base = out / item.rel
        layers = opts.layers if opts.layers is not None else (a.num_layers - 1,)
        heads = opts.heads if opts.heads is not None else tuple(range(a.num_heads))
        mask_name = "mask file" if mask is not None else opts.mask_mode
        table = a.head_table(opts.mask_mode, mask, mask_name) if opts.scores else None
        if "overlay" in opts.outputs:
            _write_overlays(a, base, opts, layers, heads, save_figure)
        if "grid" in opts.outputs:
            from vitexplorer.core.figures import grid_figure

            fmt = opts.format if opts.format in ("svg", "pdf") else "png"  # figures: no JPEG
            for li in layers:
                save_figure(grid_figure(a, "head", li, opts.cmap, opts.opacity),
                            base.with_name(f"{base.name}__grid_L{li}.{fmt}"))
        if "maps" in opts.outputs:
            buf = io.BytesIO()
            np.savez_compressed(
                buf, head_maps=a.head_maps().numpy().astype(np.float16),
                rollout=a.map("rollout").astype(np.float16),
                grid=np.array(a.layout.grid), num_prefix=a.layout.num_prefix,
                image_size=np.array(original.image_size), box=np.array(original.box),
                input_size=np.array(original.input_size))
            write_atomic(result_paths(out, item)["maps"], buf.getvalue())
        record = {"source": str(item.path), "output": str(item.rel),
                  "model": a.model_label, "image_size": list(original.image_size),
                  "grid": list(a.layout.grid), "box": list(original.box),
                  "predictions": [{"class": c, "name": n, "probability": p}
                                  for c, n, p in a.top_k(5)],
                  "mask": table.meta.get("mask") if table else None,
                  "heads": table.rows() if table else []}
        write_atomic(result_paths(out, item)["json"], json.dumps(record, indent=1))
        return str(item.path), None
    except Exception as exc:
        return str(item.path), f"could not write results: {type(exc).__name__}: {exc}"


def _write_overlays(a: Analysis, base: Path, opts: BatchOptions, layers, heads,
                    save_figure) -> None:
    from vitexplorer.core.figures import RANDOM_MARK, FigureOptions, is_random, overlay_figure
    from vitexplorer.core.render import overlay, stamp

    jobs = []
    for method in opts.methods:
        if method in ("head", "head-rollout"):
            jobs += [(method, li, h, f"{method}_L{li}_H{h}") for li in layers for h in heads]
        else:  # rollout (run_batch refused every other method before starting)
            jobs += [(method, li, 0, f"rollout_L{li}") for li in layers]
    for method, li, h, name in jobs:
        path = base.with_name(f"{base.name}__{name}.{opts.format}")
        if opts.format in ENCODERS and not opts.decorate:  # the plain overlay at display size
            img = overlay(a.image, a.map(method, li, h), a.geometry, opts.cmap, opts.opacity)
            if is_random(a):  # a demo's maps must never pass for a model's
                img = stamp(img, RANDOM_MARK)
            ok, data = cv2.imencode(f".{opts.format}", img[:, :, ::-1],
                                    ENCODERS[opts.format])
            if not ok:
                raise OSError(f"{opts.format.upper()} encoding failed")
            write_atomic(path, data.tobytes())
        else:
            plain = FigureOptions(preset="single", cmap=opts.cmap) if opts.decorate else \
                FigureOptions(preset="single", cmap=opts.cmap, title="", caption="")
            save_figure(overlay_figure(a, method, li, h, opacity=opts.opacity,
                                       options=plain), path)


#: OpenCV encoder settings: PNG level 1, Huffman coding only (string matching finds little in
#: a photo: 2.4x faster than level 1's default and 4% smaller on a 1600 px camera overlay;
#: level 6 costs 3x level 1); JPEG and WebP at quality 90 (a fifth to a tenth of the PNG)
ENCODERS = {"png": [cv2.IMWRITE_PNG_COMPRESSION, 1,
                    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY],
            "jpg": [cv2.IMWRITE_JPEG_QUALITY, 90], "webp": [cv2.IMWRITE_WEBP_QUALITY, 90]}


def _errors_csv(failed: list[tuple[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "reason"])
    w.writerows(failed)
    return buf.getvalue()


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def run_record(loaded: LoadedModel, opts: BatchOptions, wh: str, inputs: list[Path]) -> dict:
    import timm

    return {"vitexplorer": __version__, "model": loaded.spec, "weights": loaded.weights,
            "weights_sha256": wh, "options": _jsonable(opts.result_key()),
            "inputs": [str(p) for p in inputs], "shard": list(opts.shard),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "timm": timm.__version__, "numpy": np.__version__},
            "device": opts.device, "batch_size": opts.batch_size}


# --------------------------------------------------------------------------- summarize
def load_tables(out: Path) -> list[tuple[str, HeadTable]]:
    """Every per-image head table under ``out`` (from the JSON files)."""
    tables = []
    for p in sorted(out.rglob("*.json")):
        if p.name == "run.json" or p.name.startswith("."):
            continue
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("heads"):
            tables.append((data.get("output", str(p)), HeadTable.from_rows(data["heads"])))
    return tables


def summarize(out: Path) -> int:
    """(Re)build ``summary.csv`` and the head profile (CSV + figure) from the JSON files,
    so resumed runs and shards merge into one profile. Returns the number of images."""
    from vitexplorer.core.profile import aggregate

    tables = load_tables(out)
    if not tables:
        return 0
    buf = io.StringIO()
    writer = None
    for name, table in tables:
        for row in table.rows():
            if writer is None:
                writer = csv.DictWriter(buf, fieldnames=["image", *row])
                writer.writeheader()
            writer.writerow({"image": name, **row})
    write_atomic(out / "summary.csv", buf.getvalue())
    shapes = {t.shape for _, t in tables}
    if len(shapes) == 1:
        profile = aggregate([t for _, t in tables])
        write_atomic(out / "head_profile.csv", profile.to_csv())
        from vitexplorer.core.figures import profile_figure, save_figure

        save_figure(profile_figure(profile), out / "head_profile.png")
    return len(tables)
