"""The export dialog's figure options and live preview; Copy View copies the figure."""

from __future__ import annotations

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
