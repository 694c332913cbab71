"""Start the desktop application: window first, heavy imports (torch, timm) in workers."""

from __future__ import annotations

import sys
import traceback

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication


def run(argv: list[str] | None = None, path: str | None = None, model: str | None = None,
        weights: str | None = None) -> int:
    """Open the main window (on ``path`` or the sample image) and run the event loop."""
    QApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("vitexplorer")
    app.setOrganizationName("vitexplorer")
    app.setApplicationDisplayName("vitexplorer")
    app.setDesktopFileName("io.github.vitexplorer")
    from PySide6.QtGui import QIcon

    from vitexplorer.desktop import resources_dir

    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        icon.addFile(str(resources_dir() / "icons" / f"vitexplorer-{size}.png"))
    app.setWindowIcon(icon)
    from vitexplorer.gui.dialogs import show_error
    from vitexplorer.gui.main_window import MainWindow

    window = MainWindow(model=model, weights=weights)

    def excepthook(kind, exc, tb):  # unexpected errors: a dialog, the app keeps running
        details = "".join(traceback.format_exception(kind, exc, tb))
        sys.stderr.write(details)
        show_error(window, "Unexpected error", str(exc) or kind.__name__, details)

    sys.excepthook = excepthook
    window.show()
    window.start(path)
    return app.exec()
