"""Relations between heads: similarity, clusters, and how heads diverge across depth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
from scipy.spatial.distance import jensenshannon, squareform


def js_distances(maps: np.ndarray) -> np.ndarray:
    """Pairwise Jensen-Shannon distance between head maps, ``[K, K]`` in [0, 1].

    ``maps`` is ``[..., gh, gw]`` (flattened to K maps). JS distance (Endres & Schindelin
    2003) = sqrt(JSD) with base-2 logs: 0 for identical maps, 1 for disjoint supports.
    """
    flat = np.asarray(maps, np.float64).reshape(-1, maps.shape[-2] * maps.shape[-1])
    flat = flat / np.maximum(flat.sum(-1, keepdims=True), 1e-12)
    # vectorised over pairs; identical maps can give sqrt(-1e-17): NaN, set to 0 below
    with np.errstate(invalid="ignore"):
        d = jensenshannon(flat[:, None, :], flat[None, :, :], base=2, axis=-1)
    d = np.nan_to_num(d, nan=0.0)
    np.fill_diagonal(d, 0.0)
    return (d + d.T) / 2


@dataclass
class Clustering:
    """Hierarchical clustering of heads; ``cells`` are (layer, head) in K order."""

    distances: np.ndarray  # [K, K]
    labels: np.ndarray  # [K] cluster id, 1-based
    order: np.ndarray  # [K] leaf order (similar heads adjacent)
    cells: list[tuple[int, int]]

    def ordered_cells(self) -> list[tuple[int, int]]:
        """(layer, head) in cluster order: the GUI's "sort by similarity"."""
        return [self.cells[i] for i in self.order]

    def cluster_of(self, layer: int, head: int) -> int:
        return int(self.labels[self.cells.index((layer, head))])


def cluster_heads(maps: np.ndarray, threshold: float = 0.3) -> Clustering:
    """Average-linkage (UPGMA) clustering of the heads' JS distances, cut at ``threshold``.

    ``maps`` is ``[L, H, gh, gw]``. Heads closer than ``threshold`` on average share a
    cluster; the dendrogram's leaf order sorts the head grid so twins sit side by side.
    """
    n_l, n_h = maps.shape[:2]
    d = js_distances(maps)
    cells = [(li, h) for li in range(n_l) for h in range(n_h)]
    if len(cells) < 2:
        return Clustering(d, np.ones(len(cells), int), np.arange(len(cells)), cells)
    z = linkage(squareform(d, checks=False), method="average")
    return Clustering(d, fcluster(z, threshold, criterion="distance"), leaves_list(z), cells)


def layer_divergence(maps: np.ndarray) -> np.ndarray:
    """Per layer, the mean pairwise JS distance between its heads, ``[L]``.

    High values: the layer's heads look at different things (divergence); falling values
    with depth show heads converging on the same regions.
    """
    out = np.zeros(maps.shape[0])
    for li in range(maps.shape[0]):
        d = js_distances(maps[li])
        n = d.shape[0]
        out[li] = d[np.triu_indices(n, 1)].mean() if n > 1 else 0.0
    return out
