"""The inputs of a folder run (``vitexplorer batch``, ``vitexplorer evaluate``): image
files found by content under the given files and folders, each with a unique output name
that mirrors its input tree, and a stable shard of them for ``--shard K/N``.

Only regular files are candidates (a FIFO would block the reader forever); skipped FIFOs,
devices, broken links and unreadable folders are returned as (path, reason) for
``errors.csv``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vitexplorer.core.constants import IMAGE_SUFFIXES
from vitexplorer.core.errors import file_kind

#: ISO-BMFF brands of AVIF/HEIF stills and sequences (Pillow decodes AVIF)
AVIF_BRANDS = (b"avif", b"avis")
#: HEIF/HEIC (phones' photos), which Pillow cannot decode: found so that they are reported
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
                    b"II*\x00", b"MM\x00*", b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")


@dataclass
class Item:
    """One discovered input file and where its results go (relative to the output)."""

    path: Path
    rel: Path  # output stem, mirroring the input tree


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
    if head[4:8] == b"ftyp" and head[8:12] in AVIF_BRANDS + HEIF_BRANDS:
        return True
    return path.suffix.lower() in IMAGE_SUFFIXES


def discover(inputs: list[Path], out: Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Image files under ``inputs`` (folders recursively; hidden files and ``out`` skipped),
    in a stable order, each with a unique output stem that mirrors its input tree.
    Only regular files are candidates. Returns the items and (path, reason) for inputs
    that cannot be used (missing, broken links, FIFOs and devices, unreadable folders)."""
    out_resolved = out.resolve()
    items: list[Item] = []
    errors: list[tuple[str, str]] = []
    used: set[str] = set()

    def prefix_for(p: Path) -> str:
        # the resolved name: '..' or '.' never becomes a path component that leaves ``out``
        base = p.resolve().name or "input"
        name, n = base, 1
        while name in used:  # x/imgs, y/imgs, z/imgs-2 -> imgs, imgs-2, imgs-2-2
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        return name

    def unusable(p: Path) -> str | None:
        """Why ``p`` is no candidate, or None for a regular file."""
        try:
            st = p.stat()
        except (OSError, RuntimeError) as exc:
            if p.is_symlink():
                return "broken or looping symbolic link"
            return getattr(exc, "strerror", None) or str(exc)
        if not stat.S_ISREG(st.st_mode):
            return f"not a regular file ({file_kind(st.st_mode)}); skipped"
        return None

    def unreadable(exc: OSError) -> None:
        errors.append((str(exc.filename), f"cannot read this folder: {exc.strerror or exc}"))

    for inp in inputs:
        if not os.path.lexists(inp):
            errors.append((str(inp), "no such file or folder"))
            continue
        if inp.is_dir():
            root = prefix_for(inp)
            for dirpath, dirnames, filenames in os.walk(inp, onerror=unreadable,
                                                        followlinks=False):
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
                    why = unusable(p)
                    if why is not None:
                        errors.append((str(p), why))
                        continue
                    if looks_like_image(p):
                        items.append(Item(p, Path(root) / p.relative_to(inp)))
        else:
            why = unusable(inp)
            if why is None:
                items.append(Item(inp, Path(prefix_for(inp))))
            else:
                errors.append((str(inp), why))
    return items, errors


def shard_of(item: Item, n: int) -> int:
    """Stable shard index (0..n-1) of an item, from a hash of its output path."""
    digest = hashlib.sha1(str(item.rel).encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % n

