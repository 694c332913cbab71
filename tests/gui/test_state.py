"""The view state on its own: no Qt, no model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vitexplorer.core.constants import DEFAULT_CMAP
from vitexplorer.gui.state import ViewOptions, ViewState


def recorder(state: ViewState) -> list[frozenset[str]]:
    seen: list[frozenset[str]] = []
    state.changed.connect(seen.append)
    return seen


def test_update_emits_once_with_the_names_that_changed():
    s = ViewState()
    seen = recorder(s)
    assert s.update(layer=3, head=2, cmap=DEFAULT_CMAP) == {"layer", "head"}  # cmap unchanged
    assert seen == [frozenset({"layer", "head"})]
    assert (s.layer, s.head, s.options.layer) == (3, 2, 3)
    assert s.update(layer=3) == frozenset()
    assert len(seen) == 1, "no event when nothing changed"
    s.update(mask="grabcut", opacity=0.3)
    assert seen[-1] == {"mask", "opacity"} and s.mask == "grabcut"
    assert s.options == ViewOptions(layer=3, head=2, opacity=0.3)


def test_unknown_fields_are_refused():
    s = ViewState()
    with pytest.raises(AttributeError, match="colour"):
        s.update(colour="red")
    with pytest.raises(AttributeError):
        _ = s.colour


def test_switching_the_patch_query_off_drops_the_queried_cell():
    s = ViewState(query="row", query_cell=(1, 2))
    seen = recorder(s)
    s.update(query="off")
    assert s.query_cell is None and seen == [frozenset({"query", "query_cell"})]


@pytest.mark.parametrize(("step", "expected"), [((0, 1), (0, 0)), ((0, -1), (2, 0)),
                                                ((1, 0), (2, 2)), ((-1, 0), (0, 1))])
def test_step_head_follows_the_order_shown(step, expected):
    # a cluster order shown 2 per row: (0,1) (2,0) / (1,1) (0,0) / (2,2) (1,0)
    order = [(0, 1), (2, 0), (1, 1), (0, 0), (2, 2), (1, 0)]
    s = ViewState(layer=1, head=1)
    s.step_head(*step, order, per_row=2)
    assert (s.layer, s.head) == expected


def test_two_slots_are_independent():
    s = ViewState()
    got = []
    s.b.loaded_changed.connect(got.append)
    s.a.set_loaded("model A")
    assert got == [] and s.b.loaded is None
    s.b.set_loaded("model B")
    assert got == ["model B"] and s.a.loaded == "model A"
    s.b.set_head_groups("ignored: no analysis in slot B")
    assert s.b.head_groups is None


def test_the_state_imports_no_qt():
    code = ("import sys; import vitexplorer.gui.state; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_window_imports_no_torch():
    # torch loads in the model worker, after the window is up: on the GUI thread it would
    # delay the first paint by seconds (and a Ctrl+C then lands inside its import)
    code = "import sys; import vitexplorer.gui.main_window; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_drawing_history_steps_back_and_forth_and_forgets_on_a_new_image():
    from vitexplorer.gui.state import Drawing

    s = ViewState(source="a.png")
    box = Drawing(box=(1, 2, 30, 40))
    scribbled = Drawing(box=(1, 2, 30, 40), scribbles=("stroke",))
    s.update(drawing=box)
    s.update(drawing=scribbled)
    s.update(drawing=None)  # Clear
    s.history.undo()
    assert s.drawing == scribbled
    s.history.undo()
    assert s.drawing == box and s.history.can_redo()
    s.history.redo()
    assert s.drawing == scribbled
    s.update(drawing=box)  # a new step: what was undone cannot come back
    assert not s.history.can_redo()
    s.history.undo()
    assert s.drawing == scribbled
    s.update(source="b.png")  # a new image: drawing and history both go, in one event
    assert s.drawing is None and s.mask_file is None
    assert not s.history.can_undo() and not s.history.can_redo()
    s.history.undo()
    assert s.drawing is None


def test_a_chosen_mask_file_is_a_step_and_one_dropped_never_comes_back():
    from vitexplorer.gui.state import Drawing

    s = ViewState(source="a.png")
    box = Drawing(box=(1, 2, 30, 40))
    s.update(drawing=box)
    s.update(mask_file="m.png", drawing=None)  # "Mask file…" replaces the drawing: one step
    s.history.undo()
    assert (s.drawing, s.mask_file) == (box, None)
    s.history.redo()
    assert (s.drawing, s.mask_file) == (None, "m.png")
    s.update(mask_file="bad.png")
    s.history.drop_mask_file()  # it cannot be used: gone from the history as well
    assert (s.drawing, s.mask_file) == (None, "m.png"), "the file in use before stays"
    s.history.undo()
    assert (s.drawing, s.mask_file) == (box, None)
    while s.history.can_redo():
        s.history.redo()
        assert s.mask_file != "bad.png"
