"""Compare mode: a second model in slot B, drawn beside the first with the same view options.

Slot B analyses the image slot A shows; both analyses are paired by
:func:`vitexplorer.core.compare.compare_analyses` in a worker (or, on request, over every
image of the folder by :func:`~vitexplorer.core.compare.compare_models`: one pairing that
stays while the folder is browsed), and B's view then shows, for
the per-head methods, the head of B matched to A's selected head (its match highlighted in the
caption and current in B's head grid, framed by B's groups as A's grid is by A's, scored
against the same foreground: mask mode, mask file and what is drawn on the image, which is in
the photo's pixels, shown and drawn on B's view as on A's; a click on
B's grid selects A's matching head), for the other methods the block at the same relative
depth. Method, colormap,
scaling, opacity, rollout settings and class stay in step because both slots draw from the one
:class:`~vitexplorer.gui.state.ViewState`; the patch query follows when both token grids agree.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from vitexplorer.core.constants import PER_HEAD_METHODS
from vitexplorer.gui.analysis_controller import AnalysisController
from vitexplorer.gui.groups_controller import GroupsController
from vitexplorer.gui.head_grid import HeadGrid
from vitexplorer.gui.image_view import ImageView
from vitexplorer.gui.map_controller import Frame, MapController
from vitexplorer.gui.mask_overlay import MaskOverlay
from vitexplorer.gui.qimage import to_pixmap
from vitexplorer.gui.state import FinishedAnalysis, ViewOptions, ViewState
from vitexplorer.gui.tasks import TaskRunner


def compare_job(a, b, should_stop=None):
    """The two slots' analyses of one image, paired (heads matched on image pixels)."""
    from vitexplorer.core.compare import compare_analyses

    return compare_analyses([(a, b)], scores=False)


def folder_compare_job(a, b, paths: list, policy: str, should_stop=None, progress=None):
    """Both models' heads paired over the images ``paths`` (mean JS distance), counting
    the images as they are analysed."""
    from vitexplorer.core.compare import compare_models

    def counted():
        for i, p in enumerate(paths):
            progress(i, len(paths))
            yield p

    return compare_models(a, b, counted(), policy, scores=False, should_stop=should_stop)


def matched_options(o: ViewOptions, comparison, a, b, where: str = "on this image"
                    ) -> tuple[ViewOptions, str]:
    """B's options for A's ``o`` and a caption saying which head of B is shown and why
    (``where`` the pairing's cost was measured)."""
    la = o.layer % a.num_layers
    same_grid = a.layout.grid == b.layout.grid
    query = o.query if same_grid else "off"
    if o.method in PER_HEAD_METHODS and comparison is not None:
        match = comparison.match_of(0, la, o.head)
        if match is not None:
            lb, hb, cost = match
            return (replace(o, layer=lb, head=hb, query=query),
                    f"head {lb}.{hb}: the match of A's head {la}.{o.head} (JS distance "
                    f"{cost:.3f} {where})")
        return (replace(o, layer=b.num_layers - 1, head=0, query=query),
                f"A's head {la}.{o.head} has no match in B (B has fewer heads)")
    lb = round(la / max(a.num_layers - 1, 1) * (b.num_layers - 1))
    return (replace(o, layer=lb, head=min(o.head, b.num_heads - 1), query=query),
            f"block {lb} of {b.num_layers} (A's block {la} of {a.num_layers}, same depth)"
            + ("" if comparison is None or o.method in PER_HEAD_METHODS else
               f"; fused rollouts: JS {comparison.rollout_distance:.3f}"))


class SecondAnalyses(AnalysisController):
    """Slot B's loading and analysis: the result goes into slot B only, never into the
    shared state (the image, layer and head are slot A's)."""

    owns_input_size = False  # slot A's maps set it back; B follows

    def _analysis_done(self, finished: FinishedAnalysis) -> None:
        self.slot.set_finished(finished)
        self.analysis_shown.emit()


class SecondMaps(MapController):
    """Slot B's frames, drawn with A's options translated by :func:`matched_options`."""

    def __init__(self, state: ViewState, tasks: TaskRunner, parent: QObject | None = None):
        super().__init__(state, state.b, tasks, parent)
        self.comparison = None  # the pairing on the image shown
        self.folder_comparison = None  # the pairing over a folder, when asked for
        self.caption = ""

    @property
    def pairing(self):
        """The pairing B follows: the folder's when there is one, else the image's."""
        return self.folder_comparison or self.comparison

    def view_options(self) -> ViewOptions:
        a, b = self.state.a.analysis, self.slot.analysis
        if a is None or b is None:
            return self.state.options
        folder = self.folder_comparison
        where = "on this image" if folder is None else \
            f"mean over {folder.n_images} images of the folder"
        o, self.caption = matched_options(self.state.options, self.pairing, a, b, where)
        return o

    def _refresh_thumbnails(self) -> None:
        """B shows no head grid of its own."""


