"""Command line: ``vitexplorer`` (GUI), ``export``, ``models``.

The CLI only parses and dispatches; all computing is in :mod:`vitexplorer.core`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vitexplorer import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _model_args(p: argparse.ArgumentParser) -> None:
    from vitexplorer.core.constants import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"timm name[.tag] or hf-hub:org/name (default {DEFAULT_MODEL})")
    p.add_argument("--weights", default="pretrained",
                   help="'pretrained' (hub/cache), 'random' (demo) or a local "
                        ".safetensors/.pth/.pt/.bin file")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    p.add_argument("--resize", default="crop",
                   choices=("crop", "stretch", "letterbox", "native"),
                   help="how the image is fitted to the model (default: the model's own "
                        "resize + centre crop)")


def build_parser() -> argparse.ArgumentParser:
    from vitexplorer.core.constants import METHODS
    from vitexplorer.core.render import COLORMAPS, SCALINGS

    parser = argparse.ArgumentParser(
        prog="vitexplorer",
        description="See what every attention head of a Vision Transformer looks at. "
                    "With no command, opens the desktop application.")
    parser.add_argument("--version", action="version", version=f"vitexplorer {__version__}")
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
    ex.add_argument("--fusion", default="mean", choices=("mean", "max", "min"))
    ex.add_argument("--discard", type=float, default=0.0, help="rollout discard ratio [0, 1)")
    ex.add_argument("--cmap", default="inferno", choices=COLORMAPS)
    ex.add_argument("--opacity", type=float, default=0.6)
    ex.add_argument("--scaling", default="minmax", choices=SCALINGS)
    ex.add_argument("--no-contour", action="store_true", help="hide the 60%%-mass contour")
    ex.add_argument("--format", default=None, choices=("png", "svg", "pdf"))
    ex.add_argument("--grid", nargs="?", const="layer", choices=("layer", "all"),
                    help="all heads of --layer in one figure, or of every layer ('all')")
    ex.add_argument("--force", action="store_true", help="overwrite an existing output file")

    gui = sub.add_parser("gui", help="open the desktop application (the default)")
    gui.add_argument("path", nargs="?", help="image or folder to open")
    gui.add_argument("--model", default=None, help="model spec (default: the last one used)")
    gui.add_argument("--weights", default=None, help="pretrained, random or a weights file")

    mo = sub.add_parser("models", help="list supported timm models; * marks cached weights")
    mo.add_argument("filter", nargs="?", default="", help="substring to match")
    mo.add_argument("--cached", action="store_true", help="only models with cached weights")
    mo.add_argument("--architectures", action="store_true",
                    help="list architectures (usable with --weights random or a file)")
    return parser


COMMANDS = ("export", "models", "gui")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        argv.insert(0, "gui")  # `vitexplorer photo.jpg` (file managers' "Open with")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "gui"):
        return _gui(getattr(args, "path", None), getattr(args, "model", None),
                    getattr(args, "weights", None))
    from vitexplorer.core.errors import VitexplorerError

    try:
        if args.command == "export":
            return _export(args)
        if args.command == "models":
            return _models(args)
    except VitexplorerError as exc:
        print(f"vitexplorer: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("vitexplorer: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def _gui(path: str | None, model: str | None, weights: str | None) -> int:
    try:
        from vitexplorer.gui.app import run
    except ImportError as exc:
        print(f"vitexplorer: the desktop application cannot start ({exc}). "
              "Use 'vitexplorer export' or 'vitexplorer models'.", file=sys.stderr)
        return EXIT_ERROR
    return run(path=path, model=model, weights=weights)


def _export(args: argparse.Namespace) -> int:
    from vitexplorer.core.analysis import add_gradients, analyze
    from vitexplorer.core.figures import grid_figure, overlay_figure, save_figure
    from vitexplorer.core.models import load_model

    fmt = args.format or (args.output.suffix.lstrip(".").lower() if args.output else "png")
    if fmt not in ("png", "svg", "pdf"):
        print(f"vitexplorer: unknown output format '{fmt}' (png, svg or pdf)", file=sys.stderr)
        return EXIT_USAGE
    out = args.output or Path(f"{args.image.stem}_{args.method}.{fmt}")
    if out.exists() and not args.force:
        print(f"vitexplorer: '{out}' exists; use --force to overwrite", file=sys.stderr)
        return EXIT_ERROR
    loaded = load_model(args.model, args.weights, args.device)
    analysis = analyze(loaded, args.image, args.resize)
    target = args.target
    if args.method in ("grad-rollout", "relevance"):
        target = add_gradients(loaded, analysis, target)
    if args.grid:
        fig = grid_figure(analysis, args.method, None if args.grid == "all" else args.layer,
                          args.cmap, args.opacity, args.scaling, args.fusion, args.discard)
    else:
        fig = overlay_figure(analysis, args.method, args.layer, args.head, target, args.cmap,
                             args.opacity, args.scaling, None if args.no_contour else 0.6,
                             args.fusion, args.discard)
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
