"""The controls that choose what the view shows: they write into the view state and show it;
they compute nothing."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QSlider,
    QSpinBox,
    QWidget,
)

from vitexplorer.core.constants import CLASS_METHODS, FUSIONS, METHOD_LABELS, METHODS
from vitexplorer.core.render import COLORMAPS, SCALINGS
from vitexplorer.gui.state import (
    SCALE_SCOPES,
    FinishedAnalysis,
    ViewOptions,
    ViewState,
    has_classifier,
)

QUERY_MODES = {"off": "off", "row": "where the patch looks (row)",
               "column": "what looks at the patch (column)"}
UPSAMPLING = {"bilinear": "smooth (bilinear)", "nearest": "patches (nearest)"}
POLICIES = {"crop": "crop (centre, as trained)", "stretch": "stretch to the input",
            "letterbox": "letterbox (pad, see all)", "native": "native aspect"}


def find_class(text: str, names: list[str]) -> int | None:
    """The class a user typed: an index, an exact name, or the first name containing it."""
    text = text.strip()
    if text.isdigit():
        i = int(text)
        return i if 0 <= i < len(names) else None
    head = text.split(":", 1)[0].strip()
    if head.isdigit() and ":" in text:  # "281: tabby" from the completer
        return find_class(head, names)
    low = text.lower()
    for i, n in enumerate(names):
        if n.lower() == low:
            return i
    return next((i for i, n in enumerate(names) if low and low in n.lower()), None)


def _row(*widgets: QWidget) -> QWidget:
    holder = QWidget()
    lay = QHBoxLayout(holder)
    lay.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        lay.addWidget(w, 1 if isinstance(w, QSlider | QComboBox) else 0)
    return holder


def compact(combo: QComboBox, chars: int = 10) -> None:
    """Let a combo box shrink to ``chars`` characters (a narrow dock scrolls less)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)


