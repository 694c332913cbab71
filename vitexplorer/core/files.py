"""Atomic file writes: a temporary file in the same folder, then a rename.

A kill at any moment leaves either the old file or the new one, never half a file; the
temporary name starts with a dot and ends in ``.part`` so runs can sweep leftovers.
Only regular files are ever replaced (a device node or FIFO named as an output is refused),
and :func:`check_output_file` refuses an output that is one of the inputs.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from vitexplorer.core.errors import OutputError, file_kind


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file; on success it replaces ``path`` with normal permissions
    (0666 minus the umask, as ``open`` would give), on failure it is removed. Every
    ``OSError`` (disk full, permission) becomes an :class:`OutputError` naming ``path``."""
    path = Path(path)
    _refuse_special(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"Cannot write '{path}': {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:  # disk full, quota, permission: one line naming the file
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"Cannot write '{path}': {exc.strerror or exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_writer(path) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def _refuse_special(path: Path) -> None:
    """Raise unless ``path`` is absent or a regular file (a rename would replace a device
    node, FIFO or socket with a regular file; a folder cannot be written as a file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"Cannot write '{path}': {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"Cannot write '{path}': it is a folder; name a file")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"Cannot write '{path}': it is not a regular file "
                          f"({file_kind(st.st_mode)}); only regular files are written")


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (resolved paths, then device + inode, so hard
    links and relative/absolute spellings are caught). A symlink loop names no file:
    Python before 3.13 raises RuntimeError for it in ``resolve``."""
    try:
        if a.resolve() == b.resolve():
            return True
        return os.path.samefile(a, b)
    except (OSError, RuntimeError):
        return False


def check_output_file(path: Path, inputs: Iterable[Path] = (), force: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written as an output file: it is one of
    ``inputs`` (never, even with ``force``), a folder, a device or FIFO, exists without
    ``force``, or its folder (or the nearest existing one) is not a writable folder.
    Raises :class:`OutputError`."""
    path = Path(path)
    for inp in inputs:
        if inp is not None and same_file(path, Path(inp)):
            raise OutputError(f"The output '{path}' is the input '{inp}'; an output never "
                              "replaces an input (--force does not change that)")
    _refuse_special(path)
    if path.exists() and not force:
        raise OutputError(f"'{path}' exists; use --force to overwrite")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:  # missing folders are created
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"Cannot write '{path}': '{parent}' is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"Cannot write '{path}': no permission to write in '{parent}'")
