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



def test_long_values_are_shortened_to_their_start_and_their_exact_length():
    value = "v" * 5000
    text = f"process 2 read k -> '{value}' (ok) and {value} unquoted"
    assert report.shorten(text) == ("process 2 read k -> 'vvvvvvvvvvvvvvvvvvvvvvvv...' (5,000 "
                                    "chars) (ok) and vvvvvvvvvvvvvvvvvvvvvvvv... (5,000 chars) "
                                    "unquoted")
    # Words and short values stay as they are.
    words = "value 'y' must take effect between 0.1 s and 0.2 s"
    assert report.shorten(words) == words
    assert report.shorten("x" * report.LONG_RUN) == "x" * report.LONG_RUN
    # A long text of short words is cut after a screenful, saying how much more there is.
    many = "ab " * 1000
    assert report.shorten(many) == many[:report.LONG_TEXT] + \
        f"... ({len(many) - report.LONG_TEXT:,} more chars in results.json)"


def test_a_check_of_a_history_with_a_30_mb_value_prints_a_screenful(tmp_path):
    """The terminal shortens the value (results.json and --json keep it whole: the checkers'
    results are not touched)."""
    import json
    import subprocess
    import sys

    big = "x" * (30 * 1024 * 1024)
    events = [("write", 0, big), ("write", 1, "y"), ("read", 2, big)]
    lines, index = [], 0
    for f, process, value in events:
        for kind in ("invoke", "ok"):
            given = None if f == "read" and kind == "invoke" else value
            lines.append(json.dumps({"index": index, "time": 10 * (index + 1), "process": process,
                                     "type": kind, "f": f, "key": "k", "value": given}))
            index += 1
    history = tmp_path / "history.jsonl"
    history.write_text("\n".join(lines) + "\n")
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(history)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert len(done.stdout) < 10_000, len(done.stdout)
    assert f"'{'x' * 24}...' ({len(big):,} chars)" in done.stdout
