"""Command line: ``vitexplorer`` (GUI), ``export``, ``models``.

The CLI only parses and dispatches; all computing is in :mod:`vitexplorer.core`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vitexplorer import __version__
from vitexplorer.core.constants import (
    DEFAULT_CMAP,
    DEFAULT_MODEL,
    DEFAULT_OPACITY,
    DISPLAY_SIDE,
    FORMATS,
    FUSIONS,
    MASK_MODES,
    MASS_SHARE,
    METHODS,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _fraction(text: str, upper_open: bool = False) -> float:
    """argparse type: a number in [0, 1] (or [0, 1) when ``upper_open``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    ok = 0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0
    if not ok:  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"{text} is out of range "
                                         f"({'[0, 1)' if upper_open else '[0, 1]'})")
    return value


def _discard(text: str) -> float:
    return _fraction(text, upper_open=True)


def _at_least_one(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _device(text: str) -> str:
    """argparse type: cpu, cuda, cuda:N, mps or auto (checked for presence when loading)."""
    import re

    if not re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a device (cpu, cuda, cuda:N, mps "
                                         "or auto)")
    return text


def _model_args(p: argparse.ArgumentParser) -> None:
    from vitexplorer.core.images import RESIZE_POLICIES

    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"timm name[.tag] or hf-hub:org/name (default {DEFAULT_MODEL})")
    p.add_argument("--weights", default="pretrained",
                   help="'pretrained' (hub/cache), 'random' (demo) or a local "
                        ".safetensors/.pth/.pt/.bin file")
    p.add_argument("--device", default="cpu", type=_device,
                   help="cpu (default), cuda, mps or auto")
    p.add_argument("--resize", default="crop",
                   choices=RESIZE_POLICIES,
                   help="how the image is fitted to the model (default: the model's own "
                        "resize + centre crop)")
    p.add_argument("--input-size", type=int, default=None, metavar="N",
                   help="run the model at N x N pixels (a multiple of its patch size; the "
                        "position embedding is resampled; maps get N/patch tokens per side)")


def _figure_args(p: argparse.ArgumentParser) -> None:
    """Size, text and colour options of every figure (core/figures.FigureOptions)."""
    g = p.add_argument_group("figure")
    g.add_argument("--preset", default="double", choices=("single", "double", "slide"),
                   help="journal single column (3.5 in), double column (7.2 in, default) or "
                        "a 16:9 slide")
    g.add_argument("--width", help="figure width, e.g. 3.5in, 89mm, 1200px (overrides "
                   "the preset)")
    g.add_argument("--height", help="figure height (default: fitted to the content)")
    g.add_argument("--dpi", type=float, default=300, help="PNG resolution (default 300); "
                   "also converts px lengths")
    g.add_argument("--font-size", type=float, help="points (default: 7 single, 8 double, "
                   "16 slide)")
    g.add_argument("--title", help="figure title ('' for none; default: model, method, "
                   "layer, head, class)")
    g.add_argument("--caption", help="caption under the figure ('' for none; default: the "
                   "image, colour scale and contour)")
    g.add_argument("--scale", default="shared", choices=("shared", "per-panel"),
                   help="grids: one colour scale for all panels (default) or each its own")
    g.add_argument("--cmap", default=DEFAULT_CMAP, help="any matplotlib colormap (default "
                   f"{DEFAULT_CMAP}; cividis, magma, inferno, gray also read in greyscale print)")


def _figure_options(args: argparse.Namespace):
    """The FigureOptions of the parsed figure arguments (ValueError: a bad value)."""
    from vitexplorer.core.figures import FigureOptions, parse_length

    return FigureOptions(
        preset=args.preset, dpi=args.dpi, font_size=args.font_size, title=args.title,
        caption=args.caption, scale=args.scale, cmap=args.cmap,
        width=parse_length(args.width, args.dpi) if args.width else None,
        height=parse_length(args.height, args.dpi) if args.height else None)


