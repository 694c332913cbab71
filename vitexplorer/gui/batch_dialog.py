"""File > Batch process: the same runner as ``vitexplorer batch``, in a worker thread.

Progress is read by polling a plain dict that the worker updates (no object crosses threads
through a signal); Cancel (or Esc) starts no other batch and stops a forward in flight
within it (its images are redone by a resume); Run comes back once the images already
through the model are written: two runs never write one folder at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from vitexplorer.core.constants import FORMATS
from vitexplorer.gui.picture_dialog import PictureDialog
from vitexplorer.gui.run_dialog import RunDialog, failures_line
from vitexplorer.gui.scaled_pixmap import ScaledPixmap

if TYPE_CHECKING:
    from vitexplorer.core.models import LoadedModel
    from vitexplorer.gui.state import ViewOptions
    from vitexplorer.gui.tasks import TaskRunner

#: where results go when no output folder was chosen before (never beside the inputs)
DEFAULT_OUTPUT_BASE = Path.home() / "vitexplorer-results"


def batch_job(loaded, inputs, out, opts, resume, overwrite, state, should_stop=None):
    """Runs in a worker: the core runner, reporting into ``state``."""
    from vitexplorer.core.batch import run_batch

    def progress(done, total, failed):
        state.update(done=done, total=total, failed=failed)

    return run_batch(inputs, out, loaded, opts, resume, overwrite, progress, should_stop)


class BatchDialog(RunDialog):
    """Runs :func:`vitexplorer.core.batch.run_batch` with ``loaded`` through ``tasks``.

    ``view`` gives the colormap and opacity of the figures (the window's); ``output_base``
    is the folder the last run wrote beside (remembered by the caller through
    :attr:`output_base_used`).
    """

    #: the folder holding the output folder of a run that started (to be remembered)
    output_base_used = Signal(str)
    run_kind, run_name = "batch", "batch run"

    def __init__(self, loaded: LoadedModel | None, tasks: TaskRunner, view: ViewOptions,
                 output_base: str = "", parent=None) -> None:
        super().__init__(parent)
        self.loaded = loaded
        self.tasks = tasks
        self.view = view
        self._base = Path(output_base) if output_base else DEFAULT_OUTPUT_BASE
        self._output_edited = False
        self.setWindowTitle("Batch process")
        self.resize(600, 640)
        lay = QVBoxLayout(self)
        model = loaded.label if loaded else "no model loaded"
        lay.addWidget(QLabel(f"Model: <b>{model}</b>"))
        self.inputs = QListWidget()
        self.inputs.setToolTip("Image files and folders (folders are searched recursively)")
        row = QHBoxLayout()
        for text, slot in (("Add folder…", self._add_folder), ("Add files…", self._add_files),
                           ("Remove", self.remove_selected)):
            b = QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b)
        lay.addWidget(QLabel("Inputs"))
        lay.addWidget(self.inputs, 1)
        lay.addLayout(row)
        form = QFormLayout()
        self.output = QLineEdit()
        self.output.textEdited.connect(self._edited)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_output)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output, 1)
        out_row.addWidget(browse)
        form.addRow("Output folder", out_row)
        self.methods = {m: QCheckBox(m) for m in ("rollout", "head", "head-rollout")}
        self.methods["rollout"].setChecked(True)
        m_row = QHBoxLayout()
        for cb in self.methods.values():
            m_row.addWidget(cb)
        form.addRow("Overlays of", m_row)
        self.layers = QLineEdit(placeholderText="last layer (e.g. 0,5,11 or all)")
        self.heads = QLineEdit(placeholderText="all heads (e.g. 0,3)")
        form.addRow("Layers", self.layers)
        form.addRow("Heads", self.heads)
        self.outputs = {o: QCheckBox(o) for o in ("overlay", "grid", "maps")}
        self.outputs["overlay"].setChecked(True)
        o_row = QHBoxLayout()
        for cb in self.outputs.values():
            o_row.addWidget(cb)
        o_row.addWidget(QLabel("(+ JSON always)"))
        form.addRow("Write", o_row)
        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        form.addRow("Figure format", self.format)
        look = QLabel(f"colormap {view.cmap}, opacity {view.opacity:.2f}, min-max scaling")
        look.setToolTip("Taken from the window's view (the batch figures always scale each "
                        "map to its own minimum and maximum)")
        form.addRow("Overlays drawn with", look)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 256)
        self.batch_size.setValue(8)
        form.addRow("Batch size", self.batch_size)
        self.resume = QCheckBox("Resume a previous run in this folder")
        self.resume.setChecked(True)
        form.addRow("", self.resume)
        lay.addLayout(form)
        self.progress = QProgressBar()
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        self.profile = ScaledPixmap("The folder's head profile appears here")
        lay.addWidget(self.profile, 2)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel run")
        self.cancel_button.setEnabled(False)
        self.open_button = QPushButton("Open output folder")
        self.open_button.setEnabled(False)
        self.profile_button = QPushButton("View head profile…")
        self.profile_button.setToolTip("The head profile at a readable size (or click it)")
        self.profile_button.setEnabled(False)
        close = QPushButton("Close")
        for b in (self.run_button, self.cancel_button, self.open_button, self.profile_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)
        lay.addLayout(buttons)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self._open_output)
        self.profile_button.clicked.connect(self.show_profile)
        self.profile.clicked.connect(self.show_profile)
        close.clicked.connect(self.close)
        self._state: dict = {}
        self.watch_runs()
        self._timer = QTimer(self)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._poll)

    # ---------------------------------------------------------------------------- inputs
    def add_input(self, path: str) -> None:
        self.inputs.addItem(path)
        self._suggest_output()

    def _edited(self, _text: str) -> None:
        self._output_edited = True

    def _suggest_output(self) -> None:
        """``<base>/<first input>_vitexplorer``, until the user types or browses a folder."""
        if self._output_edited or not self.inputs.count():
            return
        first = Path(self.inputs.item(0).text())
        name = first.name if first.is_dir() else first.parent.name or first.stem
        self.output.setText(str(self._base / f"{name}_vitexplorer"))

    def _add_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Add folder")
        if d:
            self.add_input(d)

    def _add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add images")
        for f in files:
            self.add_input(f)

    def remove_selected(self) -> None:
        for item in self.inputs.selectedItems():
            self.inputs.takeItem(self.inputs.row(item))
        self._suggest_output()

    def _browse_output(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Output folder", str(self._base))
        if d:
            self._output_edited = True
            self.output.setText(d)

    # ---------------------------------------------------------------------------- running
    def options(self):
        from vitexplorer.core.batch import batch_options

        return batch_options(
            self.loaded,
            methods=tuple(m for m, cb in self.methods.items() if cb.isChecked()) or ("rollout",),
            layers=self.layers.text(), heads=self.heads.text(),
            outputs=tuple(o for o, cb in self.outputs.items() if cb.isChecked()),
            format=self.format.currentText(), batch_size=self.batch_size.value(),
            cmap=self.view.cmap, opacity=self.view.opacity)

    def start(self) -> None:
        inputs = [Path(self.inputs.item(i).text()) for i in range(self.inputs.count())]
        if self.loaded is None or not inputs or not self.output.text().strip():
            self.status.setText("Load a model, add inputs and choose an output folder first.")
            return
        try:
            opts = self.options()
        except ValueError as exc:  # an index the model does not have, named
            self.status.setText(str(exc))
            return
        self._state = {}
        self.progress.setRange(0, 0)  # busy until the runner has counted the images
        self._set_profile(QPixmap())
        self.open_button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Finding images…")
        self._timer.start()
        out = Path(self.output.text())
        self.output_base_used.emit(str(out.parent))
        self.tasks.run("batch", batch_job, self.loaded, inputs, out, opts,
                    self.resume.isChecked(), False, self._state, on_done=self._finished,
                    on_error=self._failed, message="Batch processing…")

    def _show_stopping(self) -> None:
        self._poll()
        self._timer.stop()
        self.status.setText("Stopping: writing the images already through the model…")

    def _show_cancelled(self) -> None:
        self._poll()
        self._reset()
        s = self._state
        self.status.setText(f"Cancelled after {s.get('done', 0)} of {s.get('total', '?')} "
                            "images: finished images are kept; run again with Resume to "
                            "continue.")

    def _kept(self) -> str:
        s = self._state
        done = (f"{s['done']} of {s['total']} images are done" if "total" in s
                else "No image is done yet")
        return f"{done}; finished images are kept and Run with Resume continues later."

    def _poll(self) -> None:
        s = self._state
        if "total" not in s:
            return
        self.progress.setRange(0, max(1, s["total"]))
        self.progress.setValue(s["done"] + s["failed"])
        self.status.setText(f"{s['done']} done, {s['failed']} failed of {s['total']}")

    def _finished(self, result) -> None:
        self._poll()
        self._reset()
        out = Path(self.output.text())
        self.status.setText(f"{result.done} images done, {result.skipped} already done, "
                            f"{len(result.failed)} failed in {result.seconds:.1f} s."
                            + failures_line(result, out / "errors.csv"))
        profile = out / "head_profile.png"
        if profile.is_file():
            self._set_profile(QPixmap(str(profile)))
        self.open_button.setEnabled(True)

    def _set_profile(self, pixmap: QPixmap) -> None:
        """The head profile's preview, clickable (tooltip, hand cursor, button) only while
        it shows one: a new run clears it."""
        self.profile.set_pixmap(pixmap)
        shown = not pixmap.isNull()
        self.profile.setToolTip("Click to view it at a readable size" if shown else "")
        if shown:
            self.profile.setCursor(Qt.CursorShape.PointingHandCursor)
        else:
            self.profile.unsetCursor()
        self.profile_button.setEnabled(shown)

    def show_profile(self) -> PictureDialog | None:
        """The head profile at a readable size: the preview shrinks a print-size page."""
        if self.profile.pixmap().isNull():
            return None
        viewer = PictureDialog(self.profile.pixmap(), "Head profile", self)
        viewer.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        viewer.show()
        return viewer

    def _failed(self, exc: BaseException) -> bool:
        from vitexplorer.core.errors import VitexplorerError

        self._reset()
        if isinstance(exc, VitexplorerError):
            self.status.setText(str(exc))
            return True
        return False

    def _reset(self) -> None:
        self._timer.stop()
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _open_output(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.output.text()))
