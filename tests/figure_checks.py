"""Checks a publisher runs on a figure file, reusable by every figure's tests.

* :func:`pdf_font_subtypes`: the PDF's font dictionaries (no pdffonts needed);
* :func:`svg_texts`: the strings of the SVG's ``<text>`` elements;
* :func:`text_problems`: text artists that leave the canvas or overlap each other.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from itertools import combinations
from unittest.mock import patch

from matplotlib.text import Text

SVG = "{http://www.w3.org/2000/svg}"


def pdf_font_subtypes(data: bytes) -> tuple[set[str], bool]:
    """The ``/Subtype`` of every ``/Type /Font`` dictionary, and whether a TrueType font
    program (``/FontFile2``) is embedded."""
    subtypes = set()
    for m in re.finditer(rb"<<(.*?)>>", data, re.S):
        body = m.group(1)
        if re.search(rb"/Type\s*/Font\b", body):
            st = re.search(rb"/Subtype\s*/(\w+)", body)
            if st:
                subtypes.add(st.group(1).decode())
    return subtypes, b"/FontFile2" in data


def pdffonts_types(path) -> list[str] | None:
    """The ``type`` column of poppler's ``pdffonts``, None where it is not installed."""
    exe = shutil.which("pdffonts")
    if exe is None:
        return None
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, check=True).stdout
    # name, then type (one or two words: "Type 3", "CID TrueType"), then encoding...
    return [" ".join(line.split()[1:3]) for line in out.splitlines()[2:]]


def svg_texts(data: bytes) -> list[str]:
    """The text of each ``<text>`` element (tspans joined)."""
    root = ET.fromstring(data)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def drawn_texts(fig) -> list[tuple[str, object]]:
    """(text, window extent) of every text artist a draw of ``fig`` actually draws (tick
    labels outside the view exist as objects but are not drawn)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):  # a Figure() made without a canvas
        FigureCanvasAgg(fig)
    drawn = []
    original = Text.draw

    def record(self, renderer):
        drawn.append(self)
        return original(self, renderer)

    with patch.object(Text, "draw", record):
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in drawn
            if t.get_visible() and t.get_text().strip()]


def text_problems(fig, tol: float = 0.5) -> list[str]:
    """Drawn text artists whose box leaves the canvas or overlaps another's."""
    boxes = drawn_texts(fig)
    canvas = fig.bbox
    problems = []
    for text, b in boxes:
        if b.x0 < canvas.x0 - tol or b.y0 < canvas.y0 - tol or b.x1 > canvas.x1 + tol or \
                b.y1 > canvas.y1 + tol:
            problems.append(f"{text[:40]!r} leaves the canvas: {b.bounds} vs {canvas.bounds}")
    for (t1, b1), (t2, b2) in combinations(boxes, 2):
        w = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
        h = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
        if w > tol and h > tol:
            problems.append(f"{t1[:40]!r} overlaps {t2[:40]!r}")
    return problems
