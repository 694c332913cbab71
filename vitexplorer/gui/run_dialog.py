"""What the batch and evaluate dialogs share while their run goes: Cancel and Esc stop it
in view, Run comes back once the cancelled worker has ended (two runs never write one output
folder at once), closing asks first, and the end names the first file that failed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog, QMessageBox, QPushButton

if TYPE_CHECKING:
    from vitexplorer.gui.tasks import TaskRunner


class RunDialog(QDialog):
    """A dialog that runs one task of kind :attr:`run_kind` through ``tasks``. Subclasses
    make ``run_button`` and ``cancel_button``, call :meth:`watch_runs` once, and say what a
    stop shows (:meth:`_show_stopping`, :meth:`_show_cancelled`) and keeps (:meth:`_kept`)."""

    #: the task kind of the run, and its name in the question asked on closing
    run_kind = ""
    run_name = ""
    tasks: TaskRunner
    run_button: QPushButton
    cancel_button: QPushButton

    def watch_runs(self) -> None:
        self._stopping = False  # cancelled, its worker still finishing the current step
        self.tasks.worker_finished.connect(self._worker_ended)

    def cancel(self) -> None:
        """Stop the run: both runners poll should_stop within a forward, and write what
        is already through the model before their worker ends."""
        self.tasks.cancel(self.run_kind)
        self._stopping = True
        self.cancel_button.setEnabled(False)
        self._show_stopping()

    def _worker_ended(self, kind: str) -> None:
        """The cancelled run's worker has written its last step: Run again (Resume)."""
        if kind != self.run_kind or not self._stopping or self.tasks.is_running(kind):
            return
        self._stopping = False
        self.run_button.setEnabled(True)
        self._show_cancelled()

    def reject(self) -> None:
        """Esc during a run cancels it here, where its end is shown; otherwise closes."""
        if self.tasks.is_running(self.run_kind):
            self.cancel()
        else:
            super().reject()

    def closeEvent(self, event) -> None:
        """Closing while a run goes asks first: it would stop the run (No is the default)."""
        if self.tasks.is_running(self.run_kind):
            answer = QMessageBox.question(
                self, f"Stop the {self.run_name}?", f"Closing stops the {self.run_name}. "
                f"{self._kept()}\n\nStop it and close?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.cancel()
        super().closeEvent(event)

    def _show_stopping(self) -> None:
        raise NotImplementedError

    def _show_cancelled(self) -> None:
        raise NotImplementedError

    def _kept(self) -> str:
        raise NotImplementedError


def failures_line(result, errors: Path) -> str:
    """The first file that failed and why, and where every failure is listed ('' if none
    failed)."""
    if not result.failed:
        return ""
    path, reason = result.failed[0]
    more = f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else ""
    return f" {Path(path).name}: {reason}{more}; see {errors}."
