"""The Groups panel's drawing tools: box, scribbles and mask edits, brush, outline, undo
and redo, save.

Each tool is a checkable action with a key (the window carries the actions, so the keys
work with the panel hidden); choosing one writes ``draw_tool`` into the state, the image
view then draws instead of panning (``mask_overlay``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QToolButton,
    QWidget,
)

from vitexplorer.gui.state import DRAW_TOOLS, ViewState

#: (tool, button text, key, what a drag does)
TOOLS = (("box", "Box", "B", "drag a box around the object: GrabCut in it"),
         ("fg", "Object", "K", "paint over object parts GrabCut missed (keep)"),
         ("bg", "Backgr.", "X", "paint over background GrabCut took (exclude)"),
         ("add", "Add", "A", "paint onto the mask itself"),
         ("erase", "Erase", "E", "erase from the mask itself"))
#: what the panel calls each mask source (core.masks.Foreground.source)
SOURCE_LABELS = {"file": "mask file", "box": "drawn box (GrabCut)",
                 "scribbles": "box + scribbles (GrabCut)", "edited": "edited by hand",
                 "centre": "centre default (model-free GrabCut)",
                 "rollout": "rollout agreement (the model's own map)",
                 "grabcut": "rollout agreement (GrabCut seeded by the model)"}


class MaskTools(QWidget):
    """Tool buttons, brush size, outline toggle, clear and save; ``save_requested`` asks the
    controller to write the mask next to the image."""

    save_requested = Signal()

    def __init__(self, state: ViewState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(2)
        self.tool_actions: dict[str, QAction] = {}
        self._group = QActionGroup(self)
        self._group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        for i, (tool, text, key, tip) in enumerate(TOOLS):
            act = QAction(f"Draw: {DRAW_TOOLS[tool]}", self)
            act.setIconText(text)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(key))
            act.setToolTip(f"{DRAW_TOOLS[tool].capitalize()}: {tip} ({key}; again: pan)")
            act.setStatusTip(DRAW_TOOLS[tool])
            act.toggled.connect(lambda on, t=tool: self._tool_toggled(t, on))
            self._group.addAction(act)
            self.tool_actions[tool] = act
            button = QToolButton()
            button.setDefaultAction(act)
            grid.addWidget(button, 0, i)
        row = QHBoxLayout()
        row.setSpacing(6)
        self.brush = QSpinBox()
        self.brush.setRange(2, 200)
        self.brush.setSuffix(" px")
        self.brush.setToolTip("Brush diameter on screen (scribbles and mask edits)")
        self.brush.setValue(state.brush)
        self.brush.valueChanged.connect(lambda v: state.update(brush=v))
        row.addWidget(QLabel("Brush"))
        row.addWidget(self.brush)
        self.outline = QCheckBox("Outline")
        self.outline.setToolTip("Show the foreground mask's outline over the image (O)")
        self.outline.setChecked(state.show_outline)
        self.outline.toggled.connect(lambda on: state.update(show_outline=on))
        self.outline_action = QAction("Show Mask &Outline", self)
        self.outline_action.setShortcut(QKeySequence("O"))
        self.outline_action.triggered.connect(self.outline.toggle)
        row.addWidget(self.outline)
        row.addStretch(1)
        grid.addLayout(row, 1, 0, 1, len(TOOLS))
        history = state.history
        self.undo_action = QAction("&Undo Drawing Step", self)
        self.undo_action.setShortcuts(QKeySequence.StandardKey.Undo)
        self.undo_action.setToolTip("Take back the last box, stroke, Clear, chosen mask "
                                    "file or mode that dropped them, on this image (Ctrl+Z)")
        self.undo_action.triggered.connect(history.undo)
        self.redo_action = QAction("&Redo Drawing Step", self)
        self.redo_action.setShortcuts(QKeySequence.StandardKey.Redo)
        self.redo_action.setToolTip("Do again the drawing step taken back (Ctrl+Shift+Z)")
        self.redo_action.triggered.connect(history.redo)
        history.changed.connect(self._history_changed)
        self._history_changed()
        buttons = QHBoxLayout()
        for act in (self.undo_action, self.redo_action):
            button = QToolButton()
            button.setDefaultAction(act)
            act.setIconText(act.text().split()[0].replace("&", ""))
            buttons.addWidget(button)
        self.clear = QPushButton("Clear drawing")
        self.clear.setToolTip("Forget the box, scribbles and edits on this image")
        self.clear.clicked.connect(lambda: state.update(drawing=None))
        self.save = QPushButton("Save mask")
        self.save.setToolTip("Write the mask in use as IMAGE_mask.png next to the image (the "
                             "CLI, batch and this window use it automatically)")
        self.save.clicked.connect(self.save_requested)
        buttons.addWidget(self.clear)
        buttons.addWidget(self.save)
        grid.addLayout(buttons, 2, 0, 1, len(TOOLS))
        state.changed.connect(self._pull)

    def window_actions(self) -> list[QAction]:
        """The actions with keys, for the window to carry (keys work with the panel hidden)."""
        return [*self.tool_actions.values(), self.outline_action, self.undo_action,
                self.redo_action]

    def _history_changed(self) -> None:
        """Undo and Redo only while there is a drawing step to take back or do again. A text
        field with the focus keeps its own Ctrl+Z (Qt offers it the key first)."""
        self.undo_action.setEnabled(self.state.history.can_undo())
        self.redo_action.setEnabled(self.state.history.can_redo())

    def _tool_toggled(self, tool: str, on: bool) -> None:
        if on:
            self.state.update(draw_tool=tool)
        elif self.state.draw_tool == tool:
            self.state.update(draw_tool=None)

    def _pull(self, names: frozenset[str]) -> None:
        if "draw_tool" in names:
            for tool, act in self.tool_actions.items():
                act.setChecked(tool == self.state.draw_tool)
        if "brush" in names:
            self.brush.setValue(self.state.brush)
        if "show_outline" in names:
            self.outline.setChecked(self.state.show_outline)


def confirm_overwrite(parent: QWidget, path: Path) -> bool:
    """Ask before a saved mask replaces ``path`` (No is the default)."""
    answer = QMessageBox.question(
        parent, "Replace mask file?", f"{path.name} exists in {path.parent}. Replace it with "
        "the mask in use?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes
