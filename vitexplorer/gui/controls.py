"""The controls that choose what the view shows; they emit ``changed`` and compute nothing."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
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

QUERY_MODES = {"off": "off", "row": "where the patch looks (row)",
               "column": "what looks at the patch (column)"}


@dataclass
class ViewOptions:
    method: str = "head"
    layer: int = -1
    head: int = 0
    target: int | None = None
    fusion: str = "mean"
    discard: float = 0.0
    cmap: str = "inferno"
    opacity: float = 0.6
    scaling: str = "minmax"
    contour: bool = True
    query: str = "off"


class ControlsPanel(QWidget):
    """Method, class, layer, head, colormap, opacity, scaling, contour and patch query."""

    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
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
        for sig in (self.method.currentIndexChanged, self.target.currentIndexChanged,
                    self.fusion.currentIndexChanged, self.discard.valueChanged,
                    self.layer.valueChanged, self.head.valueChanged,
                    self.cmap.currentIndexChanged, self.opacity.valueChanged,
                    self.scaling.currentIndexChanged, self.contour.toggled,
                    self.query.currentIndexChanged):
            sig.connect(self._emit)
        self.method.currentIndexChanged.connect(self._enable)
        self._quiet = False
        self._shape = (0, 0)
        self.layer.setRange(0, 0)
        self.head.setRange(0, 0)
        self._enable()

    def set_shape(self, layers: int, heads: int) -> None:
        """Ranges for a model's blocks and heads; a new model starts on its last layer."""
        self._quiet = True
        first = self._shape != (layers, heads)
        self._shape = (layers, heads)
        self.layer.setRange(0, max(0, layers - 1))
        self.head.setRange(0, max(0, heads - 1))
        if first:
            self.layer.setValue(layers - 1)
        self._quiet = False

    def set_targets(self, top: list[tuple[int, str, float]]) -> None:
        self._quiet = True
        self.target.clear()
        for idx, name, p in top:
            self.target.addItem(f"{name} ({p:.0%})", idx)
        self._quiet = False

    def options(self) -> ViewOptions:
        return ViewOptions(
            method=self.method.currentData(), layer=self.layer.value(), head=self.head.value(),
            target=self.target.currentData(), fusion=self.fusion.currentText(),
            discard=round(self.discard.value(), 4), cmap=self.cmap.currentText(),
            opacity=self.opacity.value() / 100, scaling=self.scaling.currentText(),
            contour=self.contour.isChecked(), query=self.query.currentData())

    def set_options(self, o: ViewOptions) -> None:
        """Set every control without emitting one ``changed`` per widget."""
        self._quiet = True
        self.method.setCurrentIndex(max(0, self.method.findData(o.method)))
        if o.layer >= 0:
            self.layer.setValue(o.layer)
        self.head.setValue(o.head)
        self.fusion.setCurrentText(o.fusion)
        self.discard.setValue(o.discard)
        self.cmap.setCurrentText(o.cmap)
        self.opacity.setValue(round(o.opacity * 100))
        self.scaling.setCurrentText(o.scaling)
        self.contour.setChecked(o.contour)
        self.query.setCurrentIndex(max(0, self.query.findData(o.query)))
        self._quiet = False
        self._enable()
        self.changed.emit()

    def select(self, layer: int, head: int) -> None:
        self._quiet = True
        self.layer.setValue(layer)
        self.head.setValue(head)
        self._quiet = False
        self.changed.emit()

    def _enable(self) -> None:
        m = self.method.currentData()
        self.target.setEnabled(m in ("grad-rollout", "relevance"))
        self.fusion.setEnabled(m in ("head-rollout", "rollout"))
        self.discard.setEnabled(m in ("head-rollout", "rollout", "grad-rollout"))
        self.head.setEnabled(m in ("head", "head-rollout"))
        self.layer.setEnabled(m in ("head", "head-rollout", "rollout"))

    def _emit(self, *_args) -> None:
        if not self._quiet:
            self.changed.emit()
