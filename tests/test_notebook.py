"""The notebook API: the README's example runs, rich display, lazy top-level names."""

from __future__ import annotations

import html
import io
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import vitexplorer as vx
from tests.conftest import REPO, TEST_IMAGES
from vitexplorer.core import preview
from vitexplorer.core.constants import DEFAULT_CMAP
from vitexplorer.core.models import load_model
from vitexplorer.core.render import colormap_lut


def readme_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### In a notebook"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs(tmp_path, monkeypatch):
    """As written, but on a 3-block random-init copy of the model (no download here)."""
    shutil.copy(TEST_IMAGES / "chelsea.png", tmp_path / "cat.jpg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(vx, "load_model", lambda spec, *a, **k: load_model(
        spec, "random", img_size=64, depth=3))
    ns: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), ns)
    a = ns["a"]
    assert isinstance(a, vx.Analysis) and a.source == "cat.jpg"
    assert ns["head3"].shape == a.layout.grid and ns["head3"].sum() == pytest.approx(1, 1e-5)
    np.testing.assert_array_equal(ns["head3"], a.map("head-rollout", 2, 3))
    assert ns["table"].shape == (3, 6)
    assert (tmp_path / "head3.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "all_heads.png").read_bytes().startswith(b"\x89PNG")
    n = a.layout.num_tokens
    assert vx.capture(a.loaded.model, a.model_input()).attentions.shape == (1, 3, 6, n, n)


def test_every_public_name_resolves_and_the_import_loads_no_torch():
    for name in vx.__all__:
        assert getattr(vx, name) is not None, name
    code = "import sys, vitexplorer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert out.strip() == "False"
    with pytest.raises(AttributeError):
        vx.no_such_name  # noqa: B018


def test_head_grid_puts_each_head_at_its_layer_and_column(tiny_loaded, images_dir):
    """Each tile is its head's map: the hottest patch in the colormap's top colour, the
    coldest in its bottom colour, at that patch's place in tile (layer, head)."""
    a = vx.analyze(tiny_loaded, images_dir / "chelsea.png")
    grid = preview.head_grid(a)
    maps = a.head_maps().numpy()
    n_l, n_h, gh, gw = maps.shape
    scale = max(1, preview.CELL // max(gh, gw))
    step_r, step_c = gh * scale + preview.GAP, gw * scale + preview.GAP
    assert grid.shape == (n_l * step_r - preview.GAP, n_h * step_c - preview.GAP, 3)
    lut = colormap_lut(DEFAULT_CMAP)
    for li in range(n_l):
        for h in range(n_h):
            for pick, colour in ((np.argmax, lut[255]), (np.argmin, lut[0])):
                r, c = np.unravel_index(pick(maps[li, h]), (gh, gw))
                pixel = grid[li * step_r + r * scale, h * step_c + c * scale]
                np.testing.assert_array_equal(pixel, colour, err_msg=str((li, h)))


def test_rich_display_shows_image_classes_and_heads(tiny_loaded, images_dir):
    a = vx.analyze(tiny_loaded, images_dir / "chelsea.png")
    page = a._repr_html_()
    assert page.count("<img") == 2 and "3 layers × 3 heads" in page
    for _, name, _p in a.top_k(5):
        assert html.escape(name) in page
    png = Image.open(io.BytesIO(a._repr_png_()))
    assert png.size == preview.head_grid(a).shape[1::-1]
