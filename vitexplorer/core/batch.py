"""Folder runner: its options, decode prefetch, batched capture, each image's results.

Used by ``vitexplorer batch`` and the GUI's batch dialog (the same code). The inputs are
found by :mod:`vitexplorer.core.discovery`; the output folder is checked, locked, claimed
or resumed, its errors logged and its results summarized by
:mod:`vitexplorer.core.run_folder`. Guarantees:

- writes only under the output folder, each file atomically (temporary name + rename),
  one unique output name per input (mirrored roots are disambiguated), and never reads its
  own outputs as inputs (an output folder that is or holds an input folder is refused);
- one run at a time per output folder (a lock; the second run names the holder);
- never overwrites an existing result unless ``overwrite``; ``resume`` skips every image
  whose JSON (written last, so it marks completion) exists, and refuses to mix runs made
  with other options or weights; ``overwrite`` over a run made with other options or
  weights first deletes everything that run wrote, so no folder mixes two runs;
- a bad file becomes one row of ``errors.csv``, written as it happens, and the run goes on;
  only regular files are candidates (a FIFO would block the reader forever), and skipped
  FIFOs, devices and unreadable folders are reported there too;
- on a GPU, decoding runs ahead of the model and writing overlaps the next batch; on the
  CPU the forward has the cores to itself: the next batch is decoded, and the last one
  written, between forwards (:func:`_prefetch`);
- images are decoded at the size the outputs need (JPEG draft: a 12 MP photo at 1/2 for a
  1600 px overlay, at 1/8 for maps and JSON), results keep the original geometry.
"""

from __future__ import annotations

import io
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vitexplorer import __version__
from vitexplorer.core.analysis import Analysis
from vitexplorer.core.checks import check_resize
from vitexplorer.core.constants import DEFAULT_CMAP, DEFAULT_MODEL, DEFAULT_OPACITY
from vitexplorer.core.discovery import Item, discover, shard_of
from vitexplorer.core.errors import Cancelled, ImageError, VitexplorerError
from vitexplorer.core.files import write_atomic
from vitexplorer.core.images import (
    Geometry,
    Preprocessed,
    decode,
    display_size,
    preprocess,
    resize_target,
)
from vitexplorer.core.masks import find_mask_file, fitted_mask
from vitexplorer.core.models import LoadedModel
from vitexplorer.core.render import IMAGE_FORMATS, encode, overlay, stamp
from vitexplorer.core.run_folder import (
    BatchError,
    BatchResult,
    claim_run,
    items_to_do,
    model_sizes,
    output_lock,
    result_paths,
    summarize,
)
from vitexplorer.core.stream import stream

OUTPUTS = ("overlay", "grid", "maps", "json")
FORMATS = ("png", "jpg", "webp", "svg", "pdf")
#: default long side of overlays and grids: a screen or a printed page, not the camera's pixels
OVERLAY_SIZE = 1600
BATCH_METHODS = ("head", "head-rollout", "rollout")


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
    workers: int | None = None  # decoding threads; None: one per core (:func:`threads`)
    resize: str = "crop"
    masks: str | None = None
    mask_mode: str = "centre"
    box: tuple[int, int, int, int] | None = None  # GrabCut box, pixels of the original image
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


# ------------------------------------------------------------------------------ running
def display_side(opts: BatchOptions, loaded: LoadedModel) -> int | None:
    """Long side of the image the maps are placed on: the overlay size when images are
    written, else twice the model's input (masks and scores need no more); None: full."""
    if "overlay" in opts.outputs or "grid" in opts.outputs:
        return opts.overlay_size
    return 2 * max(loaded.input_size)


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
    mask = (fitted_mask(mask_path, pre.original_geometry.image_size, pre.display.shape[:2])
            if mask_path else None)
    return pre, mask


