"""Guards against a Qt binding that corrupts reference counts (PySide6 6.12.0 did)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    flag = Signal(bool, str)


def test_bool_signals_keep_reference_counts(qapp):
    e = _Emitter()
    got = []
    e.flag.connect(lambda b, _t: got.append(b))
    before = sys.getrefcount(True) - len(got)
    for _ in range(50):
        e.flag.emit(True, "x")
    assert len(got) == 50
    assert sys.getrefcount(True) - len(got) >= before - 1, (
        "this PySide6 leaks references to True on Signal(bool): pin another version")
