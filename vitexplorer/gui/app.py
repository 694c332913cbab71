"""Start the desktop application: window first, heavy imports (torch, timm) in workers."""

from __future__ import annotations

import os
import signal
import sys
import traceback

from PySide6.QtCore import Qt, QThreadPool, QTimer, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QWidget

#: printed when Qt cannot start its platform plugin (Qt >= 6.5 needs libxcb-cursor for X11)
PLATFORM_HINT = (
    "vitexplorer: the window cannot open because Qt's platform plugin did not load. On a "
    "Linux desktop install the X11 cursor library: 'sudo apt install libxcb-cursor0' "
    "(Debian/Ubuntu) or 'sudo dnf install xcb-util-cursor' / 'sudo pacman -S xcb-util-cursor' "
    "(Fedora/Arch); or try QT_QPA_PLATFORM=wayland. The command line works without a "
    "window: vitexplorer export --help.")


_hinted: list[bool] = []


def _qt_message(_mode, _context, message: str) -> None:
    """Qt's messages to stderr, plus the way out when the platform plugin fails (Qt then
    aborts the process, so the hint must be printed from here)."""
    sys.stderr.write(f"{message}\n")
    if "platform plugin" in message.lower() and not _hinted:
        _hinted.append(True)
        sys.stderr.write(f"{PLATFORM_HINT}\n")
    sys.stderr.flush()


def close_on_signals(window: QWidget) -> QTimer:
    """Ctrl+C (SIGINT) and SIGTERM close ``window`` as its close button would (settings
    saved, jobs cancelled). Python runs signal handlers only between bytecodes, so a timer
    wakes the interpreter while Qt's loop waits; returns that timer."""

    def close(_sig, _frame) -> None:
        QTimer.singleShot(0, window.close)

    signal.signal(signal.SIGINT, close)
    signal.signal(signal.SIGTERM, close)
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return timer


def run(argv: list[str] | None = None, path: str | None = None, model: str | None = None,
        weights: str | None = None) -> int:
    """Open the main window (on ``path`` or the sample image) and run the event loop."""
    QApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    qInstallMessageHandler(_qt_message)
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
    close_on_signals(window)
    window.show()
    window.start(path)
    code = app.exec()
    # the close waited in view for the running jobs (gui/closing.py): here their threads
    # only return; after Quit now a job still running is left to the process exit
    if window.closing.abandoned or not QThreadPool.globalInstance().waitForDone(5_000):
        sys.stderr.write("vitexplorer: quit without waiting for the running job\n")
        sys.stderr.flush()
        os._exit(code)
    return code
