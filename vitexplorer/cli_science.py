"""Command line of the science commands: ``evaluate`` and ``compare``.

Parsing and dispatch only; the work is in :mod:`vitexplorer.core`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
COMMANDS = ("evaluate", "compare")


def add_commands(sub, model_args: Callable[[argparse.ArgumentParser], None],
                 figure_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``evaluate`` and ``compare`` to the subparsers ``sub`` (``figure_args`` adds the
    figure size, text and colour options their figures share with ``export``)."""
    from vitexplorer.cli import _at_least_one, _device
    from vitexplorer.core.constants import FORMATS
    from vitexplorer.core.images import RESIZE_POLICIES

    ev = sub.add_parser("evaluate", help="mask agreement (DINO Jaccard) and faithfulness "
                        "(deletion/insertion, perturbation AUC) of maps over a folder")
    ev.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders")
    ev.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    model_args(ev)
    ev.set_defaults(resize="stretch")
    ev.add_argument("--masks", type=Path, help="folder of object masks (same stem; VOC "
                    "palette PNGs or binary masks); without it, faithfulness only")
    ev.add_argument("--layers", default=None, help="comma list of blocks whose heads get a "
                    "Jaccard index, or 'all' (default: the last, as in DINO)")
    ev.add_argument("--methods", default="rollout,grad-rollout,relevance",
                    help="comma list of rollout, grad-rollout, relevance (a random map is "
                         "always added)")
    ev.add_argument("--class", dest="target", type=int, default=None,
                    help="class of the faithfulness curves (default: each image's top-1)")
    ev.add_argument("--steps", type=_steps, default=10,
                    help=f"perturbation steps 0..100%% ({MIN_STEPS}..{MAX_STEPS})")
    ev.add_argument("--no-faithfulness", action="store_true",
                    help="mask agreement only (no perturbed forwards)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the random maps")
    ev.add_argument("--format", default="png", choices=FORMATS)
    ev.add_argument("--batch-size", type=_at_least_one, default=32,
                    help="perturbed images per forward")
    ev.add_argument("--resume", action="store_true", help="skip finished images")
    ev.add_argument("--overwrite", action="store_true", help="replace existing results")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    figure_args(ev)

    co = sub.add_parser("compare", help="pair the heads of two models by how alike their "
                        "maps are over images; figures, joined head tables, CSV/JSON")
    co.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders")
    co.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    co.add_argument("--model", action="append", default=None,
                    help="model A, then model B (once: the same architecture for both)")
    co.add_argument("--weights", action="append", default=None,
                    help="weights of A, then of B (once: the same for both); pretrained, "
                         "random or a local file")
    co.add_argument("--device", default="cpu", type=_device,
                    help="cpu (default), cuda, mps or auto")
    co.add_argument("--resize", default="crop",
                    choices=RESIZE_POLICIES)
    co.add_argument("--input-size", type=int, default=None, metavar="N",
                    help="build both models for N x N inputs (default: each its own)")
    co.add_argument("--pairs", type=_at_least_one, default=6,
                    help="matched pairs in the figure")
    co.add_argument("--size", type=_canvas_size, default=64,
                    help=f"long side in pixels of the canvas the maps are compared on "
                         f"({MIN_CANVAS}..{MAX_CANVAS})")
    co.add_argument("--format", default="png", choices=FORMATS)
    co.add_argument("--tokens", action="store_true",
                    help="also the artifact tokens of both models (Darcet et al. 2024; e.g. "
                         "with against without registers): artifact_share_a/_b columns, "
                         "high-norm tokens per block in the JSON")
    co.add_argument("--force", action="store_true", help="overwrite existing outputs")
    figure_args(co)


#: compare's canvas: every head map of both models is held at this size (ViT-B at 1024 px:
#: 2 x 144 maps x 4 MB, 1.2 GB); 100000 asked the allocator for 33 GB
MIN_CANVAS, MAX_CANVAS = 8, 1024


