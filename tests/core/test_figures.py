"""Publication figures: fonts a publisher accepts, editable SVG text, layouts that never clip.

Every figure kind is rendered at every preset and for the extreme models and image shapes
(3 heads x 1 layer vs 16 heads x 32 layers; panorama 4:1 and portrait 1:4), and checked the
way a reviewer would: no text leaves the canvas, no two texts overlap.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.figure_checks import pdf_font_subtypes, pdffonts_types, svg_texts, text_problems
from vitexplorer.core.figures import (
    PRESETS,
    FigureOptions,
    figure_bytes,
    grid_figure,
    group_grid_figure,
    overlay_figure,
    parse_length,
    profile_figure,
    save_figure,
    similarity_figure,
)

KINDS = ("view", "layer", "grid", "groups", "similarity", "profile")


def _image(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x * 7 + y * 3) % 256], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def cases():
    """Analyses of the extreme shapes: {(model, image): (analysis, head table)}."""
    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.models import load_model

    torch.manual_seed(0)
    models = {"3x1": load_model("vit_tiny_patch16_224", "random", img_size=32, depth=1),
              "16x32": load_model("vit_tiny_patch16_224", "random", img_size=32, depth=32,
                                  num_heads=16, embed_dim=64)}
    images = {"panorama": _image(60, 240), "portrait": _image(240, 60)}
    out = {}
    for mk, m in models.items():
        for ik, im in images.items():
            a = analyze(m, im, "crop", source=f"{ik}.png")
            out[mk, ik] = (a, a.head_table())
    return out


def make(kind: str, analysis, table, options: FigureOptions):
    from vitexplorer.core.profile import aggregate
    from vitexplorer.core.relations import cluster_heads, layer_divergence

    if kind == "view":
        return overlay_figure(analysis, "head", -1, 1, options=options)
    if kind == "layer":
        return grid_figure(analysis, "head", -1, contour=0.6, options=options)
    if kind == "grid":
        return grid_figure(analysis, "head", None, options=options)
    if kind == "groups":
        return group_grid_figure(analysis, table, options=options)
    if kind == "similarity":
        maps = analysis.head_maps().numpy()
        return similarity_figure(analysis, cluster_heads(maps), layer_divergence(maps),
                                 options=options)
    return profile_figure(aggregate([table, table]), options=options)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", [("3x1", "panorama"), ("16x32", "portrait"),
                                  ("16x32", "panorama"), ("3x1", "portrait")])
def test_no_text_leaves_the_canvas_or_overlaps(cases, kind, preset, case):
    if kind in ("similarity", "profile") and case[1] == "portrait":
        pytest.skip("the image shape does not enter this figure")
    a, table = cases[case]
    fig = make(kind, a, table, FigureOptions(preset=preset, dpi=50))
    assert text_problems(fig) == []
    w, h = fig.get_size_inches()
    p = PRESETS[preset]
    assert w == pytest.approx(p.width)
    assert h <= (p.height or p.max_height) + 1e-6


@pytest.mark.parametrize("kind", KINDS)
def test_pdf_embeds_truetype_and_svg_keeps_text(cases, kind, tmp_path):
    a, table = cases["3x1", "panorama"]
    opts = FigureOptions(preset="single", dpi=50, title="My title",
                         caption="My caption, searchable")
    fig = make(kind, a, table, opts)
    pdf = save_figure(fig, tmp_path / "f.pdf")
    subtypes, truetype_program = pdf_font_subtypes(pdf.read_bytes())
    assert "Type3" not in subtypes and truetype_program, subtypes
    types = pdffonts_types(pdf)  # poppler's own view, where it is installed
    if types is not None:
        assert types and all("TrueType" in t for t in types), types
    texts = svg_texts(figure_bytes(fig, "svg"))
    if kind != "profile":  # the profile's title is its own (no options title)
        assert any("My title" in t for t in texts), texts
    assert any("searchable" in t for t in texts), texts


def test_title_caption_defaults_and_empty(cases):
    a, _ = cases["3x1", "panorama"]
    fig = overlay_figure(a, "head", 0, 2, options=FigureOptions(dpi=50))
    assert "layer 0" in fig._suptitle.get_text() and "head 2" in fig._suptitle.get_text()
    assert "panorama.png" not in fig._suptitle.get_text()  # the file name is not the title
    assert "panorama.png" in fig._supxlabel.get_text()
    fig = overlay_figure(a, "head", 0, 2, options=FigureOptions(dpi=50, title="", caption=""))
    assert fig._suptitle is None
    # random weights stay marked whatever the caption says
    assert "random weights" in fig._supxlabel.get_text().lower()


def test_shared_or_per_panel_scale_is_stated_and_used(cases):
    a, _ = cases["3x1", "panorama"]
    shared = grid_figure(a, "head", 0, options=FigureOptions(dpi=50))
    per = grid_figure(a, "head", 0, options=FigureOptions(dpi=50, scale="per-panel"))
    assert "shared by all panels" in shared._supxlabel.get_text()
    assert "own min-max" in per._supxlabel.get_text()
    maps = np.stack([a.map("head", 0, h) for h in range(a.num_heads)])
    cbar = shared.axes[1]
    assert cbar.get_xlim() == pytest.approx((maps.min() * 100, maps.max() * 100))
    assert per.axes[1].get_xlim() == pytest.approx((0, 1))


def test_sizes_presets_and_lengths(cases, tmp_path):
    from PIL import Image

    a, _ = cases["3x1", "panorama"]
    opts = FigureOptions(width=parse_length("1200px", 200), height=parse_length("600px", 200),
                         dpi=200)
    png = save_figure(overlay_figure(a, options=opts), tmp_path / "f.png")
    assert Image.open(png).size == (1200, 600)
    assert parse_length("89mm") == pytest.approx(3.504, abs=1e-3)
    assert parse_length("3.5in") == 3.5
    for bad in ("wide", "-3in", "0px"):
        with pytest.raises(ValueError, match="length"):
            parse_length(bad)
    slide = overlay_figure(a, options=FigureOptions(preset="slide", dpi=50))
    assert slide.get_size_inches() == pytest.approx((13.333, 7.5))
    with pytest.raises(ValueError, match="colormap"):
        FigureOptions(cmap="not-a-map")


def test_batch_overlays_mark_random_weights_and_decorate(tmp_path, images_dir):
    from PIL import Image

    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.batch import BatchOptions, run_batch
    from vitexplorer.core.models import load_model
    from vitexplorer.core.render import overlay

    torch.manual_seed(0)
    tiny = load_model("vit_tiny_patch16_224", "random", img_size=32, depth=1)
    src = tmp_path / "in"
    src.mkdir()
    (src / "horse.png").write_bytes((images_dir / "horse.png").read_bytes())
    common = dict(model="vit_tiny_patch16_224", weights="random", outputs=("overlay", "json"),
                  scores=False, workers=1)
    run_batch([src], tmp_path / "plain", tiny, BatchOptions(**common))
    run_batch([src], tmp_path / "deco", tiny, BatchOptions(**common, decorate=True))
    plain = np.asarray(Image.open(tmp_path / "plain" / "in" / "horse.png__rollout_L0.png"))
    a = analyze(tiny, src / "horse.png", "crop")
    bare = overlay(a.image, a.map("rollout", 0), a.geometry, "viridis", 0.6)
    assert plain.shape == bare.shape
    changed = np.any(plain != bare, axis=(1, 2))
    assert changed[:5].all() and not changed[len(changed) // 2:].any()  # a band on top
    deco = Image.open(tmp_path / "deco" / "in" / "horse.png__rollout_L0.png")
    assert deco.size[0] == round(PRESETS["single"].width * 300)  # a single-column figure


def _curve_records() -> list[dict]:
    """Synthetic evaluation records (two images, three methods) for the curves figure."""
    from vitexplorer.core.evaluate import CURVES

    x = np.linspace(0, 1, 11)
    records = []
    for k in range(2):
        curves = {}
        for i, m in enumerate(("rollout", "relevance", "random")):
            c = {"fractions": x.tolist()}
            for name in CURVES:
                y = np.exp(-(i + 1 + k) * x) if name in ("deletion", "positive") else x ** (i + 1)
                c[name], c[f"{name}_auc"] = y.tolist(), float(y.mean())
            curves[m] = c
        records.append({"model": "vit_tiny_patch16_224 (random weights)", "curves": curves})
    return records


@pytest.fixture(scope="module")
def comparison(tiny_loaded):
    from tests.core.test_compare import IMAGES
    from vitexplorer.core.compare import compare_models
    from vitexplorer.core.models import load_model

    torch.manual_seed(0)
    b = load_model("vit_small_patch8_224", "random", img_size=64, depth=2, num_heads=2,
                   embed_dim=64)
    return compare_models(tiny_loaded, b, IMAGES[:1], scores=False)


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("kind", ["comparison", "curves"])
def test_comparison_and_curves_figures_pass_the_same_checks(comparison, kind, preset):
    """The figures of compare and evaluate: TrueType, real text, nothing off the canvas or
    overlapping, at every preset."""
    from vitexplorer.core.science_figures import comparison_figure, curves_figure

    opts = FigureOptions(preset=preset, dpi=50, caption="Searchable caption")
    fig = comparison_figure(comparison, n_pairs=3, size=64, options=opts) \
        if kind == "comparison" else curves_figure(_curve_records(), options=opts)
    assert fig.get_figwidth() == pytest.approx(PRESETS[preset].width)
    assert text_problems(fig) == []
    assert "Type3" not in pdf_font_subtypes(figure_bytes(fig, "pdf"))[0]
    assert "Searchable caption" in svg_texts(figure_bytes(fig, "svg"))


def test_an_overlay_figure_of_a_large_photo_holds_no_more_pixels_than_it_shows(
        tiny_loaded, monkeypatch):
    """A camera photo's overlay is made at the figure's pixels, not the photo's (seconds of
    rendering and of matplotlib's resampling saved), and the figure looks the same: the
    map stays where it is on the full-size render."""
    from matplotlib.image import imread

    from vitexplorer.core import figures
    from vitexplorer.core.analysis import analyze

    photo = np.repeat(np.repeat(_image(150, 200), 12, axis=0), 12, axis=1)  # 1800 x 2400
    a = analyze(tiny_loaded, photo, "letterbox", source="photo.jpg")
    o = FigureOptions(preset="single", dpi=150)
    fig = overlay_figure(a, "head", 1, 1, options=o)
    shown = fig.axes[0].images[0].get_array().shape
    fw, fh = fig.get_size_inches() * o.dpi
    assert shown[1] <= fw and shown[0] <= fh and shown[1] / shown[0] == pytest.approx(4 / 3,
                                                                                        rel=0.01)
    small = imread(__import__("io").BytesIO(figure_bytes(fig, "png")))
    monkeypatch.setattr(figures, "_image_at", lambda an, _f: (an.image, an.geometry))
    full = imread(__import__("io").BytesIO(figure_bytes(
        overlay_figure(a, "head", 1, 1, options=o), "png")))
    assert small.shape == full.shape
    assert np.abs(small - full).mean() < 0.01  # 0..1 RGBA: under 1% of the range on average
