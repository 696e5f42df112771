"""What every benchmark script shares: naming the machine and rewriting its own
``## `` section of ``docs/benchmarks.md`` (each script owns one section, run_all.py the
summary), so results always say where and when they were measured."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """CPU, core count, kernel and Python: the machine line of every section."""
    return f"{cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _section_pattern(title: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)


def read_section(title: str, path: Path = DOC) -> str | None:
    """The current text of a section (title line included), or None."""
    text = path.read_text() if path.exists() else ""
    m = _section_pattern(title).search(text)
    return m.group(0) if m else None


def replace_section(title: str, body: str, path: Path = DOC, first: bool = False) -> None:
    """Replace the section starting with ``title`` (``body`` includes that line), or add
    it: at the end, or above the other sections with ``first``."""
    section = body.rstrip("\n") + "\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = _section_pattern(title)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    elif first and (m := re.search(r"^## ", text, re.M)):
        text = text[: m.start()] + section + "\n" + text[m.start() :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
