"""Head scores for a slot: re-scored when the foreground changes (mask mode, a chosen mask
file, what the user draws), head importance on request, the mask saved next to the image.
Results go into the slot (``set_head_groups``); progress goes out as signals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal

from vitexplorer.gui import jobs
from vitexplorer.gui.slot_controller import SlotController
from vitexplorer.gui.state import Drawing, FinishedAnalysis, HeadGroups

if TYPE_CHECKING:
    from vitexplorer.core.analysis import Analysis

#: the head table's columns of head importance (ablation), whatever the mask
IMPORTANCE = ("logprob_drop", "kl")


class GroupsController(SlotController):
    """Runs the head-table, importance and mask-saving workers of one slot."""

    #: a line for the status bar
    message = Signal(str)
    #: (heads ablated, L x H) while the head importance runs
    importance_progress = Signal(int, int)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slot.finished_changed.connect(self._new_analysis)

    def _state_changed(self, names: frozenset[str]) -> None:
        if "source" in names:  # a new image: its analysis brings its own scores
            return
        if names & {"mask", "mask_file", "drawing"}:
            self.score_heads()

    def _new_analysis(self, finished: FinishedAnalysis) -> None:
        """Another model or fit of the same photo: its drawing (photo pixels) still holds;
        and a mask mode changed while the analysis ran is scored now."""
        groups = finished.head_groups
        stale = (groups is not None and groups.base_source != "file"
                 and groups.mask != self.state.mask)
        if self.state.drawing or self.state.mask_file or stale:
            self.score_heads()

    def choose_mask_file(self, path: str) -> None:
        """Score against a mask file the user chose (kept for this image); it replaces what
        was drawn (a box would win over it), one step that Undo takes back."""
        self.state.update(mask_file=path, drawing=None)

    def score_heads(self) -> None:
        """Head table, clusters and divergence against the state's foreground mask, the mask
        file the user chose and the state's drawing, in a worker. Both slots score with
        what was drawn on the image (photo pixels), once their analysis is of that image."""
        analysis = self.slot.analysis
        if analysis is None:
            return
        same_image = analysis.source == self.state.source
        drawing = self.state.drawing if same_image else None
        mask_file = self.state.mask_file if same_image else None
        message = ("GrabCut and scoring heads…" if drawing else
                   "Scoring heads against the mask file…" if mask_file else
                   "Scoring heads…")
        self.tasks.run(self._kind("groups"), jobs.groups_job, analysis,
                       self.state.mask, mask_file=mask_file, drawing=drawing,
                       previous=self.slot.head_groups,
                       on_done=lambda groups: self._scored(analysis, groups),
                       on_error=self._scoring_failed, message=message)

    def _scored(self, analysis: Analysis, groups: HeadGroups) -> None:
        """New scores of ``analysis`` into the slot, with the head importance the slot
        holds for it (computed before the scoring or while it ran): ablation does not
        depend on the foreground mask."""
        if self.slot.analysis is not analysis:
            return  # another image or model meanwhile: its own scores come with it
        current = self.slot.head_groups
        if current is not None and current.importance_class is not None:
            groups = _with_importance(groups, {k: current.table.scores[k] for k in IMPORTANCE},
                                      current.importance_class)
        self.slot.set_head_groups(groups)

    def _scoring_failed(self, exc: BaseException) -> bool:
        """A chosen mask file that cannot be used (unreadable, another size) is dropped with
        a line saying why, and the heads are scored without it; a typed box that misses the
        photo is a line too: not a dialog per edit."""
        from vitexplorer.core.errors import ImageError, UsageError

        if isinstance(exc, ImageError) and self.state.mask_file:
            self.message.emit(f"Mask file not used: {exc}")
            self.state.history.drop_mask_file()  # Undo does not bring it back
            return True
        if isinstance(exc, UsageError):
            self.message.emit(f"Heads not scored: {exc}")
            return True
        return False

    def enter_box(self, text: str) -> None:
        """A typed GrabCut box ("x0,y0,x1,y1", photo pixels) replaces the drawn one."""
        from vitexplorer.core.masks import parse_box

        try:
            box = parse_box(text)
        except ValueError as exc:
            self.message.emit(str(exc))
            return
        self.state.update(drawing=replace(self.state.drawing or Drawing(), box=box))

    def save_mask(self, confirm: Callable[[Path], bool]) -> None:
        """Write the foreground in use as ``IMAGE_mask.png`` next to the image (the file the
        CLI, batch and this window pick up), asking ``confirm(path)`` before replacing one."""
        from vitexplorer.core.masks import mask_path

        groups, source = self.slot.head_groups, self.state.source
        if groups is None or groups.foreground is None:
            self.message.emit("No mask to save yet.")
            return
        if not source or not Path(source).is_file():
            self.message.emit("This image is not a file: there is no folder to save its "
                              "mask next to.")
            return
        path = mask_path(source)
        exists = path.exists()
        if exists and not confirm(path):
            self.message.emit(f"Mask not saved: {path.name} kept.")
            return
        self.tasks.run(self._kind("save-mask"), jobs.save_mask_job, groups.foreground,
                       str(path), self.slot.analysis.photo_size, exists,
                       on_done=lambda p: self.message.emit(f"Mask saved to {p}."),
                       on_error=self._save_failed, message=f"Saving {path.name}…")

    def _save_failed(self, exc: BaseException) -> bool:
        from vitexplorer.core.errors import OutputError

        if isinstance(exc, OutputError):
            self.message.emit(f"Mask not saved: {exc}")
            return True
        return False

    def compute_importance(self) -> None:
        """Ablate every head for the slot's image (top-1 class) in a worker."""
        if self.slot.analysis is None or self.slot.loaded is None:
            return
        analysis = self.slot.analysis
        self.tasks.run(self._kind("importance"), jobs.importance_job,
                       analysis, on_done=lambda result: self._importance_done(analysis, result),
                       on_error=self._importance_failed,
                       on_progress=self.importance_progress.emit,
                       message="Ablating every head (importance)… Esc cancels")

    def _importance_failed(self, exc: BaseException) -> bool:
        """A model without a classifier has no importance: a status line saying why."""
        from vitexplorer.core.errors import UsageError

        if isinstance(exc, UsageError):
            self.message.emit(f"Head importance not computed: {exc}")
            return True
        return False

    def _importance_done(self, analysis: Analysis, result: dict) -> None:
        groups = self.slot.head_groups
        if groups is None or self.slot.analysis is not analysis:
            return  # another image or model meanwhile: not its importance
        name = analysis.class_name(result["target"])
        self.slot.set_head_groups(_with_importance(groups, {k: result[k] for k in IMPORTANCE},
                                                   name))
        self.message.emit(f"Head importance computed for '{name}'.")


def _with_importance(groups: HeadGroups, scores: dict, name: str) -> HeadGroups:
    """``groups`` with the importance ``scores`` (per head, for class ``name``) added to a
    copy of its table: the analysis keeps its tables per mask mode and they stay as
    scored."""
    table = replace(groups.table, scores={**groups.table.scores, **scores})
    return replace(groups, table=table, importance_class=name)
