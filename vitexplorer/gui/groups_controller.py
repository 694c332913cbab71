"""Connects the Groups panel to the window: head table, frames, sorting, importance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QColor

from vitexplorer.core.constants import GROUP_COLOURS
from vitexplorer.gui import jobs

if TYPE_CHECKING:
    from vitexplorer.gui.main_window import MainWindow


class GroupsController(QObject):
    """Reacts to the panel's requests with worker jobs and shows their results."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.w = window
        gp = window.groups_panel
        gp.filter_changed.connect(window.grid.set_filter)
        gp.head_chosen.connect(window.controls.select)
        gp.mask_mode_changed.connect(self.mask_mode)
        gp.sort_changed.connect(self.sort_grid)
        gp.importance_requested.connect(self.compute_importance)

    def show(self, groups: jobs.Groups) -> None:
        """Frames, list, similarity view and grid order for a new head table."""
        if self.w.prepared is None:
            return
        self.w.prepared.groups = groups
        names = groups.table.groups()
        n_l, n_h = names.shape
        cells = [(li, h) for li in range(n_l) for h in range(n_h)]
        colours = {c: QColor(GROUP_COLOURS[str(names[c])]) for c in cells
                   if names[c] != "none"}
        self.w.grid.set_frames(colours, {c: str(names[c]) for c in cells})
        self.w.groups_panel.set_groups(groups)
        self.sort_grid(self.w.groups_panel.sort.currentIndex() == 1)
        self.w.render()

    def mask_mode(self, mode: str) -> None:
        if self.w.prepared is None:
            return
        self.w.tasks.run("groups", jobs.groups_job, self.w.prepared.analysis, mode,
                         on_done=self.show, message="Scoring heads…")

    def sort_grid(self, by_cluster: bool) -> None:
        groups = self.w.prepared.groups if self.w.prepared else None
        order = groups.clustering.ordered_cells() if by_cluster and groups else None
        self.w.grid.set_order(order)

    def compute_importance(self) -> None:
        if self.w.prepared is None or self.w.loaded is None:
            return
        self.w.tasks.run("importance", jobs.importance_job,
                         self.w.prepared.analysis, on_done=self._importance_done,
                         message="Ablating every head (importance)…")

    def _importance_done(self, result: dict) -> None:
        groups = self.w.prepared.groups if self.w.prepared else None
        if groups is None:
            return
        groups.table.scores["logprob_drop"] = result["logprob_drop"]
        groups.table.scores["kl"] = result["kl"]
        name = self.w.prepared.analysis.class_name(result["target"])
        self.w.message(f"Head importance computed for '{name}'.")
        self.w.render()

