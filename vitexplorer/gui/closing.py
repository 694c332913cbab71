"""Closing the window while a worker still runs: the job is cancelled, and a worker that
cannot stop at once (a model load, a forward, a figure being written) is waited for in view.

The window hides and a small dialog says which job is finishing, with Quit now for a user
who will not wait; the application quits once the last worker has ended. It used to wait
after the event loop had ended, with no window, up to 60 s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QProgressDialog

if TYPE_CHECKING:
    from collections.abc import Callable

    from PySide6.QtWidgets import QWidget

    from vitexplorer.gui.tasks import TaskRunner


class Closing(QObject):
    """Defers ``window``'s close until the workers of ``tasks`` have ended."""

    def __init__(self, window: QWidget, tasks: TaskRunner) -> None:
        super().__init__(window)
        self._window = window
        self._tasks = tasks
        self.dialog: QProgressDialog | None = None
        #: Quit now was chosen: the process exits without waiting for the worker
        self.abandoned = False
        tasks.worker_finished.connect(self._worker_ended)

    @property
    def finishing(self) -> bool:
        return self.dialog is not None

    def defer(self, save: Callable[[], None]) -> bool:
        """Cancel every job and ``save`` the window's state on the first close; True when
        the close must wait (the window then hides and the dialog shows). A second close
        meanwhile (Ctrl+C again, SIGTERM) quits without waiting."""
        if not self.finishing:  # hidden while finishing: saved as the user left it
            self._tasks.cancel()
            save()
        jobs = self._tasks.live_jobs()
        if self.abandoned or not jobs:
            return False
        if self.finishing:
            self.quit_now()
            return False
        # parentless: a primary window, whose close quits the application at the end
        self.dialog = dialog = QProgressDialog(self._text(jobs[0]), "Quit now", 0, 0)
        dialog.setWindowTitle("Closing vitexplorer")
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.setMinimumDuration(0)
        dialog.setToolTip("Quit now does not wait: the job's result is lost")
        dialog.canceled.connect(self.quit_now)
        self._window.hide()
        dialog.show()
        return True

    def quit_now(self) -> None:
        self.abandoned = True
        self._finish()

    def _worker_ended(self, _kind: str) -> None:
        if not self.finishing:
            return
        jobs = self._tasks.live_jobs()
        if not jobs:
            self._finish()
        else:  # the job named has ended: name the one still waited for
            self.dialog.setLabelText(self._text(jobs[0]))

    @staticmethod
    def _text(job: str) -> str:
        return f"vitexplorer closes once the running job has ended:\n{job}"

    def _finish(self) -> None:
        """Close the hidden window, then the dialog: the last visible window's close ends
        the event loop."""
        dialog = self.dialog
        self._window.close()
        if dialog is not None:
            dialog.canceled.disconnect(self.quit_now)  # its close emits canceled too
            dialog.close()
            dialog.deleteLater()
            self.dialog = None  # a worker ending after Quit now finds nothing to finish