#: evaluate's steps: each is three forwards per method and image, and steps beyond the
#: patches (196 at 224 px, 3600 for ViT-S/8 at 480 px) only repeat points; 100000 ran for hours
MIN_STEPS, MAX_STEPS = 2, 1000


def _int_in(text: str, lo: int, hi: int, unit: str = "") -> int:
    """argparse type body: ``text`` as an integer in ``lo..hi``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{text} is out of range ({lo}..{hi}{unit})")
    return value


def _canvas_size(text: str) -> int:
    """argparse type: compare's ``--size``, an integer in MIN_CANVAS..MAX_CANVAS."""
    return _int_in(text, MIN_CANVAS, MAX_CANVAS, " pixels")


def _steps(text: str) -> int:
    """argparse type: evaluate's ``--steps``, an integer in MIN_STEPS..MAX_STEPS."""
    return _int_in(text, MIN_STEPS, MAX_STEPS)


def run(args: argparse.Namespace) -> int:
    from vitexplorer.cli import _figure_options

    try:  # bad sizes or colormaps end here, before any model is loaded
        figure = _figure_options(args)
    except ValueError as exc:
        print(f"vitexplorer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "evaluate":
        return _evaluate(args, figure)
    return _compare(args, figure)


def _compare(args: argparse.Namespace, figure) -> int:
    from vitexplorer.core.compare import compare_models
    from vitexplorer.core.constants import DEFAULT_MODEL, resize_model_kwargs
    from vitexplorer.core.discovery import discover
    from vitexplorer.core.figures import save_figure
    from vitexplorer.core.files import write_atomic
    from vitexplorer.core.models import load_model
    from vitexplorer.core.run_folder import check_output
    from vitexplorer.core.science_figures import comparison_figure

    models = args.model or [DEFAULT_MODEL]
    weights = args.weights or ["pretrained"]
    if len(models) > 2 or len(weights) > 2 or (len(models) == 1 and len(weights) == 1):
        print("vitexplorer: compare takes two models (--model A --model B) or one model "
              "with two weights (--weights WA --weights WB)", file=sys.stderr)
        return EXIT_USAGE
    specs = [(models[i % len(models)], weights[i % len(weights)]) for i in range(2)]
    out = args.output
    files = {"json": out / "comparison.json", "csv": out / "matches.csv",
             "figure": out / f"comparison.{args.format}"}
    clash = [p for p in files.values() if p.exists()]
    if clash and not args.force:
        print(f"vitexplorer: '{clash[0]}' exists; use --force to overwrite", file=sys.stderr)
        return EXIT_ERROR
    check_output(out)
    items, errors = discover(args.inputs, out)
    for path, reason in errors:
        print(f"vitexplorer: skipped '{path}': {reason}", file=sys.stderr)
    a, b = (load_model(m, w, args.device, args.input_size, **resize_model_kwargs(args.resize))
            for m, w in specs)
    comp = compare_models(a, b, [it.path for it in items], args.resize, args.size,
                          tokens=args.tokens)
    for path, reason in comp.skipped:
        print(f"vitexplorer: skipped '{path}': {reason}", file=sys.stderr)
    write_atomic(files["json"], comp.to_json())
    write_atomic(files["csv"], comp.to_csv())
    save_figure(comparison_figure(comp, args.pairs, options=figure), files["figure"])
    print(f"A: {a.label}\nB: {b.label}\n{comp.n_images} images; fused rollouts: JS "
          f"{comp.rollout_distance:.3f}; {len(comp.matches)} matched heads")
    for side, art in zip("AB", comp.artifacts, strict=True):
        if art is not None:
            per_block = ", ".join(f"{v:g}" for v in art["flagged_per_block"])
            print(f"{side}: high-norm patch tokens per block (mean over images): {per_block}")
    for r in comp.rows()[: args.pairs]:
        print(f"  A {r['layer_a']}.{r['head_a']} <-> B {r['layer_b']}.{r['head_b']}  "
              f"JS {r['js_distance']:.3f}  {r.get('group_a', '')} / {r.get('group_b', '')}")
    for p in files.values():
        print(f"wrote {p}", file=sys.stderr)
    return EXIT_OK


def _evaluate(args: argparse.Namespace, figure) -> int:
    from vitexplorer.cli import with_progress
    from vitexplorer.core.batch import parse_indices
    from vitexplorer.core.checks import check_class
    from vitexplorer.core.constants import resize_model_kwargs
    from vitexplorer.core.evaluate_folder import EVAL_METHODS, EvaluateOptions, run_evaluate
    from vitexplorer.core.models import load_model
    from vitexplorer.core.run_folder import check_inputs, check_masks, check_output

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods or any(m not in EVAL_METHODS for m in methods):
        print(f"vitexplorer: --methods takes {', '.join(EVAL_METHODS)}", file=sys.stderr)
        return EXIT_USAGE
    check_masks(args.masks)  # a UsageError, as batch says it
    check_inputs(args.inputs, args.output)  # as batch: before the model loads
    check_output(args.output)
    loaded = load_model(args.model, args.weights, args.device, args.input_size,
                        **resize_model_kwargs(args.resize))
    check_class(args.target, loaded)  # a UsageError, not a failure of every image
    try:
        layers = parse_indices(args.layers, len(loaded.model.blocks), "--layers")
    except ValueError as exc:
        print(f"vitexplorer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    opts = EvaluateOptions(
        model=args.model, weights=args.weights, device=args.device,
        masks=str(args.masks) if args.masks else None, resize=args.resize,
        input_size=args.input_size, layers=layers,
        methods=methods, target=args.target, steps=args.steps, seed=args.seed,
        faithfulness=not args.no_faithfulness, format=args.format,
        batch_size=args.batch_size)
    # a BatchError (the run cannot start) is reported by cli.main() like every core error
    result = with_progress(args.quiet, "image", lambda progress, stop: run_evaluate(
        args.inputs, args.output, loaded, opts, args.resume, args.overwrite, progress, stop,
        figure))
    summary = args.output / "summary.md"
    if summary.exists():
        print(summary.read_text(encoding="utf-8"))
    print(f"{result.done} images done, {result.skipped} already done, "
          f"{len(result.failed)} failed; results in {args.output}", file=sys.stderr)
    if result.failed:
        print(f"see {args.output / 'errors.csv'}", file=sys.stderr)
    if result.interrupted:
        return 130
    return EXIT_OK if not result.failed else EXIT_ERROR


def add_tokens(loaded, analysis, table, figure: Path | None = None) -> None:
    """``heads --tokens``: the artifact-share column and the flagged tokens in the table's
    metadata (JSON), a line per block with artifacts, and optionally the tokens figure."""
    from vitexplorer.core.tokens import absorbed_share, artifacts_of

    art = artifacts_of(loaded.model, analysis.model_input().to(loaded.device))
    table.scores["artifact_share"] = absorbed_share(analysis.rows.numpy(), art.attended(),
                                                    analysis.layout)
    table.meta["artifact_factor"] = art.factor
    table.meta["artifact_tokens"] = art.listing()
    n = analysis.layout.grid[0] * analysis.layout.grid[1]
    for entry in table.meta["artifact_tokens"]:
        if entry["tokens"]:
            where = ", ".join(f"({t['row']},{t['col']}) {t['ratio']:.0f}x"
                              for t in entry["tokens"][:6])
            print(f"block {entry['layer']}: {len(entry['tokens'])} of {n} patch tokens above "
                  f"{art.factor:g}x the median norm: {where}", file=sys.stderr)
    if not any(e["tokens"] for e in table.meta["artifact_tokens"]):
        print(f"no patch token above {art.factor:g}x its block's median norm",
              file=sys.stderr)
    if figure is not None:
        from vitexplorer.core.figures import save_figure
        from vitexplorer.core.science_figures import tokens_figure

        save_figure(tokens_figure(analysis, art), figure)
