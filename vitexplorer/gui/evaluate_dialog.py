"""The GUI's ``vitexplorer evaluate``: mask agreement and faithfulness of the first model's
maps over a folder, run by :func:`vitexplorer.core.evaluate_folder.run_evaluate` in a worker
(the same code as the command line), its summary table shown when it ends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from vitexplorer.core.errors import VitexplorerError
from vitexplorer.gui.run_dialog import RunDialog, failures_line

if TYPE_CHECKING:
    from vitexplorer.core.models import LoadedModel
    from vitexplorer.gui.tasks import TaskRunner


def evaluate_job(loaded, folder: Path, out: Path, opts, resume: bool, should_stop=None,
                 progress=None):
    """Runs in a worker: the folder evaluated, then its summary table (Markdown)."""
    from vitexplorer.core.evaluate_folder import run_evaluate

    def tick(done: int, total: int, failed: int) -> None:
        if progress is not None:
            progress(done + failed, total)

    result = run_evaluate([folder], out, loaded, opts, resume, False, tick, should_stop)
    summary = out / "summary.md"
    return result, summary.read_text(encoding="utf-8") if summary.exists() else ""


class EvaluateDialog(RunDialog):
    """Folder, masks, output and steps; Run, a progress bar, then the summary table."""

    #: the run ended (completed, interrupted or with failures): (BatchResult, summary text)
    finished_run = Signal(object, str)
    run_kind, run_name = "evaluate", "evaluation"

    def __init__(self, loaded: LoadedModel, tasks: TaskRunner, parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Evaluate maps over a folder: {loaded.label}")
        self.loaded, self.tasks = loaded, tasks
        self.folder, self.masks, self.output = QLineEdit(), QLineEdit(), QLineEdit()
        self.masks.setPlaceholderText("optional: without masks, faithfulness only")
        self.steps = QSpinBox()
        self.steps.setRange(2, 100)
        self.steps.setValue(10)
        self.faithful = QCheckBox("Faithfulness curves (deletion, insertion, perturbation)")
        self.faithful.setChecked(True)
        self.resume = QCheckBox("Resume a run in the output folder")
        form = QFormLayout()
        for label, edit in (("Images", self.folder), ("Masks", self.masks),
                            ("Output", self.output)):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            browse = QPushButton("…")
            browse.clicked.connect(lambda _c=False, e=edit: self._browse(e))
            row.addWidget(browse)
            form.addRow(label, row)
        form.addRow("Steps", self.steps)
        form.addRow(self.faithful)
        form.addRow(self.resume)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel run")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.watch_runs()
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.summary = QTextBrowser()
        self.summary.setMinimumSize(560, 200)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.summary, 1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.close)  # asks first while a run goes, as batch's Close
        lay.addWidget(close)

    def _browse(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if path:
            edit.setText(path)

    def start(self) -> None:
        from vitexplorer.core.evaluate_folder import EvaluateOptions

        folder, out = Path(self.folder.text().strip()), Path(self.output.text().strip())
        masks = self.masks.text().strip()
        if not folder.is_dir() or not self.output.text().strip():
            self.summary.setPlainText("Choose a folder of images and an output folder.")
            return
        loaded = self.loaded
        opts = EvaluateOptions(model=loaded.spec, weights=loaded.weights,
                               device=str(loaded.device), masks=masks or None,
                               steps=self.steps.value(),
                               faithfulness=self.faithful.isChecked())
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.summary.setPlainText("Running…")
        self.tasks.run("evaluate", evaluate_job, loaded, folder, out, opts,
                       self.resume.isChecked(), on_done=self._done, on_error=self._failed,
                       on_progress=self._progress,
                       message=f"Evaluating the maps of {folder.name}…")

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _show_stopping(self) -> None:
        self.summary.setPlainText("Stopping: the image in progress is dropped (Resume "
                                  "redoes it)…")

    def _show_cancelled(self) -> None:
        self.summary.setPlainText("Cancelled: the images done are kept in the output "
                                  "folder; run again with Resume to continue.")

    def _kept(self) -> str:
        return "The images done are kept; Run with Resume continues later."

    def _done(self, outcome) -> None:
        result, summary = outcome
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        errors = Path(self.output.text().strip()) / "errors.csv"
        lines = [f"{result.done} images done, {result.skipped} already done, "
                 f"{len(result.failed)} failed." + failures_line(result, errors)]
        self.summary.setMarkdown("\n\n".join([*lines, summary]))
        self.finished_run.emit(result, summary)

    def _failed(self, exc: BaseException) -> bool:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if isinstance(exc, VitexplorerError):
            self.summary.setPlainText(str(exc))
            return True
        return False
