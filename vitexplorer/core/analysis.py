"""The ``Analysis`` of one image: what every view and export reads, without rerunning the model.

Maps are computed on first use and cached, so switching layer, head, method, colormap or
opacity costs a lookup and a render, never a forward. An analysis holds what a streamed
capture keeps of the attention (:mod:`vitexplorer.core.stream`), not the attention itself;
a block's full attention (patch query, max/min fusion) is recomputed from that block's
inputs (8 ms for ViT-B/16, 49 ms for ViT-L/16 at 384 px on 2 CPU threads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from vitexplorer.core import masks, preview
from vitexplorer.core import rollout as ro
from vitexplorer.core.capture import StopCheck, TokenLayout
from vitexplorer.core.checks import check_finite, check_resize
from vitexplorer.core.constants import METHODS, PER_HEAD_METHODS
from vitexplorer.core.features import PatchFeatures, patch_features
from vitexplorer.core.heads import HeadTable, mask_free_scores, with_foreground
from vitexplorer.core.images import (
    Decoded,
    Geometry,
    Preprocessed,
    ResizePolicy,
    check_size,
    decode,
    decode_display,
    display_copy,
    display_size,
    grid_coverage,
    normalise_input,
    preprocess,
    resize_target,
)
from vitexplorer.core.models import LoadedModel
from vitexplorer.core.render import Scaling, display_range
from vitexplorer.core.stream import Streamed, class_products, layer_attention, stream


@dataclass
class Analysis:
    """Attention of every head for one image, with its geometry, predictions and model.

    The one object the window, the CLI, the batch runner and notebooks read:

    - :meth:`map` (one ``[gh, gw]`` map of a method, layer and head), :meth:`has_map`,
      :meth:`head_maps`, :meth:`rollout_maps`, :meth:`head_rollout_maps`;
    - :meth:`head_table` (scores and groups of every head), :meth:`foreground_mask`;
    - :meth:`ensure_gradients` / :meth:`has_gradients` (the class-specific methods' extra
      forward and backward, run once per class);
    - :meth:`patch_query` and :meth:`layer` (a block's full attention, recomputed),
      :meth:`top_k`, :meth:`model_input` (the pixels for ablation), :meth:`prefix_share`.

    ``rows`` ``[L, H, N]`` the heads' map rows; ``fused`` ``[L, N, N]`` the head-mean
    attention of each block; ``ranges`` each head's (mean distance, row entropy, distance
    z) ``[L, H]``
    (None when the capture skipped them: no head table then);
    ``recompute(l)`` block l's full attention ``[H, N, N]`` (None when the capture kept no
    block inputs); ``loaded`` the model that made it (gradients and ablation run on it).
    """

    source: str
    image: np.ndarray
    geometry: Geometry
    layout: TokenLayout
    rows: torch.Tensor
    fused: torch.Tensor
    ranges: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    logits: torch.Tensor  # [C]
    model_label: str
    recompute: Callable[[int], torch.Tensor] | None = field(repr=False)
    class_names: list[str] | None = None
    policy: str = "crop"
    model_view: np.ndarray | None = field(default=None, repr=False)
    loaded: LoadedModel | None = field(default=None, repr=False)
    #: the geometry on the original pixels when ``image`` is a smaller display copy
    original: Geometry | None = field(default=None, repr=False)
    #: those original pixels when the analysis was made from an array (a pasted image):
    #: there is no file to decode them again from for an export
    photo: np.ndarray | None = field(default=None, repr=False)
    #: class -> the two :func:`~vitexplorer.core.rollout.class_products` ``(weighted, cams)``
    #: ``[L, N, N]`` of that class (filled by :meth:`ensure_gradients`)
    _grads: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict,
                                                                 repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_stream(cls, s: Streamed, index: int, loaded: LoadedModel, pre: Preprocessed,
                    policy: str, source: str) -> Analysis:
        """Image ``index`` of a streamed (possibly batched) forward."""
        model, calls = loaded.model, s.calls

        def recompute(layer: int) -> torch.Tensor:
            return layer_attention(model, layer, calls[layer])[index].clone()

        check_finite(s.logits[index], "logits", source)
        check_finite(s.rows[index], "attention", source)
        ranges = None if s.distance is None else tuple(
            t[index].double().numpy() for t in (s.distance, s.entropy, s.distance_z))
        # one image: its fused matrices are the whole buffer (a copy would double them)
        fused = s.fused[index] if len(s.fused) == 1 else s.fused[index].clone()
        return cls(source, pre.display, pre.geometry, s.layout, s.rows[index].clone(),
                   fused, ranges, s.logits[index], loaded.label,
                   None if calls is None else recompute,
                   loaded.class_names, policy, pre.model_view, loaded,
                   original=pre.original)

    def _repr_html_(self) -> str:
        """Jupyter's rich display: the image, top classes and every head's map."""
        return preview.to_html(self)

    def _repr_png_(self) -> bytes:
        """Where a notebook shows no HTML: the grid of every head's map."""
        return preview.png_bytes(preview.head_grid(self))

    @property
    def photo_size(self) -> tuple[int, int]:
        """(rows, cols) of the photo itself; ``image`` may be a smaller display copy."""
        return (self.original or self.geometry).image_size

    @property
    def num_layers(self) -> int:
        return self.rows.shape[0]

    @property
    def num_heads(self) -> int:
        return self.rows.shape[1]

    def top_k(self, k: int = 5) -> list[tuple[int, str, float]]:
        """``(class index, class name, probability)`` of the ``k`` most likely classes."""
        if self.logits.numel() == 0:
            return []
        p = self.logits.softmax(-1)
        vals, idx = p.topk(min(k, p.numel()))
        names = self.class_names
        return [(int(i), names[int(i)] if names else f"class {int(i)}", float(v))
                for v, i in zip(vals, idx, strict=True)]

    def class_name(self, index: int) -> str:
        return self.class_names[index] if self.class_names else f"class {index}"

    def head_maps(self) -> torch.Tensor:
        """``[L, H, gh, gw]`` raw head maps (cached)."""
        key = self._key("head")
        if key not in self._cache:
            self._cache[key] = ro.head_maps(self.rows, self.layout)
        return self._cache[key]

    def _key(self, method: str, fusion: str = "mean", discard: float = 0.0,
             target: int | None = None) -> tuple:
        """Cache key of the data behind a method's maps (one place: :meth:`map` and
        :meth:`has_map` must agree)."""
        d = round(discard, 4)
        if method == "head":
            return ("head",)
        if method in ("rollout", "head-rollout"):
            return (method, fusion, d)
        target = self.top_k(1)[0][0] if target is None else target
        return (method, target, fusion, d)

    def layer(self, layer: int) -> torch.Tensor:
        """Block ``layer``'s full attention ``[H, N, N]``, recomputed from its inputs; the
        two used last are kept (a patch query moves within one layer)."""
        key = ("layer", layer % self.num_layers)
        got = self._cache.pop(key, None)  # re-inserted below: the newest entry
        if got is None:
            got = self._recompute(key[1])
        # a snapshot of the keys: workers may fill the cache meanwhile
        for old in [k for k in list(self._cache) if k[0] == "layer"][:-1]:
            self._cache.pop(old, None)
        self._cache[key] = got
        return got

    def _recompute(self, layer: int) -> torch.Tensor:
        if self.recompute is None:
            raise ValueError("this analysis kept no block inputs (a batch capture); "
                             "analyse the image on its own to recompute its attention")
        return self.recompute(layer)

    def has_layer(self, layer: int) -> bool:
        return ("layer", layer % self.num_layers) in self._cache

    def fused_attention(self, fusion: ro.Fusion = "mean") -> torch.Tensor:
        """``[L, N, N]`` heads fused by mean (kept by the capture), max or min (recomputed
        block by block)."""
        if fusion == "mean":
            return self.fused
        key = ("fused", fusion)
        if key not in self._cache:
            self._cache[key] = torch.stack([ro.fuse_heads(self._recompute(i), fusion)
                                            for i in range(self.num_layers)])
        return self._cache[key]

    def rollout_maps(self, fusion: ro.Fusion = "mean", discard: float = 0.0) -> torch.Tensor:
        """Fused rollout maps ``[L, gh, gw]`` (cached)."""
        key = self._key("rollout", fusion, discard)
        if key not in self._cache:
            self._cache[key] = ro.rollout_maps(self.fused_attention(fusion), self.layout,
                                               discard)[0]
        return self._cache[key]

    def head_rollout_maps(self, fusion: ro.Fusion = "mean", discard: float = 0.0) -> torch.Tensor:
        """Per-head rollout maps ``[L, H, gh, gw]`` (cached; the same pass gives the fused
        ones, cached too)."""
        key = self._key("head-rollout", fusion, discard)
        if key not in self._cache:
            fused, heads = ro.rollout_maps(self.fused_attention(fusion), self.layout, discard,
                                           self.rows)
            self._cache.setdefault(self._key("rollout", fusion, discard), fused)
            self._cache[key] = heads
        return self._cache[key]

    def has_map(self, method: str, fusion: str = "mean", discard: float = 0.0,
                target: int | None = None) -> bool:
        """Whether :meth:`map` answers from the cache (the GUI renders those without a worker)."""
        return self._key(method, fusion, discard, target) in self._cache

    def prefix_share(self) -> torch.Tensor:
        return ro.prefix_share(self.rows, self.layout)

    def map(
        self,
        method: str = "head",
        layer: int = -1,
        head: int = 0,
        fusion: ro.Fusion = "mean",
        discard: float = 0.0,
        target: int | None = None,
    ) -> np.ndarray:
        """The ``[gh, gw]`` float32 map (sums to 1 over patches) of one method and selection.

        ``layer`` indexes blocks (negative from the end); ``head`` is used by the per-head
        methods; ``target`` (default top-1) by the class-specific ones, whose gradients
        :meth:`ensure_gradients` must have computed.
        """
        layer = layer % self.num_layers
        if method == "head":
            return self.head_maps()[layer, head].numpy()
        if method == "head-rollout":
            return self.head_rollout_maps(fusion, discard)[layer, head].numpy()
        if method == "rollout":
            return self.rollout_maps(fusion, discard)[layer].numpy()
        if method in ("grad-rollout", "relevance"):
            target = self.top_k(1)[0][0] if target is None else target
            if target not in self._grads:
                raise KeyError(f"no gradients for class {target}; call ensure_gradients first")
            weighted, cams = self._grads[target]
            key = self._key(method, fusion, discard, target)
            if key not in self._cache:
                if method == "grad-rollout":
                    m = ro.grad_rollout_map(weighted, self.layout, discard)
                else:
                    m = ro.relevance_map(cams, self.layout)
                self._cache[key] = m.numpy()
            return self._cache[key]
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")

    def colour_range(
        self,
        scope: str = "map",
        method: str = "head",
        layer: int = -1,
        head: int = 0,
        fusion: ro.Fusion = "mean",
        discard: float = 0.0,
        target: int | None = None,
        scaling: Scaling = "minmax",
        percentile: float = 99.0,
        fixed: tuple[float, float] | None = None,
    ) -> tuple[float, float]:
        """The values at the two ends of the colour scale of one map, so that the window
        and its exported figures colour a map alike: the map's own ``scaling`` range
        (``scope="map"``), one range over the stacked maps of the layer's heads
        (``"layer"``) or of every layer and head (``"model"``), or ``fixed``.
        Shared ranges are cached (computing one reads every map of the scope)."""
        if scope == "fixed":
            if fixed is None:
                raise ValueError("a fixed colour scale needs its range")
            return float(fixed[0]), float(fixed[1])
        if scope == "map":
            return display_range(self.map(method, layer, head, fusion, discard, target),
                                 scaling, percentile)
        if scope not in ("layer", "model"):
            raise ValueError(f"unknown colour scale {scope!r}; choose map, layer, model or "
                             "fixed")
        layers = [layer % self.num_layers] if scope == "layer" else range(self.num_layers)
        heads = range(self.num_heads) if method in PER_HEAD_METHODS else [head]
        key = ("range", scope, self._key(method, fusion, discard, target), scaling,
               percentile, tuple(layers), tuple(heads))
        if key not in self._cache:
            stack = np.stack([self.map(method, li, h, fusion, discard, target)
                              for li in layers for h in heads])
            self._cache[key] = display_range(stack, scaling, percentile)
        return self._cache[key]

    def _model(self) -> LoadedModel:
        if self.loaded is None:
            raise ValueError("this analysis does not know its model; make it with analyze()")
        return self.loaded

    def full_resolution(self, long_side: int | None = None) -> Analysis:
        """This analysis on the original pixels, or on ``long_side`` of them on the long side
        when that is fewer (a figure shows no more pixels than it has), for exports. The
        display copy serves when it is large enough; else the photo is decoded again from
        ``source``, only as large as needed (JPEG draft), or reduced from :attr:`photo`
        (an analysis of an array). The maps and model outputs are shared, not recomputed."""
        if self.original is None:
            return self
        size = self.original.image_size
        dims = display_size(size, long_side)
        if max(dims) <= max(self.image.shape[:2]):
            return self
        if self.photo is not None:
            image = display_copy(Decoded.full(self.photo), dims)
        else:
            image, found = decode_display(self.source, max(dims))
            if found != size:
                raise ValueError(f"'{self.source}' changed since it was analysed")
        full = dims == size
        kept = {k: v for k, v in self._cache.items() if k[0] not in ("mask", "table", "mask-free")}
        return replace(self, image=image,
                       geometry=self.original if full else self.original.resized(dims),
                       original=None if full else self.original,
                       photo=None if full else self.photo, _cache=kept)

    def model_input(self) -> torch.Tensor:
        """``[1, 3, H, W]``: the image as the model saw it (same policy), for the extra
        forwards of gradients and ablation; from the kept model view when there is one
        (``image`` may be a display-size copy, not the pixels the input was made from)."""
        loaded = self._model()
        if self.model_view is not None:
            return torch.from_numpy(normalise_input(self.model_view, loaded.data_config))[None]
        pre = preprocess(self.image, loaded.data_config, self.policy, loaded.patch_size)
        return torch.from_numpy(pre.pixels)[None]

    def has_gradients(self, target: int | None = None) -> bool:
        """Whether class ``target``'s (default top-1) gradient maps are ready (no backward)."""
        return (self.top_k(1)[0][0] if target is None else target) in self._grads

    def ensure_gradients(self, target: int | None = None, should_stop: StopCheck = None
                         ) -> int:
        """One forward + backward for class ``target`` (default top-1) unless already done;
        returns the class. The class-specific methods of :meth:`map` read the result."""
        target = self.top_k(1)[0][0] if target is None else target
        if target not in self._grads:
            weighted, cams = class_products(self._model().model, self.model_input(), [target],
                                            should_stop)
            self._grads[target] = (weighted[0], cams[0])
        return target

    @property
    def patch_size(self) -> tuple[int, int]:
        (ih, iw), (gh, gw) = self.geometry.input_size, self.layout.grid
        return ih // gh, iw // gw

    def valid_tokens(self) -> np.ndarray:
        """bool ``[gh, gw]``: tokens at least half on image pixels (not letterbox padding)."""
        ones = np.ones(self.geometry.image_size, np.float32)
        return grid_coverage(ones, self.geometry) >= 0.5

    def foreground(self, mode: str = "centre", mask: np.ndarray | None = None,
                   box: tuple[int, int, int, int] | None = None,
                   mask_name: str | None = None) -> masks.Foreground:
        """The foreground on the original image and what made it (:mod:`~.core.masks`):
        the given ``mask`` (a file: named ``mask_name``), else GrabCut in ``box`` (pixels of
        the photo, :attr:`photo_size`, as the user gives it:
        :func:`~.core.masks.drawn_foreground`), else by ``mode``: ``centre`` (model-free:
        GrabCut in the centre box), ``rollout`` / ``grabcut`` (from the model's own
        rollout). A failed or empty GrabCut falls back to its box (or the rollout region)
        with a warning."""
        if mask is not None:
            return masks.Foreground(mask, "file", mask_name or "given mask")
        key = ("mask", mode if box is None else "box", tuple(box) if box is not None else None)
        if key in self._cache:
            return self._cache[key]
        if box is not None:  # in the photo's pixels, and named so
            fg = masks.drawn_foreground(self.image, self.photo_size, box)
        else:
            warning = None
            if mode in ("box", "centre"):
                found, warning = masks.shared_box_grabcut(
                    self.image, masks.centre_box(self.image.shape[:2]))
            elif mode == "grabcut":
                found, warning = masks.grabcut_mask(self.image, self.map("rollout"),
                                                    self.geometry)
            elif mode == "rollout":
                found = masks.rollout_mask(self.map("rollout"), self.geometry)
            else:
                raise ValueError(f"unknown mask mode {mode!r}: use centre, rollout, grabcut, "
                                 "a box or a mask file")
            fg = masks.Foreground(found, mode, masks.MASK_NAMES[mode], warning)
        self._cache[key] = fg
        return fg

    def foreground_mask(self, mode: str = "centre", mask: np.ndarray | None = None
                        ) -> np.ndarray:
        """bool ``[H, W]`` foreground on the original image (:meth:`foreground`)."""
        return self.foreground(mode, mask).mask

    def head_table(self, mode: str = "centre",
                   mask: np.ndarray | masks.Foreground | None = None,
                   mask_name: str | None = None,
                   box: tuple[int, int, int, int] | None = None) -> HeadTable:
        """Scores and labels of every head (:func:`vitexplorer.core.heads.score_heads`)
        against the foreground ``mask`` (bool ``[H, W]`` on the image, or a
        :class:`~.core.masks.Foreground` that names its own source: a mask drawn or edited
        by the user), or one made from ``box`` or by ``mode`` (:meth:`foreground`). ``meta``
        records the mask's name, its source and any warning (``mask``, ``mask_source``,
        ``mask_warning``).

        Cached per mask source: ``mode`` / ``box``, or ``mask_name`` for a given mask; a
        mask given without a name (a Foreground has none) is scored anew each time, and
        then only its foreground scores: the image's features and the mask-free scores
        (:func:`~vitexplorer.core.heads.mask_free_scores`) are kept from the first table.
        """
        if self.ranges is None:
            raise ValueError("this analysis was captured without the head statistics "
                             "(stream(..., ranges=False)); capture again to score heads")
        key = ("table", mask_name if mask is not None else (mode, box))
        if key in self._cache and (mask is None or mask_name is not None):
            return self._cache[key]
        fg = (mask if isinstance(mask, masks.Foreground)
              else self.foreground(mode, mask, box, mask_name))
        meta = {"source": self.source, "model": self.model_label, "mask": fg.name,
                "mask_source": fg.source, "layers": self.num_layers, "heads": self.num_heads,
                "input_size": list(self.geometry.input_size), "grid": list(self.layout.grid)}
        if fg.warning:
            meta["mask_warning"] = fg.warning
        feats, free = self._mask_free_scores()
        table = with_foreground(free, self.head_maps().numpy(),
                                grid_coverage(fg.mask, self.geometry), feats, meta)
        if mask is None or mask_name is not None:
            self._cache[key] = table
        return table

    def _mask_free_scores(self) -> tuple[PatchFeatures, HeadTable]:
        """The image's per-token features and the scores no foreground mask changes
        (cached: a mask drawn or edited is scored without measuring them again)."""
        key = ("mask-free",)
        if key not in self._cache:
            feats = patch_features(self.image, self.geometry, self.valid_tokens())
            self._cache[key] = feats, mask_free_scores(
                self.head_maps().numpy(), self.ranges, self.layout, feats, self.patch_size,
                self.prefix_share().numpy())
        return self._cache[key]

    def patch_query(self, layer: int, head: int | None, row: int, col: int,
                    compute: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
        """Where patch (row, col) attends (its attention row) and what attends to it (its
        column), each ``[gh, gw]`` over patches and sum-normalised; ``head=None`` averages
        the heads of the layer. Recomputes the layer unless it is kept; with
        ``compute=False`` answers None instead (the GUI thread then asks a worker)."""
        if compute:
            a = self.layer(layer)
        else:
            a = self._cache.get(("layer", layer % self.num_layers))
            if a is None:
                return None
        a = a.mean(0) if head is None else a[head]
        p = self.layout.num_prefix + row * self.layout.grid[1] + col
        return (ro.to_patch_map(a[p], self.layout).numpy(),
                ro.to_patch_map(a[:, p], self.layout).numpy())


#: the long side of a display copy, or how to choose it from the photo's (height, width)
DisplaySide = int | Callable[[tuple[int, int]], int] | None


def preprocess_image(
    loaded: LoadedModel, image: str | Path | np.ndarray, policy: ResizePolicy = "crop",
    display_side: DisplaySide = None, source: str = "image",
) -> Preprocessed:
    """Decode (when given a path) and preprocess an image for ``loaded``'s model (an array
    is held to the same size bounds as a file, named ``source`` in the error).

    ``display_side`` bounds the long side of the image the maps are placed on (or chooses
    it from the photo's size, as an export does from its figure's): a file is then decoded
    only as large as that and the model input need (JPEG draft), the geometry on the
    original pixels is kept in ``Preprocessed.original``."""
    def side(size: tuple[int, int]) -> int | None:
        return display_side(size) if callable(display_side) else display_side

    if not isinstance(image, str | Path):
        check_size(source, image.shape[1::-1])
        return preprocess(image, loaded.data_config, policy, loaded.patch_size,
                          display_side=side(image.shape[:2]))
    need = None
    if display_side is not None:
        def need(size: tuple[int, int]) -> tuple[int, int]:
            mh, mw = resize_target(size, loaded.data_config, policy, loaded.patch_size)
            dh, dw = display_size(size, side(size))
            return max(mh, dh), max(mw, dw)
    decoded = decode(image, need)
    return preprocess(decoded, loaded.data_config, policy, loaded.patch_size,
                      display_side=side(decoded.size))


def analyze(
    loaded: LoadedModel,
    image: str | Path | np.ndarray,
    policy: ResizePolicy = "crop",
    source: str | None = None,
    should_stop: StopCheck = None,
    display_side: DisplaySide = None,
) -> Analysis:
    """Decode, preprocess and capture one image: the single forward every view reads
    (``display_side``: see :func:`preprocess_image`)."""
    check_resize(policy, loaded)
    src = source or (str(image) if isinstance(image, str | Path) else "image")
    pre = preprocess_image(loaded, image, policy, display_side, src)
    s = stream(loaded.model, torch.from_numpy(pre.pixels)[None], should_stop)
    a = Analysis.from_stream(s, 0, loaded, pre, policy, src)
    if pre.original is not None and not isinstance(image, str | Path):
        a.photo = image  # a pasted image: exports take their pixels from it
    return a

