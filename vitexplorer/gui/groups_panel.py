"""Heads by group: the list, a filter for the head grid, the similarity figure."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vitexplorer.core.constants import GROUP_COLOURS
from vitexplorer.gui.controls import compact
from vitexplorer.gui.mask_tools import SOURCE_LABELS, MaskTools
from vitexplorer.gui.similarity_view import SimilarityDialog, SimilarityView
from vitexplorer.gui.state import FinishedAnalysis, HeadGroups, ViewState, has_classifier

ROLE_CELLS = Qt.ItemDataRole.UserRole
#: the score behind each group (core.heads.HeadTable.strength divides it by its threshold)
GROUP_SCORES = {"foreground": "fg_score", "background": "fg_score", "edge": "edge_lift",
                "texture": "texture_share", "colour": "colour_score",
                "local": "distance_ratio", "global": "distance_ratio", "sink": "prefix_share"}

#: the dropdown's foreground modes (core.constants.MASK_MODES), and its entry for the mask in
#: use when it is none of them
MODES = {"centre": "GrabCut in the centre box (model-free)",
         "rollout": "agreement with the model's rollout (60% of its mass)",
         "grabcut": "agreement with the model's rollout (GrabCut seeded by it)"}
IN_USE = "in use"
MODES_TIP = ("The modes give the foreground when no mask file is found or chosen and no box "
             "or scribbles are drawn (hand edits apply to them); choosing one drops the "
             "drawing (Ctrl+Z brings it back) and a chosen mask file. The rollout modes "
             "measure agreement with the model, not the object")
SHORT_MODES = {"centre": "centre GrabCut", "rollout": "rollout agreement",
               "grabcut": "rollout agreement (GrabCut)"}


IMPORTANCE_TIP = ("Remove each head in turn and measure the change of the prediction; "
                  "runs in the background")


def in_use_text(base: str, mask_file: str | None, edited: bool,
                no_box: bool = False) -> str | None:
    """The dropdown's entry for a foreground made from ``base`` (a mask source), or None
    when it is a mode used as it is; ``no_box``: scribbles drawn without a box (GrabCut
    then starts from the centre box)."""
    if base == "file":
        text = f"mask file: {Path(mask_file).name if mask_file else '?'}"
    elif base == "scribbles":
        text = f"drawn: {'centre box' if no_box else 'box'} + scribbles (GrabCut)"
    elif base == "box":
        text = "drawn: box (GrabCut)"
    elif not edited:
        return None
    else:
        text = SHORT_MODES.get(base, base)
    return f"{text}, edited by hand" if edited else text


def describe_head(groups: HeadGroups, layer: int, head: int, group: str | None = None) -> str:
    """One line: the head's group and the score that put it there, its cluster, importance.
    ``group``: the head's group when the caller has it (``table.groups()``) already."""
    table = groups.table
    group = group or table.group(layer, head)
    parts = [f"group: {group}"]
    key = GROUP_SCORES.get(group)
    if key is not None:
        parts[0] += (f" ({key} {table.scores[key][layer, head]:.3f}, "
                     f"{table.strength(group, layer, head):.2f}x threshold)")
    parts.append(f"cluster {groups.clustering.cluster_of(layer, head)}")
    if "logprob_drop" in table.scores:
        parts.append(f"ablation log-p drop {table.scores['logprob_drop'][layer, head]:.3f}")
    return " · ".join(parts)


