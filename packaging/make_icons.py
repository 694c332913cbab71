"""Render resources/vitexplorer.svg to the PNG sizes desktops and bundles use.

Run after editing the SVG: ``python packaging/make_icons.py`` (needs PySide6's QtSvg).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(RESOURCES / "vitexplorer.svg"))
    if not renderer.isValid():
        print("the SVG does not parse", file=sys.stderr)
        return 1
    for size in SIZES:
        img = QImage(size, size, QImage.Format.Format_ARGB32)
        img.fill(Qt.GlobalColor.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(p)
        p.end()
        img.save(str(RESOURCES / "icons" / f"vitexplorer-{size}.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
