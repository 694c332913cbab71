"""Menus, toolbar and shortcuts of the main window, and the dialogs they open."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QStyle, QToolBar

from vitexplorer import __version__
from vitexplorer.core.constants import IMAGE_SUFFIXES
from vitexplorer.gui import jobs
from vitexplorer.gui.dialogs import ExportDialog, model_info_text

if TYPE_CHECKING:
    from vitexplorer.gui.main_window import MainWindow

IMAGE_FILTER = ("Images (" + " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES)) + ");;"
                "All files (*)")
WEIGHTS_FILTER = "Weights (*.safetensors *.pth *.pt *.bin)"


class RecentMenu(QMenu):
    def __init__(self, window: MainWindow) -> None:
        super().__init__("Open &Recent", window)
        self._window = window

    def set_files(self, files: list[str]) -> None:
        self.clear()
        for i, f in enumerate(files):
            act = self.addAction(f"&{(i + 1) % 10} {Path(f).name}")
            act.setToolTip(f)
            act.triggered.connect(lambda _c=False, f=f: self._window.open_path(f))
        self.setEnabled(bool(files))


def build_actions(w: MainWindow) -> dict:
    """Create every action with its shortcut (shown in menus and tooltips)."""
    style = w.style()
    acts: dict = {}

    def act(key, text, slot, shortcut=None, icon=None, tip=None):
        a = QAction(text, w)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            a.setIcon(style.standardIcon(icon))
        sc = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        base = tip or text.replace("&", "").rstrip("…")
        a.setToolTip(f"{base} ({sc})" if sc else base)
        a.triggered.connect(slot)
        acts[key] = a
        return a

    sp = QStyle.StandardPixmap
    act("open", "&Open Image…", lambda: _open(w), QKeySequence.StandardKey.Open,
        sp.SP_DialogOpenButton)
    act("open_folder", "Open &Folder…", lambda: _open_folder(w), "Ctrl+Shift+O",
        sp.SP_DirOpenIcon)
    act("paste", "&Paste Image", w.paste, QKeySequence.StandardKey.Paste)
    act("next", "&Next Image in Folder", lambda: w.step_folder(1), "PgDown",
        sp.SP_ArrowForward)
    act("previous", "P&revious Image in Folder", lambda: w.step_folder(-1), "PgUp",
        sp.SP_ArrowBack)
    act("export", "&Export Figure…", lambda: _export(w), "Ctrl+E", sp.SP_DialogSaveButton)
    act("copy", "&Copy View", w.copy_view, "Ctrl+Shift+C")
    act("batch", "&Batch Process…", lambda: _batch(w), "Ctrl+B", sp.SP_FileDialogListView)
    act("evaluate", "E&valuate Maps over Folder…", lambda: _evaluate(w),
        tip="Mask agreement (DINO Jaccard) and faithfulness curves of the first model's maps")
    act("quit", "&Quit", w.close, QKeySequence.StandardKey.Quit)
    act("choose_model", "&Choose Model…", lambda: _choose_model(w), "Ctrl+M",
        sp.SP_ComputerIcon)
    act("load_weights", "Load &Weights from File…", lambda: _load_weights(w), "Ctrl+Shift+W")
    act("random", "Use &Random Weights", w.use_random_weights)
    act("compare_model", "Compare with &Second Model…", lambda: _choose_model(w, True),
        tip="Show a second model beside the first, in step, its heads matched to the first's")
    act("compare_weights", "Second Model from Weights &File…", lambda: _load_weights(w, True),
        tip="The first model's architecture with another weights file, side by side")
    act("compare_folder", "&Pair Heads over Folder", lambda: _pair_folder(w),
        tip="Pair the two models' heads over every image of the folder, not only the one "
            "shown")
    act("info", "Model &Info", lambda: _model_info(w), "Ctrl+I", sp.SP_MessageBoxInformation)
    act("fit", "&Fit to Window", w.view.fit, "F")
    act("zoom_in", "Zoom &In", lambda: w.view.zoom(1.25), QKeySequence.StandardKey.ZoomIn)
    act("zoom_out", "Zoom &Out", lambda: w.view.zoom(0.8), QKeySequence.StandardKey.ZoomOut)
    act("actual", "&Actual Size", w.view.actual_size, "Ctrl+0")
    act("query", "&Query Patch Mode", w.toggle_query, "Q",
        tip="Click a patch to see where it looks")
    act("cancel", "&Cancel Running Job", w.cancel, "Esc", sp.SP_BrowserStop)
    acts["cancel"].setEnabled(w.tasks.is_running())  # enabled while a job runs
    w.tasks.busy_changed.connect(lambda busy, _message: acts["cancel"].setEnabled(busy))
    act("about", "&About vitexplorer", lambda: _about(w))
    act("shortcuts", "&Keyboard Shortcuts", lambda: shortcuts_dialog(w, acts).open(),
        QKeySequence.StandardKey.HelpContents)
    act("readme", "&Documentation (README)", lambda: QDesktopServices.openUrl(readme_url()))

    recent = RecentMenu(w)
    recent.set_files(w.settings.get("files/recent"))
    acts["recent"] = recent

    mb = w.menuBar()
    m = mb.addMenu("&File")
    for k in ("open", "open_folder", "paste"):
        m.addAction(acts[k])
    m.addMenu(recent)
    m.addSeparator()
    for k in ("next", "previous"):
        m.addAction(acts[k])
    m.addSeparator()
    m.addAction(acts["export"])
    m.addAction(acts["copy"])
    m.addAction(acts["batch"])
    m.addAction(acts["evaluate"])
    m.addSeparator()
    m.addAction(acts["quit"])
    m = mb.addMenu("&Model")
    for k in ("choose_model", "load_weights", "random", "compare_model", "compare_weights",
              "compare_folder", "info", "cancel"):
        m.addAction(acts[k])
    m = mb.addMenu("&View")
    for k in ("fit", "zoom_in", "zoom_out", "actual", "query"):
        m.addAction(acts[k])
    m.addSeparator()
    for a in w.groups_panel.tools.window_actions():  # drawing the foreground (Groups panel)
        acts[a.text()] = a
        m.addAction(a)
    m.addSeparator()
    from PySide6.QtWidgets import QDockWidget

    for dock in w.findChildren(QDockWidget):
        m.addAction(dock.toggleViewAction())
    m = mb.addMenu("&Help")
    for k in ("shortcuts", "readme", "about"):
        m.addAction(acts[k])

    tb = QToolBar("Main", w)
    tb.setObjectName("toolbar-main")
    for k in ("open", "open_folder", "previous", "next", "export", "choose_model", "info"):
        tb.addAction(acts[k])
    w.addToolBar(tb)
    return acts


#: keys that are not menu actions
OTHER_KEYS = (("← →", "previous / next head (in the order the grid shows)"),
              ("↑ ↓", "previous / next layer (a row of the grid)"),
              ("Wheel, drag", "zoom and pan the image"),
              ("Click on the image", "query a patch (when the patch query is on)"),
              ("Click the similarity matrix", "choose that pair of heads"),
              ("Double-click the similarity matrix", "enlarge it"),
              ("Enter in the class box", "use the typed class index or name"))
HOMEPAGE = "https://github.com/vitexplorer/vitexplorer#readme"


def shortcut_rows(acts: dict) -> list[tuple[str, str]]:
    """(keys, what they do) of every action with a shortcut, then the other keys."""
    rows = []
    for a in acts.values():
        if isinstance(a, QAction) and not a.shortcut().isEmpty():
            keys = a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            rows.append((keys, a.text().replace("&", "").rstrip("…")))
    return rows + list(OTHER_KEYS)


def shortcuts_dialog(w: MainWindow, acts: dict) -> QMessageBox:
    body = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{t}</td></tr>"
                   for k, t in shortcut_rows(acts))
    box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts",
                      f"<table>{body}</table>", QMessageBox.StandardButton.Close, w)
    return box


def readme_url() -> QUrl:
    """The README of the source tree when there is one, else the project's page."""
    from vitexplorer.desktop import resources_dir

    local = resources_dir().parent / "README.md"
    return QUrl.fromLocalFile(str(local)) if local.is_file() else QUrl(HOMEPAGE)


