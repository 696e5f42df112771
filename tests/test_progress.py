"""The progress line: rewritten in place on a terminal, whole lines in a log."""

from __future__ import annotations

import time

from fpgaflow import progress


def test_into_a_log_progress_prints_whole_lines_not_carriage_returns(capsys, monkeypatch):
    """stderr here is no terminal (a CI job's output, a log file): each report was a
    carriage return and no newline, so a log kept every count on one long line."""
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)  # every update reports
    p = progress.Progress(3, "emulate", min_total=1, interval=0.0)
    for _ in range(3):
        p.update(1)
        time.sleep(0.001)
    err = capsys.readouterr().err
    assert "\r" not in err, repr(err)
    lines = err.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "emulate: 1/3 samples",
        "emulate: 2/3 samples",
        "emulate: 3/3 samples",
    ]
    assert err.endswith("\n")


def test_into_a_log_progress_reports_at_most_every_log_interval(capsys):
    p = progress.Progress(1000, "emulate", min_total=1, interval=0.0)
    for _ in range(1000):
        p.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("emulate: 1000/1000 samples"), lines  # only the last one
