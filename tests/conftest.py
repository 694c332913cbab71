"""Shared fixtures: small random-init timm models and the real test images."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]
TEST_IMAGES = REPO / "tests" / "data"
SAMPLE = REPO / "resources" / "sample.png"


@cache
def special_file(path: Path, kind: str) -> None:
    """A FIFO (``kind="fifo"``) or a character device with /dev/null's numbers at ``path``;
    skips the test where making a device node needs root."""
    import stat

    if kind == "fifo":
        os.mkfifo(path)
        return
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")


def small_model(name: str, **kwargs):
    """A random-init timm model, eval mode, seeded, cached per process."""
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


@pytest.fixture(autouse=True)
def _no_kept_grabcuts():
    """Each test starts with no GrabCut result kept from another (tests count the runs)."""
    from vitexplorer.core.masks import clear_grabcuts

    clear_grabcuts()


@pytest.fixture(scope="session")
def tiny_loaded():
    """vit_tiny at 64 px with random weights, wrapped as the app loads it."""
    from vitexplorer.core.models import load_model

    torch.manual_seed(0)
    return load_model("vit_tiny_patch16_224", "random", img_size=64, depth=3)


@pytest.fixture(scope="session")
def images_dir() -> Path:
    """Real photos and textures (credits in tests/data/README.md)."""
    return TEST_IMAGES


@pytest.fixture
def unreadable_folder(tmp_path) -> Path:
    """A folder this process may not read (mode 000; skipped as root, who reads it anyway),
    made readable again after the test."""
    folder = tmp_path / "unreadable"
    folder.mkdir()
    folder.chmod(0)
    try:
        if os.access(folder, os.R_OK):
            pytest.skip("running as root: a mode 000 folder stays readable")
        yield folder
    finally:
        folder.chmod(0o755)
