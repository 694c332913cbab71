"""Dialogs: export, model info and the unexpected-error report."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from vitexplorer.core.constants import DEFAULT_CMAP, FORMATS

PREVIEW_PX = 420  # longest side of the export dialog's preview
EXPORT_KINDS = {"view": "Current view (overlay, colour bar, caption)",
                "layer": "All heads of the current layer",
                "grid": "Head grid: every layer x head"}


class ExportDialog(QDialog):
    """What to export, where, and how it looks (size, text, scale, colormap), with a live
    preview; the figure itself is made by the core (``preview`` is asked to render it in a
    worker and answers through :meth:`show_preview`)."""

    def __init__(self, suggested: str, parent=None, preview=None, cmap: str = DEFAULT_CMAP,
                 scale: str = "shared") -> None:
        super().__init__(parent)
        self.setWindowTitle("Export figure")
        outer = QHBoxLayout(self)
        lay = QVBoxLayout()
        outer.addLayout(lay)
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
        self._figure_rows(form, cmap, scale)
        lay.addLayout(form)
        self.error = QLabel()
        self.error.setStyleSheet("color: #b00020")
        lay.addWidget(self.error)
        self.format.currentTextChanged.connect(self._sync_suffix)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save |
                                   QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        lay.addStretch(1)
        lay.addWidget(buttons)
        self.preview = QLabel("Preview…")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(PREVIEW_PX, PREVIEW_PX)
        outer.addWidget(self.preview)
        self._preview = preview
        self._timer = QTimer(self, singleShot=True, interval=250)  # one render per pause
        self._timer.timeout.connect(self._request_preview)
        self.kinds.buttonToggled.connect(lambda *_: self._changed())
        self._changed()

    def _figure_rows(self, form: QFormLayout, cmap: str, scale: str) -> None:
        from vitexplorer.core.render import COLORMAPS

        self.preset = QComboBox()
        for key, label in (("double", "Double column (7.2 in)"),
                           ("single", "Single column (3.5 in)"), ("slide", "Slide (16:9)")):
            self.preset.addItem(label, key)
        self.width = QLineEdit(placeholderText="preset (e.g. 3.5in, 1200px, 89mm)")
        self.height = QLineEdit(placeholderText="fitted to the content")
        self.dpi = QSpinBox(minimum=50, maximum=1200, value=300, singleStep=50)
        self.font_size = QDoubleSpinBox(minimum=0, maximum=40, value=0, singleStep=0.5,
                                        specialValueText="preset")
        self.title = QLineEdit(placeholderText="default: model · method · layer · head")
        self.show_title = QCheckBox("Title")
        self.caption = QLineEdit(placeholderText="default: image, colour scale, contour")
        self.show_caption = QCheckBox("Caption")
        for box in (self.show_title, self.show_caption):
            box.setChecked(True)
        self.scale = QComboBox()
        self.scale.addItem("Shared by all panels", "shared")
        self.scale.addItem("Per panel", "per-panel")
        self.scale.setCurrentIndex(self.scale.findData(scale))
        self.cmap = QComboBox(editable=True)
        self.cmap.addItems(COLORMAPS)
        self.cmap.setCurrentText(cmap)
        form.addRow("Size", self.preset)
        form.addRow("Width", self.width)
        form.addRow("Height", self.height)
        form.addRow("DPI", self.dpi)
        form.addRow("Font size", self.font_size)
        form.addRow(self.show_title, self.title)
        form.addRow(self.show_caption, self.caption)
        form.addRow("Grid colour scale", self.scale)
        form.addRow("Colormap", self.cmap)
        for w in (self.preset, self.scale, self.cmap):
            w.currentTextChanged.connect(self._changed)
        for w in (self.width, self.height, self.title, self.caption):
            w.textChanged.connect(self._changed)
        for w in (self.dpi, self.font_size):
            w.valueChanged.connect(self._changed)
        for w in (self.show_title, self.show_caption):
            w.toggled.connect(self._changed)

    def figure_options(self):
        """The :class:`~vitexplorer.core.figures.FigureOptions` of the widgets (ValueError
        on a bad length or colormap)."""
        from vitexplorer.core.figures import FigureOptions, parse_length

        dpi = float(self.dpi.value())
        w, h = self.width.text().strip(), self.height.text().strip()
        return FigureOptions(
            preset=self.preset.currentData(), dpi=dpi,
            width=parse_length(w, dpi) if w else None,
            height=parse_length(h, dpi) if h else None,
            font_size=self.font_size.value() or None,
            title=(self.title.text() or None) if self.show_title.isChecked() else "",
            caption=(self.caption.text() or None) if self.show_caption.isChecked() else "",
            scale=self.scale.currentData(), cmap=self.cmap.currentText().strip())

    def _changed(self) -> None:
        try:
            self.figure_options()
        except ValueError as exc:
            self.error.setText(str(exc))
            self.save_button.setEnabled(False)
            return
        self.error.clear()
        self.save_button.setEnabled(True)
        self._timer.start()

    def _request_preview(self) -> None:
        if self._preview is not None:
            self._preview(self.kind(), self.figure_options())

    def show_preview(self, rgb) -> None:
        """Show the rendered figure (called on the GUI thread with the worker's pixels)."""
        from vitexplorer.gui.qimage import to_pixmap

        self.preview.setPixmap(to_pixmap(rgb))

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
    from vitexplorer.core.capture import token_layout  # torch: loaded by now, not at start

    m = loaded.model
    blocks = len(m.blocks)
    heads = m.blocks[0].attn.num_heads
    cfg = loaded.data_config
    ih, iw = loaded.input_size
    layout = token_layout(m, (ih, iw))
    grid = layout.grid
    return (f"<b>{loaded.label}</b><br>"
            f"Architecture: {loaded.architecture}<br>"
            f"Weights: {loaded.weights}<br>"
            f"Parameters: {loaded.num_parameters / 1e6:.1f} M<br>"
            f"Blocks x heads: {blocks} x {heads}<br>"
            f"Patch size: {loaded.patch_size[0]} x {loaded.patch_size[1]}<br>"
            f"Token grid: {grid[0]} x {grid[1]} at {ih} x {iw} px<br>"
            f"Prefix tokens: {layout.num_prefix} (class: "
            f"{'yes' if layout.has_class_token else 'no'}, distillation: {layout.num_distill}, "
            f"registers: {layout.num_registers})<br>"
            f"Preprocessing: {cfg.get('interpolation')}, crop {cfg.get('crop_pct')}, "
            f"mean {tuple(round(v, 3) for v in cfg['mean'])}<br>"
            f"Device: {loaded.device}")
