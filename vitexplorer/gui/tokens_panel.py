"""The artifact-token panel (Darcet et al. 2024): high-norm tokens of the image, as the first
model (slot A) or, in compare mode, the second (slot B) sees it.

A worker measures every block's output-token norms (one forward, :mod:`vitexplorer.core.tokens`)
when an analysis arrives; the panel then shows, for the selected block and head (in B, the
head B's view shows: the match of A's selection), where the
artifacts its attention reads sit on the image, the share of the head's map they absorb, and
the head's map with them masked out. Only drawing (an overlay of one small map) runs on the
GUI thread.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from vitexplorer.core.render import overlay
from vitexplorer.gui.qimage import to_pixmap
from vitexplorer.gui.scaled_pixmap import ScaledPixmap
from vitexplorer.gui.state import ViewOptions, ViewState
from vitexplorer.gui.tasks import TaskRunner


def tokens_job(loaded, analysis, should_stop=None):
    """The artifacts of ``analysis``'s image and the share each head's map puts on them."""
    from vitexplorer.core.tokens import absorbed_share, artifacts_of

    art = artifacts_of(loaded.model, analysis.model_input().to(loaded.device))
    return analysis, art, absorbed_share(analysis.rows.numpy(), art.attended(),
                                         analysis.layout)


def norm_image(norms: np.ndarray, flags: np.ndarray, cell: int = 12) -> np.ndarray:
    """RGB picture of a token grid's norms (viridis, min to max), flagged tokens outlined
    in red."""
    from vitexplorer.core.render import colorize, display_range, normalise

    rgb = colorize(normalise(norms, display_range(norms)), "viridis")
    big = np.ascontiguousarray(np.repeat(np.repeat(rgb, cell, 0), cell, 1))
    for r, c in zip(*np.nonzero(flags), strict=True):
        box = big[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell]
        box[[0, -1], :] = box[:, [0, -1]] = (255, 0, 0)
    return big


def describe(art, share: np.ndarray, layer: int, head: int) -> str:
    """The panel's text for block ``layer``, head ``head``."""
    counts = [int(f.sum()) for f in art.flags]
    blocks = ", ".join(f"{li}: {n}" for li, n in enumerate(counts) if n) or "none"
    keys = int(art.attended()[layer].sum())
    lines = [f"Patch tokens above {art.factor:g}x their block's median norm, per block: "
             f"{blocks}."]
    if layer == 0:
        lines.append("Block 0 reads the patch embeddings: no artifacts yet.")
    else:
        lines.append(f"Block {layer} reads {keys} of them (flagged at block {layer - 1}'s "
                     f"output); head {layer}.{head} puts {share[layer, head]:.1%} of its map "
                     "on them.")
    return "\n".join(lines)


class TokensPanel(QWidget):
    """Text, the norms of the tokens the selected block reads, and the masked head map."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.slot = QComboBox()
        self.slot.addItem("A: the first model", "A")
        self.slot.addItem("B: the second model", "B")
        self.slot.model().item(1).setEnabled(False)  # until a second model is loaded
        form = QFormLayout()
        form.addRow("Model", self.slot)
        lay.addLayout(form)
        self.text = QLabel("High-norm artifact tokens of the image appear here.")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.text)
        lay.addWidget(QLabel("Norms of the tokens the block reads:"))
        self.norms = ScaledPixmap("–")
        lay.addWidget(self.norms)
        lay.addWidget(QLabel("The head's map with the artifacts masked out:"))
        self.masked = ScaledPixmap("–")
        lay.addWidget(self.masked)
        lay.addStretch(1)


class TokensController(QObject):
    """Runs :func:`tokens_job` (one extra forward) for the image of the slot chosen in the
    panel (A, or B in compare mode) while the panel is shown, and fills the panel.
    ``second`` is slot B's map controller: its view options say which head B shows, its
    frames when that changes."""

    #: new artifacts measured (tests wait on it)
    measured = Signal(object)

    def __init__(self, state: ViewState, tasks: TaskRunner, panel: TokensPanel,
                 parent: QObject | None = None, second=None) -> None:
        super().__init__(parent)
        self.state, self.tasks, self.panel = state, tasks, panel
        self.second = second
        self.result = None
        self.visible = False
        for slot in state.slots.values():
            slot.finished_changed.connect(lambda _f: self._measure())
        state.b.loaded_changed.connect(lambda _l: panel.slot.model().item(1).setEnabled(True))
        panel.slot.currentIndexChanged.connect(lambda _i: self._measure() or self.show())
        if second is not None:
            second.frame_ready.connect(lambda _f: self.show() if self.slot_name == "B"
                                       else None)
        state.changed.connect(self._changed)

    @property
    def slot_name(self) -> str:
        return self.panel.slot.currentData()

    def _options(self) -> ViewOptions:
        """The options the chosen slot's view is drawn with (B's: A's selection matched)."""
        if self.slot_name == "B" and self.second is not None:
            return self.second.view_options()
        return self.state.options

    def set_visible(self, visible: bool) -> None:
        """The panel's dock was shown or hidden: measure only what is looked at."""
        self.visible = visible
        self._measure()

    def _measure(self) -> None:
        slot = self.state.slots[self.slot_name]
        a = slot.analysis
        if not self.visible or a is None or (self.result is not None and
                                              self.result[0] is a):
            return
        self.tasks.run("tokens", tokens_job, slot.loaded, a, on_done=self._measured,
                       message=f"Measuring token norms ({self.slot_name})…")

    def _measured(self, result) -> None:
        if result[0] is not self.state.slots[self.slot_name].analysis:
            return  # a newer image is shown, or the other slot chosen
        self.result = result
        self.show()
        self.measured.emit(result[1])

    def _changed(self, names: frozenset[str]) -> None:
        if names & {"layer", "head", "cmap", "opacity"}:
            self.show()

    def show(self) -> None:
        """Draw the panel for the selected block and head (one small overlay)."""
        slot = self.state.slots[self.slot_name]
        if self.result is None or self.result[0] is not slot.analysis:
            return
        from vitexplorer.core.tokens import masked_maps

        analysis, art, share = self.result
        o = self._options()
        layer = o.layer % analysis.num_layers
        head = min(o.head, analysis.num_heads - 1)
        self.panel.text.setText(f"{self.slot_name}: {slot.loaded.label}\n"
                                + describe(art, share, layer, head))
        keys = art.attended()
        reads = art.patch_norms()[layer - 1] if layer else np.zeros(analysis.layout.grid)
        self.panel.norms.set_pixmap(to_pixmap(norm_image(reads, keys[layer])))
        maps = analysis.head_maps().numpy()[layer:layer + 1]
        masked = masked_maps(maps, keys[layer:layer + 1])[0, head]
        f = slot.finished
        self.panel.masked.set_pixmap(to_pixmap(overlay(
            f.display, masked, analysis.geometry.scaled(f.display_scale), o.cmap,
            o.opacity)))
