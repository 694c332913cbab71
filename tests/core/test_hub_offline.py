"""Without a network the hub is given up at once (issue 14: the hub client's retry ladder
took 53-93 s before the offline message): one short probe, the cache used when it holds
the weights, no request at all then."""

from __future__ import annotations

import shutil
import socket
import time

import pytest

from vitexplorer.core import hub, models
from vitexplorer.core.errors import WeightsUnavailableError

CACHED = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"


class Lookups(list):
    """The hosts looked up; ``hang`` makes each lookup block for 20 s first."""

    hang = False


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty hub cache, no proxy, no HF_HUB_OFFLINE, and name lookups that fail (or
    hang, with ``hang=True``); returns the list of looked-up hosts."""
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HUB_TIMEOUT", 0.5)
    calls = Lookups()

    def getaddrinfo(host, *args, **kwargs):
        calls.append(host)
        if calls.hang:
            time.sleep(20)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def test_unreachable_hub_gives_the_message_after_one_lookup(no_network):
    with pytest.raises(WeightsUnavailableError, match="--weights random"):
        models.load_model("vit_tiny_patch16_224.augreg_in21k_ft_in1k", "pretrained")
    assert len(no_network) == 1, f"a retry ladder: {len(no_network)} lookups"


def test_hanging_name_lookup_is_given_up_within_the_timeout(no_network):
    no_network.hang = True
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="did not answer"):
        models.load_model("vit_tiny_patch16_224.augreg_in21k_ft_in1k", "pretrained")
    assert time.perf_counter() - t0 < hub.HUB_TIMEOUT + 5.0  # the lookup hangs 20 s


def test_cached_weights_load_without_any_request(no_network, tmp_path):
    import timm
    from huggingface_hub import constants
    from safetensors.torch import save_file

    repo = (tmp_path / "hub" / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k")
    sha = "0123456789abcdef0123456789abcdef01234567"
    snap = repo / "snapshots" / sha
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    save_file(ref.state_dict(), str(snap / "model.safetensors"))
    loaded = models.load_model(CACHED, "pretrained")
    assert not no_network, f"looked up {no_network} although the cache holds the weights"
    assert models.weights_hash(loaded.model) == models.weights_hash(ref)
    assert constants.HF_HUB_OFFLINE is False, "offline mode leaked out of the load"


def test_weights_that_cannot_be_had_are_told_without_torch(no_network, tmp_path, monkeypatch):
    """check_weights_obtainable decides only when no cache could hold the weights: then one
    probe, the load_model message; any cached repository or torch checkpoint (timm may map
    a name to another repository or a URL) or an answering hub leaves it to load_model."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsUnavailableError, match="Name or service not known"):
        hub.check_weights_obtainable(CACHED)
    assert len(no_network) == 1
    other = tmp_path / "hub" / "models--someone--else" / "snapshots"
    other.mkdir(parents=True)
    hub.check_weights_obtainable(CACHED)  # another repository might be this name's
    with pytest.raises(WeightsUnavailableError):  # an hf-hub: id names its repository
        hub.check_weights_obtainable("hf-hub:timm/some_vit")
    (tmp_path / "hub" / "models--timm--some_vit" / "snapshots").mkdir(parents=True)
    hub.check_weights_obtainable("hf-hub:timm/some_vit")
    shutil.rmtree(tmp_path / "hub")
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "weights.pth").write_bytes(b"")
    hub.check_weights_obtainable(CACHED)
    (checkpoints / "weights.pth").unlink()
    monkeypatch.setattr(hub, "hub_reachable", lambda: (True, ""))
    hub.check_weights_obtainable(CACHED)  # the hub answers: load_model downloads
