"""Run core functions in worker threads (superqt ``create_worker``), one task per kind.

A new task of a kind supersedes the running one (its cancel flag is set and its result is
dropped), so results never land on the wrong image. Callbacks run on the GUI thread.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

from vitexplorer.core.errors import Cancelled


@dataclass
class _Task:
    token: int
    worker: Any
    cancel: threading.Event
    message: str


class TaskRunner(QObject):
    """Starts, supersedes and cancels background tasks; reports whether any is running."""

    #: (busy, message of the newest running task)
    busy_changed = Signal(bool, str)
    #: (kind, exception, formatted traceback) for failures that are not cancellations
    failed = Signal(str, object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._active: dict[str, _Task] = {}

    def run(
        self,
        kind: str,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], bool] | None = None,
        message: str = "Working...",
        **kwargs: Any,
    ) -> int:
        """Start ``fn(*args, should_stop=..., **kwargs)`` in a worker thread.

        ``on_done(result)`` runs on the GUI thread unless the task was superseded or
        cancelled. ``on_error`` may handle an expected error and return True; anything else
        is reported through :attr:`failed`.
        """
        self.cancel(kind)
        token = next(self._ids)
        cancel = threading.Event()
        worker = create_worker(fn, *args, should_stop=cancel.is_set, _start_thread=False,
                               **kwargs)
        worker.returned.connect(lambda result: self._finished(kind, token, result, on_done))
        worker.errored.connect(lambda exc: self._errored(kind, token, exc, on_error))
        self._active[kind] = _Task(token, worker, cancel, message)
        self._emit()
        worker.start()
        return token

    def is_running(self, kind: str | None = None) -> bool:
        return bool(self._active) if kind is None else kind in self._active

    def cancel(self, kind: str | None = None) -> None:
        """Cancel one kind of task, or all; their results will be dropped."""
        kinds = list(self._active) if kind is None else [kind]
        changed = False
        for k in kinds:
            task = self._active.pop(k, None)
            if task is not None:
                task.cancel.set()
                changed = True
        if changed:
            self._emit()

    def _current(self, kind: str, token: int) -> bool:
        task = self._active.get(kind)
        if task is None or task.token != token:
            return False
        del self._active[kind]
        self._emit()
        return True

    def _finished(self, kind: str, token: int, result: Any, on_done: Callable) -> None:
        if self._current(kind, token):
            on_done(result)

    def _errored(self, kind: str, token: int, exc: BaseException,
                 on_error: Callable[[BaseException], bool] | None) -> None:
        if not self._current(kind, token) or isinstance(exc, Cancelled):
            return
        if on_error is not None and on_error(exc):
            return
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.failed.emit(kind, exc, tb)

    def _emit(self) -> None:
        newest = max(self._active.values(), key=lambda t: t.token, default=None)
        self.busy_changed.emit(bool(self._active), newest.message if newest else "")
