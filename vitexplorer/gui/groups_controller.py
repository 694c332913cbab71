"""Head scores for a slot: re-scored when the foreground mask changes, head importance on
request. Results go into the slot (``set_head_groups``); progress goes out as signals."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal

from vitexplorer.gui import jobs
from vitexplorer.gui.slot_controller import SlotController


class GroupsController(SlotController):
    """Runs the head-table and importance workers of one slot."""

    #: a line for the status bar
    message = Signal(str)
    #: (heads ablated, L x H) while the head importance runs
    importance_progress = Signal(int, int)

    def _state_changed(self, names: frozenset[str]) -> None:
        groups = self.slot.head_groups
        if "mask" in names and groups is not None and groups.mask != self.state.mask:
            self.score_heads()

    def score_heads(self, mask_file: str | None = None, box: str | None = None) -> None:
        """Head table, clusters and divergence against the state's foreground mask, a mask
        file the user chose, or GrabCut in a typed box (checked, parsed and run in the
        worker)."""
        if self.slot.analysis is None:
            return
        message = ("Scoring heads against the mask file…" if mask_file else
                   "GrabCut in the box, scoring heads…" if box else "Scoring heads…")
        self.tasks.run(self._kind("groups"), jobs.groups_job, self.slot.analysis,
                       self.state.mask, mask_file=mask_file, box=box,
                       on_done=self.slot.set_head_groups, message=message)

    def compute_importance(self) -> None:
        """Ablate every head for the slot's image (top-1 class) in a worker."""
        if self.slot.analysis is None or self.slot.loaded is None:
            return
        self.tasks.run(self._kind("importance"), jobs.importance_job,
                       self.slot.analysis, on_done=self._importance_done,
                       on_progress=self.importance_progress.emit,
                       message="Ablating every head (importance)… Esc cancels")

    def _importance_done(self, result: dict) -> None:
        groups = self.slot.head_groups
        if groups is None:
            return
        table = groups.table
        table.scores["logprob_drop"] = result["logprob_drop"]
        table.scores["kl"] = result["kl"]
        name = self.slot.analysis.class_name(result["target"])
        self.slot.set_head_groups(replace(groups, importance_class=name))
        self.message.emit(f"Head importance computed for '{name}'.")

