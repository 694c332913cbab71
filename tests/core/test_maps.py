"""Map statistics: the 60%-mass region against a brute-force search."""

from __future__ import annotations

import itertools

import numpy as np

from vitexplorer.core.maps import mass_region


def test_mass_region_is_the_smallest_set_holding_the_mass():
    rng = np.random.default_rng(0)
    m = rng.random((3, 3)) ** 3
    m /= m.sum()
    got = mass_region(m, 0.6)
    # brute force: the smallest subset reaching 60%, and among those the heaviest
    best = None
    for k in range(1, 10):
        for sub in itertools.combinations(range(9), k):
            if m.ravel()[list(sub)].sum() >= 0.6 and (best is None or
                                                     m.ravel()[list(sub)].sum() >
                                                     m.ravel()[list(best)].sum()):
                best = sub
        if best is not None:
            break
    expected = np.zeros(9, bool)
    expected[list(best)] = True
    assert (got.ravel() == expected).all()
    assert not mass_region(np.zeros((2, 2))).any()


def test_mass_region_vectorised_equals_one_by_one():
    rng = np.random.default_rng(5)
    maps = rng.random((3, 4, 5, 6)) ** 4
    maps[0, 0] = 0.0
    got = mass_region(maps, 0.6)
    for idx in np.ndindex(maps.shape[:2]):
        assert (got[idx] == mass_region(maps[idx], 0.6)).all()
    assert not got[0, 0].any()
