"""Load timm Vision Transformers from a model spec: hub weights, local files or random init.

A spec is a timm name with an optional pretrained tag (``vit_small_patch16_224.dino``) or an
``hf-hub:org/name`` id. Weights are ``"pretrained"`` (timm / Hugging Face cache, downloaded
once), ``"random"`` (a demo, labelled as such) or a local file: ``.safetensors`` preferred;
``.pth/.pt/.bin`` only through ``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vitexplorer.core.constants import DEFAULT_MODEL
from vitexplorer.core.errors import (
    Cancelled,
    ModelError,
    OutputError,
    UnsupportedModelError,
    WeightsUnavailableError,
)
from vitexplorer.core.hub import OFFLINE_HELP, cached_models, hub_offline, hub_unreachable

#: timm modules whose models keep one global attention per block in ``blocks[i].attn``.
SUPPORTED_MODULES = ("vision_transformer", "deit", "eva", "beit")
_TORCH_EXTS = (".pth", ".pt", ".bin")
#: held while a model is built (random init, weights files, pretrained: timm initialises
#: every model before loading weights into it): timm's initialisers draw from torch's
#: global generator, so a seeded random init that ran beside another build (the GUI loads
#: slot B while A loads, or a job it gave up on ends) drew some of its numbers for the
#: other model and gave other weights
_BUILD_LOCK = threading.Lock()
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "model_ema")


@dataclass
class LoadedModel:
    """A model ready for capture, with what the views need to describe it."""

    model: nn.Module
    architecture: str
    spec: str
    weights: str  # "pretrained", "random" or the path of a local file
    data_config: dict
    device: torch.device
    class_names: list[str] | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, repr=False)

    def weights_sha256(self) -> str:
        """:func:`weights_hash` of the model, computed once (hashing ViT-L takes seconds)."""
        if self._sha256 is None:
            self._sha256 = weights_hash(self.model)
        return self._sha256

    @property
    def random_weights(self) -> bool:
        return self.weights == "random"

    @property
    def label(self) -> str:
        """Short name shown in captions; random weights are always marked."""
        if self.random_weights:
            return f"{self.architecture} (random weights)"
        if self.weights != "pretrained":
            return f"{self.architecture} ({Path(self.weights).name})"
        return self.spec

    @property
    def patch_size(self) -> tuple[int, int]:
        ps = self.model.patch_embed.patch_size
        return (ps, ps) if isinstance(ps, int) else tuple(ps)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) in pixels the model runs at: its own, or ``--input-size``."""
        return tuple(self.data_config["input_size"][1:])

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def weights_hash(model: nn.Module) -> str:
    """SHA-256 over the state dict (names, shapes, bytes): which weights produced a result."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def resolve_device(device: str | None = None) -> torch.device:
    """``cpu`` by default; ``cuda``/``mps`` when asked for and present, ``auto`` picks the best."""
    if device in (None, "", "cpu"):
        return torch.device("cpu")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"--device {device} was asked for, but no CUDA GPU is available")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("--device mps was asked for, but MPS is not available")
    return torch.device(device)


def architecture_of(spec: str) -> str:
    """The timm architecture name of a spec (the tag after the first dot is dropped)."""
    if spec.startswith("hf-hub:"):
        return spec
    return spec.split(".", 1)[0]


def load_model(
    spec: str = DEFAULT_MODEL,
    weights: str | Path = "pretrained",
    device: str | None = None,
    input_size: int | None = None,
    **model_kwargs,
) -> LoadedModel:
    """Build the model of ``spec`` in eval mode with the asked-for weights.

    ``input_size`` N builds the model for N x N inputs (timm's ``img_size``): the position
    embedding of pretrained or file weights is resampled at load (timm's
    ``resample_abs_pos_embed``, bicubic), and the token grid, so the maps, become
    ``N / patch`` per side (DINO's visualisations run ViT-S/8 at 480 px).

    Raises :class:`WeightsUnavailableError` (one message naming the three ways out) when
    pretrained weights are neither cached nor downloadable, and :class:`ModelError` for an
    unknown name or weights that do not fit the architecture.
    """
    import timm

    dev = resolve_device(device)
    arch = architecture_of(spec)
    if input_size is not None:
        if input_size < 1:
            raise ModelError(f"--input-size must be a positive number of pixels, not {input_size}")
        model_kwargs["img_size"] = input_size
    weights = str(weights)
    if not spec.startswith("hf-hub:") and arch not in timm.list_models():
        raise ModelError(f"Unknown model '{spec}': timm has no architecture named '{arch}'")
    if weights == "pretrained":
        model = _pretrained(spec, model_kwargs)
    elif weights == "random":
        # same demo weights on every run and in every thread (seed 0)
        with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = _build(arch, model_kwargs)
    else:
        path = Path(weights)
        state = read_state_dict(path)
        kwargs = dict(model_kwargs)
        head = state.get("head.weight")
        if head is not None and head.ndim == 2 and "num_classes" not in kwargs:
            kwargs["num_classes"] = head.shape[0]
        elif "head.weight" not in state and "num_classes" not in kwargs:
            kwargs["num_classes"] = 0
        with _BUILD_LOCK:
            model = _build(arch, kwargs)
        apply_state_dict(model, state, path)
    model.eval().to(dev)
    check_supported(model, arch)
    check_input_size(model, arch)
    config = model_data_config(model)
    return LoadedModel(model, arch if weights != "pretrained" else _arch_name(model, arch),
                       spec, weights, config, dev, class_names_for(model))


def check_input_size(model: nn.Module, name: str = "") -> None:
    """Raise :class:`ModelError` naming the model (``name``: a comparison builds two) unless
    the input size is a whole number of patches (the patch embedding would drop the
    remainder, and maps would be placed on pixels the model never saw) and at least two per
    side (one patch is a map of one value, whose entropy normalised by log(1) is 0/0)."""
    img_size = getattr(model.patch_embed, "img_size", None)
    ps = model.patch_embed.patch_size
    if img_size is None:
        return
    (h, w), (ph, pw) = (_pair(img_size), _pair(ps))
    of = f" of {name}" if name else ""
    if h % ph or w % pw:
        raise ModelError(f"input size {h}x{w} is not a whole number of the {ph}x{pw} patches"
                         f"{of}; use a multiple of {ph} (e.g. "
                         f"{max(2 * ph, round(h / ph) * ph)})")
    if h < 2 * ph or w < 2 * pw:
        raise ModelError(f"input size {h}x{w} holds one {ph}x{pw} patch{of} per side, a map of "
                         f"one value; use at least {2 * max(ph, pw)} (two patches per side)")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _build(arch: str, kwargs: dict) -> nn.Module:
    """A random-init model; an ``hf-hub:`` id needs its configuration from the hub (or the
    cache), asked for once with a short timeout."""
    import timm

    if arch.startswith("hf-hub:") and not is_cached(arch) and (why := hub_unreachable()):
        raise ModelError(f"The configuration of '{arch}' is not in the local cache and "
                         f"the hub cannot be reached ({why}); use a timm architecture "
                         "name (vitexplorer models --architectures) with --weights random")
    try:
        return timm.create_model(arch, pretrained=False, **kwargs)
    except Exception as exc:  # the hub's errors, or a keyword this family lacks
        if kwargs.get("dynamic_img_size") and "dynamic_img_size" in str(exc):
            raise ModelError(f"'{arch}' cannot follow the input's token grid "
                             "(dynamic_img_size), which --resize native needs; use crop, "
                             "stretch or letterbox") from exc
        if arch.startswith("hf-hub:") and _is_offline_error(exc):
            raise ModelError(f"The configuration of '{arch}' is not in the local cache and "
                             f"cannot be downloaded ({_short(exc)}); use a timm architecture "
                             "name with --weights random") from exc
        if "img_size" in kwargs and (isinstance(exc, MemoryError)
                                     or "can't allocate memory" in str(exc)):
            raise ModelError(f"Cannot build '{arch}' for {kwargs['img_size']} px inputs: not "
                             f"enough memory ({_short(exc)}); use a smaller input size "
                             "(--input-size)") from exc
        raise ModelError(f"Cannot build '{arch}': {_short(exc)}") from exc


def _pretrained(spec: str, kwargs: dict) -> nn.Module:
    """Pretrained weights: from the cache without touching the network when it holds them;
    else downloaded, after a probe that finds an unreachable hub within
    :data:`HUB_TIMEOUT` seconds (the hub client's own retries take a minute or more)."""
    import timm

    if is_cached(spec) and not hub_offline():
        try:
            with _offline(), _BUILD_LOCK:
                return timm.create_model(spec, pretrained=True, **kwargs)
        except Exception:  # a partial cache: go on as if nothing were cached
            pass
    if why := hub_unreachable():
        raise WeightsUnavailableError(OFFLINE_HELP.format(spec=spec, reason=why), spec, why)
    try:  # the lock is held during the download too: timm draws the init before it
        with _BUILD_LOCK:
            return timm.create_model(spec, pretrained=True, **kwargs)
    except Exception as exc:  # the hub raises many types; sort them into two messages
        if _is_offline_error(exc):
            raise WeightsUnavailableError(
                OFFLINE_HELP.format(spec=spec, reason=_short(exc)), spec, _short(exc)
            ) from exc
        raise ModelError(f"Cannot load pretrained '{spec}': {_short(exc)}") from exc


@contextmanager
def _offline() -> Iterator[None]:
    """The hub client in offline mode for one call (cache only, no request)."""
    try:
        from huggingface_hub import constants
    except Exception:
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def model_data_config(model: nn.Module) -> dict:
    """timm's eval preprocessing for ``model`` (size, mean, std, interpolation, crop), with the
    input size taken from the built model when it was created at another ``img_size``."""
    import timm

    config = dict(timm.data.resolve_model_data_config(model))
    img_size = getattr(model.patch_embed, "img_size", None)
    if img_size is not None:
        h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
        config["input_size"] = (3, int(h), int(w))
    return config


def _arch_name(model: nn.Module, fallback: str) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("architecture") or fallback


def _is_offline_error(exc: BaseException) -> bool:
    names = {t.__name__ for t in type(exc).__mro__}
    hub_names = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectionError",
                 "ConnectError", "ConnectTimeout", "Timeout", "HTTPError", "URLError",
                 "ReadTimeout", "gaierror"}
    if names & hub_names:
        return True
    text = str(exc).lower()
    offline = hub_offline()
    words = ("offline", "connection", "resolve", "network", "internet", "timed out",
             "cannot find the requested files", "name or service not known")
    return offline or any(w in text for w in words) or (
        exc.__cause__ is not None and _is_offline_error(exc.__cause__))


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read tensors from a weights file without ever unpickling Python objects.

    ``.safetensors`` is read directly; ``.pth/.pt/.bin`` go through
    ``torch.load(weights_only=True)``, which refuses any pickle that would run code.
    Common wrappers (``state_dict``/``model``/``module``/``model_ema`` keys, ``module.``
    prefixes from DataParallel) are unwrapped.
    """
    if path.is_dir():
        raise ModelError(f"Weights file '{path}' is a folder; name the weights file in it "
                         "(.safetensors, .pth, .pt or .bin)")
    if not path.exists():
        raise ModelError(f"Weights file '{path}' does not exist")
    if not path.is_file():
        raise ModelError(f"Weights file '{path}' is not a regular file")
    try:  # the file's own reason: safetensors reads a refused permission as "No such file"
        with open(path, "rb") as fh:
            empty = not fh.read(1)
    except OSError as exc:
        raise ModelError(f"Cannot read weights file '{path}': {exc.strerror or exc}") from exc
    if empty:
        raise ModelError(f"Cannot read weights file '{path}': the file is empty")
    suffix = path.suffix.lower()
    if suffix in _TORCH_EXTS and _is_safetensors(path):
        suffix = ".safetensors"  # by content: a renamed safetensors file (never unpickled)
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        elif suffix in _TORCH_EXTS:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise ModelError(
                f"Weights file '{path}' has an unknown type '{suffix}': use .safetensors, "
                ".pth, .pt or .bin"
            )
    except ModelError:
        raise
    except Exception as exc:
        if suffix in _TORCH_EXTS and "weights_only" in str(exc).lower():
            raise ModelError(
                f"Refused to load '{path}': it holds Python objects other than tensors, and "
                "unpickling them could run code. Convert it to .safetensors in a trusted "
                "environment."
            ) from exc
        if suffix in _TORCH_EXTS:  # torch says "KeyError: 101", "Invalid argument"...
            raise ModelError(f"Cannot read weights file '{path}': not a PyTorch weights file, "
                             f"or a truncated or corrupt one ({type(exc).__name__}: "
                             f"{_short(exc)})") from exc
        raise ModelError(f"Cannot read weights file '{path}': {_short(exc)}") from exc
    return _unwrap(state, path)


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header length (8 bytes, little endian) and a
    JSON object; torch's files are zip archives or raw pickles."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    n = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    return head[8:9] == b"{" and 0 < n < path.stat().st_size


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # checkpoint -> {"model": {...}} -> {"state_dict": {...}}
        if not isinstance(state, dict) or any(isinstance(v, torch.Tensor) for v in state.values()):
            break
        inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"Weights file '{path}' holds no tensors (not a state dict)")
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key.removeprefix("module.")] = value
    return out


def apply_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` strictly; on failure try the family's timm checkpoint filter (original
    DINO/CLIP/DeiT layouts), then raise a :class:`ModelError` naming the mismatched keys."""
    problems = _mismatches(model, state)
    if problems:
        module = sys.modules.get(type(model).__module__)
        filt = getattr(module, "checkpoint_filter_fn", None)
        if filt is not None:
            try:
                filtered = filt(dict(state), model)
            except Exception:
                filtered = None
            if filtered is not None and not _mismatches(model, filtered):
                state, problems = filtered, []
    if problems:
        raise ModelError(
            f"The weights in '{path.name}' do not fit the architecture "
            f"'{type(model).__name__}': " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)


def _mismatches(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    out = []
    for title, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                        ("shape mismatches", shapes)):
        if keys:
            more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
            out.append(f"{title}: {', '.join(keys[:5])}{more}")
    return out


def check_supported(model: nn.Module, name: str = "") -> None:
    """Raise :class:`UnsupportedModelError` unless every block holds a global ``attn``."""
    blocks = getattr(model, "blocks", None)
    name = name or type(model).__name__
    why = None
    if blocks is None or len(blocks) == 0:
        why = ("it has no transformer 'blocks' (convolutional or hierarchical models such as "
               "ConvNeXt or Swin stages have no single global attention per block)")
    elif not all(hasattr(b, "attn") and hasattr(b.attn, "attn_drop") and
                 hasattr(b.attn, "fused_attn") for b in blocks):
        why = ("its blocks do not hold a global multi-head attention in 'blocks[i].attn' "
               "(windowed or pooled attention, as in Swin, cannot be shown as one map per head)")
    elif any(_differential(b.attn) for b in blocks):
        why = ("its blocks use differential attention (Ye et al. 2024): each head is the "
               "difference of two softmax maps, signed, not one distribution over tokens")
    if why:
        raise UnsupportedModelError(f"Model '{name}' is not supported, because {why}.")


def _differential(attn: nn.Module) -> bool:
    """timm's ``DiffAttention`` (by name: older timm versions lack the class)."""
    return any(c.__name__ == "DiffAttention" for c in type(attn).__mro__)


def class_names_for(model: nn.Module) -> list[str] | None:
    """ImageNet class descriptions when the model's head is an ImageNet head, else None."""
    n = getattr(model, "num_classes", 0)
    if not n:
        return None
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model)
        if subset is None and n == 1000:
            subset = "imagenet-1k"
        if subset is None:
            return None
        info = ImageNetInfo(subset)
        if info.num_classes() != n:
            return None
        return [info.index_to_description(i) for i in range(n)]
    except Exception:
        return None


#: name patterns excluded inside the supported timm modules, and why
EXCLUDED_PATTERNS = {
    "*resnet*": "a ResNet stem feeds its blocks (hybrid model)",
    "*hybrid*": "a convolutional stem feeds its blocks (hybrid model)",
    "*naflex*": "its NaFlex tokens vary in number and layout per image",
    "*xp_*": "its blocks use an experimental attention layout",
    "*relpos*": "its attention adds relative position biases outside attn's softmax input",
    "*_sw_*": "its blocks use windowed (local) attention",
    "vit_d[lpw]*": "differential attention: each head is the difference of two softmax maps",
}
#: why whole timm modules are not offered (the rest: "no global attention in its blocks")
EXCLUDED_MODULES = {
    "swin_transformer": "no global attention in its blocks (shifted windows)",
    "swin_transformer_v2": "no global attention in its blocks (shifted windows)",
    "swin_transformer_v2_cr": "no global attention in its blocks (shifted windows)",
    "maxxvit": "no global attention in its blocks (window and grid attention)",
    "vision_transformer_hybrid": "a convolutional stem feeds its blocks (hybrid model)",
    "resnet": "a convolutional network: no attention at all",
    "convnext": "a convolutional network: no attention at all",
    "efficientnet": "a convolutional network: no attention at all",
}


def supported_models(pretrained: bool = True) -> list[str]:
    """Names (with pretrained tags when ``pretrained``) of the timm models we can capture."""
    import timm

    names = timm.list_models(module=list(SUPPORTED_MODULES), pretrained=pretrained)
    return [n for n in names if excluded_pattern(n) is None]


def excluded_pattern(name: str) -> str | None:
    import fnmatch

    return next((p for p in EXCLUDED_PATTERNS if fnmatch.fnmatch(name, p)), None)


def why_not_supported(name: str) -> str | None:
    """Why a timm model is not offered (None when it is): "swin: no global attention..."."""
    import timm
    from timm.models import get_arch_name, model_entrypoint

    arch = get_arch_name(name)
    if not timm.is_model(arch):
        return None
    module = model_entrypoint(arch).__module__.rsplit(".", 1)[-1]
    if module not in SUPPORTED_MODULES:
        why = EXCLUDED_MODULES.get(module, "no global attention captured in its blocks")
        return f"{module}: {why}"
    pattern = excluded_pattern(name)
    return None if pattern is None else f"{module}: {EXCLUDED_PATTERNS[pattern]}"


def unsupported_models(pretrained: bool = True) -> dict[str, str]:
    """Every other timm model and why it is not offered (a chooser's "why not listed")."""
    import timm

    supported = set(supported_models(pretrained))
    out = {}
    for name in timm.list_models(pretrained=pretrained):
        if name not in supported:
            out[name] = why_not_supported(name) or "not offered"
    return out


def model_catalog(names: list[str]) -> list[dict]:
    """A row per model for a chooser, read from timm's pretrained configs (no download):
    name, family (timm module), patch size, input size, pretrained tag and the config."""
    import re

    from timm.models import get_arch_name, get_pretrained_cfg, model_entrypoint

    rows = []
    for name in names:
        arch = get_arch_name(name)
        cfg = get_pretrained_cfg(name)
        config = cfg.to_dict() if cfg is not None else {}
        patch = re.search(r"patch(\d+)", arch)
        size = config.get("input_size", (3, 0, 0))
        rows.append({"name": name, "family": model_entrypoint(arch).__module__.rsplit(".", 1)[-1],
                     "patch": int(patch.group(1)) if patch else None,
                     "input": f"{size[1]}x{size[2]}" if size[1] else "",
                     "tag": name.split(".", 1)[1] if "." in name else "", "config": config})
    return rows


def count_parameters(spec: str) -> int:
    """Parameters of the architecture, built on the meta device (no memory, no weights).
    Weight initialisation is skipped where the model allows it (ViT, DeiT): on the meta
    device it is most of the cost (1.1 of 1.2 s for ViT-L/16)."""
    import timm
    import torch

    arch = architecture_of(spec)
    with torch.device("meta"):
        try:
            model = timm.create_model(arch, pretrained=False, weight_init="skip")
        except TypeError:  # EVA, BEiT: no weight_init argument
            model = timm.create_model(arch, pretrained=False)
    return sum(p.numel() for p in model.parameters())


def parameter_counts(
    names: Iterable[str],
    cache: Path | None = None,
    found: Callable[[str, int], None] | None = None,
    priority: deque[str] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """The parameter count of every model in ``names`` (one count per architecture), each
    handed to ``found(name, count)`` as soon as it is known. ``cache``: a JSON file of
    earlier counts (kept per timm version, written atomically as counting goes on), so a
    model chooser counts each architecture once per machine. ``priority``: names another
    thread wants first (a selected row), taken before the next in order. Stops with
    :class:`Cancelled` when ``should_stop()`` (what was counted is kept in the cache)."""
    import json

    import timm

    from vitexplorer.core.files import write_atomic

    known: dict[str, int] = {}
    if cache is not None and cache.is_file():
        try:
            data = json.loads(cache.read_text(encoding="utf-8"))
            if data.get("timm") == timm.__version__:
                known = {str(k): int(v) for k, v in data["counts"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            known = {}  # unreadable: counted again and rewritten
    todo = deque(names)
    out: dict[str, int] = {}
    added = 0

    def save() -> None:
        # a read-only cache folder costs a recount next time, nothing else
        if cache is not None and added:
            with suppress(OutputError):
                write_atomic(cache, json.dumps({"timm": timm.__version__, "counts": known}))

    try:
        while todo or priority:
            if should_stop is not None and should_stop():
                raise Cancelled("parameter counting cancelled")
            name = priority.popleft() if priority else todo.popleft()
            if name in out:
                continue
            arch = architecture_of(name)
            if arch not in known:
                known[arch] = count_parameters(arch)
                added += 1
                if added % 20 == 0:
                    save()
            out[name] = known[arch]
            if found is not None:
                found(name, known[arch])
    finally:
        save()
    return out


def is_cached(name: str, cached: set[str] | None = None) -> bool:
    """Whether the pretrained weights of ``name`` lie in the local Hugging Face cache."""
    import timm

    cached = cached_models() if cached is None else cached
    if name.startswith("hf-hub:"):
        return name.removeprefix("hf-hub:").split("@")[0] in cached
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:
        return False
    hub = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    return bool(hub) and hub.split("@")[0] in cached
