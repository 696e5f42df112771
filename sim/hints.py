"""The "did you mean" of messages refusing a mistyped name: one rule for the project
file (``fpgaflow.project``), the ``Training:``/``Data:`` blocks and ``node.toml``
(here, the lowest layer, so that the node, which never imports the front end, says
the same)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(text: str, known: Iterable[object]) -> str:
    """`` (did you mean NAME?)`` naming the known name closest to ``text`` (the same but
    for case first, then difflib's closest at 0.6), or "" where none is close."""
    names = [str(k) for k in known]
    lowered = {name.lower(): name for name in names}
    close = [lowered[text.lower()]] if text.lower() in lowered else difflib.get_close_matches(text, names, 1, 0.6)
    return f" (did you mean {close[0]}?)" if close else ""
