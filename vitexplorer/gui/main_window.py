"""The main window: assembles the views, owns the state, dispatches work to workers.

Every forward, analysis, export and load runs through :class:`TaskRunner`; this class only
reacts to results and re-renders from the finished :class:`Analysis` (no forward for a
head, layer, colormap or opacity change).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vitexplorer.core.constants import (
    CLASS_METHODS,
    IMAGE_SUFFIXES,
    METHOD_LABELS,
    PER_HEAD_METHODS,
)
from vitexplorer.core.errors import ImageError, VitexplorerError, WeightsUnavailableError
from vitexplorer.core.render import overlay
from vitexplorer.gui import jobs
from vitexplorer.gui.actions import build_actions
from vitexplorer.gui.banner import Banner
from vitexplorer.gui.controls import ControlsPanel, ViewOptions
from vitexplorer.gui.dialogs import show_error
from vitexplorer.gui.groups_controller import GroupsController
from vitexplorer.gui.groups_panel import GroupsPanel
from vitexplorer.gui.head_grid import HeadGrid
from vitexplorer.gui.head_panel import HeadPanel
from vitexplorer.gui.image_view import ImageView
from vitexplorer.gui.qimage import to_pixmap
from vitexplorer.gui.settings import Settings
from vitexplorer.gui.tasks import TaskRunner
from vitexplorer.gui.transfer import TransferMixin

if TYPE_CHECKING:
    from vitexplorer.core.models import LoadedModel


def sample_image() -> Path:
    """The bundled sample photo (source tree or installed package)."""
    from vitexplorer.desktop import resources_dir

    return resources_dir() / "sample.png"


class MainWindow(TransferMixin, QMainWindow):
    """Image view in the middle, controls on the left, head grid and scores on the right."""

    #: emitted after an analysis landed and was rendered (tests wait on it)
    analysis_shown = Signal()
    #: emitted after every re-render of the view
    rendered = Signal()

    def __init__(self, settings: Settings | None = None, model: str | None = None,
                 weights: str | None = None, model_kwargs: dict | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.tasks = TaskRunner(self)
        self.loaded: LoadedModel | None = None
        self.prepared: jobs.Prepared | None = None
        self._pending: tuple[str | np.ndarray, str] | None = None
        self._current_source: str | None = None
        self._folder: list[Path] = []
        self._query: tuple[int, int] | None = None
        self._model_spec = model or self.settings.get("model/spec")
        self._weights = weights or self.settings.get("model/weights")
        self._model_kwargs = model_kwargs or {}
        self.setWindowTitle("vitexplorer")
        self.setAcceptDrops(True)
        self._build()
        self.actions_ = build_actions(self)
        self._restore()

    # ----------------------------------------------------------------------- construction
    def _build(self) -> None:
        self.view = ImageView()
        self.banner = Banner()
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.banner)
        lay.addWidget(self.view, 1)
        self.setCentralWidget(central)
        self.controls = ControlsPanel()
        self.grid = HeadGrid()
        self.head_panel = HeadPanel()
        self._dock("Controls", self.controls, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Heads", self.grid, Qt.DockWidgetArea.RightDockWidgetArea)
        self._dock("Selected head", self.head_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.groups_panel = GroupsPanel()
        self._dock("Groups", self.groups_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.status_text = QLabel()
        self._idle_message = "Ready."
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(160)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running job (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        self.model_label = QLabel()
        sb = self.statusBar()
        sb.addWidget(self.status_text, 1)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.model_label)
        self._busy(False, "")
        self.tasks.busy_changed.connect(self._busy)
        self.tasks.failed.connect(self._unexpected)
        self.controls.changed.connect(self._options_changed)
        self.grid.selected.connect(self.controls.select)
        self.view.clicked.connect(self._clicked)
        self.view.arrow_pressed.connect(self._arrow)
        self.groups = GroupsController(self)
        self._last_thumb_key: tuple | None = None

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _restore(self) -> None:
        s = self.settings
        geometry = s.get("window/geometry")
        if geometry and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        state = s.get("window/state")
        if state and not state.isEmpty():
            self.restoreState(state)
        self.controls.set_options(ViewOptions(cmap=s.get("view/cmap"),
                                              opacity=s.get("view/opacity"),
                                              scaling=s.get("view/scaling"),
                                              contour=s.get("view/contour")))

    def start(self, path: str | None = None) -> None:
        """Load the model and open ``path`` (default: the bundled sample image)."""
        self.load_model(self._model_spec, self._weights)
        self.open_path(path or str(sample_image()))

    def closeEvent(self, event) -> None:
        self.tasks.cancel()
        s = self.settings
        o = self.controls.options()
        s.set("window/geometry", self.saveGeometry())
        s.set("window/state", self.saveState())
        s.set("view/cmap", o.cmap)
        s.set("view/opacity", o.opacity)
        s.set("view/scaling", o.scaling)
        s.set("view/contour", o.contour)
        s.sync()
        super().closeEvent(event)

    # ----------------------------------------------------------------------------- status
    def _busy(self, busy: bool, message: str) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.status_text.setText(message if busy else self._idle_message)

    def message(self, text: str) -> None:
        """Show ``text`` in the status bar (kept when a background job ends)."""
        self._idle_message = text
        self.status_text.setText(text)

    def cancel(self) -> None:
        if self.tasks.is_running():
            self.tasks.cancel()
            self.message("Cancelled.")

    def _unexpected(self, kind: str, exc: BaseException, details: str) -> None:
        show_error(self, "Unexpected error", f"The {kind} job failed: {exc}", details)
        self.message(f"Error: {exc}")

    # ----------------------------------------------------------------------------- models
    def load_model(self, spec: str, weights: str = "pretrained") -> None:
        self.banner.hide()
        label = spec if weights == "pretrained" else f"{spec} ({Path(weights).name})"
        self.tasks.run("model", jobs.load_model_job, spec, weights, self._model_kwargs,
                       on_done=self._model_loaded, on_error=self._model_failed,
                       message=f"Loading {label}…")

    def _model_loaded(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.settings.set("model/spec", loaded.spec)
        self.settings.set("model/weights", loaded.weights)
        self.model_label.setText(loaded.label)
        self.model_label.setToolTip(loaded.label)
        if loaded.random_weights:
            self.banner.show_message(
                f"<b>{loaded.architecture}</b> runs with <b>random weights</b>: a demo of the "
                "tool, the maps say nothing about a trained model.",
                [("Choose model…", self.actions_["choose_model"].trigger),
                 ("Open weights file…", self.actions_["load_weights"].trigger)])
        self.message(f"Model ready: {loaded.label}")
        self._update_title()
        source = self._pending or self._current_image()
        if source is not None:
            self._analyze(*source)

    def _model_failed(self, exc: BaseException) -> bool:
        if not isinstance(exc, VitexplorerError):
            return False
        text = str(exc).split("\n")[0]
        if isinstance(exc, WeightsUnavailableError):
            text = (f"The weights of <b>{exc.spec}</b> are not in the local cache and cannot "
                    "be downloaded now. Connect once to cache them, open a local weights "
                    "file, choose another (cached) model, or use random weights for a demo.")
            self.banner.label.setToolTip(exc.reason)
        self.banner.show_message(text, [
            ("Open weights file…", self.actions_["load_weights"].trigger),
            ("Choose model…", self.actions_["choose_model"].trigger),
            ("Use random weights", self.use_random_weights)])
        self.message("No model loaded.")
        return True

    def use_random_weights(self) -> None:
        from vitexplorer.core.models import architecture_of

        spec = self.loaded.spec if self.loaded else self._model_spec
        self.load_model(architecture_of(spec), "random")

    # ----------------------------------------------------------------------------- images
    def _current_image(self) -> tuple[np.ndarray, str] | None:
        if self.prepared is None:
            return None
        a = self.prepared.analysis
        return a.image, a.source

    def open_path(self, path: str) -> None:
        p = Path(path)
        if p.is_dir():
            self.open_folder(p)
            return
        self._analyze(str(p), str(p))

    def open_folder(self, folder: Path) -> None:
        files = sorted((f for f in folder.iterdir()
                        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
                        and f.is_file()), key=lambda f: f.name.lower())
        if not files:
            self.banner.show_message(f"No images found in '{folder}'.")
            return
        self._folder = files
        self._analyze(str(files[0]), str(files[0]))

    def step_folder(self, delta: int) -> None:
        if not self._folder or self._current_source is None:
            self.message("Open a folder (Ctrl+Shift+O or drop one) to browse it.")
            return
        cur = Path(self._current_source)
        i = self._folder.index(cur) if cur in self._folder else -1
        nxt = self._folder[(i + delta) % len(self._folder)]
        self._analyze(str(nxt), str(nxt))

    def open_array(self, rgb: np.ndarray, source: str) -> None:
        self._analyze(rgb, source)

    def _analyze(self, image: str | np.ndarray, source: str) -> None:
        if self.loaded is None:
            self._pending = (image, source)
            if isinstance(image, str):
                self.tasks.run("decode", jobs.decode_job, image, on_done=self._show_raw,
                               on_error=self._image_failed, message="Opening image…")
            return
        self._pending = None
        self.tasks.cancel("gradients")
        self.tasks.cancel("maps")
        o = self.controls.options()
        self.tasks.run("analyze", jobs.analyze_job, self.loaded, image, source, "crop", o.cmap,
                       on_done=self._analysis_done, on_error=self._image_failed,
                       message=f"Analysing {Path(source).name}…")

    def _show_raw(self, rgb: np.ndarray) -> None:
        if self.prepared is None:
            self.view.set_pixmap(to_pixmap(jobs.resized(rgb, jobs.DISPLAY_MAX)[0]))

    def _image_failed(self, exc: BaseException) -> bool:
        if isinstance(exc, ImageError):
            self.banner.show_message(f"{exc}. The previous image stays open.")
            self.message(str(exc))
            return True
        return False

    def _analysis_done(self, prepared: jobs.Prepared) -> None:
        self.prepared = prepared
        a = prepared.analysis
        self._current_source = a.source
        self._query = None
        self.view.show_marker(None)
        if Path(a.source).is_file():
            self.actions_["recent"].set_files(self.settings.add_recent(a.source))
        self.controls.set_shape(a.num_layers, a.num_heads)
        self.controls.set_targets(a.top_k(5))
        self.grid.set_thumbnails(prepared.thumbnails)
        o = self.controls.options()
        self._last_thumb_key = ("head", o.cmap, "mean", 0.0)
        self.head_panel.set_predictions(a.top_k(5))
        if prepared.groups is not None:
            self.groups.show(prepared.groups)
        self._update_title()
        self._options_changed()
        self.message(f"{Path(a.source).name}: {a.num_layers} layers x {a.num_heads} heads")
        self.analysis_shown.emit()

    def _update_title(self) -> None:
        parts = ["vitexplorer"]
        if self._current_source:
            parts.append(Path(self._current_source).name)
        if self.loaded:
            parts.append(self.loaded.label)
        self.setWindowTitle(" — ".join(parts))

    # ---------------------------------------------------------------------------- viewing
    def _options_changed(self) -> None:
        o = self.controls.options()
        if o.query == "off" and self._query is not None:
            self._query = None
            self.view.show_marker(None)
        self.grid.set_current(o.layer, o.head)
        self._refresh_thumbnails(o)
        self.render()

    def _refresh_thumbnails(self, o: ViewOptions) -> None:
        if self.prepared is None:
            return
        method = o.method if o.method in PER_HEAD_METHODS else "head"
        key = (method, o.cmap, o.fusion, o.discard)
        if key == self._last_thumb_key:
            return
        self._last_thumb_key = key
        self.tasks.run("thumbs", jobs.thumbnails_job, self.prepared.analysis, method, o.cmap,
                       o.fusion, o.discard, on_done=self.grid.set_thumbnails,
                       message="Drawing head thumbnails…")

    def current_map(self, o: ViewOptions) -> np.ndarray | None:
        """The map the view shows now, or None when a worker must compute it first."""
        a = self.prepared.analysis
        if o.query != "off" and self._query is not None:
            head = o.head if o.method in PER_HEAD_METHODS else None
            maps = a.patch_query(o.layer, head, *self._query, compute=False)
            if maps is None:  # the layer is recomputed from its inputs in a worker
                self.tasks.run("layer", jobs.layer_job, a, o.layer,
                               on_done=lambda _r: self.render(),
                               message=f"Attention of layer {o.layer}…")
                return None
            return maps[0] if o.query == "row" else maps[1]
        if o.method in CLASS_METHODS:
            target = o.target if o.target is not None else a.top_k(1)[0][0]
            if not a.has_gradients(target):
                self.tasks.run("gradients", jobs.gradients_job, a, target,
                               on_done=lambda _t: self.render(),
                               message=f"Gradients for {a.class_name(target)}…")
                return None
        if not a.has_map(o.method, o.fusion, o.discard, o.target):
            self.tasks.run("maps", jobs.maps_job, a, o.method, o.fusion, o.discard, o.target,
                           on_done=lambda _r: self.render(), message="Computing rollout…")
            return None
        return a.map(o.method, o.layer, o.head, o.fusion, o.discard, o.target)

    def render(self) -> None:
        """Re-draw the overlay from the finished analysis (no forward)."""
        if self.prepared is None:
            return
        o = self.controls.options()
        grid_map = self.current_map(o)
        if grid_map is None:
            return
        p = self.prepared
        geom = p.analysis.geometry.scaled(p.display_scale)
        img = overlay(p.display, grid_map, geom, o.cmap, o.opacity, o.scaling,
                      contour=0.6 if o.contour else None)
        self.view.set_pixmap(to_pixmap(img))
        self.head_panel.show_map(p.analysis, o, grid_map,
                                 p.groups.table if p.groups is not None else None)
        self.view.setToolTip(f"{METHOD_LABELS[o.method]} · layer {o.layer} · head {o.head}")
        self.rendered.emit()

    def _clicked(self, x: float, y: float) -> None:
        o = self.controls.options()
        if self.prepared is None or o.query == "off":
            return
        p = self.prepared
        geom = p.analysis.geometry.scaled(p.display_scale)
        cell = geom.image_to_grid(x, y)
        if cell is None:
            self.message("That point lies outside the model's view (cropped away).")
            return
        self._query = cell
        x0, y0, x1, y1 = geom.box
        gh, gw = geom.grid
        cw, ch = (x1 - x0) / gw, (y1 - y0) / gh
        self.view.show_marker(QRectF(x0 + cell[1] * cw, y0 + cell[0] * ch, cw, ch))
        self.message(f"Patch row {cell[0]}, column {cell[1]}: "
                     f"{'where it looks' if o.query == 'row' else 'what looks at it'}")
        self.render()

    def toggle_query(self) -> None:
        q = self.controls.query
        q.setCurrentIndex(0 if q.currentIndex() else 1)

    def _arrow(self, key: int) -> None:
        steps = {Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1),
                 Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0)}
        self.grid.move(*steps[key])
