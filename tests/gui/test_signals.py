"""Ctrl+C and SIGTERM close the desktop application as its close button does, and a
platform plugin that cannot load prints the way out (issue 14). Run as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE


def _has_mapped(pid: int, name: str) -> bool:
    try:
        return name in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_closes_the_window_and_saves_settings(tmp_path, sig):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path),
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vitexplorer", "gui", str(SAMPLE), "--model",
         "vit_tiny_patch16_224", "--weights", "random"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # torch is imported by the model-loading worker, which starts after the window
        # (and its signal handlers) are up
        while not _has_mapped(proc.pid, "libtorch") and proc.poll() is None:
            assert time.monotonic() < deadline, "the window did not start"
            time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{signal.Signals(sig).name} did not close the application")
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    conf = tmp_path / "vitexplorer" / "vitexplorer.conf"
    assert conf.exists() and "geometry" in conf.read_text(), "settings were not saved"


def test_platform_plugin_failure_prints_the_packages(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="xcb", XDG_CONFIG_HOME=str(tmp_path))
    res = subprocess.run([sys.executable, "-c", "from vitexplorer.gui.app import run; run()"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    hint = [ln for ln in res.stderr.splitlines() if ln.startswith("vitexplorer: the window")]
    assert len(hint) == 1, res.stderr
    assert "libxcb-cursor0" in hint[0] and "xcb-util-cursor" in hint[0]
