"""The base of the controllers that work for one model slot (map, groups)."""

from __future__ import annotations

from PySide6.QtCore import QObject

from vitexplorer.gui.state import ModelSlot, ViewState
from vitexplorer.gui.tasks import TaskRunner


class SlotController(QObject):
    """Reads the view state and runs one slot's workers; a subclass reacts to state changes
    in ``_state_changed`` and names its jobs with ``_kind`` so slots A and B never cancel
    each other's work."""

    def __init__(self, state: ViewState, slot: ModelSlot, tasks: TaskRunner,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.slot = slot
        self.tasks = tasks
        state.changed.connect(self._state_changed)

    def _kind(self, kind: str) -> str:
        return f"{kind}-{self.slot.name}"

    def _state_changed(self, names: frozenset[str]) -> None:
        raise NotImplementedError