class InputSizeSpin(QSpinBox):
    """Pixels per side the model is built for (0: its default). The arrows step by the
    shown model's patch from the size its maps were made at, so every step is a size the
    model accepts (a multiple of the patch, two or more per side); a fixed step of 16 went
    0 -> 16, one patch per side of a /16 model and no multiple of a /14 model's patch."""

    def __init__(self) -> None:
        super().__init__()
        self.patch, self.shown = 16, 0  # set by ControlsPanel.show_analysis

    def stepBy(self, steps: int) -> None:
        p = self.patch
        size = (self.value() or self.shown) // p * p + steps * p
        self.setValue(min(self.maximum() // p * p, size) if size >= 2 * p else 0)

    def stepEnabled(self) -> QSpinBox.StepEnabledFlag:
        return QSpinBox.StepEnabledFlag.StepUpEnabled | QSpinBox.StepEnabledFlag.StepDownEnabled


class ControlsPanel(QWidget):
    """Method, class, layer, head, colours and their scale, upsampling, image fit, patch query.

    A user's edit becomes one :meth:`ViewState.update`; a state change sets the widgets
    without echoing back.
    """

    def __init__(self, state: ViewState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self._names: list[str] = []
        self._probs: list[float] = []
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(4, 4, 4, 4)
        self.method = QComboBox()
        for m in METHODS:
            self.method.addItem(METHOD_LABELS[m], m)
        self.method.setToolTip("Head attention: the class token's attention row of one head.\n"
                               "Per-head rollout: that head propagated through the rollout "
                               "below it.\nRollout / gradient methods: one map per image.")
        self.target = QComboBox()
        self.target.setEditable(True)
        self.target.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.target.setToolTip("Target class of the gradient methods: a top-5 prediction, or "
                               "type any class index or name and press Enter")
        self.fusion = QComboBox()
        self.fusion.addItems(list(FUSIONS))
        self.discard = QDoubleSpinBox()
        self.discard.setRange(0.0, 0.99)
        self.discard.setSingleStep(0.05)
        self.discard.setToolTip("Rollout: drop this fraction of the weakest attention links")
        self.layer = QSpinBox()
        self.layer.setToolTip("Block (↑/↓ in the head grid or on the image)")
        self.head = QSpinBox()
        self.head.setToolTip("Head (←/→ in the head grid or on the image)")
        self.cmap = QComboBox()
        self.cmap.addItems(COLORMAPS)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Overlay opacity")
        self.opacity_value = QSpinBox()
        self.opacity_value.setRange(0, 100)
        self.opacity_value.setSuffix("%")
        self.opacity_value.setToolTip("Overlay opacity")
        self.scaling = QComboBox()
        self.scaling.addItems(SCALINGS)
        self.scaling.setToolTip("minmax: full range · percentile: clip to the (100-p)th and "
                                "p-th percentiles")
        self.percentile = QDoubleSpinBox()
        self.percentile.setRange(50.5, 100.0)
        self.percentile.setSingleStep(0.5)
        self.percentile.setDecimals(1)
        self.percentile.setToolTip("p of the percentile scaling: values above the p-th "
                                   "percentile take the top colour")
        self.scale = QComboBox()
        for key, label in SCALE_SCOPES.items():
            self.scale.addItem(label, key)
        self.scale.setToolTip("Who shares the colour scale: a shared scale lets two heads be "
                              "compared by eye; the colour bar under the image shows it")
        self.fixed_low, self.fixed_high = QDoubleSpinBox(), QDoubleSpinBox()
        for spin in (self.fixed_low, self.fixed_high):
            spin.setRange(0.0, 1.0)
            spin.setDecimals(4)
            spin.setSingleStep(0.005)
            spin.setToolTip("Range of the fixed colour scale (share of the map per patch)")
        self.upsample = QComboBox()
        for key, label in UPSAMPLING.items():
            self.upsample.addItem(label, key)
        self.upsample.setToolTip("Smooth upsampling, or each token as the square patch it is")
        self.policy = QComboBox()
        for key, label in POLICIES.items():
            self.policy.addItem(label, key)
        self.policy.setToolTip("How the image is fitted to the model's input (a new forward). "
                               "With crop, the hatched parts are never seen by the model")
        self.input_size = InputSizeSpin()
        self.input_size.setRange(0, 2048)
        self.input_size.setSpecialValueText("model default")
        self.input_size.setSuffix(" px")
        self.input_size.setKeyboardTracking(False)
        self.input_size.setToolTip("Build the model for N x N inputs (the position embedding "
                                   "is resampled): more, smaller patches; DINO's figures use "
                                   "480 px. Reloads the model")
        self.contour = QCheckBox("60%-mass contour")
        self.contour.setToolTip("Outline the fewest patches holding 60% of the map (DINO)")
        self.query = QComboBox()
        for key, label in QUERY_MODES.items():
            self.query.addItem(label, key)
        self.query.setToolTip("Click a patch on the image to see its attention row or column "
                              "for the selected head (Q toggles)")
        for label, w in (("Method", self.method), ("Class", self.target),
                         ("Head fusion", self.fusion), ("Discard", self.discard),
                         ("Layer", self.layer), ("Head", self.head), ("Colormap", self.cmap),
                         ("Opacity", _row(self.opacity, self.opacity_value)),
                         ("Scaling", _row(self.scaling, self.percentile)),
                         ("Colour scale", self.scale),
                         ("Fixed range", _row(self.fixed_low, self.fixed_high)),
                         ("Upsampling", self.upsample), ("Image fit", self.policy),
                         ("Input size", self.input_size),
                         ("", self.contour), ("Patch query", self.query)):
            form.addRow(label, w)
        for combo in (self.method, self.target, self.fusion, self.cmap, self.scaling,
                      self.scale, self.upsample, self.policy, self.query):
            compact(combo, 6)
        for spin, width in ((self.opacity_value, 58), (self.percentile, 58),
                            (self.fixed_low, 66), (self.fixed_high, 66)):
            spin.setMaximumWidth(width)
        for sig in (self.method.currentIndexChanged, self.target.currentIndexChanged,
                    self.fusion.currentIndexChanged, self.discard.valueChanged,
                    self.layer.valueChanged, self.head.valueChanged,
                    self.cmap.currentIndexChanged, self.opacity.valueChanged,
                    self.scaling.currentIndexChanged, self.percentile.valueChanged,
                    self.scale.currentIndexChanged, self.fixed_low.valueChanged,
                    self.fixed_high.valueChanged, self.upsample.currentIndexChanged,
                    self.policy.currentIndexChanged, self.input_size.valueChanged,
                    self.contour.toggled,
                    self.query.currentIndexChanged):
            sig.connect(self._push)
        self.opacity_value.valueChanged.connect(self.opacity.setValue)
        self.target.lineEdit().returnPressed.connect(self._typed_class)
        self._quiet = False
        self.layer.setRange(0, 0)
        self.head.setRange(0, 0)
        state.changed.connect(self._pull)
        state.a.finished_changed.connect(self.show_analysis)
        self._pull(frozenset())

    def show_analysis(self, finished: FinishedAnalysis) -> None:
        """Ranges for the analysis' blocks and heads, its top-5 classes, every class name."""
        a = finished.analysis
        self._quiet = True
        self.layer.setRange(0, max(0, a.num_layers - 1))
        self.head.setRange(0, max(0, a.num_heads - 1))
        self.input_size.patch, self.input_size.shown = a.patch_size[0], a.geometry.input_size[0]
        names = [a.class_name(i) for i in range(int(a.logits.numel()))]
        self._probs = a.logits.softmax(-1).tolist() if names else []
        if names != self._names:  # a new model: a new completer (1000 names)
            self._names = names
            completer = QCompleter([f"{i}: {n}" for i, n in enumerate(names)], self)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            self.target.setCompleter(completer)
        self.target.clear()
        for idx, _name, _p in a.top_k(5):
            self._add_class(idx)
        classifier = has_classifier(a)
        for i in range(self.method.count()):  # a backbone has no class to explain
            if self.method.itemData(i) in CLASS_METHODS:
                item = self.method.model().item(i)
                item.setEnabled(classifier)
                item.setToolTip("" if classifier else
                                f"Explains a class: {a.model_label} has no classifier head")
        self._quiet = False
        self._pull(frozenset())

    def _add_class(self, idx: int) -> int:
        """Add class ``idx`` to the list (name and probability as the head panel shows it)."""
        p = self._probs[idx] if idx < len(self._probs) else float("nan")
        self.target.addItem(f"{self._names[idx]} ({p:.1%})", idx)
        return self.target.count() - 1

    def _typed_class(self) -> None:
        idx = find_class(self.target.currentText(), self._names)
        if idx is None:
            self.target.lineEdit().setToolTip("No class matches that index or name")
            self._pull(frozenset())
            return
        i = self.target.findData(idx)
        self._quiet = True
        self.target.setCurrentIndex(i if i >= 0 else self._add_class(idx))
        self._quiet = False
        self._push()

    def options(self) -> ViewOptions:
        """What the widgets show now."""
        return ViewOptions(
            method=self.method.currentData(), layer=self.layer.value(), head=self.head.value(),
            target=self.target.currentData(), fusion=self.fusion.currentText(),
            discard=round(self.discard.value(), 4), cmap=self.cmap.currentText(),
            opacity=self.opacity.value() / 100, scaling=self.scaling.currentText(),
            percentile=round(self.percentile.value(), 2), scale=self.scale.currentData(),
            fixed_range=(round(self.fixed_low.value(), 6), round(self.fixed_high.value(), 6)),
            upsample=self.upsample.currentData(), contour=self.contour.isChecked(),
            query=self.query.currentData())

    def _push(self, *_args) -> None:
        if self._quiet:
            return
        values = vars(self.options()).copy()
        if self.state.a.finished is None:  # no ranges yet: the widgets' 0 means nothing
            del values["layer"], values["head"]
        if self.target.currentIndex() <= 0:
            values["target"] = None  # the top-1 class, whatever the image
        lo, hi = values["fixed_range"]
        if hi <= lo:
            values["fixed_range"] = (lo, lo + 1e-4)
        values["policy"] = self.policy.currentData()
        values["input_size"] = self.input_size.value() or None
        self.state.update(**values)

    def _pull(self, names: frozenset[str]) -> None:
        """Show the state in the widgets (no event back into the state). A head switch
        touches two spin boxes only (it is the most frequent change)."""
        o = self.state.options
        if names and names <= {"layer", "head"}:
            self._quiet = True
            self.layer.setValue(o.layer)
            self.head.setValue(o.head)
            self._quiet = False
            return
        self._quiet = True
        self.method.setCurrentIndex(max(0, self.method.findData(o.method)))
        if o.layer >= 0:
            self.layer.setValue(o.layer)
        self.head.setValue(o.head)
        if o.target is not None and self.target.findData(o.target) < 0 and self._names:
            self._add_class(o.target)
        i = self.target.findData(o.target) if o.target is not None else 0
        self.target.setCurrentIndex(max(0, i))
        self.target.lineEdit().setCursorPosition(0)  # the name's start, not its end
        self.fusion.setCurrentText(o.fusion)
        self.discard.setValue(o.discard)
        self.cmap.setCurrentText(o.cmap)
        self.opacity.setValue(round(o.opacity * 100))
        self.opacity_value.setValue(round(o.opacity * 100))
        self.scaling.setCurrentText(o.scaling)
        self.percentile.setValue(o.percentile)
        self.scale.setCurrentIndex(max(0, self.scale.findData(o.scale)))
        self.fixed_low.setValue(o.fixed_range[0])
        self.fixed_high.setValue(o.fixed_range[1])
        self.upsample.setCurrentIndex(max(0, self.upsample.findData(o.upsample)))
        self.policy.setCurrentIndex(max(0, self.policy.findData(self.state.policy)))
        self.input_size.setValue(self.state.input_size or 0)
        self.contour.setChecked(o.contour)
        self.query.setCurrentIndex(max(0, self.query.findData(o.query)))
        self._quiet = False
        self._enable()

    def _enable(self) -> None:
        m = self.method.currentData()
        self.target.setEnabled(m in CLASS_METHODS)
        self.fusion.setEnabled(m in ("head-rollout", "rollout"))
        self.discard.setEnabled(m in ("head-rollout", "rollout", "grad-rollout"))
        self.head.setEnabled(m in ("head", "head-rollout"))
        self.layer.setEnabled(m in ("head", "head-rollout", "rollout"))
        self.percentile.setEnabled(self.scaling.currentText() == "percentile")
        fixed = self.scale.currentData() == "fixed"
        self.fixed_low.setEnabled(fixed)
        self.fixed_high.setEnabled(fixed)