def build_parser() -> argparse.ArgumentParser:
    from vitexplorer.core.render import SCALINGS

    parser = argparse.ArgumentParser(
        prog="vitexplorer",
        description="See what every attention head of a Vision Transformer looks at. "
                    "With no command, opens the desktop application.")
    parser.add_argument("--version", action="version", version=f"vitexplorer {__version__}")
    parser.add_argument("--install-desktop", action="store_true",
                        help="add vitexplorer to this user's application menu (Linux) and "
                             "to 'Open with' for images")
    parser.add_argument("--uninstall-desktop", action="store_true",
                        help="remove what --install-desktop added")
    sub = parser.add_subparsers(dest="command")

    ex = sub.add_parser("export", help="write an overlay figure of one image")
    ex.add_argument("image", type=Path)
    ex.add_argument("-o", "--output", type=Path,
                    help="output file (default: IMAGE stem + method + format, next to the "
                         "current folder)")
    _model_args(ex)
    ex.add_argument("--method", default="head", choices=METHODS)
    ex.add_argument("--layer", type=int, default=-1, help="block index, negative from the end")
    ex.add_argument("--head", type=int, default=0)
    ex.add_argument("--class", dest="target", type=int, default=None,
                    help="target class for grad-rollout/relevance (default: top-1)")
    ex.add_argument("--fusion", default="mean", choices=FUSIONS)
    ex.add_argument("--discard", type=_discard, default=0.0,
                    help="rollout discard ratio [0, 1)")
    ex.add_argument("--opacity", type=_fraction, default=DEFAULT_OPACITY,
                    help="overlay opacity [0, 1]")
    ex.add_argument("--scaling", default="minmax", choices=SCALINGS)
    ex.add_argument("--no-contour", action="store_true", help="hide the 60%%-mass contour")
    ex.add_argument("--format", default=None, choices=FORMATS)
    ex.add_argument("--grid", nargs="?", const="layer", choices=("layer", "all"),
                    help="all heads of --layer in one figure, or of every layer ('all')")
    ex.add_argument("--force", action="store_true", help="overwrite an existing output file")
    _figure_args(ex)

    hd = sub.add_parser("heads", help="score and group every head of one image")
    hd.add_argument("image", type=Path)
    _model_args(hd)
    hd.add_argument("--mask", type=Path, help="foreground mask image (white = object); "
                    "default: IMAGE_mask.png next to the image, else --mask-mode")
    hd.add_argument("--box", type=_box, metavar="x0,y0,x1,y1",
                    help="foreground by GrabCut in this box (pixels of the image), when "
                         "there is no mask file")
    hd.add_argument("--mask-mode", default="centre", choices=MASK_MODES,
                    help="foreground without a mask file or box: 'centre' GrabCut in the "
                         "centre box (model-free, the default); 'rollout' / 'grabcut' the "
                         "model's own rollout (labels then measure agreement with it)")
    hd.add_argument("--json", type=Path, help="write the head table as JSON")
    hd.add_argument("--csv", type=Path, help="write the head table as CSV")
    hd.add_argument("--figure", type=Path, help="L x H grid framed by group (png/svg/pdf); "
                    "the similarity figure goes next to it as *_similarity.*")
    hd.add_argument("--importance", action="store_true",
                    help="also ablate every head (drop in target log-probability, KL)")
    hd.add_argument("--tokens", action="store_true",
                    help="high-norm artifact tokens (Darcet et al. 2024): where they sit and "
                         "the share of each head's map they absorb (column artifact_share); "
                         "with --figure also *_tokens (norms, maps with them masked)")
    hd.add_argument("--force", action="store_true", help="overwrite existing outputs")
    _figure_args(hd)

    ba = sub.add_parser("batch", help="process folders: overlays, maps, head tables, profile")
    ba.add_argument("inputs", nargs="+", type=Path, help="image files and/or folders")
    ba.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    _model_args(ba)
    ba.add_argument("--method", default="rollout",
                    help="comma list of head, head-rollout, rollout (default rollout)")
    ba.add_argument("--layers", default=None, help="comma list of blocks or 'all' "
                    "(default: the last)")
    ba.add_argument("--heads", default=None, help="comma list of heads or 'all' (default)")
    ba.add_argument("--outputs", default="overlay,json",
                    help="comma list of overlay, grid, maps, json (json is always written)")
    ba.add_argument("--format", default="png", choices=("png", "jpg", "webp", "svg", "pdf"),
                    help="overlay format (jpg/webp: about a tenth of a photo's PNG; grids "
                         "stay PNG then)")
    ba.add_argument("--overlay-size", default="1600", metavar="full|N",
                    help="long side of overlays in pixels, or 'full' for the original "
                         "resolution (default 1600)")
    ba.add_argument("--decorate", action="store_true", help="overlays as figures with a "
                    "colour bar and caption (default: the bare overlay; random weights are "
                    "marked either way)")
    ba.add_argument("--batch-size", type=_at_least_one, default=8)
    ba.add_argument("--workers", type=_at_least_one, default=None,
                    help="decoding threads (default: one per core; writers: half as many, "
                         "at least 2)")
    ba.add_argument("--masks", type=Path, help="folder of foreground masks (same stem)")
    ba.add_argument("--box", type=_box, metavar="x0,y0,x1,y1",
                    help="GrabCut box for images without a mask (original pixels)")
    ba.add_argument("--mask-mode", default="centre", choices=MASK_MODES,
                    help="foreground without a mask or box (see heads --mask-mode)")
    ba.add_argument("--no-scores", action="store_true",
                    help="skip the per-image head table (faster; no folder head profile)")
    ba.add_argument("--resume", action="store_true", help="continue a run: skip finished "
                    "images")
    ba.add_argument("--overwrite", action="store_true",
                    help="replace existing results; in a folder of a run made with other "
                         "options or weights, first delete everything that run wrote")
    ba.add_argument("--shard", default="1/1", help="K/N: process the K-th of N shares")
    ba.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    su = sub.add_parser("summarize", help="rebuild summary.csv and the head profile of a "
                        "batch output (merges resumed runs and shards)")
    su.add_argument("output", type=Path)

    gui = sub.add_parser("gui", help="open the desktop application (the default)")
    gui.add_argument("path", nargs="?", help="image or folder to open")
    gui.add_argument("--model", default=None, help="model spec (default: the last one used)")
    gui.add_argument("--weights", default=None, help="pretrained, random or a weights file")

    from vitexplorer import cli_science

    cli_science.add_commands(sub, _model_args, _figure_args)

    mo = sub.add_parser("models", help="list supported timm models; * marks cached weights")
    mo.add_argument("filter", nargs="?", default="", help="substring to match")
    mo.add_argument("--cached", action="store_true", help="only models with cached weights")
    mo.add_argument("--architectures", action="store_true",
                    help="list architectures (usable with --weights random or a file)")
    return parser


