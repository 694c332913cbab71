"""Guards against a Qt binding that corrupts reference counts (PySide6 6.12.0 did)."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    flag = Signal(bool, str)


# Since Python 3.12 True and False are immortal (PEP 683): their reference count is a
# constant, so a binding that drops references to them can neither be seen this way nor
# abort the interpreter ("bool_dealloc") there. The pin in pyproject.toml covers 3.11.
@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="True is immortal since Python 3.12 (PEP 683): the count is fixed")
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


def test_bool_signals_deliver_their_values(qapp):
    """On every Python: bool arguments arrive as the bools that were sent."""
    e = _Emitter()
    got = []
    e.flag.connect(lambda b, t: got.append((b, t)))
    for i in range(200):
        e.flag.emit(i % 2 == 0, str(i))
    assert got == [(i % 2 == 0, str(i)) for i in range(200)]
    assert all(type(b) is bool for b, _ in got)