class _NumberItem(QTreeWidgetItem):
    """Sorts its columns as numbers ("10.2" after "9.1"; head "3.10" after "3.9")."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        col = self.treeWidget().sortColumn()
        key = [float(v) for v in self.text(col).split(".")] if col == 0 else \
            float(self.text(col))
        other_key = [float(v) for v in other.text(col).split(".")] if col == 0 else \
            float(other.text(col))
        return key < other_key


class GroupsPanel(QWidget):
    """Shows slot A's head groups and the mask source they used; writes the mask, drawing
    tool, grid order, selection and chosen head into the state; emits
    ``importance_requested``, ``mask_file_chosen`` (a path), ``box_entered`` (the box as
    typed) and ``tools.save_requested`` for the controller."""

    importance_requested = Signal()
    mask_file_chosen = Signal(str)
    box_entered = Signal(str)

    def __init__(self, state: ViewState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.mask = QComboBox()
        for mode, text in MODES.items():
            self.mask.addItem(text, mode)
        self.mask.setToolTip(MODES_TIP)
        self.sort = QComboBox()
        self.sort.addItems(["by layer", "by similarity cluster"])
        self.sort.setToolTip("Order of the head grid")
        compact(self.mask)
        compact(self.sort)
        form.addRow("Foreground", self.mask)
        self.mask_file = QPushButton("Mask file…")
        self.mask_file.setToolTip("Score against a mask image of this photo (white = object); "
                                  "PHOTO_mask.png next to the photo is used automatically")
        self.mask_file.clicked.connect(self._choose_mask_file)
        form.addRow("", self.mask_file)
        self.box = QLineEdit()
        self.box.setPlaceholderText("x0,y0,x1,y1 then Enter")
        self.box.setToolTip("Foreground by GrabCut in this box (pixels of the photo; "
                            "Rother et al. 2004), or draw it on the image (B)")
        self.box.returnPressed.connect(lambda: self.box_entered.emit(self.box.text()))
        form.addRow("GrabCut box", self.box)
        self.tools = MaskTools(state)
        form.addRow("Draw", self.tools)
        form.addRow("Sort grid", self.sort)
        lay.addLayout(form)
        self.scored_with = QLabel()
        self.scored_with.setWordWrap(True)
        lay.addWidget(self.scored_with)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Group", "Heads"])
        self.tree.setRootIsDecorated(True)
        self.tree.setToolTip("Click a group to show only its heads in the grid; "
                             "double-click a head to select it")
        lay.addWidget(self.tree, 2)
        self.importance = QPushButton("Head importance (ablation)")
        self.importance.setToolTip(IMPORTANCE_TIP)
        lay.addWidget(self.importance)
        self.importance_title = QLabel()
        self.importance_title.setWordWrap(True)
        self.ranking = QTreeWidget()
        self.ranking.setHeaderLabels(["Head", "log-p drop", "KL"])
        self.ranking.setRootIsDecorated(False)
        self.ranking.setSortingEnabled(True)
        self.ranking.setToolTip("Heads by the change of the prediction when each is removed "
                                "(click a column to sort, double-click to select the head)")
        self.heatmap = QCheckBox("Show importance as a heatmap on the grid")
        self.heatmap.setToolTip("Colour each head-grid cell by its log-p drop (inferno: "
                                "black = none, yellow = the largest)")
        self.heatmap.toggled.connect(lambda on: state.update(importance_heatmap=on))
        for w in (self.importance_title, self.heatmap, self.ranking):
            w.hide()
            lay.addWidget(w)
        self.figure = SimilarityView()
        self.figure.pair_chosen.connect(self.choose_pair)
        self.figure.enlarge_requested.connect(self.enlarge)
        lay.addWidget(self.figure, 3)
        self.enlarge_button = QPushButton("Enlarge similarity…")
        self.enlarge_button.setToolTip("The similarity matrix and divergence plot in a "
                                       "window of their own (or double-click the figure)")
        self.enlarge_button.clicked.connect(self.enlarge)
        lay.addWidget(self.enlarge_button)
        self._dialog: SimilarityDialog | None = None
        self.tree.itemSelectionChanged.connect(self._selected)
        self.tree.itemDoubleClicked.connect(self._double)
        self.ranking.itemDoubleClicked.connect(self._double)
        self.mask.currentIndexChanged.connect(self._mode_chosen)
        self.sort.currentIndexChanged.connect(lambda i: state.update(sort_by_cluster=i == 1))
        self.importance.clicked.connect(self.importance_requested)
        state.changed.connect(self._pull)
        state.a.head_groups_changed.connect(self.set_groups)
        state.a.finished_changed.connect(self._new_analysis)

    def _new_analysis(self, finished: FinishedAnalysis) -> None:
        classifier = has_classifier(finished.analysis)
        self.importance.setEnabled(classifier)
        self.importance.setToolTip(IMPORTANCE_TIP if classifier else
                                   "Head importance is the change of a class's probability: "
                                   f"{finished.analysis.model_label} has no classifier head")
        if finished.head_groups is not None:
            self.set_groups(finished.head_groups)

    def choose_pair(self, a: tuple[int, int], b: tuple[int, int]) -> None:
        """Show the first head, and only the pair in the grid."""
        self.state.update(layer=a[0], head=a[1], selection=frozenset({a, b}))

    def enlarge(self) -> SimilarityDialog | None:
        groups = self.state.a.head_groups
        if groups is None:
            return None
        if self._dialog is not None:
            self._dialog.close()
        self._dialog = SimilarityDialog(groups, self)
        self._dialog.view.pair_chosen.connect(self.choose_pair)
        self._dialog.show()
        return self._dialog

    def _mode_chosen(self, index: int) -> None:
        """A mode chosen by the user is the one used: what was drawn (Undo brings it back)
        and a chosen mask file go. A mask file found beside the photo still wins; the entry
        then goes back to naming it."""
        mode = self.mask.itemData(index)
        if mode == IN_USE:
            return
        changed = self.state.update(mask=mode, drawing=None, mask_file=None)
        groups = self.state.a.head_groups
        if not changed and groups is not None:
            self._show_source(groups)

    def _show_source(self, groups: HeadGroups) -> None:
        """The dropdown names the mask the scores used: its mode, or an entry for a mask
        file, a drawn box or scribbles, or hand edits of any of them (never the default
        while something else is in use). With a mask file found beside the photo the modes
        are off: that file wins over them (as in the CLI and batch)."""
        base = groups.base_source or groups.table.meta.get("mask_source", "")
        edited = groups.table.meta.get("mask_source") == "edited"
        text = in_use_text(base, groups.mask_file, edited, groups.centre_box)
        found_file = base == "file" and not self.state.mask_file
        with QSignalBlocker(self.mask):
            at = self.mask.findData(IN_USE)
            if text is None:
                if at >= 0:
                    self.mask.removeItem(at)
                self.mask.setCurrentIndex(max(0, self.mask.findData(base)))
            else:
                if at < 0:
                    self.mask.addItem(text, IN_USE)
                    at = self.mask.count() - 1
                self.mask.setItemText(at, text)
                self.mask.setItemData(at, f"Scores use: {groups.mask}",
                                      Qt.ItemDataRole.ToolTipRole)
                self.mask.setCurrentIndex(at)
        model = self.mask.model()
        for i in range(len(MODES)):
            model.item(i).setEnabled(not found_file)
        self.mask.setToolTip(
            f"Scores use: {groups.mask}. {MODES_TIP}" + (
                f" {Path(groups.mask_file).name} beside the photo is used instead of the "
                "modes: move or rename it to score against one" if found_file else ""))

    def _pull(self, names: frozenset[str]) -> None:
        if "mask" in names and self.mask.findData(IN_USE) < 0:
            with QSignalBlocker(self.mask):
                self.mask.setCurrentIndex(max(0, self.mask.findData(self.state.mask)))
        if "drawing" in names:  # the box in use, or none (Clear, Undo, a new image)
            box = self.state.drawing.box if self.state.drawing else None
            self.box.setText("" if box is None else ",".join(map(str, box)))
        if "sort_by_cluster" in names:
            self.sort.setCurrentIndex(int(self.state.sort_by_cluster))
        if "importance_heatmap" in names:
            self.heatmap.setChecked(self.state.importance_heatmap)

    def _choose_mask_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Foreground mask", "",
                                              "Images (*.png *.bmp *.tif *.tiff *.jpg *.jpeg "
                                              "*.webp)")
        if path:
            self.mask_file_chosen.emit(path)

    def set_groups(self, groups: HeadGroups) -> None:
        """Fill the list from the head groups of the analysis shown."""
        self.tree.clear()
        table = groups.table
        warning = table.meta.get("mask_warning")
        source = table.meta.get("mask_source")
        self._show_source(groups)
        self.scored_with.setText(f"Mask source: <b>{SOURCE_LABELS.get(source, source)}</b>"
                                 f"<br>Scores computed with the foreground mask "
                                 f"<b>{table.meta.get('mask', groups.mask)}</b>"
                                 + (f"<br><i>{warning}</i>" if warning else ""))
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
            key = GROUP_SCORES.get(group)
            for li, h in cells:
                score = "" if key is None else (
                    f"{key} {table.scores[key][li, h]:.3f} · "
                    f"{table.strength(group, li, h):.2f}x threshold")
                child = QTreeWidgetItem([f"head {li}.{h}", score])
                child.setData(0, ROLE_CELLS, [(li, h)])
                item.addChild(child)
            self.tree.addTopLevelItem(item)
        self._fit_columns()
        self.figure.set_groups(groups)
        if self._dialog is not None and self._dialog.isVisible():
            self._dialog.view.set_groups(groups)
        self._show_ranking(groups)

    def _fit_columns(self) -> None:
        """Columns as wide as their longest text, collapsed rows included (labels never
        truncated; the list scrolls sideways instead). Measures the few longest strings
        only (one font-metrics call per row costs ~15 ms for ViT-B)."""
        fm = self.tree.fontMetrics()
        texts: list[list[str]] = [[self.tree.headerItem().text(c)] for c in (0, 1)]
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for item in [top] + [top.child(k) for k in range(top.childCount())]:
                for c in (0, 1):
                    texts[c].append(item.text(c))
        for c, extra in ((0, 2 * self.tree.indentation() + 12), (1, 12)):
            longest = sorted(texts[c], key=len)[-3:]
            self.tree.setColumnWidth(c, max(fm.horizontalAdvance(t) for t in longest) + extra)

    def _show_ranking(self, groups: HeadGroups) -> None:
        """The importance list, for the class it was computed for (hidden before)."""
        table = groups.table
        shown = "logprob_drop" in table.scores
        for w in (self.importance_title, self.heatmap, self.ranking):
            w.setVisible(shown)
        if not shown:
            return
        self.importance_title.setText(f"<b>Head importance</b> for the class "
                                      f"<b>{groups.importance_class}</b> (ablation)")
        self.ranking.setSortingEnabled(False)
        self.ranking.clear()
        drop, kl = table.scores["logprob_drop"], table.scores["kl"]
        for li in range(drop.shape[0]):
            for h in range(drop.shape[1]):
                item = _NumberItem([f"{li}.{h}", f"{drop[li, h]:.4f}", f"{kl[li, h]:.4f}"])
                item.setData(0, ROLE_CELLS, [(li, h)])
                self.ranking.addTopLevelItem(item)
        self.ranking.setSortingEnabled(True)
        self.ranking.sortByColumn(1, Qt.SortOrder.DescendingOrder)

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
