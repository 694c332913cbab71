"""The project's error types: each carries a message written for the user."""

from __future__ import annotations

import stat
from pathlib import Path


class VitexplorerError(Exception):
    """Base class of every expected failure (shown as a message, never as a traceback)."""


class ImageError(VitexplorerError):
    """An image file could not be decoded; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot open image '{self.path}': {reason}")


class ModelError(VitexplorerError):
    """A model could not be built or its weights could not be loaded."""


class WeightsUnavailableError(ModelError):
    """Pretrained weights are neither cached nor downloadable (offline or no network)."""

    def __init__(self, message: str, spec: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.spec = spec
        self.reason = reason


class UnsupportedModelError(ModelError):
    """The model has no global attention in ``blocks[i].attn`` that can be captured."""


class Cancelled(VitexplorerError):
    """The user cancelled a running job (raised from inside the forward, between blocks)."""


class OutputError(VitexplorerError):
    """An output path cannot be written safely (an input, a folder, a device, no permission)."""


class UsageError(VitexplorerError):
    """An option value the model or the files do not allow (the CLI exits with status 2)."""


def file_kind(mode: int) -> str:
    """A word for a non-regular file type, for messages."""
    for test, word in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return word
    return "not a regular file"
