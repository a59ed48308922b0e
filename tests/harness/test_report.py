"""What `faultline check` prints while it works and when it ends (harness.cli.terminal)."""

from __future__ import annotations

from harness.cli import terminal as report


def test_progress_in_a_log_is_a_line_every_ten_seconds_then_a_last_one(monkeypatch, capsys):
    clock = iter([100.0,          # started
                  101.0,          # before 2 s: nothing
                  103.0,          # a first line, with an estimate
                  105.0,          # within 10 s of the last line: nothing
                  114.0,          # a second line
                  115.0])         # finished: a last line
    monkeypatch.setattr(report.time, "monotonic", lambda: next(clock))
    with report.check_progress("checking") as update:
        update(10, 100, 1, 10)
        update(20, 100, 2, 10)
        update(30, 100, 3, 10)
        update(60, 100, 6, 10)
        update(100, 100, 10, 10)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["checking: 20 of 100 ops, 2 of 10 keys, 3 s, about 12 s left",
                     "checking: 60 of 100 ops, 6 of 10 keys, 14 s, about 9 s left",
                     "checking: 100 of 100 ops, 10 of 10 keys, 15 s"]


def test_readable_entries_show_operations_by_description_without_raw_fields():
    entry = {"process": 5, "key": "k2", "id": 858, "call": 15552946,
             "earlier": {"op": "process 5 write k2 416 (ok) [0.015121..0.015541 s]",
                         "version": 412, "call": 1},
             "none_here": None}
    assert report.readable(entry) == (
        "process: 5; key: k2; earlier: process 5 write k2 416 (ok) [0.015121..0.015541 s] "
        "(version 412)")

