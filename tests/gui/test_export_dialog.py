"""The export dialog's figure options and live preview; Copy View copies the figure."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QGuiApplication

from tests.figure_checks import svg_texts
from tests.gui.conftest import open_and_wait


def test_export_dialog_options_and_live_preview(qtbot, window, chelsea, tmp_path):
    from vitexplorer.core.figures import PRESETS
    from vitexplorer.gui.dialogs import ExportDialog

    open_and_wait(qtbot, window, chelsea)
    dlg = ExportDialog(str(tmp_path / "f.png"), window,
                       preview=lambda kind, fo: window.preview_export(dlg, kind, fo))
    qtbot.addWidget(dlg)
    dlg.preset.setCurrentIndex(dlg.preset.findData("single"))
    dlg.title.setText("Figure 1")
    dlg.show_caption.setChecked(False)
    o = dlg.figure_options()
    assert (o.preset, o.title, o.caption, o.dpi) == ("single", "Figure 1", "", 300)
    qtbot.waitUntil(lambda: not dlg.preview.pixmap().isNull(), timeout=60000)
    pix = dlg.preview.pixmap()
    assert max(pix.width(), pix.height()) == pytest.approx(420, abs=2)
    assert pix.width() < pix.height() * 1.6  # a single-column overlay, not a wide grid
    dlg.width.setText("wide")
    assert not dlg.save_button.isEnabled() and "wide" in dlg.error.text()
    dlg.width.setText("1200px")
    assert dlg.save_button.isEnabled()
    assert dlg.figure_options().width == pytest.approx(1200 / 300)
    assert PRESETS["single"].width == 3.5
    qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=60000)


def test_copy_view_copies_the_exported_figure_with_svg_and_pdf(qtbot, window, chelsea):
    open_and_wait(qtbot, window, chelsea)
    cb = QGuiApplication.clipboard()
    cb.clear()
    window.copy_view()
    qtbot.waitUntil(lambda: cb.mimeData() is not None and
                    cb.mimeData().hasFormat("image/svg+xml"), timeout=60000)
    md = cb.mimeData()
    assert bytes(md.data("application/pdf")).startswith(b"%PDF")
    texts = svg_texts(bytes(md.data("image/svg+xml")))
    assert any("% of map mass" in t for t in texts)  # the colour bar came along
    image = cb.image()
    assert image.width() == round(7.2 * 300)  # the exported figure, not the bare overlay


def _panel_pixels(fig):
    """The RGB image the figure's first axes draws (the overlay or the grid mosaic)."""
    import numpy as np

    return np.asarray(fig.axes[0].get_images()[0].get_array())


def _bar_range(fig):
    """The values at the ends of the figure's colour bar (its axis limits along its length)."""
    bar = fig.axes[1]
    box = bar.get_position()
    return bar.get_xlim() if box.width > box.height else bar.get_ylim()


@pytest.mark.parametrize("view", [
    dict(scale="fixed", fixed_range=(0.01, 0.2)),
    dict(scale="layer", scaling="percentile", percentile=90.0, layer=1, head=2),
    dict(upsample="nearest", opacity=1.0, contour=False),
])
def test_exported_view_shows_what_the_window_shows(qtbot, window, chelsea, view):
    """The figure of the current view has the frame's pixels and colour-bar range (shared
    scale, percentile clipping, nearest-patch upsampling all followed), and burns in the
    60%-mass contour that the window draws as a line over them, along that line."""
    import cv2

    from vitexplorer.gui.jobs import figure_of

    a = open_and_wait(qtbot, window, chelsea)
    assert window.state.a.finished.display_scale == 1.0  # the frame is on the original pixels
    with qtbot.waitSignal(window.rendered, timeout=10000):
        window.state.update(**view)
    frame = window.maps.last_frame
    options = vars(window.state.options).copy()
    assert (_panel_pixels(figure_of(a, "view", {**options, "contour": False}))
            == frame.image).all()
    fig = figure_of(a, "view", options)
    burned = (_panel_pixels(fig) != frame.image).any(-1)
    assert burned.any() == bool(options["contour"]) == (frame.contours is not None)
    if frame.contours is not None:
        along = np.zeros(burned.shape, np.uint8)
        cv2.polylines(along, [c[:, None] for c in frame.contours], True, 1, 5)
        assert not (burned & (along == 0)).any()
    assert _bar_range(fig) == pytest.approx((frame.vrange[0] * 100,
                                                  frame.vrange[1] * 100))
    caption = " ".join(fig.get_supxlabel().split())  # unwrapped
    if view.get("upsample") == "nearest":
        assert "token grid (nearest" in caption
    if view.get("scale") == "fixed":
        assert "fixed scale, 1-20%" in caption
    if view.get("scale") == "layer":
        assert "shared by the layer's heads (10th-90th percentile" in caption


def test_exported_grid_follows_the_view_scale(qtbot, window, chelsea, tmp_path):
    """A fixed view scale puts every grid panel on that scale; the dialog's grid scale
    starts from the view's (own range of each map = per panel); the saved SVG says so."""
    from vitexplorer.gui.dialogs import ExportDialog
    from vitexplorer.gui.jobs import figure_of

    a = open_and_wait(qtbot, window, chelsea)
    s = window.state
    s.update(scale="fixed", fixed_range=(0.0, 0.5), upsample="nearest")
    fig = figure_of(a, "layer", vars(s.options).copy())
    assert _bar_range(fig) == pytest.approx((0.0, 50.0))
    path = tmp_path / "grid.svg"
    window.export("grid", str(path))
    qtbot.waitUntil(path.exists, timeout=60000)
    text = " ".join(" ".join(svg_texts(path.read_bytes())).split())
    assert "fixed scale, 0-50%" in text and "nearest" in text
    s.update(scale="map")
    dlg = ExportDialog(str(tmp_path / "f.png"), window, scale="per-panel")
    qtbot.addWidget(dlg)
    assert dlg.figure_options().scale == "per-panel"
    qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=60000)
