"""Large photos are shown from a display-size decode and exported on the original pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TEST_IMAGES
from tests.gui.conftest import open_and_wait


def test_a_large_photo_is_shown_small_and_exported_from_the_original(qtbot, window, tmp_path,
                                                                    monkeypatch):
    from vitexplorer.core import figures
    from vitexplorer.gui import jobs

    photo = tmp_path / "big.jpg"
    big = Image.open(TEST_IMAGES / "horse.png").convert("RGB").resize((3000, 2000))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown 2000 wide, 3000 high
    big.save(photo, quality=90, exif=exif.tobytes())
    a = open_and_wait(qtbot, window, photo)
    assert a.image.shape[:2] == (jobs.DISPLAY_MAX, round(2000 * jobs.DISPLAY_MAX / 3000))
    assert a.original.image_size == (3000, 2000)
    drawn = []
    monkeypatch.setattr(figures, "save_figure",
                        lambda fig, path, fmt=None: drawn.append(fig) or path)
    jobs.export_job(a, "view", str(tmp_path / "v.pdf"), vars(window.state.options).copy())
    shown = np.asarray(drawn[0].axes[0].images[0].get_array())
    # decoded again in full, then made at the figure's pixels: more than the display copy
    # holds, no more than the figure shows
    fw, fh = drawn[0].get_size_inches() * drawn[0].export_dpi
    assert a.image.shape[0] < shown.shape[0] <= fh and shown.shape[1] <= fw
    assert shown.shape[0] / shown.shape[1] == pytest.approx(3 / 2, rel=0.01)


def test_exporting_a_photo_that_went_bad_since_it_was_opened_is_a_message(qtbot, window,
                                                                         tmp_path, monkeypatch):
    # an export decodes the photo again in full: a file cut short since it was opened is an
    # ImageError, shown in the banner as other export failures are, not an "Unexpected
    # error" with a traceback
    from vitexplorer.gui import main_window

    dialogs = []
    monkeypatch.setattr(main_window, "show_error", lambda *a, **k: dialogs.append(a))
    photo = tmp_path / "big.jpg"
    Image.open(TEST_IMAGES / "horse.png").convert("RGB").resize((2400, 1600)).save(photo)
    open_and_wait(qtbot, window, photo)
    photo.write_bytes(photo.read_bytes()[:5000])
    window.export("view", str(tmp_path / "v.png"))
    qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=60000)
    assert not dialogs
    assert "Could not export" in window.banner.label.text()
    assert "big.jpg" in window.banner.label.text() and "truncated" in window.banner.label.text()
    assert not (tmp_path / "v.png").exists()
    # a preview that fails (it draws from the view's copy, so make it): the banner says
    # what could not be done
    from vitexplorer.gui import jobs

    def broken(*a, **k):
        raise ValueError("no figure")

    monkeypatch.setattr(jobs, "preview_job", broken)
    window.preview_export(type("Dialog", (), {"show_preview": print})(), "view", None)
    qtbot.waitUntil(lambda: not window.tasks.is_running(), timeout=60000)
    assert window.banner.label.text().startswith("Could not render the preview: ")
    assert not dialogs
