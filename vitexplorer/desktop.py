"""Install the Linux desktop entry, icons and AppStream metainfo for the current user.

Follows the XDG base directories: ``$XDG_DATA_HOME`` (default ``~/.local/share``)
``/applications``, ``/icons/hicolor/<size>/apps`` and ``/metainfo``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

APP_ID = "io.github.vitexplorer"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def resources_dir() -> Path:
    """The shipped resources: the source tree's ``resources/`` or the installed package."""
    here = Path(__file__).resolve().parents[1] / "resources"
    if (here / f"{APP_ID}.desktop").is_file():
        return here
    from importlib.resources import files

    return Path(str(files("vitexplorer.resources")))


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def install_desktop(executable: str | None = None) -> list[Path]:
    """Copy the desktop entry (Exec = this installation's ``vitexplorer``), the icons and
    the metainfo into the user's data folder; returns the files written."""
    res = resources_dir()
    exe = executable or shutil.which("vitexplorer") or f"{sys.executable} -m vitexplorer"
    base = data_home()
    written = []
    entry = (res / f"{APP_ID}.desktop").read_text(encoding="utf-8")
    entry = entry.replace("Exec=vitexplorer %f", f"Exec={exe} %f")
    target = base / "applications" / f"{APP_ID}.desktop"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(entry, encoding="utf-8")
    written.append(target)
    for size in ICON_SIZES:
        icon = base / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        icon.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(res / "icons" / f"vitexplorer-{size}.png", icon)
        written.append(icon)
    svg = base / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
    svg.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(res / "vitexplorer.svg", svg)
    written.append(svg)
    meta = base / "metainfo" / f"{APP_ID}.metainfo.xml"
    meta.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(res / f"{APP_ID}.metainfo.xml", meta)
    written.append(meta)
    for tool, arg in (("update-desktop-database", base / "applications"),
                      ("gtk-update-icon-cache", base / "icons" / "hicolor")):
        if shutil.which(tool):
            subprocess.run([tool, "-q", str(arg)], check=False, capture_output=True)
    return written


def uninstall_desktop() -> list[Path]:
    base = data_home()
    paths = [base / "applications" / f"{APP_ID}.desktop",
             base / "metainfo" / f"{APP_ID}.metainfo.xml",
             base / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"]
    paths += [base / "icons" / "hicolor" / f"{s}x{s}" / "apps" / f"{APP_ID}.png"
              for s in ICON_SIZES]
    removed = [p for p in paths if p.exists()]
    for p in removed:
        p.unlink()
    return removed
