"""The controls that choose what the view shows: they write into the view state and show it;
they compute nothing."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QSlider,
    QSpinBox,
    QWidget,
)

from vitexplorer.core.constants import METHOD_LABELS, METHODS
from vitexplorer.core.render import COLORMAPS, SCALINGS
from vitexplorer.gui.state import FinishedAnalysis, ViewOptions, ViewState

QUERY_MODES = {"off": "off", "row": "where the patch looks (row)",
               "column": "what looks at the patch (column)"}


def compact(combo: QComboBox, chars: int = 10) -> None:
    """Let a combo box shrink to ``chars`` characters (a narrow dock scrolls less)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)


class ControlsPanel(QWidget):
    """Method, class, layer, head, colormap, opacity, scaling, contour and patch query.

    A user's edit becomes one :meth:`ViewState.update`; a state change sets the widgets
    without echoing back.
    """

    def __init__(self, state: ViewState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.method = QComboBox()
        for m in METHODS:
            self.method.addItem(METHOD_LABELS[m], m)
        self.method.setToolTip("Head attention: the class token's attention row of one head.\n"
                               "Per-head rollout: that head propagated through the rollout "
                               "below it.\nRollout / gradient methods: one map per image.")
        self.target = QComboBox()
        self.target.setToolTip("Target class of the gradient methods (top-5 predictions)")
        self.fusion = QComboBox()
        self.fusion.addItems(["mean", "max", "min"])
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
        self.scaling = QComboBox()
        self.scaling.addItems(SCALINGS)
        self.scaling.setToolTip("minmax: full range · percentile: clip to the 1st-99th percentile")
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
                         ("Opacity", self.opacity), ("Scaling", self.scaling),
                         ("", self.contour), ("Patch query", self.query)):
            form.addRow(label, w)
        self._form = form
        for combo in (self.method, self.target, self.fusion, self.cmap, self.scaling,
                      self.query):
            compact(combo)
        for sig in (self.method.currentIndexChanged, self.target.currentIndexChanged,
                    self.fusion.currentIndexChanged, self.discard.valueChanged,
                    self.layer.valueChanged, self.head.valueChanged,
                    self.cmap.currentIndexChanged, self.opacity.valueChanged,
                    self.scaling.currentIndexChanged, self.contour.toggled,
                    self.query.currentIndexChanged):
            sig.connect(self._push)
        self._quiet = False
        self.layer.setRange(0, 0)
        self.head.setRange(0, 0)
        state.changed.connect(self._pull)
        state.a.finished_changed.connect(self.show_analysis)
        self._pull(frozenset())

    def show_analysis(self, finished: FinishedAnalysis) -> None:
        """Ranges for the analysis' blocks and heads, its top-5 classes."""
        a = finished.analysis
        self._quiet = True
        self.layer.setRange(0, max(0, a.num_layers - 1))
        self.head.setRange(0, max(0, a.num_heads - 1))
        self.target.clear()
        for idx, name, p in a.top_k(5):
            self.target.addItem(f"{name} ({p:.0%})", idx)
        self._quiet = False
        self._pull(frozenset())

    def options(self) -> ViewOptions:
        """What the widgets show now."""
        return ViewOptions(
            method=self.method.currentData(), layer=self.layer.value(), head=self.head.value(),
            target=self.target.currentData(), fusion=self.fusion.currentText(),
            discard=round(self.discard.value(), 4), cmap=self.cmap.currentText(),
            opacity=self.opacity.value() / 100, scaling=self.scaling.currentText(),
            contour=self.contour.isChecked(), query=self.query.currentData())

    def _push(self, *_args) -> None:
        if self._quiet:
            return
        values = vars(self.options()).copy()
        if self.state.a.finished is None:  # no ranges yet: the widgets' 0 means nothing
            del values["layer"], values["head"]
        if self.target.currentIndex() == 0:
            values["target"] = None  # the top-1 class, whatever the image
        self.state.update(**values)

    def _pull(self, _names: frozenset[str]) -> None:
        """Show the state in the widgets (no event back into the state)."""
        o = self.state.options
        self._quiet = True
        self.method.setCurrentIndex(max(0, self.method.findData(o.method)))
        if o.layer >= 0:
            self.layer.setValue(o.layer)
        self.head.setValue(o.head)
        i = self.target.findData(o.target) if o.target is not None else 0
        self.target.setCurrentIndex(max(0, i))
        self.fusion.setCurrentText(o.fusion)
        self.discard.setValue(o.discard)
        self.cmap.setCurrentText(o.cmap)
        self.opacity.setValue(round(o.opacity * 100))
        self.scaling.setCurrentText(o.scaling)
        self.contour.setChecked(o.contour)
        self.query.setCurrentIndex(max(0, self.query.findData(o.query)))
        self._quiet = False
        self._enable()

    def _enable(self) -> None:
        m = self.method.currentData()
        self.target.setEnabled(m in ("grad-rollout", "relevance"))
        self.fusion.setEnabled(m in ("head-rollout", "rollout"))
        self.discard.setEnabled(m in ("head-rollout", "rollout", "grad-rollout"))
        self.head.setEnabled(m in ("head", "head-rollout"))
        self.layer.setEnabled(m in ("head", "head-rollout", "rollout"))
