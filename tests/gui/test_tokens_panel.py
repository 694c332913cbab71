"""The artifact-token panel: planted high-norm tokens are found and reported per head."""

from __future__ import annotations

import numpy as np

from tests.gui.conftest import open_and_wait
from vitexplorer.core.tokens import absorbed_share


def test_planted_artifacts_in_the_panel(qtbot, window, chelsea):
    model = window.state.a.loaded.model
    planted = [5, 10]

    def boost(_m, _a, y):
        y = y.clone()
        y[:, [1 + t for t in planted]] *= 50.0
        return y

    a = open_and_wait(qtbot, window, chelsea)
    calls = []
    counter = model.register_forward_hook(lambda *_: calls.append(1))
    qtbot.wait(200)
    assert calls == [], "no extra forward while the panel is hidden"
    counter.remove()
    window.docks["Artifact tokens"].raise_()  # shown: it measures the image shown
    qtbot.waitUntil(lambda: window.tokens.result is not None, timeout=60000)
    handle = model.blocks[1].register_forward_hook(boost)
    try:
        with qtbot.waitSignal(window.tokens.measured, timeout=60000) as got:
            a = open_and_wait(qtbot, window, chelsea)
    finally:
        handle.remove()
    art = got.args[0]
    gw = a.layout.grid[1]
    assert {int(r) * gw + int(c) for r, c in zip(*np.nonzero(art.flags[1]),
                                                 strict=True)} == set(planted)
    window.state.select_head(2, 1)
    text = window.tokens_panel.text.text()
    keys = np.zeros((a.num_layers, *a.layout.grid), bool)
    keys[2].flat[planted] = True  # block 2 reads what block 1 wrote
    share = absorbed_share(a.rows.numpy(), keys, a.layout)[2, 1]
    assert "Block 2 reads 2 of them" in text
    assert f"head 2.1 puts {share:.1%} of its map" in text
    assert not window.tokens_panel.masked.pixmap().isNull()
    window.state.select_head(0, 0)
    assert "Block 0 reads the patch embeddings" in window.tokens_panel.text.text()
