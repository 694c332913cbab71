"""Every persisted preference in one place (QSettings), with its default and type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from vitexplorer.core.constants import DEFAULT_CMAP, DEFAULT_MODEL, DEFAULT_OPACITY

DEFAULTS: dict[str, Any] = {
    "model/spec": DEFAULT_MODEL,
    "model/weights": "pretrained",
    "view/method": "head",
    "view/fusion": "mean",
    "view/discard": 0.0,
    "view/cmap": DEFAULT_CMAP,
    "view/opacity": DEFAULT_OPACITY,
    "view/scaling": "minmax",
    "view/contour": True,
    "view/percentile": 99.0,
    "view/scale": "map",
    "view/upsample": "bilinear",
    "view/policy": "crop",
    "groups/sort_by_cluster": False,
    "draw/brush": 12,
    "draw/outline": True,
    "files/recent": [],
    "files/last_dir": str(Path.home()),
    "files/export_dir": "",
    "files/batch_output": "",
    "window/geometry": QByteArray(),
    "window/size": "",  # "WxH" of the saved geometry: does it fit the screen it opens on?
    "window/state": QByteArray(),
}
MAX_RECENT = 10


class Settings:
    """Typed access to QSettings; ``path`` gives an INI file (tests, portable installs)."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            self._qs = QSettings("vitexplorer", "vitexplorer")
            self.cache_dir = Path(QStandardPaths.writableLocation(
                QStandardPaths.StandardLocation.CacheLocation))
        else:
            self._qs = QSettings(str(path), QSettings.Format.IniFormat)
            self.cache_dir = Path(path).parent  # for what is worth keeping between runs

    def get(self, key: str) -> Any:
        default = DEFAULTS[key]
        value = self._qs.value(key, default)
        if isinstance(default, bool):
            return value in (True, "true", "True", "1", 1)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, int):  # an INI file gives text back
            try:
                return int(value)
            except (TypeError, ValueError):
                return default
        if isinstance(default, list):
            if value in (None, ""):
                return []
            return [value] if isinstance(value, str) else list(value)
        return value

    def set(self, key: str, value: Any) -> None:
        if key not in DEFAULTS:
            raise KeyError(key)
        self._qs.setValue(key, value)

    def add_recent(self, path: str) -> list[str]:
        recent = [p for p in self.get("files/recent") if p != path]
        recent.insert(0, path)
        recent = recent[:MAX_RECENT]
        self.set("files/recent", recent)
        return recent

    def sync(self) -> None:
        self._qs.sync()
