"""Desktop integration files validate and install; version in one place."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO
from vitexplorer import __version__
from vitexplorer.cli import main
from vitexplorer.desktop import APP_ID, ICON_SIZES, install_desktop, uninstall_desktop

RES = REPO / "resources"


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-utils not installed (.ci/run installs it)")
def test_desktop_file_validates():
    res = subprocess.run(["desktop-file-validate", str(RES / f"{APP_ID}.desktop")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "error" not in res.stdout.lower(), res.stdout


@pytest.mark.skipif(shutil.which("appstreamcli") is None,
                    reason="appstream not installed (.ci/run installs it)")
def test_metainfo_validates():
    res = subprocess.run(["appstreamcli", "validate", "--no-net",
                          str(RES / f"{APP_ID}.metainfo.xml")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_install_and_uninstall_for_the_user(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    files = install_desktop("/opt/vx/bin/vitexplorer")
    entry = (tmp_path / "applications" / f"{APP_ID}.desktop").read_text()
    assert "Exec=/opt/vx/bin/vitexplorer %f" in entry and "MimeType=image/png;" in entry
    for size in ICON_SIZES:
        assert (tmp_path / "icons" / "hicolor" / f"{size}x{size}" / "apps" /
                f"{APP_ID}.png").exists()
    assert (tmp_path / "metainfo" / f"{APP_ID}.metainfo.xml").exists()
    assert len(files) == len(ICON_SIZES) + 3
    assert main(["--uninstall-desktop"]) == 0
    assert not (tmp_path / "applications" / f"{APP_ID}.desktop").exists()
    assert len(uninstall_desktop()) == 0


def test_icons_exist_in_every_size():
    from PIL import Image

    for size in ICON_SIZES:
        assert Image.open(RES / "icons" / f"vitexplorer-{size}.png").size == (size, size)


def test_version_in_one_place():
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["dynamic"] == ["version"]
    assert __version__ in (REPO / "CHANGELOG.md").read_text()
    assert f'version="{__version__}"' in (RES / f"{APP_ID}.metainfo.xml").read_text()
