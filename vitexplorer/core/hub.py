"""The Hugging Face hub as seen from this machine, without importing torch or timm: is it
switched off, can it be reached (one short probe), what does the local cache hold.

Kept apart from :mod:`vitexplorer.core.models` (which imports torch) so that a command can
say that pretrained weights cannot be had before spending seconds on imports:
:func:`check_weights_obtainable` decides it from the caches and the probe alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from vitexplorer.core.errors import WeightsUnavailableError

OFFLINE_HELP = (
    "The weights of '{spec}' are not in the local cache and cannot be downloaded ({reason}).\n"
    "Ways out:\n"
    "  1. connect to the internet once (the weights are cached for later offline use);\n"
    "  2. open a local weights file (.safetensors, or .pth/.pt/.bin) with --weights PATH;\n"
    "  3. use random weights for a demo with --weights random (maps are then meaningless)."
)


#: seconds to wait for the hub's host to answer before giving the offline message
HUB_TIMEOUT = 3.0


def hub_offline() -> bool:
    """Whether the user switched the hub off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float | None = None) -> tuple[bool, str]:
    """Whether a TCP connection to the hub's host opens within ``timeout`` seconds
    (default :data:`HUB_TIMEOUT`; the name lookup included, in a thread, since a lookup
    cannot be interrupted), and why not. With a proxy set, the hub client decides (True)."""
    import threading
    from urllib.parse import urlsplit

    timeout = HUB_TIMEOUT if timeout is None else timeout
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                       "all_proxy")):
        return True, ""
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except Exception:
        endpoint = "https://huggingface.co"
    url = urlsplit(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    outcome: list[str] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append("")
        except OSError as exc:
            outcome.append(exc.strerror or str(exc) or type(exc).__name__)

    t = threading.Thread(target=probe, name="vitexplorer-hub-probe", daemon=True)
    t.start()
    t.join(timeout)
    if not outcome:
        return False, f"{host} did not answer within {timeout:.0f} s"
    if outcome[0]:
        return False, f"{host}: {outcome[0]}"
    return True, ""


def hub_unreachable() -> str | None:
    """Why a request to the hub would fail now (the probe's reason, :func:`hub_reachable`),
    or None when it may succeed; also None when the hub is switched off (:func:`hub_offline`),
    since the hub client then answers from its cache alone and sends no request."""
    if hub_offline():
        return None
    reachable, why = hub_reachable()
    return None if reachable else why


def cached_models() -> set[str]:
    """Hugging Face repo ids present in the local hub cache (no network)."""
    try:
        from huggingface_hub import constants

        cache = Path(constants.HF_HUB_CACHE)
    except Exception:
        return set()
    if not cache.is_dir():
        return set()
    out = set()
    for d in cache.iterdir():
        if d.name.startswith("models--") and (d / "snapshots").is_dir():
            out.add(d.name.removeprefix("models--").replace("--", "/"))
    return out


def torch_checkpoints() -> Path:
    """torch.hub's checkpoint folder (where timm puts weights fetched by URL), found as
    ``torch.hub.get_dir()`` finds it: ``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else
    ``~/.cache/torch``; then ``hub/checkpoints``."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def check_weights_obtainable(spec: str) -> None:
    """Raise :class:`WeightsUnavailableError` (the message :func:`load_model` would give)
    when the pretrained weights of ``spec`` certainly can be neither read from a cache nor
    downloaded; return when they may be (:func:`load_model` then decides).

    Certain means: no cached repository could hold them (for ``hf-hub:org/name``, that
    repository; for a timm name, any model repository, since timm maps some names to other
    repositories, and no torch.hub checkpoint), and the hub is switched off or does not
    answer the probe. For a name timm does not know, the message is this one too, not the
    "unknown model" that ``--weights random`` would then give."""
    cached = cached_models()
    if spec.startswith("hf-hub:"):
        if spec.removeprefix("hf-hub:").split("@")[0] in cached:
            return
    else:
        checkpoints = torch_checkpoints()
        if cached or (checkpoints.is_dir() and any(checkpoints.iterdir())):
            return
    why = "HF_HUB_OFFLINE is set" if hub_offline() else hub_unreachable()
    if why is None:
        return
    raise WeightsUnavailableError(OFFLINE_HELP.format(spec=spec, reason=why), spec, why)
