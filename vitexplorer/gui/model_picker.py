"""Choose a model: timm's supported ViTs in columns, their pretrained config, and why a model
someone searched for is not offered."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QSplitter,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

COLUMNS = ("Name", "Family", "Parameters", "Patch", "Input", "Pretrained tag", "Cached")
ROLE_NAME = Qt.ItemDataRole.UserRole
ROLE_COUNT = Qt.ItemDataRole.UserRole + 1
PARAMS = COLUMNS.index("Parameters")
#: config keys shown first in the detail pane
DETAIL_KEYS = ("hf_hub_id", "architecture", "tag", "input_size", "crop_pct", "crop_mode",
               "interpolation", "mean", "std", "num_classes", "license")


class _Row(QTreeWidgetItem):
    """A model's row: the parameter column sorts by the count, not by its text."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        column = self.treeWidget().sortColumn() if self.treeWidget() else 0
        if column == PARAMS:
            return (self.data(PARAMS, ROLE_COUNT) or 0) < (other.data(PARAMS, ROLE_COUNT) or 0)
        return self.text(column) < other.text(column)  # (the base's __lt__ recurses here)


class ModelPicker(QDialog):
    """Search the supported models (``catalog["rows"]``); ``catalog["unsupported"]`` maps the
    other timm models to why they are not offered. The caller counts the parameters of
    every listed model in a worker and hands each count to :meth:`set_parameters`;
    ``parameters_wanted(name)`` says which unknown count the user is looking at (to be
    counted next)."""

    parameters_wanted = Signal(str)

    def __init__(self, catalog: dict, current: str, weights: str = "pretrained",
                 parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a model")
        self.resize(900, 560)
        self._rows = catalog["rows"]
        self._unsupported = catalog.get("unsupported", {})
        self._params: dict[str, int] = {}
        lay = QVBoxLayout(self)
        self.search = QLineEdit(placeholderText="Search, e.g. dino, deit, eva02, clip, reg4 "
                                                "- or type hf-hub:org/name")
        self.search.setClearButtonEnabled(True)
        self.only_cached = QRadioButton("Cached only")
        self.all = QRadioButton("All supported")
        self.all.setChecked(True)
        row = QHBoxLayout()
        row.addWidget(self.search, 1)
        row.addWidget(self.all)
        row.addWidget(self.only_cached)
        lay.addLayout(row)
        self.list = QTreeWidget()
        self.list.setHeaderLabels(list(COLUMNS))
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setSortingEnabled(True)
        self.detail = QTextBrowser()
        self.detail.setMinimumWidth(220)
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay.addWidget(split, 1)
        self.why = QLabel()
        self.why.setWordWrap(True)
        lay.addWidget(self.why)
        self.weights = QComboBox()
        self.weights.addItem("Pretrained (download once, then cached)", "pretrained")
        self.weights.addItem("Random weights (demo: maps are meaningless)", "random")
        self.weights.setCurrentIndex(1 if weights == "random" else 0)
        form = QFormLayout()
        form.addRow("Weights", self.weights)
        lay.addLayout(form)
        self.count = QLabel()
        lay.addWidget(self.count)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.search.textChanged.connect(self._refill)
        self.only_cached.toggled.connect(self._refill)
        self.list.itemDoubleClicked.connect(lambda *_a: self.accept())
        self.list.currentItemChanged.connect(self._show_detail)
        self._refill()
        found = self.list.findItems(current, Qt.MatchFlag.MatchExactly, 0) or \
            self.list.findItems(current, Qt.MatchFlag.MatchContains, 0)
        if found:
            self.list.setCurrentItem(found[0])

    def _refill(self) -> None:
        words = self.search.text().lower().split()
        self.list.setSortingEnabled(False)
        self.list.clear()
        self._items: dict[str, QTreeWidgetItem] = {}
        for r in self._rows:
            if words and not all(w in r["name"].lower() for w in words):
                continue
            if self.only_cached.isChecked() and not r["cached"]:
                continue
            item = _Row([r["name"], r["family"], "", str(r["patch"] or ""), r["input"],
                         r["tag"], "★ cached" if r["cached"] else ""])
            item.setData(0, ROLE_NAME, r["name"])
            self._items[r["name"]] = item
            if r["name"] in self._params:
                self._show_count(item, self._params[r["name"]])
            self.list.addTopLevelItem(item)
        self.list.setSortingEnabled(True)
        self.list.resizeColumnToContents(0)
        shown = self.list.topLevelItemCount()
        self.count.setText(f"{shown} of {len(self._rows)} models · ★ = weights in the local "
                           "cache (work offline)")
        self.why.setText(self.why_not_listed(words) if words else "")
        if shown:
            self.list.setCurrentItem(self.list.topLevelItem(0))

    def why_not_listed(self, words: list[str]) -> str:
        """Why timm models matching the search are missing from the list (up to three)."""
        if not words or self.search.text().strip().startswith("hf-hub:"):
            return ""
        missing = [(n, why) for n, why in self._unsupported.items()
                   if all(w in n.lower() for w in words)]
        if not missing:
            return ""
        reasons: dict[str, list[str]] = {}
        for name, why in missing:
            reasons.setdefault(why, []).append(name)
        lines = [f"{why} (e.g. {names[0]}{', …' if len(names) > 1 else ''})"
                 for why, names in list(reasons.items())[:3]]
        return f"Not listed: {len(missing)} matching timm models. " + "; ".join(lines)

    def _show_detail(self, item: QTreeWidgetItem | None, _prev=None) -> None:
        if item is None:
            self.detail.clear()
            return
        name = item.data(0, ROLE_NAME)
        row = next(r for r in self._rows if r["name"] == name)
        cfg = row["config"]
        keys = [k for k in DETAIL_KEYS if k in cfg] + sorted(
            k for k in cfg if k not in DETAIL_KEYS and cfg[k] not in (None, "", False))
        params = self._params.get(name)
        body = "".join(f"<tr><td>{k}</td><td>{cfg[k]}</td></tr>" for k in keys)
        self.detail.setHtml(f"<b>{name}</b><br>Parameters: "
                            f"{'counting…' if params is None else f'{params / 1e6:.1f} M'}"
                            f"<br><br>Pretrained config:<table>{body}</table>")
        if params is None:
            self.parameters_wanted.emit(name)

    def set_parameters(self, name: str, count: int) -> None:
        self._params[name] = count
        item = self._items.get(name)
        if item is not None:
            self._show_count(item, count)
        current = self.list.currentItem()
        if current is not None and current.data(0, ROLE_NAME) == name:
            self._show_detail(current)

    @staticmethod
    def _show_count(item: QTreeWidgetItem, count: int) -> None:
        item.setText(PARAMS, f"{count / 1e6:.1f} M")
        item.setData(PARAMS, ROLE_COUNT, count)
        item.setTextAlignment(PARAMS, Qt.AlignmentFlag.AlignRight)

    def choice(self) -> tuple[str, str] | None:
        """(spec, weights): the selected model, or an ``hf-hub:org/name`` id typed in the
        search box."""
        typed = self.search.text().strip()
        if typed.startswith("hf-hub:"):
            return typed, self.weights.currentData()
        item = self.list.currentItem()
        if item is None:
            return None
        return item.data(0, ROLE_NAME), self.weights.currentData()
