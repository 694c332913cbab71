"""Run core functions in worker threads (superqt ``create_worker``), one task per kind.

A new task of a kind supersedes the running one (its cancel flag is set and its result is
dropped), so results never land on the wrong image. Callbacks run on the GUI thread.

No Python object travels through a Qt signal: the worker stores its result in a plain
``_Outcome`` box and only the argument-free ``finished`` signal crosses threads, to a
``@Slot`` of a QObject on the GUI thread. Why: cross-thread conversion of Python objects
is where PySide6 has had reference-count bugs (PYSIDE-3124), and a box cannot be lost.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from superqt.utils import create_worker

from vitexplorer.core.errors import Cancelled


@dataclass
class _Outcome:
    result: Any = None
    error: BaseException | None = None
    details: str = ""


@dataclass
class _Task:
    token: int
    worker: Any
    cancel: threading.Event
    message: str
    receiver: QObject
    outcome: _Outcome = field(default_factory=_Outcome)
    progress: list | None = None  # [done, total], written by the worker, read by a timer
    on_progress: Callable[[int, int], None] | None = None


class _Receiver(QObject):
    """Lives on the GUI thread; its slot runs there when the worker has finished."""

    def __init__(self, callback: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self._callback = callback

    @Slot()
    def finished(self) -> None:
        self._callback()
        self.deleteLater()


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict, outcome: _Outcome) -> None:
    """Runs in the worker thread: every result and error goes into ``outcome``."""
    try:
        outcome.result = fn(*args, **kwargs)
    except BaseException as exc:  # reported on the GUI thread, never lost
        outcome.error = exc
        outcome.details = "".join(traceback.format_exception(type(exc), exc,
                                                             exc.__traceback__))


class TaskRunner(QObject):
    """Starts, supersedes and cancels background tasks; reports whether any is running."""

    #: (busy, message of the newest running task)
    busy_changed = Signal(bool, str)
    #: (kind, exception, formatted traceback) for failures that are not cancellations
    failed = Signal(str, object, str)
    #: (kind) after any worker has ended, superseded and cancelled ones included
    worker_finished = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._active: dict[str, _Task] = {}
        self._alive: dict = {}  # workers still running, cancelled ones included: message
        self._poll = QTimer(self)
        self._poll.setInterval(100)
        self._poll.timeout.connect(self._report_progress)

    def run(
        self,
        kind: str,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], bool] | None = None,
        message: str = "Working...",
        on_progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> int:
        """Start ``fn(*args, should_stop=..., **kwargs)`` in a worker thread.

        ``on_done(result)`` runs on the GUI thread unless the task was superseded or
        cancelled. ``on_error`` may handle an expected error and return True; anything else
        is reported through :attr:`failed`. With ``on_progress``, ``fn`` also gets
        ``progress(done, total)``; the latest values reach ``on_progress`` on the GUI thread
        every 100 ms (a plain list is written, nothing crosses threads through a signal).
        """
        self.cancel(kind)
        token = next(self._ids)
        cancel = threading.Event()
        outcome = _Outcome()
        kwargs["should_stop"] = cancel.is_set
        box = None
        if on_progress is not None:
            box = [0, 0]

            def progress(done: int, total: int) -> None:
                box[:] = [done, total]

            kwargs["progress"] = progress
        worker = create_worker(_call, fn, args, kwargs, outcome, _start_thread=False,
                               _ignore_errors=True)
        def done() -> None:
            self._alive.pop(worker, None)
            try:
                self._finished(kind, token, outcome, on_done, on_error)
            finally:
                self.worker_finished.emit(kind)

        receiver = _Receiver(done, self)
        worker.finished.connect(receiver.finished)
        self._alive[worker] = message
        self._active[kind] = _Task(token, worker, cancel, message, receiver, outcome, box,
                                   on_progress)
        if box is not None:
            self._poll.start()
        self._emit()
        worker.start()
        return token

    def _report_progress(self) -> None:
        reporting = [t for t in self._active.values() if t.progress is not None]
        if not reporting:
            self._poll.stop()
        for t in reporting:
            if t.progress[1]:
                t.on_progress(*t.progress)

    def is_running(self, kind: str | None = None) -> bool:
        return bool(self._active) if kind is None else kind in self._active

    def live_jobs(self) -> list[str]:
        """The messages of the workers still running, cancelled ones included (a forward
        or an import cannot be interrupted midway), oldest first."""
        return list(self._alive.values())

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

    def _finished(self, kind: str, token: int, outcome: _Outcome,
                  on_done: Callable[[Any], None],
                  on_error: Callable[[BaseException], bool] | None) -> None:
        task = self._active.get(kind)
        if task is None or task.token != token:
            return  # superseded or cancelled: drop the result
        del self._active[kind]
        if task.progress is not None and task.progress[1]:
            task.on_progress(*task.progress)  # the last count, however short the task
        self._emit()
        exc = outcome.error
        if exc is None:
            on_done(outcome.result)
        elif not isinstance(exc, Cancelled) and not (on_error is not None and on_error(exc)):
            self.failed.emit(kind, exc, outcome.details)

    def _emit(self) -> None:
        newest = max(self._active.values(), key=lambda t: t.token, default=None)
        self.busy_changed.emit(bool(self._active), newest.message if newest else "")
