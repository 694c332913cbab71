"""The selected head's numbers: map statistics, attention sinks and the top-5 predictions."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from vitexplorer.core.constants import METHOD_LABELS, PER_HEAD_METHODS
from vitexplorer.core.maps import map_entropy, mass_region


class HeadPanel(QWidget):
    """Read-only numbers for what the view shows."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.title = QLabel("No image yet")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        form = QFormLayout()
        self.fields: dict[str, QLabel] = {}
        for key, tip in (("entropy", "Normalised entropy of the map: 1 = uniform, 0 = one patch"),
                         ("area", "Share of patches holding 60% of the map's mass"),
                         ("sink", "Share of the head's attention that goes to class/register "
                                  "tokens instead of patches (attention sink)")):
            label = QLabel("–")
            label.setToolTip(tip)
            self.fields[key] = label
        form.addRow("Entropy", self.fields["entropy"])
        form.addRow("60%-mass area", self.fields["area"])
        form.addRow("To prefix tokens", self.fields["sink"])
        self.scores = QLabel()
        self.scores.setWordWrap(True)
        self.scores.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addLayout(form)
        lay.addWidget(self.scores)
        self.predictions = QLabel()
        self.predictions.setWordWrap(True)
        lay.addWidget(self.predictions)
        lay.addStretch(1)

    def show_map(self, analysis, options, grid_map: np.ndarray, table=None) -> None:
        o = options
        per_head = o.method in PER_HEAD_METHODS
        where = f"layer {o.layer}, head {o.head}" if per_head else (
            f"up to layer {o.layer}" if o.method == "rollout" else "whole model")
        query = "" if o.query == "off" else f" · patch query ({o.query})"
        self.title.setText(f"<b>{METHOD_LABELS[o.method]}</b> — {where}{query}")
        self.fields["entropy"].setText(f"{float(map_entropy(grid_map)):.3f}")
        self.fields["area"].setText(f"{mass_region(grid_map).mean():.1%}")
        if per_head:
            share = analysis.prefix_share()[o.layer, o.head].item()
            self.fields["sink"].setText(f"{share:.1%}")
        else:
            self.fields["sink"].setText("–")
        self.scores.setText(self._scores_html(table, o.layer, o.head) if per_head else "")

    @staticmethod
    def _scores_html(table, layer: int, head: int) -> str:
        """The head's labels and scores from the head table (see core.heads for each)."""
        if table is None:
            return ""
        from vitexplorer.core.constants import AXES, GROUP_COLOURS

        group = table.group(layer, head)
        labels = " · ".join(str(table.labels[a][layer, head]) for a in AXES)
        rows = [("group", f"<b style='color:{GROUP_COLOURS[group]}'>{group}</b>"),
                ("labels", labels)]
        confounded = table.confounded(group, layer, head)
        if confounded:
            rows.append(("same mass as", ", ".join(confounded)))
        marginal = str(table.marginal()[layer, head])
        if marginal:
            rows.append(("marginal", f"<i>{marginal.replace(';', ', ')}</i> (near a threshold)"))
        names = {"fg_score": "fg score (density ratio) [-1, 1]", "fg_auc": "fg AUC",
                 "fg_jaccard": "Jaccard (mask, 60% region)", "prefix_share": "prefix share",
                 "edge_lift": "edge lift", "texture_share": "texture share",
                 "colour_score": "colour lift", "distance_px": "mean distance (px)",
                 "distance_ratio": "distance / uniform", "row_entropy": "row entropy",
                 "logprob_drop": "ablation: log-p drop", "kl": "ablation: KL"}
        for key, name in names.items():
            if key in table.scores:
                rows.append((name, f"{table.scores[key][layer, head]:.3f}"))
        body = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
        warning = table.meta.get("mask_warning")
        note = f"<br><i style='color:#b35c00'>{warning}</i>" if warning else ""
        return (f"<b>Head scores</b> (mask: {table.meta.get('mask', '?')}){note}"
                f"<table>{body}</table>")

    def set_predictions(self, top: list[tuple[int, str, float]]) -> None:
        rows = "".join(f"<tr><td>{p:.1%}</td><td>{name}</td></tr>" for _i, name, p in top)
        self.predictions.setText(f"<b>Top-5 predictions</b><table>{rows}</table>")
