"""Swap an hls4ml attribute for the duration of a conversion, and always put it back.

hls4ml 1.3.0 has no hook for the places where fpgaflow must change what it builds (a
weight quantizer's type, the Keras reader's weight lookup, a layer's ``initialize``,
a precision-inference rule...), so the conversion replaces the class attribute or
function while hls4ml runs.  ``replaced`` is the one place that does it: it restores
exactly what the owner held before (a ``staticmethod`` or ``classmethod`` object as
itself, and an attribute the owner only inherited by deleting the copy, so that it
inherits again), also when the conversion raises, and it handles nesting: entering
with the replacement already in force (the same object) is re-entry, which changes
nothing and restores when the last one leaves, in whatever order they leave; another
replacement of the same attribute is in force inside and gives way to the one it
found when it leaves."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_INHERITED = object()  # the owner's own __dict__ had no such entry


@dataclass
class _InForce:
    """One replacement of ``owner.name`` and what to put back when it leaves."""

    replacement: Any
    found: Any  # the owner's own entry before it (or _INHERITED)
    entered: int = 1


_in_force: dict[tuple[Any, str], list[_InForce]] = {}  # innermost last
_lock = threading.Lock()


@contextmanager
def replaced(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """``owner.name`` is ``replacement`` inside the block.  ``owner`` must already have the
    attribute (its own or inherited): replacing one hls4ml does not have would change nothing
    it runs."""
    if not hasattr(owner, name):
        raise AttributeError(f"{owner!r} has no attribute {name!r} to replace")
    key = (owner, name)
    with _lock:
        stack = _in_force.setdefault(key, [])
        if stack and stack[-1].replacement is replacement and vars(owner).get(name) is replacement:
            frame = stack[-1]
            frame.entered += 1
        else:
            frame = _InForce(replacement, vars(owner).get(name, _INHERITED))
            setattr(owner, name, replacement)
            stack.append(frame)
    try:
        yield
    finally:
        with _lock:
            frame.entered -= 1
            if not frame.entered:
                _leave(owner, name, stack, frame)


def _leave(owner: Any, name: str, stack: list[_InForce], frame: _InForce) -> None:
    """Take ``frame`` off; the owner gets back what it found, unless a replacement entered
    after it is still in force, which will restore that instead."""
    i = stack.index(frame)
    if i + 1 < len(stack):
        stack[i + 1].found = frame.found
    elif frame.found is _INHERITED:
        delattr(owner, name)
    else:
        setattr(owner, name, frame.found)
    del stack[i]
    if not stack:
        del _in_force[(owner, name)]