COMMANDS = ("export", "models", "heads", "batch", "summarize", "gui", "evaluate", "compare")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv.insert(0, "gui")  # `vitexplorer photo.jpg` (file managers' "Open with")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.install_desktop or args.uninstall_desktop:
        from vitexplorer.desktop import install_desktop, uninstall_desktop

        files = install_desktop() if args.install_desktop else uninstall_desktop()
        for f in files:
            print(f)
        return EXIT_OK
    if args.command in (None, "gui"):
        return _gui(getattr(args, "path", None), getattr(args, "model", None),
                    getattr(args, "weights", None))
    from vitexplorer.core.errors import UsageError, VitexplorerError

    _name_warnings()
    try:
        if args.command == "export":
            return _export(args)
        if args.command == "models":
            return _models(args)
        if args.command == "heads":
            return _heads(args)
        if args.command == "batch":
            return _batch(args)
        if args.command == "summarize":
            return _summarize(args)
        if args.command in ("evaluate", "compare"):
            from vitexplorer import cli_science

            return cli_science.run(args)
    except UsageError as exc:
        print(f"vitexplorer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VitexplorerError as exc:
        print(f"vitexplorer: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("vitexplorer: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def _name_warnings() -> None:
    """Warnings raised while an image file is read (Pillow's on broken EXIF data) name the
    file and show for every file, not once a run; every warning is written above the
    progress bar instead of through it. Matplotlib's missing-glyph warnings (a file name in
    a script the font lacks, in a caption) are one line per character, not two lines of
    source per character and drawing."""
    import re
    import warnings

    from tqdm import tqdm

    from vitexplorer.core.images import reading_now

    no_glyph = re.compile(r"Glyph (\d+) .*missing from font")
    told: set[int] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        source = reading_now()
        glyph = no_glyph.search(str(message))
        if glyph:
            code = int(glyph.group(1))
            if code in told:
                return
            told.add(code)
            text = (f"vitexplorer: warning: the figure's font has no glyph for '{chr(code)}' "
                    f"(U+{code:04X}); it is drawn as a box")
        elif source is not None:
            text = f"vitexplorer: warning: {source}: {message}"
        else:
            text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        tqdm.write(text, file=sys.stderr)

    warnings.showwarning = show
    warnings.filterwarnings("always", category=UserWarning, module=r"PIL\.")


def _gui(path: str | None, model: str | None, weights: str | None) -> int:
    try:
        from vitexplorer.gui.app import run
    except ImportError as exc:
        print(f"vitexplorer: the desktop application cannot start ({exc}). "
              "Use 'vitexplorer export' or 'vitexplorer models'.", file=sys.stderr)
        return EXIT_ERROR
    return run(path=path, model=model, weights=weights)


def _figure_format(path: Path, fmt: str | None, option: str) -> str:
    """The figure format of ``path``: its suffix, which must agree with ``fmt`` if given."""
    from vitexplorer.core.errors import UsageError

    suffix = path.suffix.lstrip(".").lower()
    if fmt is not None and suffix != fmt:
        raise UsageError(f"{option} '{path}' does not end in .{fmt} as --format {fmt} "
                         f"writes; name it '{path.with_suffix('.' + fmt).name}'")
    if suffix not in FORMATS:
        raise UsageError(f"{option} '{path}': unknown figure format '.{suffix}' "
                         f"(name it .png, .svg or .pdf)")
    return suffix


def _load_checked(args: argparse.Namespace, inputs: list[Path]):
    """Check the inputs exist, then load the model (built for ``--resize native`` when
    asked) and check the policy against it. Pretrained weights that certainly cannot be
    had are reported before torch and timm are imported (seconds of a start)."""
    from vitexplorer.core.errors import UsageError

    for p in inputs:
        if not p.exists():
            raise UsageError(f"'{p}' is a broken symbolic link (its target is missing or "
                             "it loops)" if p.is_symlink() else f"'{p}' does not exist")
    if args.weights == "pretrained":
        from vitexplorer.core.hub import check_weights_obtainable

        check_weights_obtainable(args.model)
    from vitexplorer.core.checks import check_resize
    from vitexplorer.core.constants import resize_model_kwargs
    from vitexplorer.core.models import load_model

    loaded = load_model(args.model, args.weights, args.device, args.input_size,
                        **resize_model_kwargs(args.resize))
    check_resize(args.resize, loaded)
    return loaded


def _export(args: argparse.Namespace) -> int:
    from functools import partial

    from vitexplorer.core.figures import grid_figure, overlay_figure, save_figure, shown_side
    from vitexplorer.core.files import check_output_file

    if args.output is None:
        fmt = args.format or "png"
        out = Path(f"{args.image.stem}_{args.method}.{fmt}")
    else:
        out = args.output
        fmt = _figure_format(out, args.format, "-o")
    try:
        options = _figure_options(args)
    except ValueError as exc:
        print(f"vitexplorer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    check_output_file(out, [args.image], args.force)
    loaded = _load_checked(args, [args.image])
    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.checks import check_class, check_index

    blocks = loaded.model.blocks
    layer = check_index(args.layer, len(blocks), "--layer", "blocks")
    head = check_index(args.head, blocks[0].attn.num_heads, "--head", "heads")
    target = check_class(args.target, loaded)
    # decoded only as large as the figure shows it (a camera photo's JPEG draft)
    analysis = analyze(loaded, args.image, args.resize, display_side=partial(
        shown_side, overlay=not args.grid, options=options))
    if args.method in ("grad-rollout", "relevance"):
        target = analysis.ensure_gradients(target)
    contour = None if args.no_contour else MASS_SHARE
    if args.grid:
        fig = grid_figure(analysis, args.method, None if args.grid == "all" else layer,
                          None, args.opacity, args.scaling, args.fusion, args.discard,
                          contour=contour, options=options)
    else:
        fig = overlay_figure(analysis, args.method, layer, head, target, None,
                             args.opacity, args.scaling, contour, args.fusion, args.discard,
                             options=options)
    save_figure(fig, out, fmt)
    print(out)
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from vitexplorer.core.models import cached_models, is_cached, supported_models

    names = supported_models(pretrained=not args.architectures)
    cached = cached_models()
    shown = 0
    for name in names:
        if args.filter and args.filter not in name:
            continue
        mark = is_cached(name, cached) if not args.architectures else False
        if args.cached and not mark:
            continue
        print(f"{'*' if mark else ' '} {name}")
        shown += 1
    print(f"{shown} models; * = weights in the local cache", file=sys.stderr)
    return EXIT_OK


TABLE_COLUMNS = ("fg_score", "fg_jaccard", "edge_lift", "texture_share", "colour_score",
                 "distance_ratio", "entropy", "prefix_share", "logprob_drop", "kl",
                 "artifact_share")


def _heads(args: argparse.Namespace) -> int:

    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.errors import UsageError
    from vitexplorer.core.figures import group_grid_figure, save_figure, similarity_figure
    from vitexplorer.core.files import check_output_file, same_file, write_atomic
    from vitexplorer.core.importance import head_importance
    from vitexplorer.core.masks import find_mask_file, fitted_mask
    from vitexplorer.core.relations import cluster_heads, layer_divergence

    try:
        options = _figure_options(args)
    except ValueError as exc:
        print(f"vitexplorer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    outputs = [p for p in (args.json, args.csv, args.figure) if p is not None]
    if args.figure is not None:
        _figure_format(args.figure, None, "--figure")
        if args.tokens:
            outputs.insert(0, args.figure.with_name(f"{args.figure.stem}_tokens"
                                                    f"{args.figure.suffix}"))
        outputs.append(args.figure.with_name(f"{args.figure.stem}_similarity"
                                             f"{args.figure.suffix}"))
    if args.mask is not None and not args.mask.is_file():
        raise UsageError(f"--mask '{args.mask}' is not a file")
    mask_path = args.mask or find_mask_file(args.image)
    inputs = [args.image, *([mask_path] if mask_path else [])]
    for i, p in enumerate(outputs):
        if any(same_file(p, q) for q in outputs[:i]):
            raise UsageError(f"'{p}' is named for two outputs; give each its own name")
        check_output_file(p, inputs, args.force)
    loaded = _load_checked(args, [args.image])
    # on the window's display copy: the same table as the window's, and a camera photo
    # decoded at that size (JPEG draft), not in full
    analysis = analyze(loaded, args.image, args.resize, source=str(args.image),
                       display_side=DISPLAY_SIDE)
    mask = (fitted_mask(mask_path, analysis.photo_size, analysis.image.shape[:2])
            if mask_path else None)
    table = analysis.head_table(args.mask_mode, mask, str(mask_path) if mask_path else None,
                                args.box)
    if "mask_warning" in table.meta:
        print(f"vitexplorer: warning: {table.meta['mask_warning']}", file=sys.stderr)
    print(f"foreground: {table.meta['mask']}", file=sys.stderr)
    if args.importance:
        imp = head_importance(loaded.model, analysis.model_input())
        table.scores["logprob_drop"] = imp["logprob_drop"].numpy().astype(float)
        table.scores["kl"] = imp["kl"].numpy().astype(float)
        table.meta["importance_target"] = imp["target"]
    if args.tokens:
        from vitexplorer.cli_science import add_tokens

        add_tokens(loaded, analysis, table, outputs[0] if args.figure else None)
    print(format_table(table))
    if args.json:
        write_atomic(args.json, table.to_json())
    if args.csv:
        write_atomic(args.csv, table.to_csv())
    if args.figure:
        maps = analysis.head_maps().numpy()
        save_figure(group_grid_figure(analysis, table, options=options), args.figure)
        save_figure(similarity_figure(analysis, cluster_heads(maps), layer_divergence(maps),
                                      options=options), outputs[-1])
    for p in outputs:
        print(f"wrote {p}", file=sys.stderr)
    return EXIT_OK


def format_table(table) -> str:
    """The head table as aligned plain-text columns (one row per head)."""
    cols = [c for c in TABLE_COLUMNS if c in table.scores]
    header = ["layer", "head", "group", "fg_bg", "edge_texture", "range", *cols]
    lines = [header]
    for r in table.rows():
        lines.append([str(r["layer"]), str(r["head"]), r["group"], r["fg_bg"],
                      r["edge_texture"], r["range"], *(f"{r[c]:.3f}" for c in cols)])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(v.rjust(w) if i >= 6 or i < 2 else v.ljust(w)
                                for i, (v, w) in enumerate(zip(row, widths, strict=True)))
                      for row in lines)


def _box(text: str) -> tuple[int, int, int, int]:
    """``--box x0,y0,x1,y1`` (argparse type; masks, and so OpenCV, load only when given)."""
    from vitexplorer.core.masks import parse_box

    try:
        return parse_box(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    """``text`` as a positive integer, else 0."""
    return int(text) if text.isdigit() and int(text) > 0 else 0


def _batch(args: argparse.Namespace) -> int:
    from vitexplorer.core.batch import BATCH_METHODS, OUTPUTS, batch_options, run_batch
    from vitexplorer.core.run_folder import check_inputs, check_masks, check_output

    methods = tuple(m.strip() for m in args.method.split(",") if m.strip())
    bad = [m for m in methods if m not in BATCH_METHODS]
    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    if bad or any(o not in OUTPUTS for o in outputs):
        print(f"vitexplorer: --method takes {', '.join(BATCH_METHODS)}; --outputs takes "
              f"{', '.join(OUTPUTS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        k, n = (int(v) for v in args.shard.split("/"))
        if not 1 <= k <= n:
            raise ValueError
    except ValueError:
        print("vitexplorer: --shard takes K/N with 1 <= K <= N", file=sys.stderr)
        return EXIT_USAGE
    if args.decorate and args.format not in FORMATS:
        print("vitexplorer: --decorate writes figures: --format png, svg or pdf",
              file=sys.stderr)
        return EXIT_USAGE
    overlay_size = None if args.overlay_size == "full" else _positive(args.overlay_size)
    if overlay_size == 0:
        print("vitexplorer: --overlay-size takes 'full' or a positive number of pixels",
              file=sys.stderr)
        return EXIT_USAGE
    check_masks(args.masks)
    check_inputs(args.inputs, args.output)  # outputs never land among the inputs
    check_output(args.output)  # a read-only output fails here, before the model loads
    loaded = _load_checked(args, [])
    try:
        opts = batch_options(
            loaded, methods, args.layers, args.heads, outputs, ("--layers", "--heads"),
            format=args.format, overlay_size=overlay_size, input_size=args.input_size,
            batch_size=args.batch_size, workers=args.workers,
            resize=args.resize, masks=str(args.masks) if args.masks else None,
            mask_mode=args.mask_mode, box=args.box, scores=not args.no_scores, shard=(k, n),
            decorate=args.decorate)
    except ValueError as exc:  # a block or head the model does not have
        print(f"vitexplorer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # a BatchError (the run cannot start) is reported by main() like every core error
    result = with_progress(args.quiet, "batch", lambda progress, stop: run_batch(
        args.inputs, args.output, loaded, opts, args.resume, args.overwrite, progress, stop))
    rate = result.done / result.seconds if result.seconds else 0.0
    print(f"{result.done} images done, {result.skipped} already done, "
          f"{len(result.failed)} failed ({rate:.2f} img/s); results in {args.output}",
          file=sys.stderr)
    if result.failed and result.log is not None and result.log.lost:
        print(f"vitexplorer: {args.output / 'errors.csv'} could not be written in full; "
              "the failures:", file=sys.stderr)
        for path, reason in result.failed:
            print(f"  {path}: {reason}", file=sys.stderr)
    elif result.failed:
        print(f"see {args.output / 'errors.csv'}", file=sys.stderr)
    if result.interrupted:
        return 130
    return EXIT_OK if not result.failed else EXIT_ERROR


def with_progress(quiet: bool, unit: str, work):
    """Run ``work(progress, should_stop)`` with a progress bar (unless ``quiet``) and a first
    Ctrl+C that stops within the current ``unit`` (batch, image: the runners poll it in
    their forwards); a second one aborts."""
    import signal

    stop = {"flag": False}

    def on_sigint(_sig, _frame):
        if stop["flag"]:
            raise KeyboardInterrupt
        stop["flag"] = True
        print(f"\nvitexplorer: stopping within the current {unit}: finished images are "
              "kept, --resume does the rest (Ctrl+C again to abort)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="img", dynamic_ncols=True, file=sys.stderr)

    def progress(done: int, total: int, failed: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done + failed
            bar.set_postfix(failed=failed, refresh=False)
            bar.refresh()

    try:
        return work(progress, lambda: stop["flag"])
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()


def _made_by(folder: Path) -> str | None:
    """'an evaluate' / 'a compare' when ``folder`` holds that command's output, else None."""
    import json

    if (folder / "comparison.json").is_file():
        return "a compare"
    try:
        command = json.loads((folder / "run.json").read_text("utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return "an evaluate" if command == "evaluate" else None


def _summarize(args: argparse.Namespace) -> int:
    from vitexplorer.core.run_folder import summarize

    if not args.output.is_dir():
        print(f"vitexplorer: '{args.output}' is not a folder", file=sys.stderr)
        return EXIT_ERROR
    try:  # a folder that cannot be read would pass for an empty one, or end in a traceback
        next(iter(args.output.iterdir()), None)
    except OSError as exc:
        print(f"vitexplorer: cannot read the folder '{args.output}': {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_ERROR
    unreadable: list[tuple[Path, str]] = []
    n = summarize(args.output, unreadable)
    for path, reason in unreadable:
        print(f"vitexplorer: warning: '{path}' is left out: {reason}", file=sys.stderr)
    if n == 0:
        made_by = _made_by(args.output)
        print(f"vitexplorer: '{args.output}' is {made_by} output, not a batch's: summarize "
              "rebuilds a batch output's summary.csv and head profile" if made_by else
              f"vitexplorer: no per-image results (*.json) under '{args.output}'",
              file=sys.stderr)
        return EXIT_ERROR
    print(f"summarised {n} images into {args.output / 'summary.csv'} and "
          f"{args.output / 'head_profile.csv'}", file=sys.stderr)
    return EXIT_OK