def _open(w: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(w, "Open image", w.settings.get("files/last_dir"),
                                          IMAGE_FILTER)
    if path:
        w.settings.set("files/last_dir", str(Path(path).parent))
        w.open_path(path)


def _open_folder(w: MainWindow) -> None:
    path = QFileDialog.getExistingDirectory(w, "Open folder", w.settings.get("files/last_dir"))
    if path:
        w.settings.set("files/last_dir", path)
        w.open_folder(Path(path))


def _export(w: MainWindow) -> None:
    a = w.state.a.analysis
    if a is None:
        w.message("Nothing to export yet.")
        return
    folder = w.settings.get("files/export_dir") or w.settings.get("files/last_dir")
    suggested = str(Path(folder) / f"{Path(a.source).stem}_{w.state.method}.png")
    dlg = ExportDialog(suggested, w, preview=lambda kind, fo: w.preview_export(dlg, kind, fo),
                       cmap=w.state.options.cmap,
                       scale="per-panel" if w.state.options.scale == "map" else "shared")
    accepted = dlg.exec()
    w.tasks.cancel("export-preview")  # no preview lands on a closed dialog
    if accepted:
        w.settings.set("files/export_dir", str(Path(dlg.target()).parent))
        w.export(dlg.kind(), dlg.target(), dlg.figure_options())
    dlg.deleteLater()


def _evaluate(w: MainWindow) -> None:
    from vitexplorer.gui.evaluate_dialog import EvaluateDialog

    if w.state.a.loaded is None:
        w.message("Load a model first.")
        return
    EvaluateDialog(w.state.a.loaded, w.tasks, w).open()


def _batch(w: MainWindow) -> None:
    from vitexplorer.gui.batch_dialog import BatchDialog

    dlg = BatchDialog(w.state.a.loaded, w.tasks, w.state.options,
                      w.settings.get("files/batch_output"), w)
    dlg.output_base_used.connect(lambda base: w.settings.set("files/batch_output", base))
    source = w.state.source
    if source is not None and Path(source).is_file():
        dlg.add_input(str(Path(source).parent))
    dlg.open()


def _choose_model(w: MainWindow, second: bool = False) -> None:
    from vitexplorer.gui.model_picker import ModelPicker

    def show(catalog):
        loaded = w.state.slots["B" if second else "A"].loaded or w.state.a.loaded
        current = loaded.spec if loaded else w.settings.get("model/spec")
        weights = loaded.weights if loaded else w.settings.get("model/weights")
        dlg = ModelPicker(catalog, current, weights, w)
        shown = [dlg.list.topLevelItem(i).text(0) for i in range(dlg.list.topLevelItemCount())]
        count_parameters(w, dlg, shown + [r["name"] for r in catalog["rows"]])  # shown first
        accepted = dlg.exec()
        w.tasks.cancel("parameters")  # counted so far stays in the cache
        if accepted and dlg.choice():
            (w.compare.load_model if second else w.load_model)(*dlg.choice())

    w.tasks.run("list-models", jobs.list_models_job, on_done=show,
                message="Reading the model registry…")


def count_parameters(w: MainWindow, dlg, names: list[str]) -> None:
    """Fill the picker's parameter column in a worker (cached on disk between runs): the
    selected row first, then the list in order; counts reach the dialog as they come."""
    from collections import deque

    found: list = []
    priority: deque = deque()
    dlg.parameters_wanted.connect(priority.append)
    cur = dlg.list.currentItem()
    if cur is not None:
        priority.append(cur.text(0))

    seen = 0

    def show(*_progress) -> None:
        nonlocal seen
        new = found[seen:]  # the worker may append meanwhile: take a fixed slice
        seen += len(new)
        for name, count in new:
            dlg.set_parameters(name, count)

    w.tasks.run("parameters", jobs.parameter_counts_job, names,
                w.settings.cache_dir / "parameter_counts.json", found, priority,
                on_done=show, on_progress=show, message="Counting parameters…")


def _pair_folder(w: MainWindow) -> None:
    """The browsed folder's images, else those of the folder of the image shown (listed in
    a worker, as Next Image lists it: a network folder lists slowly)."""
    from vitexplorer.gui.analysis_controller import list_job

    source = w.state.source
    if w.analyses.folder or not source:
        w.compare.pair_folder(w.analyses.folder)
        return

    def listed(lists: list) -> None:
        if isinstance(lists[0], OSError):
            w.message(f"Cannot list '{Path(source).parent}': {lists[0].strerror or lists[0]}.")
        else:
            w.compare.pair_folder(lists[0] or [])

    w.tasks.run("list-pair", list_job, [Path(source)], True, on_done=listed,
                message=f"Listing {Path(source).parent.name}…")


def _load_weights(w: MainWindow, second: bool = False) -> None:
    """Another weights file for the first model's architecture (``second``: into slot B)."""
    from vitexplorer.core.models import architecture_of

    path, _ = QFileDialog.getOpenFileName(w, "Load weights", w.settings.get("files/last_dir"),
                                          WEIGHTS_FILTER)
    if path:
        loaded = w.state.a.loaded
        spec = loaded.spec if loaded else w.settings.get("model/spec")
        (w.compare.load_model if second else w.load_model)(architecture_of(spec), path)


def _model_info(w: MainWindow) -> None:
    if w.state.a.loaded is None:
        w.message("No model loaded.")
        return
    QMessageBox.information(w, "Model info", model_info_text(w.state.a.loaded))


def _about(w: MainWindow) -> None:
    QMessageBox.about(w, "About vitexplorer",
                      f"<b>vitexplorer {__version__}</b><br>See what every attention head of a "
                      "Vision Transformer looks at.<br>Sample image: 'Chelsea' by Stefan van "
                      "der Walt, CC0.")
