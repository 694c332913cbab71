"""Compare mode in the window: a second model beside the first, in step, heads matched."""

from __future__ import annotations

from tests.gui.conftest import open_and_wait


def load_second(qtbot, window, spec):
    with qtbot.waitSignal(window.compare.compared, timeout=60000) as got:
        window.compare.load_model(spec, "random")
    return got.args[0]


def test_same_model_in_slot_b_draws_the_same_heads(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    window.state.select_head(1, 2)
    comp = load_second(qtbot, window, "vit_tiny_patch16_224")
    assert window.compare_panel.isVisible()
    assert (window.state.layer, window.state.head) == (1, 2), "B leaves A's selection alone"
    assert comp.match_of(0, 1, 2)[:2] == (1, 2)
    qtbot.waitUntil(lambda: window.compare.maps.last_frame is not None
                    and window.compare.maps.last_frame.options.head == 2, timeout=10000)
    frame_b, frame_a = window.compare.maps.last_frame, window.maps.last_frame
    assert (frame_b.options.layer, frame_b.options.head) == (1, 2)
    assert (frame_b.image == frame_a.image).all(), "same weights: the same picture"
    assert "match of A's head 1.2" in window.compare_panel.caption.text()


def test_other_model_follows_the_selection_through_the_matching(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    comp = load_second(qtbot, window, "vit_small_patch16_224")  # 6 heads per block
    b = window.state.b.analysis
    assert (b.num_layers, b.num_heads) == (3, 6)
    for layer, head in ((0, 0), (2, 1), (1, 2)):
        lb, hb, cost = comp.match_of(0, layer, head)
        with qtbot.waitSignal(window.compare.maps.frame_ready, timeout=10000):
            window.state.select_head(layer, head)
        o = window.compare.maps.last_frame.options
        assert (o.layer, o.head) == (lb, hb)
        caption = window.compare_panel.caption.text()
        assert f"head {lb}.{hb}: the match of A's head {layer}.{head}" in caption
        assert f"JS distance {cost:.3f}" in caption
        assert window.compare_panel.grid.current == (lb, hb), "the match is current in B"
    # a click on B's grid selects A's head matched to it
    i, j = comp.matches[3]
    (la, ha), (lb, hb) = comp.cells[0][i], comp.cells[1][j]
    window.compare_panel.grid.selected.emit(lb, hb)
    assert (window.state.layer, window.state.head) == (la, ha)
    assert window.compare_panel.grid.shape == (3, 6)
    centre = window.compare_panel.grid.cell_rect(0, 4).center()
    group = window.state.b.head_groups.table.group(0, 4)
    assert f"B 0.4: group {group}" in window.compare_panel.grid.tooltip_at(centre.x(),
                                                                           centre.y())
    # a method without heads: the block at the same depth, same method and colormap
    with qtbot.waitSignal(window.compare.maps.frame_ready, timeout=10000):
        window.state.update(method="rollout", cmap="magma")
    o = window.compare.maps.last_frame.options
    assert (o.method, o.cmap, o.layer) == ("rollout", "magma", window.state.layer)
