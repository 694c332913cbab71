"""The figure options of the console commands: sizes, text, colour, errors."""

from __future__ import annotations

from PIL import Image

from tests.figure_checks import pdf_font_subtypes, svg_texts
from vitexplorer.cli import main

TINY = ["--model", "vit_tiny_patch16_224", "--weights", "random"]


def test_export_size_title_caption_and_fonts(tmp_path, images_dir):
    png = tmp_path / "f.png"
    assert main(["export", str(images_dir / "chelsea.png"), "-o", str(png), *TINY,
                 "--width", "900px", "--height", "600px", "--dpi", "150", "--cmap",
                 "cividis"]) == 0
    assert Image.open(png).size == (900, 600)
    svg = tmp_path / "g.svg"
    assert main(["export", str(images_dir / "chelsea.png"), "-o", str(svg), *TINY, "--grid",
                 "--preset", "single", "--title", "Figure 2", "--caption", "Heads of layer 11",
                 "--scale", "per-panel"]) == 0
    texts = svg_texts(svg.read_bytes())
    assert "Figure 2" in texts and any("Heads of layer 11" in t for t in texts)
    pdf = tmp_path / "h.pdf"
    assert main(["export", str(images_dir / "chelsea.png"), "-o", str(pdf), *TINY,
                 "--preset", "slide", "--title", ""]) == 0
    assert "Type3" not in pdf_font_subtypes(pdf.read_bytes())[0]


def test_bad_figure_options_are_one_line_usage_errors(tmp_path, images_dir, capsys):
    for bad, word in ((["--width", "wide"], "wide"), (["--cmap", "nope"], "colormap"),
                      (["--dpi", "0"], "dpi"), (["--caption", r"$\nope{x}$"], "caption")):
        out = tmp_path / "x.png"
        assert main(["export", str(images_dir / "chelsea.png"), "-o", str(out), *TINY,
                     *bad]) == 2
        assert word in capsys.readouterr().err
        assert not out.exists()


def test_export_decodes_a_camera_photo_only_as_large_as_its_figure(tmp_path, images_dir,
                                                                   monkeypatch):
    from vitexplorer.core import images

    photo = tmp_path / "camera.jpg"
    Image.open(images_dir / "chelsea.png").convert("RGB").resize((2400, 1800)).save(photo)
    decoded = []
    real_decode = images._decode_open  # every decode's, whoever imported decode by name
    monkeypatch.setattr(images, "_decode_open",
                        lambda *a, **k: decoded.append(real_decode(*a, **k)) or decoded[-1])
    png = tmp_path / "f.png"
    assert main(["export", str(photo), "-o", str(png), *TINY, "--width", "600px",
                 "--dpi", "100"]) == 0
    assert Image.open(png).size[0] == 600
    # the figure shows at most 600 px of the photo's width: libjpeg's 1/4 decode has them
    assert [d.pixels.shape[:2] for d in decoded] == [(450, 600)]


def test_dollars_in_a_file_name_are_text_and_the_users_math_is_math(tmp_path, images_dir):
    """A file named 'a_$\\nope{x}$.png' was typeset as TeX in the default caption: the save
    failed with matplotlib's ParseFatalException, after all the work."""
    from vitexplorer.core.analysis import analyze
    from vitexplorer.core.figures import FigureOptions, overlay_figure
    from vitexplorer.core.models import load_model

    photo = tmp_path / "a_$\\nope{x}$.png"
    photo.write_bytes((images_dir / "coins.png").read_bytes())
    svg = tmp_path / "f.svg"
    assert main(["export", str(photo), "-o", str(svg), *TINY, "--input-size", "64"]) == 0
    assert any("a_$\\nope{x}$.png" in t for t in svg_texts(svg.read_bytes()))
    analysis = analyze(load_model("vit_tiny_patch16_224", "random", input_size=32), photo)
    fig = overlay_figure(analysis, "rollout", options=FigureOptions(title=r"$\alpha$"))
    assert fig._suptitle.get_parse_math() and not fig._supxlabel.get_parse_math()
    for text in ("$x", "5$ or 6\\$", r"$\alpha$ and \$"):  # a lone '$' is text; math is fine
        FigureOptions(title=text, caption=text)


def test_a_missing_glyph_is_one_line_per_character(tmp_path, images_dir, capsys):
    """A CJK file name in the caption printed matplotlib's warning with its source line for
    each character at each drawing (8 lines for two characters)."""
    photo = tmp_path / "鼠 穴.png"
    photo.write_bytes((images_dir / "coins.png").read_bytes())
    assert main(["export", str(photo), "-o", str(tmp_path / "f.png"), *TINY,
                 "--input-size", "64"]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert err == ["vitexplorer: warning: the figure's font has no glyph for '鼠' (U+9F20); "
                   "it is drawn as a box",
                   "vitexplorer: warning: the figure's font has no glyph for '穴' (U+7A74); "
                   "it is drawn as a box"]


def test_a_figure_too_small_for_its_text_is_a_usage_error(tmp_path, images_dir, capsys):
    """A height or font size that leaves the panels no room failed in matplotlib's colour
    bar ('Width and height specified must be non-negative'), a traceback."""
    out = tmp_path / "f.png"
    for size in (["--width", "2in", "--height", "1in"], ["--font-size", "40", "--grid"]):
        assert main(["export", str(images_dir / "coins.png"), "-o", str(out), *TINY,
                     "--input-size", "64", *size]) == 2
        err = capsys.readouterr().err
        assert "leaves no room for its panels" in err and "Traceback" not in err
        assert not out.exists()
    assert main(["export", str(images_dir / "coins.png"), "-o", str(out), *TINY,
                 "--input-size", "64", "--width", "2in", "--height", "2.5in"]) == 0
