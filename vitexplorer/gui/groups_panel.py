"""Heads by group: the list, a filter for the head grid, the similarity figure."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vitexplorer.core.constants import GROUP_COLOURS
from vitexplorer.gui.controls import compact
from vitexplorer.gui.similarity_view import SimilarityView
from vitexplorer.gui.state import HeadGroups, ViewState

ROLE_CELLS = Qt.ItemDataRole.UserRole
#: the score behind each group (core.heads.HeadTable.strength divides it by its threshold)
GROUP_SCORES = {"foreground": "fg_score", "background": "fg_score", "edge": "edge_lift",
                "texture": "texture_share", "colour": "colour_score",
                "local": "distance_ratio", "global": "distance_ratio"}


def describe_head(groups: HeadGroups, layer: int, head: int) -> str:
    """One line: the head's group and the score that put it there, its cluster, importance."""
    table = groups.table
    group = table.group(layer, head)
    parts = [f"group: {group}"]
    key = GROUP_SCORES.get(group)
    if key is not None:
        parts[0] += (f" ({key} {table.scores[key][layer, head]:.3f}, "
                     f"{table.strength(group, layer, head):.2f}x threshold)")
    parts.append(f"cluster {groups.clustering.cluster_of(layer, head)}")
    if "logprob_drop" in table.scores:
        parts.append(f"ablation log-p drop {table.scores['logprob_drop'][layer, head]:.3f}")
    return " · ".join(parts)


class GroupsPanel(QWidget):
    """Shows slot A's head groups; writes the mask, grid order, selection and chosen head
    into the state; emits ``importance_requested`` for the controller."""

    importance_requested = Signal()

    def __init__(self, state: ViewState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.mask = QComboBox()
        self.mask.addItem("model's rollout (60% of its mass)", "rollout")
        self.mask.addItem("GrabCut seeded by the rollout", "grabcut")
        self.mask.setToolTip("Foreground used for the foreground/background scores")
        self.sort = QComboBox()
        self.sort.addItems(["by layer", "by similarity cluster"])
        self.sort.setToolTip("Order of the head grid")
        compact(self.mask)
        compact(self.sort)
        form.addRow("Foreground", self.mask)
        form.addRow("Sort grid", self.sort)
        lay.addLayout(form)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Group", "Heads"])
        self.tree.setRootIsDecorated(True)
        self.tree.setToolTip("Click a group to show only its heads in the grid; "
                             "double-click a head to select it")
        lay.addWidget(self.tree, 2)
        self.importance = QPushButton("Head importance (ablation)")
        self.importance.setToolTip("Remove each head in turn and measure the change of the "
                                   "prediction; runs in the background")
        lay.addWidget(self.importance)
        self.figure = SimilarityView()
        lay.addWidget(self.figure, 3)
        self.tree.itemSelectionChanged.connect(self._selected)
        self.tree.itemDoubleClicked.connect(self._double)
        self.mask.currentIndexChanged.connect(
            lambda _i: state.update(mask=self.mask.currentData()))
        self.sort.currentIndexChanged.connect(lambda i: state.update(sort_by_cluster=i == 1))
        self.importance.clicked.connect(self.importance_requested)
        state.changed.connect(self._pull)
        state.a.head_groups_changed.connect(self.set_groups)
        state.a.finished_changed.connect(
            lambda f: self.set_groups(f.head_groups) if f.head_groups is not None else None)

    def _pull(self, names: frozenset[str]) -> None:
        if "mask" in names:
            self.mask.setCurrentIndex(max(0, self.mask.findData(self.state.mask)))
        if "sort_by_cluster" in names:
            self.sort.setCurrentIndex(int(self.state.sort_by_cluster))

    def set_groups(self, groups: HeadGroups) -> None:
        """Fill the list from the head groups of the analysis shown."""
        self.tree.clear()
        table = groups.table
        by_group: dict[str, list[tuple[int, int]]] = {}
        names = table.groups()
        n_l, n_h = table.shape
        for li in range(n_l):
            for h in range(n_h):
                by_group.setdefault(str(names[li, h]), []).append((li, h))
        everyone = QTreeWidgetItem(["all heads", str(n_l * n_h)])
        everyone.setData(0, ROLE_CELLS, None)
        self.tree.addTopLevelItem(everyone)
        for group in GROUP_COLOURS:
            cells = by_group.get(group)
            if not cells:
                continue
            item = QTreeWidgetItem([group, str(len(cells))])
            item.setData(0, ROLE_CELLS, cells)
            item.setForeground(0, QBrush(QColor(GROUP_COLOURS[group])))
            for li, h in cells:
                child = QTreeWidgetItem([f"head {li}.{h}",
                                         f"{table.strength(group, li, h):.2f}x threshold"
                                         if group != "none" else ""])
                child.setData(0, ROLE_CELLS, [(li, h)])
                item.addChild(child)
            self.tree.addTopLevelItem(item)
        self.tree.resizeColumnToContents(0)
        self.figure.set_groups(groups)

    def _selected(self) -> None:
        items = self.tree.selectedItems()
        if not items:
            return
        cells = items[0].data(0, ROLE_CELLS)
        self.state.update(selection=frozenset(cells) if cells else None)

    def _double(self, item: QTreeWidgetItem, _col: int) -> None:
        cells = item.data(0, ROLE_CELLS)
        if cells and len(cells) == 1:
            self.state.select_head(*cells[0])