def _prefetch(items: list[Item], fn: Callable, workers: int, ahead: int,
              in_step: bool = False) -> Iterator[tuple[Item, Future]]:
    """Yield (item, future) in order, keeping ``ahead`` decodes in flight; ``in_step``:
    submit ``ahead`` at a time, when the consumer asks for the first of them.

    In step suits a CPU forward (the consumer asks again only after it): a forward that
    uses every core and decoders that take one of them slow each other down (the forward's
    threads wait at each barrier for the one the decoder displaced). ViT-S/16 over 16
    camera JPEGs on 2 cores: maps + JSON 0.59 -> 0.63 and 0.63 -> 0.67 of the plain
    forward, overlays 0.44 -> 0.44 and 0.47 -> 0.52 (two runs)."""
    with ThreadPoolExecutor(max_workers=max(1, workers),
                            thread_name_prefix="vitexplorer-decode") as pool:
        if in_step:
            for i in range(0, len(items), ahead):
                yield from [(item, pool.submit(fn, item)) for item in items[i:i + ahead]]
            return
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
    before each image's decode is awaited and after every block of a forward (Ctrl+C, the
    GUI's Cancel): no batch starts after it, a forward in flight stops midway (its images
    are redone by a resume), and the images already through the model are written, so
    every finished image is complete on disk.
    """
    from vitexplorer.core.figures import save_figure  # matplotlib only when a run starts

    t0 = time.perf_counter()
    unknown = [m for m in opts.methods if m not in BATCH_METHODS]
    if unknown:
        raise BatchError(f"batch overlays support {', '.join(BATCH_METHODS)}, not "
                         f"{', '.join(unknown)} (the gradient methods need one backward each)")
    if opts.masks is not None and not Path(opts.masks).is_dir():
        raise BatchError(f"mask folder '{opts.masks}' does not exist or is not a folder")
    check_resize(opts.resize, loaded)
    with output_lock(inputs, out, "batch"):
        return _run_locked(inputs, out, loaded, opts, resume, overwrite, progress,
                           should_stop, save_figure, t0)


def _run_locked(inputs, out: Path, loaded: LoadedModel, opts: BatchOptions, resume: bool,
                overwrite: bool, progress, should_stop, save_figure, t0: float) -> BatchResult:
    wh = loaded.weights_sha256()
    claim_run(out, _jsonable(opts.result_key()), wh, resume, overwrite)
    items, errors = discover(inputs, out)
    k, n = opts.shard
    if n > 1:
        items = [it for it in items if shard_of(it, n) == k - 1]
    write_atomic(out / "run.json", json.dumps(run_record(loaded, opts, wh, inputs), indent=1))
    result = BatchResult.logged(out, errors)
    todo = items_to_do(items, out, resume, overwrite, result)
    total = len(todo)
    _tick(progress, result, total)  # the count is known before the first image is done
    decoders, writers = threads(opts)
    writer = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="vitexplorer-write")
    pending: list[Future] = []
    stopped = should_stop or (lambda: False)
    try:
        batch: list[tuple[Item, Preprocessed, np.ndarray | None]] = []
        in_step = loaded.device.type == "cpu"

        def forward(entries: list) -> None:
            if in_step:  # the last batch's writes ran beside this one's decoding
                _drain(pending, result, progress, total, keep=0)
            if stopped():  # asked while the writes drained: no new forward
                raise Cancelled("cancelled")
            _run_one_batch(entries, loaded, opts, out, writer, save_figure, pending, stopped)

        decoded = _prefetch(todo, lambda it: _decode_item(it, loaded, opts), decoders,
                            opts.batch_size if in_step else max(2 * opts.batch_size, 4),
                            in_step)
        for item, fut in decoded:
            if stopped():
                raise Cancelled("cancelled")
            try:
                pre, mask = fut.result()
            except ImageError as exc:
                result.fail_image(item.path, exc)
                _tick(progress, result, total)
                continue
            except Exception as exc:  # anything else about one file: report, go on
                result.fail(str(item.path), f"{type(exc).__name__}: {exc}")
                _tick(progress, result, total)
                continue
            batch.append((item, pre, mask))
            if len(batch) == opts.batch_size:
                forward(batch)
                batch = []
                _drain(pending, result, progress, total, keep=opts.batch_size)
        if batch:
            forward(batch)
        _drain(pending, result, progress, total, keep=0)
    except (KeyboardInterrupt, Cancelled):  # images through the model are still written
        result.interrupted = True
        _drain(pending, result, progress, total, keep=0)
    finally:
        writer.shutdown(wait=True)
        result.close()
    summarize(out)
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
            result.fail(path, error)
        _tick(progress, result, total)


def _run_one_batch(batch, loaded: LoadedModel, opts: BatchOptions, out: Path,
                   writer: ThreadPoolExecutor, save_figure, futures: list[Future],
                   should_stop: Callable[[], bool]) -> None:
    """One batched forward; per-image analysis and writing go to the writer thread, their
    futures onto ``futures`` as each group's forward ends (a stop, :class:`Cancelled`
    between blocks, keeps the groups already through the model)."""
    groups: dict[tuple, list] = {}
    for entry in batch:  # images of another token grid (native policy) cannot be stacked
        groups.setdefault(entry[1].pixels.shape, []).append(entry)
    for entries in groups.values():
        pixels = torch.from_numpy(np.stack([e[1].pixels for e in entries]))
        streamed = stream(loaded.model, pixels, should_stop, ranges=opts.scores,
                          keep_inputs=False)
        for i, (item, pre, mask) in enumerate(entries):
            try:  # non-finite logits or attention: this image fails, the run goes on
                analysis = Analysis.from_stream(streamed, i, loaded, pre, opts.resize,
                                                str(item.path))
            except VitexplorerError as exc:
                failed: Future = Future()
                failed.set_result((str(item.path), str(exc)))
                futures.append(failed)
                continue
            futures.append(writer.submit(_write_results, item, analysis, mask, opts, out,
                                         save_figure, pre.original_geometry))


def _write_results(item: Item, a: Analysis, mask, opts: BatchOptions, out: Path,
                   save_figure, original: Geometry) -> tuple[str, str | None]:
    """Every output of one image; the JSON last, so its presence marks completion.
    ``original``: the geometry on the original pixels (``a`` may hold a smaller copy)."""
    try:
        base = out / item.rel
        layers = opts.layers if opts.layers is not None else (a.num_layers - 1,)
        heads = opts.heads if opts.heads is not None else tuple(range(a.num_heads))
        box = opts.box if mask is None else None  # original pixels, as the user gave it
        table = a.head_table(opts.mask_mode, mask, "mask file", box) if opts.scores else None
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
                  "mask_source": table.meta.get("mask_source") if table else None,
                  "mask_warning": table.meta.get("mask_warning") if table else None,
                  "heads": table.rows() if table else []}
        write_atomic(result_paths(out, item)["json"], json.dumps(record, indent=1))
        return str(item.path), None
    except VitexplorerError as exc:  # this image's expected failure (a box that misses it)
        return str(item.path), str(exc)
    except Exception as exc:
        return str(item.path), f"could not write results: {type(exc).__name__}: {exc}"


def _write_overlays(a: Analysis, base: Path, opts: BatchOptions, layers, heads,
                    save_figure) -> None:
    from vitexplorer.core.figures import RANDOM_MARK, FigureOptions, is_random, overlay_figure

    jobs = []
    for method in opts.methods:
        if method in ("head", "head-rollout"):
            jobs += [(method, li, h, f"{method}_L{li}_H{h}") for li in layers for h in heads]
        else:  # rollout (run_batch refused every other method before starting)
            jobs += [(method, li, 0, f"rollout_L{li}") for li in layers]
    for method, li, h, name in jobs:
        path = base.with_name(f"{base.name}__{name}.{opts.format}")
        if opts.format in IMAGE_FORMATS and not opts.decorate:  # the plain overlay
            img = overlay(a.image, a.map(method, li, h), a.geometry, opts.cmap, opts.opacity)
            if is_random(a):  # a demo's maps must never pass for a model's
                img = stamp(img, RANDOM_MARK)
            write_atomic(path, encode(img, opts.format))
        else:
            plain = FigureOptions(preset="single", cmap=opts.cmap) if opts.decorate else \
                FigureOptions(preset="single", cmap=opts.cmap, title="", caption="")
            save_figure(overlay_figure(a, method, li, h, opacity=opts.opacity,
                                       options=plain), path)


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one: a SLURM
    job's or a container's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads(opts: BatchOptions) -> tuple[int, int]:
    """(decoding threads, writing threads) of a run. Decoders: ``opts.workers``, else one
    per core: on the CPU they run between forwards, when the cores are free, and a GPU
    leaves them free throughout (a 15 MP JPEG takes 25-40 ms of one core to decode, a
    batched ViT-S/16 forward a few ms per image on a GPU). Writers: half as many, at least
    two (while one waits on the disk the other encodes: 0.59x -> 0.62x the plain forward
    on 2 cores); one for SVG/PDF figures, drawn by matplotlib, which promises no thread
    safety."""
    decoders = opts.workers or available_cores()
    return decoders, max(2, decoders // 2) if opts.format in IMAGE_FORMATS else 1


def run_record(loaded: LoadedModel, opts: BatchOptions, wh: str, inputs: list[Path]) -> dict:
    import fpng
    import timm

    return {"vitexplorer": __version__, "model": loaded.spec, "weights": loaded.weights,
            "weights_sha256": wh, "options": _jsonable(opts.result_key()),
            **model_sizes(loaded, opts.resize),
            "inputs": [str(p) for p in inputs], "shard": list(opts.shard),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "timm": timm.__version__, "numpy": np.__version__,
                         # the overlay encoders: PNG by fpng, JPEG/WebP by OpenCV
                         "fpng": fpng.__version__, "opencv": cv2.__version__},
            "device": opts.device, "batch_size": opts.batch_size,
            "threads": dict(zip(("decode", "write"), threads(opts), strict=True))}

