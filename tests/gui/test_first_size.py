"""The first start's window size follows the screen: all of a small laptop screen, the
default on a middling one, most of a large monitor (not a 1280x800 island on 1920x1080)."""

from __future__ import annotations

import pytest

from vitexplorer.gui.remembered import first_size


@pytest.mark.parametrize(("available", "expected"), [
    ((1024, 700), (1024, 700)),  # a small laptop: the whole free area, never more
    ((1366, 740), (1280, 740)),  # a common laptop: the default width, the free height
    ((1920, 1050), (1632, 892)),  # a full-HD monitor less its panel: 85% of it
    ((3840, 2100), (3264, 1785)),
])
def test_first_size_fits_and_uses_the_screen(available, expected):
    assert first_size(available) == expected
