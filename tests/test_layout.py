"""The README's Layout table against the tree and the core's layers contract."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO


def layout_rows() -> dict[str, str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout"):]
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", section, re.M)
    return {path: what for path, what in rows if path != "path"}  # the header is no row


def contract_layers() -> list[set[str]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"]
                    if c["type"] == "layers" and c["containers"] == ["vitexplorer.core"])
    return [set(re.split(r"\s*[:|]\s*", layer.strip())) for layer in contract["layers"]]


def test_every_core_module_is_in_its_layers_row():
    rows = layout_rows()
    tree = {p.stem for p in (REPO / "vitexplorer" / "core").glob("*.py")} - {"__init__"}
    layers = contract_layers()
    assert set().union(*layers) == tree, "pyproject's layers contract lists every module"
    layer_rows = [row for row in rows if row.startswith("core ")]  # top to bottom
    assert len(layer_rows) == len(layers), f"one 'core ...' row per layer: {layer_rows}"
    for row, modules in zip(layer_rows, layers, strict=True):
        named = {w for w in re.findall(r"`([^`]+)`", rows[row]) if w.isidentifier()} & tree
        assert named == modules, f"README row '{row}': add {sorted(modules - named)}, " \
                                 f"move {sorted(named - modules)}"


def test_every_path_in_the_table_exists_and_every_top_level_module_is_named():
    rows = layout_rows()
    named: set[str] = set()
    for cell in rows:
        paths = re.findall(r"`([^`]+)`", cell)
        base = ""
        for path in paths:
            full = path if "/" in path else base + path
            base = full.rsplit("/", 1)[0] + "/" if "/" in full else base
            assert (REPO / full).exists(), f"README Layout names '{full}', which is not there"
            named.add(full)
    top = {f"vitexplorer/{p.name}" for p in (REPO / "vitexplorer").glob("*.py")}
    missing = top - named - {"vitexplorer/__main__.py"}
    assert not missing, f"README Layout does not name {sorted(missing)}"
