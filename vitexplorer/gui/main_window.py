"""The main window: builds the views around one :class:`ViewState` and wires them.

The state holds what is shown; the controllers (analysis, map, groups) run every forward,
analysis and map in workers and put their results into the state or emit them; the widgets
subscribe. This class only assembles, shows messages and keeps the settings.
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
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from vitexplorer.core.constants import METHOD_LABELS
from vitexplorer.core.errors import UnsupportedModelError, WeightsUnavailableError
from vitexplorer.gui import jobs
from vitexplorer.gui.actions import build_actions
from vitexplorer.gui.analysis_controller import AnalysisController
from vitexplorer.gui.banner import Banner
from vitexplorer.gui.closing import Closing
from vitexplorer.gui.colour_bar import ColourBar
from vitexplorer.gui.compare_view import CompareController, ComparePanel
from vitexplorer.gui.controls import ControlsPanel
from vitexplorer.gui.dialogs import show_error
from vitexplorer.gui.groups_controller import GroupsController
from vitexplorer.gui.groups_panel import GroupsPanel, describe_head
from vitexplorer.gui.head_grid import HeadGrid
from vitexplorer.gui.head_panel import HeadPanel
from vitexplorer.gui.image_view import ImageView
from vitexplorer.gui.map_controller import Frame, MapController
from vitexplorer.gui.mask_overlay import MaskOverlay
from vitexplorer.gui.mask_tools import confirm_overwrite
from vitexplorer.gui.qimage import to_pixmap
from vitexplorer.gui.remembered import default_docks, restore_state, save_state
from vitexplorer.gui.settings import Settings
from vitexplorer.gui.state import HeadGroups, ViewState
from vitexplorer.gui.tasks import TaskRunner
from vitexplorer.gui.tokens_panel import TokensController, TokensPanel
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
        self.state = ViewState()
        self.tasks = TaskRunner(self)
        self.closing = Closing(self, self.tasks)
        slot = self.state.a
        self.analyses = AnalysisController(self.state, slot, self.tasks, model_kwargs, self)
        self.maps = MapController(self.state, slot, self.tasks, self)
        self.groups_controller = GroupsController(self.state, slot, self.tasks, self)
        self._model_spec = model or self.settings.get("model/spec")
        self._weights = weights or self.settings.get("model/weights")
        self.setAcceptDrops(True)
        self._first_show = True
        self._build()
        self.mask_overlay = MaskOverlay(self.state, slot, self.view, self)
        self._wire()
        self.compare = CompareController(self.state, self.tasks, self.compare_panel,
                                         model_kwargs, self)
        self.compare.message.connect(self.message)
        self.state.b.loaded_changed.connect(lambda _loaded: self._show_compare())
        self.tokens = TokensController(self.state, self.tasks, self.tokens_panel, self,
                                       self.compare.maps)
        self.docks["Artifact tokens"].visibilityChanged.connect(self.tokens.set_visible)
        self.actions_ = build_actions(self)
        restore_state(self)
        self._update_title()

    # ----------------------------------------------------------------------- construction
    def _build(self) -> None:
        self.view = ImageView()
        self.warning = Banner()  # the random-weights notice: stays while that model runs
        self.banner = Banner()  # errors: cleared by the next success
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.warning)
        lay.addWidget(self.banner)
        self.compare_panel = ComparePanel()  # slot B, shown once a second model is loaded
        self.compare_panel.hide()
        self.split = split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.view)
        split.addWidget(self.compare_panel)
        lay.addWidget(split, 1)
        self.colour_bar = ColourBar()
        lay.addWidget(self.colour_bar)
        self.setCentralWidget(central)
        self.docks: dict[str, QDockWidget] = {}
        self.controls = ControlsPanel(self.state)
        self.grid = HeadGrid()
        self.head_panel = HeadPanel()
        self.groups_panel = GroupsPanel(self.state)
        self._dock("Controls", self.controls, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Heads", self.grid, Qt.DockWidgetArea.RightDockWidgetArea, scroll=False)
        self._dock("Map and head scores", self.head_panel,
                   Qt.DockWidgetArea.RightDockWidgetArea, name="Selected head")
        self._dock("Groups", self.groups_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tokens_panel = TokensPanel()
        self._dock("Artifact tokens", self.tokens_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.docks["Selected head"], self.docks["Groups"])
        self.tabifyDockWidget(self.docks["Groups"], self.docks["Artifact tokens"])
        self.docks["Selected head"].raise_()
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

    def _show_compare(self) -> None:
        """Slot B's panel beside A's view, the two halves of the centre when it first shows
        (by their size hints B's grid would take most of it on a small screen)."""
        if not self.compare_panel.isHidden():
            return
        self.compare_panel.show()
        half = max(self.split.width() // 2, 1)
        self.split.setSizes([half, half])

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea, scroll: bool = True,
              name: str | None = None) -> QDockWidget:
        """A dock whose content scrolls instead of being clipped when the window is small."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{name or title}")
        self.docks[name or title] = dock
        if scroll:
            area_widget = QScrollArea()
            area_widget.setObjectName(f"scroll-{title}")
            area_widget.setWidgetResizable(True)
            area_widget.setFrameShape(QScrollArea.Shape.NoFrame)
            area_widget.setWidget(widget)
            area_widget.setMinimumWidth(widget.minimumSizeHint().width() +
                                        area_widget.verticalScrollBar().sizeHint().width())
            widget = area_widget
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _wire(self) -> None:
        s, slot = self.state, self.state.a
        self.tasks.busy_changed.connect(self._busy)
        self.tasks.failed.connect(self._unexpected)
        ac = self.analyses
        ac.message.connect(self.message)
        ac.model_failed.connect(self._model_failed)
        ac.rebuild_failed.connect(lambda text: self.banner.show_message(
            f"{text[:1].upper()}{text[1:].rstrip(' .')}. The model and the maps stay as "
            "they were."))
        ac.image_failed.connect(self._image_failed)
        ac.raw_image.connect(lambda rgb: self.view.set_pixmap(
            to_pixmap(jobs.resized(rgb, jobs.DISPLAY_MAX)[0])))
        ac.analysis_shown.connect(self._analysis_shown)
        slot.loaded_changed.connect(self._model_loaded)
        slot.finished_changed.connect(
            lambda f: self.head_panel.set_predictions(f.analysis.top_k(5)))
        self.maps.frame_ready.connect(self._show_frame)
        self.maps.thumbnails_ready.connect(self.grid.set_thumbnails)
        self.maps.message.connect(self.message)
        self.groups_controller.message.connect(self.message)
        self.groups_controller.importance_progress.connect(self.show_progress)
        self.groups_panel.importance_requested.connect(self.groups_controller.compute_importance)
        self.groups_panel.mask_file_chosen.connect(self.groups_controller.choose_mask_file)
        self.groups_panel.box_entered.connect(self.groups_controller.enter_box)
        self.groups_panel.tools.save_requested.connect(
            lambda: self.groups_controller.save_mask(lambda path: confirm_overwrite(self, path)))
        slot.head_groups_changed.connect(self._show_groups)
        slot.finished_changed.connect(
            lambda f: self._show_groups(f.head_groups) if f.head_groups is not None else None)
        self.grid.selected.connect(s.select_head)
        self.grid.step_requested.connect(self._step_head)
        self.view.clicked.connect(self.maps.query_at)
        self.view.arrow_pressed.connect(self._arrow)
        s.changed.connect(self._state_changed)

    def start(self, path: str | None = None) -> None:
        """Load the model and open ``path`` (default: the bundled sample image)."""
        self.load_model(self._model_spec, self._weights)
        self.open_path(path or str(sample_image()))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._first_show:
            self._first_show = False
            if not self.settings.get("window/state") or self.settings.get(
                    "window/state").isEmpty():
                default_docks(self)

    def closeEvent(self, event) -> None:
        if self.closing.defer(lambda: save_state(self)):
            event.ignore()
            return
        super().closeEvent(event)

    # ----------------------------------------------------------------------------- status
    def show_progress(self, done: int, total: int) -> None:
        """A determinate bar for the running job: ``done`` of ``total``."""
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat("%v of %m")
        self.progress.setTextVisible(True)

    def _busy(self, busy: bool, message: str) -> None:
        if not busy:  # the next job starts as busy-without-a-count
            self.progress.setRange(0, 0)
            self.progress.setTextVisible(False)
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

    def _update_title(self) -> None:
        """File and model; the platform adds the application's name once."""
        parts = []
        if self.state.source:
            parts.append(Path(self.state.source).name)
        if self.state.a.loaded:
            parts.append(self.state.a.loaded.label)
        self.setWindowTitle(" — ".join(parts) or "vitexplorer")

    # ----------------------------------------------------------------------------- models
    def load_model(self, spec: str, weights: str = "pretrained") -> None:
        self.analyses.load_model(spec, weights)

    def _model_loaded(self, loaded: LoadedModel) -> None:
        self.settings.set("model/spec", loaded.spec)
        self.settings.set("model/weights", loaded.weights)
        self.model_label.setText(loaded.label)
        self.model_label.setToolTip(loaded.label)
        self.banner.hide()
        if loaded.random_weights:
            self.warning.show_message(
                f"<b>{loaded.architecture}</b> runs with <b>random weights</b>: a demo of the "
                "tool, the maps say nothing about a trained model.",
                [("Choose model…", self.actions_["choose_model"].trigger),
                 ("Open weights file…", self.actions_["load_weights"].trigger)])
        else:
            self.warning.hide()
        self._update_title()

    def _model_failed(self, exc: BaseException) -> None:
        text = str(exc).split("\n")[0]
        self.banner.label.setToolTip("")
        if isinstance(exc, WeightsUnavailableError):
            text = (f"The weights of <b>{exc.spec}</b> are not in the local cache and cannot "
                    "be downloaded now. Connect once to cache them, open a local weights "
                    "file, choose another (cached) model, or use random weights for a demo.")
            self.banner.label.setToolTip(exc.reason)
        actions = [("Open weights file…", self.actions_["load_weights"].trigger),
                   ("Choose model…", self.actions_["choose_model"].trigger)]
        if not isinstance(exc, UnsupportedModelError):
            actions.append(("Use random weights", self.use_random_weights))
        current = self.state.a.loaded
        if current is not None:
            text = text.rstrip(" .") + f". Still using <b>{current.label}</b>."
            self.message(f"Model not changed: still using {current.label}.")
        else:
            self.message("No model loaded.")
        self.banner.show_message(text, actions)

    def use_random_weights(self) -> None:
        from vitexplorer.core.models import architecture_of

        loaded = self.state.a.loaded
        spec = loaded.spec if loaded else self._model_spec
        self.load_model(architecture_of(spec), "random")

    # ----------------------------------------------------------------------------- images
    def open_path(self, path: str) -> None:
        self.analyses.open_path(path)

    def open_folder(self, folder: Path) -> None:
        self.analyses.open_folder(folder)

    def step_folder(self, delta: int) -> None:
        if self.state.source and Path(self.state.source) == sample_image():
            self.message("Open an image file or a folder (Ctrl+Shift+O or drop one) to "
                         "browse it.")  # not the app's own resources beside the sample
            return
        self.analyses.step_folder(delta)

    def open_array(self, rgb: np.ndarray, source: str) -> None:
        self.analyses.open_image(rgb, source)

    def _image_failed(self, text: str) -> None:
        self.banner.label.setToolTip("")
        self.banner.show_message(text)
        self.message(text)

    def _analysis_shown(self) -> None:
        self.banner.hide()
        source = self.state.source
        if source and Path(source).is_file() and Path(source) != sample_image():
            self.actions_["recent"].set_files(self.settings.add_recent(source))
        self._update_title()
        self.analysis_shown.emit()

    # ---------------------------------------------------------------------------- viewing
    def _state_changed(self, names: frozenset[str]) -> None:
        s = self.state
        if names & {"layer", "head"}:
            self.grid.set_current(s.layer, s.head)
        if "selection" in names:
            self.grid.set_filter(s.selection)
        if "sort_by_cluster" in names:
            self._order_grid()
        if "importance_heatmap" in names:
            self.grid.show_heatmap(s.importance_heatmap)

    def _show_groups(self, groups: HeadGroups) -> None:
        """Frames, tooltips, importance bars and grid order for a new head table."""
        names = groups.table.groups()
        self.grid.set_groups(names, lambda li, h: describe_head(groups, li, h,
                                                                str(names[li, h])))
        drop = groups.table.scores.get("logprob_drop")
        self.grid.set_heat(None if drop is None else
                           np.clip(drop, 0, None) / max(float(drop.max()), 1e-9))
        self._order_grid()

    def _order_grid(self) -> None:
        groups = self.state.a.head_groups
        if not (self.state.sort_by_cluster and groups is not None):
            self.grid.set_order(None)
            return
        order = groups.clustering.ordered_cells()
        self.grid.set_order(order, [groups.clustering.cluster_of(*c) for c in order])

    def _show_frame(self, frame: Frame) -> None:
        o = frame.options
        self.view.set_pixmap(to_pixmap(frame.image))
        self.view.show_contour(frame.contours)
        self.view.show_marker(QRectF(*frame.marker) if frame.marker else None)
        x0, y0, x1, y1 = frame.view_box
        h, w = frame.display_size
        whole = x0 <= 0.5 and y0 <= 0.5 and x1 >= w - 0.5 and y1 >= h - 0.5
        self.view.show_unseen(None if whole else QRectF(x0, y0, x1 - x0, y1 - y0))
        self.colour_bar.set_scale(o.cmap, frame.vrange, frame.scale,
                                  o.scaling == "percentile" and frame.scale != "fixed")
        f = self.state.a.finished
        groups = f.head_groups
        self.head_panel.show_map(f.analysis, o, frame.grid_map,
                                 groups.table if groups is not None else None)
        self.view.setToolTip(f"{METHOD_LABELS[o.method]} · layer {o.layer} · head {o.head}")
        self.rendered.emit()

    def toggle_query(self) -> None:
        self.state.update(query="off" if self.state.query != "off" else "row")

    def _step_head(self, d_layer: int, d_head: int) -> None:
        self.state.step_head(d_layer, d_head, self.grid.cells_in_order(), self.grid.per_row)

    def _arrow(self, key: int) -> None:
        steps = {Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1),
                 Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0)}
        self._step_head(*steps[key])
