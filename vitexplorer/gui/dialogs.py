"""Dialogs: model picker, export, model info and the unexpected-error report."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from vitexplorer.core.constants import FORMATS


class ModelPicker(QDialog):
    """Search timm's registry (supported families only), see which weights are cached."""

    def __init__(self, models: list[tuple[str, bool]], current: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a model")
        self.resize(520, 560)
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
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        lay.addWidget(self.list, 1)
        self.weights = QComboBox()
        self.weights.addItem("Pretrained (download once, then cached)", "pretrained")
        self.weights.addItem("Random weights (demo: maps are meaningless)", "random")
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
        self._models = models
        self.search.textChanged.connect(self._refill)
        self.only_cached.toggled.connect(self._refill)
        self.list.itemDoubleClicked.connect(lambda _i: self.accept())
        self._refill()
        found = self.list.findItems(current, Qt.MatchFlag.MatchContains)
        if found:
            self.list.setCurrentItem(found[0])

    def _refill(self) -> None:
        words = self.search.text().lower().split()
        self.list.clear()
        for name, cached in self._models:
            if words and not all(w in name.lower() for w in words):
                continue
            if self.only_cached.isChecked() and not cached:
                continue
            item = QListWidgetItem(f"{name}    ★ cached" if cached else name)
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.list.addItem(item)
        self.count.setText(f"{self.list.count()} of {len(self._models)} models · "
                           "★ = weights in the local cache (work offline)")
        if self.list.count():
            self.list.setCurrentRow(0)

    def choice(self) -> tuple[str, str] | None:
        """(spec, weights): the selected model, or an ``hf-hub:org/name`` id typed in the
        search box."""
        typed = self.search.text().strip()
        if typed.startswith("hf-hub:"):
            return typed, self.weights.currentData()
        item = self.list.currentItem()
        if item is None:
            return None
        return item.data(Qt.ItemDataRole.UserRole), self.weights.currentData()


EXPORT_KINDS = {"view": "Current view (overlay, colour bar, caption)",
                "layer": "All heads of the current layer",
                "grid": "Head grid: every layer x head"}


class ExportDialog(QDialog):
    """What to export and where; the figure itself is made by the core."""

    def __init__(self, suggested: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export figure")
        lay = QVBoxLayout(self)
        self.kinds = QButtonGroup(self)
        for i, (key, label) in enumerate(EXPORT_KINDS.items()):
            b = QRadioButton(label)
            b.setProperty("kind", key)
            self.kinds.addButton(b, i)
            lay.addWidget(b)
            b.setChecked(i == 0)
        form = QFormLayout()
        self.format = QComboBox()
        self.format.addItems([f.upper() for f in FORMATS])
        self.path = QLineEdit(suggested)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        holder = QWidget()
        holder.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Format", self.format)
        form.addRow("File", holder)
        lay.addLayout(form)
        self.format.currentTextChanged.connect(self._sync_suffix)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(520, self.sizeHint().height())

    def _sync_suffix(self, fmt: str) -> None:
        p = self.path.text()
        stem = p.rsplit(".", 1)[0] if "." in p.rsplit("/", 1)[-1] else p
        self.path.setText(f"{stem}.{fmt.lower()}")

    def _browse(self) -> None:
        fmt = self.format.currentText().lower()
        path, _ = QFileDialog.getSaveFileName(self, "Export figure", self.path.text(),
                                              f"{fmt.upper()} (*.{fmt})")
        if path:
            self.path.setText(path)

    def kind(self) -> str:
        return self.kinds.checkedButton().property("kind")

    def target(self) -> str:
        return self.path.text()


def show_error(parent: QWidget, title: str, text: str, details: str = "") -> None:
    """An error with its details to copy; the application keeps running."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok,
                      parent)
    if details:
        box.setDetailedText(details)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.open()


def model_info_text(loaded) -> str:
    """Human description of a loaded model (called on the GUI thread; reads attributes)."""
    m = loaded.model
    blocks = len(m.blocks)
    heads = m.blocks[0].attn.num_heads
    grid = tuple(m.patch_embed.grid_size)
    n_prefix = getattr(m, "num_prefix_tokens", 1)
    cfg = loaded.data_config
    return (f"<b>{loaded.label}</b><br>"
            f"Architecture: {loaded.architecture}<br>"
            f"Weights: {loaded.weights}<br>"
            f"Parameters: {loaded.num_parameters / 1e6:.1f} M<br>"
            f"Blocks x heads: {blocks} x {heads}<br>"
            f"Patch size: {loaded.patch_size[0]} x {loaded.patch_size[1]}<br>"
            f"Token grid: {grid[0]} x {grid[1]} at {cfg['input_size'][1]} x "
            f"{cfg['input_size'][2]} px<br>"
            f"Prefix tokens: {n_prefix} (class: "
            f"{'yes' if getattr(m, 'cls_token', None) is not None else 'no'}, registers: "
            f"{getattr(m, 'num_reg_tokens', 0) or 0})<br>"
            f"Preprocessing: {cfg.get('interpolation')}, crop {cfg.get('crop_pct')}, "
            f"mean {tuple(round(v, 3) for v in cfg['mean'])}<br>"
            f"Device: {loaded.device}")