class ComparePanel(QWidget):
    """B's view, a caption (model, head shown, why) and B's head grid, framed by B's groups,
    its current cell the match of A's selection."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = ImageView()
        self.grid = HeadGrid()
        self.caption = QLabel("Model ▸ Compare with Second Model… loads a model here; it "
                              "follows the first model's image and view options.")
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.caption)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.grid)


class CompareController(QObject):
    """Keeps slot B analysing A's image, pairs the two, and feeds the panel."""

    #: a line for the status bar
    message = Signal(str)
    #: a new comparison of the image shown (tests wait on it)
    compared = Signal(object)
    #: a new pairing over a folder's images
    compared_folder = Signal(object)

    def __init__(self, state: ViewState, tasks: TaskRunner, panel: ComparePanel,
                 model_kwargs: dict | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.tasks, self.panel = state, tasks, panel
        self.analyses = SecondAnalyses(state, state.b, tasks, model_kwargs, self)
        self.maps = SecondMaps(state, tasks, self)
        self.groups = GroupsController(state, state.b, tasks, self)  # B's head scores
        self.overlay = MaskOverlay(state, state.b, panel.view, self)  # B's outline; draws too
        self.groups.message.connect(self.message)
        self.analyses.message.connect(self.message)
        self.analyses.rebuild_failed.connect(
            lambda text: self.message.emit(f"Second model not rebuilt: {text}"))
        self.analyses.model_failed.connect(lambda exc: self.message.emit(
            f"Second model not loaded: {str(exc).splitlines()[0]}"))
        self.analyses.image_failed.connect(self.message)
        self.maps.message.connect(self.message)
        self.maps.frame_ready.connect(self._show_frame)
        self.maps.thumbnails_ready.connect(panel.grid.set_thumbnails)
        panel.grid.selected.connect(self._b_head_clicked)
        state.a.finished_changed.connect(self._a_finished)
        state.a.loaded_changed.connect(lambda _l: self._forget_folder())
        state.b.loaded_changed.connect(self._b_loaded)
        state.b.finished_changed.connect(self._b_finished)
        state.b.head_groups_changed.connect(lambda _g: self._frame_groups(state.b.finished))
        state.changed.connect(lambda names: self._forget_folder()
                              if names & {"policy", "input_size"} else None)

    def load_model(self, spec: str, weights: str = "pretrained") -> None:
        self.analyses.load_model(spec, weights)

    def _b_loaded(self, _loaded) -> None:
        self._forget_folder()
        self._a_finished(self.state.a.finished)

    def pair_folder(self, paths: list[Path]) -> None:
        """Pair the heads over every image of ``paths`` in a worker (progress in the status
        bar, Esc cancels); B then follows that pairing while the folder is browsed."""
        a, b = self.state.a.loaded, self.state.b.loaded
        if a is None or b is None:
            self.message.emit("Load a second model first (Model ▸ Compare with Second "
                              "Model…).")
            return
        if not paths:
            self.message.emit("Open a folder (or an image in one) to pair its images.")
            return
        n = len(paths)
        self.tasks.run("compare-folder", folder_compare_job, a, b, list(paths),
                       self.state.policy, on_done=self._compared_folder,
                       on_progress=lambda done, _n: self.message.emit(
                           f"Pairing the heads over the folder: image {done + 1} of {n}…"),
                       message=f"Pairing the heads over {n} images…")

    def _compared_folder(self, comparison) -> None:
        self.maps.folder_comparison = comparison
        skipped = ""
        if comparison.skipped:  # the first file and why; the count says if there are more
            path, reason = comparison.skipped[0]
            skipped = (f" ({len(comparison.skipped)} unreadable skipped, "
                       f"{Path(path).name}: {reason})")
        self.message.emit(f"Heads paired over {comparison.n_images} images{skipped}; B "
                          "follows this pairing while you browse.")
        self.maps.render()
        self.compared_folder.emit(comparison)

    def _forget_folder(self) -> None:
        """A model, the fit or the input size changed: the folder's pairing no longer holds."""
        self.tasks.cancel("compare-folder")
        self.maps.folder_comparison = None

    def _a_finished(self, finished: FinishedAnalysis | None) -> None:
        if finished is None or self.state.b.loaded is None:
            return
        self.maps.comparison = None
        a = finished.analysis
        # a display copy stands for its file (B decodes it as A did: same geometry) or for
        # the pasted array it was made from
        self.analyses.analyze(a.photo if a.photo is not None else
                              a.source if a.original is not None else a.image, a.source)

    def _b_finished(self, finished: FinishedAnalysis) -> None:
        self._frame_groups(finished)
        a = self.state.a.analysis
        if a is None or finished.analysis.source != a.source:
            return
        self.tasks.run("compare-B", compare_job, a, finished.analysis,
                       on_done=self._compared, message="Pairing the heads of the two models…")

    def _compared(self, comparison) -> None:
        if self.state.b.analysis is not comparison.first[1]:
            return  # B moved on meanwhile
        self.maps.comparison = comparison
        self.maps.render()
        self.compared.emit(comparison)

    def _frame_groups(self, finished: FinishedAnalysis) -> None:
        """B's grid framed in the colours of B's head groups, as A's grid is in A's."""
        if finished.head_groups is None:
            return
        names = finished.head_groups.table.groups()
        self.panel.grid.set_groups(names, {(li, h): f"B {li}.{h}: group {g}"
                                           for (li, h), g in np.ndenumerate(names)})

    def _b_head_clicked(self, layer: int, head: int) -> None:
        """A click on B's grid selects, in A, the head matched to that head of B."""
        comp = self.maps.pairing
        match = None if comp is None else comp.match_of(1, layer, head)
        if match is None:
            self.message.emit(f"B's head {layer}.{head} has no match in A.")
            return
        self.state.select_head(match[0], match[1])

    def _show_frame(self, frame: Frame) -> None:
        b = self.state.b
        self.panel.grid.set_current(frame.options.layer, frame.options.head)
        self.panel.view.set_pixmap(to_pixmap(frame.image))
        self.panel.view.show_contour(frame.contours)
        self.panel.caption.setText(f"<b>B: {b.loaded.label}</b> · "
                                   f"{Path(b.analysis.source).name} · {self.maps.caption}")
