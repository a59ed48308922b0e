"""report.html: built at the end of a run, by `faultline check` of a run and by `faultline
report`, from real runs and from run directories written by hand (a known violation, a run cut
short); checked for what a reader needs to find in it, and opened in a headless browser where
one is installed."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from harness.report.data import NotARunDirectory, find_violation, read_run
from harness.report.html import REPORT_FILE, build_quietly, write_report
from harness.run import runner
from harness.run.runner import run_test
from harness.run.spec import TestSpec

REPO = Path(__file__).resolve().parents[2]
S = 10 ** 9
MS = 10 ** 6
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser")
                 if shutil.which(name)), None)


def faultline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def section(page: str, anchor: str) -> str:
    """The text of `<section id=anchor>`, or "" when the page has none."""
    match = re.search(rf'<section id="{anchor}"[^>]*>(.*?)</section>', page, re.S)
    return match.group(1) if match else ""


def rows(page: str, cls: str) -> list[str]:
    return re.findall(rf'<tr class="{cls}">(.*?)</tr>', page, re.S)


# --- run directories written by hand ------------------------------------------------------

def write_events(path: Path, raw: list[tuple]) -> None:
    """(time ns, process, type, f, key, value, node) tuples as a history.jsonl."""
    lines = []
    for index, (t, process, kind, f, key, value, node) in enumerate(raw):
        event = {"index": index, "time": t, "process": process, "type": kind, "f": f,
                 "key": key, "value": value}
        if node is not None:
            event["node"] = node
        lines.append(orjson.dumps(event))
    path.write_bytes(b"\n".join(lines) + b"\n")


PARTITION = {"shape": "isolate-leader", "mode": "drop"}
APPLIED = dict(PARTITION, grudge={"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]},
               links=["n1->n2", "n2->n1", "n3->n1", "n1->n3"])
# A stale read: p2 reads 1 from the cut-off old leader after p1's write of 2 was acknowledged
# by the new one. Around them, unrelated ops of another key and a client that gave up.
STALE_READ = [
    (100 * MS, 0, "invoke", "write", "k", 1, None),
    (110 * MS, 0, "ok", "write", "k", 1, "n1"),
    (500 * MS, "nemesis", "invoke", "start-partition", None, PARTITION, None),
    (510 * MS, "nemesis", "info", "start-partition", None, APPLIED, None),
    (900 * MS, 3, "invoke", "write", "other", 7, None),
    (910 * MS, 3, "ok", "write", "other", 7, "n2"),
    (1200 * MS, 4, "invoke", "write", "k", 9, None),
    (1700 * MS, 4, "info", "write", "k", 9, "n1"),
    (2000 * MS, 1, "invoke", "write", "k", 2, None),
    (2050 * MS, 1, "ok", "write", "k", 2, "n2"),
    (2400 * MS, 2, "invoke", "read", "k", None, None),
    (2410 * MS, 2, "ok", "read", "k", 1, "n1"),
    (2600 * MS, 0, "invoke", "read", "k", None, None),
    (2610 * MS, 0, "fail", "read", "k", None, "n1"),
    (3000 * MS, "nemesis", "invoke", "stop-partition", None, {"of": "start-partition"}, None),
    (3010 * MS, "nemesis", "info", "stop-partition", None, {"of": "start-partition"}, None),
    (3500 * MS, 1, "invoke", "read", "k", None, None),
    (3510 * MS, 1, "ok", "read", "k", 2, "n2"),
]
STALE_READ_DESCRIPTION = "process 2 read k -&gt; 1 (ok) [2.400000..2.410000 s]"
OBSERVATIONS = [
    {"time": 50 * MS, "node": "n1", "role": "leader", "term": 1},
    {"time": 50 * MS, "node": "n2", "role": "follower", "term": 1},
    {"time": 50 * MS, "node": "n3", "role": "follower", "term": 1},
    {"time": 1300 * MS, "node": "n2", "role": "candidate", "term": 2},
    {"time": 1400 * MS, "node": "n2", "role": "leader", "term": 2},
    {"time": 3100 * MS, "node": "n1", "role": "follower", "term": 2},
]


def hand_written_run(run_dir: Path, raw: list[tuple], checkers: list[str],
                     observations: list[dict] | None = None) -> Path:
    """A run directory as a run leaves it before checking: test.json (with the schedule that
    the history carries out), history.jsonl, observations.jsonl."""
    run_dir.mkdir(parents=True)
    schedule = [{"at": 0.4, "fault": "partition", "f": "start-partition", "value": PARTITION},
                {"at": 2.9, "fault": "partition", "f": "stop-partition",
                 "value": {"of": "start-partition"}},
                {"at": 5.0, "fault": "partition", "f": "start-partition", "value": PARTITION}]
    (run_dir / "test.json").write_text(json.dumps({
        "test": {"name": "hand-written", "system": "refnode", "nodes": 3, "seed": 7,
                 "workload": "register", "nemesis": ["partition"], "schedule": schedule},
        "command": ["faultline", "run", "--seed", "7"],
        "check": {"checkers": checkers, "model": {"name": "kv"}}}))
    write_events(run_dir / "history.jsonl", raw)
    if observations is not None:
        (run_dir / "observations.jsonl").write_bytes(
            b"".join(orjson.dumps(o) + b"\n" for o in observations))
    return run_dir


@pytest.fixture(scope="module")
def stale_read_report(tmp_path_factory) -> tuple[Path, str]:
    """A run with a known stale read, checked by `faultline check` (which writes results.json
    and builds the report), and the report's text."""
    run_dir = hand_written_run(tmp_path_factory.mktemp("stale") / "run", STALE_READ,
                               ["linearizable", "stats"], OBSERVATIONS)
    proc = faultline("check", str(run_dir))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"report written to {run_dir / REPORT_FILE}" in proc.stdout
    return run_dir, (run_dir / REPORT_FILE).read_text()


def test_check_of_a_run_builds_a_report_that_highlights_the_violating_operation(
        stale_read_report):
    run_dir, page = stale_read_report
    assert '<span class="badge invalid">INVALID</span>' in page
    violation = section(page, "violation")
    assert violation, "no violation section"
    violating = rows(violation, "violating")
    assert len(violating) == 1 and STALE_READ_DESCRIPTION in violating[0]
    # The write it contradicts is named with it; the unrelated key's write is not.
    related = " ".join(rows(violation, "related"))
    assert "process 1 write k 2 (ok) [2.000000..2.050000 s]" in related
    assert "write other 7" not in related
    # The model's state before the violating read, as the checker gives it.
    results = json.loads((run_dir / "results.json").read_text())
    state = results["checkers"]["linearizable"]["counterexample"]["state_before"]
    assert f"<code>{state}</code>" in violation and "model state before" in violation
    # The first violation's faults in force, as results.json says them.
    assert "start-partition shape=isolate-leader" in violation


def test_the_timeline_around_the_violation_shows_its_operations_and_the_fault(
        stale_read_report):
    _, page = stale_read_report
    timeline = re.search(r'<div class="plot" id="timeline">(<svg.*?</svg>)', page, re.S)
    assert timeline, "no timeline plot"
    svg = timeline.group(1)
    # Text stays text in the SVGs: the violating read's label, its state, the legend.
    assert ">r 1<" in svg and "violating" in svg and "model state before it" in svg
    assert ">w 2<" in svg                       # the contradicted write, labelled
    assert "fault: partition" in svg            # the partition in force, as a band
    assert "other" not in svg                   # only the violation's key
    # The client that gave up (info) is drawn too.
    assert ">w 9<" in svg


def test_the_report_has_its_plots_fault_schedule_and_roles(stale_read_report):
    _, page = stale_read_report
    for anchor in ("latency", "throughput", "roles"):
        assert "<svg" in section(page, anchor), anchor
    assert "fault: partition" in section(page, "latency")
    roles = section(page, "roles")
    assert all(f">{node}<" in roles for node in ("n1", "n2", "n3"))
    assert ">leader<" in roles and ">t2<" in roles          # n2 elected in term 2
    faults = section(page, "faults")
    # The schedule beside what became of it: two steps applied, one the run never reached.
    assert faults.count("<td>applied</td>") == 2 and "not reached" in faults
    assert "n1-&gt;n2" in faults                             # the links it cut
    # Plots inlined in one page never share an id.
    ids = Counter(re.findall(r' id="([^"]+)"', page))
    assert not [i for i, n in ids.items() if n > 1]
    # Nothing the page needs comes from elsewhere.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page


def test_lost_set_elements_are_highlighted(tmp_path):
    raw = [
        (100 * MS, 0, "invoke", "add", "s", 1, None),
        (110 * MS, 0, "ok", "add", "s", 1, "n1"),
        (200 * MS, 1, "invoke", "add", "s", 2, None),
        (210 * MS, 1, "ok", "add", "s", 2, "n1"),
        (300 * MS, 2, "invoke", "read", "s", None, None),
        (310 * MS, 2, "ok", "read", "s", [1, 2], "n1"),
        (900 * MS, 2, "invoke", "read", "s", None, None),
        (910 * MS, 2, "ok", "read", "s", [1], "n2"),
    ]
    run_dir = hand_written_run(tmp_path / "run", raw, ["set-full"])
    proc = faultline("check", str(run_dir))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    page = (run_dir / REPORT_FILE).read_text()
    violation = section(page, "violation")
    assert "process 1 add s 2 (ok) [0.200000..0.210000 s]" in " ".join(
        rows(violation, "violating"))
    # The read that still had it and the read that misses it are named with it.
    related = " ".join(rows(violation, "related"))
    assert "process 2 read s -&gt; [1] (ok)" in related
    assert "process 2 read s -&gt; [1, 2] (ok)" in related
    assert '<div class="plot" id="timeline"><svg' in page


def test_text_from_the_run_is_escaped(tmp_path):
    hostile = "<script>alert(1)</script>"
    raw = [(100 * MS, 0, "invoke", "write", hostile, "<b>", None),
           (110 * MS, 0, "ok", "write", hostile, "<b>", "n1")]
    run_dir = hand_written_run(tmp_path / "run", raw, ["stats"])
    (run_dir / "results.json").write_text(json.dumps({
        "valid": True, "checkers": {"stats": {"valid": True, "summary": hostile,
                                              "figures": {hostile: hostile}}}}))
    page = write_report(run_dir).read_text()
    assert "<script" not in page and "&lt;script&gt;" in page


# --- runs cut short -----------------------------------------------------------------------

def test_a_run_killed_before_any_operation_gets_a_report_saying_what_is_missing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "test.json").write_text(json.dumps({"test": {"name": "cut-short", "seed": 1}}))
    page = write_report(run_dir).read_text()
    missing = section(page, "missing")
    assert "no history.jsonl" in missing and "no results.json" in missing
    assert "not checked" in page and "faultline check" in section(page, "verdicts")
    assert 'id="violation"' not in page and "<svg" not in page


def test_a_history_cut_mid_line_without_results_is_drawn_as_far_as_it_goes(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    raw = []
    for i in range(200):
        raw += [(i * 10 * MS, i % 4, "invoke", "write", "k", i, None),
                (i * 10 * MS + 2 * MS, i % 4, "ok", "write", "k", i, "n1")]
    write_events(run_dir / "history.jsonl", raw)
    with open(run_dir / "history.jsonl", "ab") as history:
        history.write(b'{"index": 400, "time": 4000000000, "proc')      # the harness died
    page = write_report(run_dir).read_text()
    missing = section(page, "missing")
    assert "no results.json" in missing and "no test.json" in missing
    assert "1 line(s) are not history events" in missing
    assert "<svg" in section(page, "latency") and "<svg" in section(page, "throughput")
    assert "200 (200 ok, 0 fail, 0 info)" in page


def test_an_empty_history_says_there_is_nothing_to_plot(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "history.jsonl").write_text("")
    page = write_report(run_dir).read_text()
    assert "holds no client operations" in section(page, "missing")
    assert "no operation completed" in section(page, "latency")


def test_a_directory_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(NotARunDirectory):
        read_run(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    for target in (tmp_path, tmp_path / "notes.txt", tmp_path / "absent"):
        proc = faultline("report", str(target))
        assert proc.returncode == 3, proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("faultline: error: ")
    assert not (tmp_path / REPORT_FILE).exists()


def test_faultline_report_rebuilds_the_report_and_prints_its_path(stale_read_report):
    run_dir, _ = stale_read_report
    (run_dir / REPORT_FILE).unlink()
    proc = faultline("report", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run_dir / REPORT_FILE)
    assert STALE_READ_DESCRIPTION in (run_dir / REPORT_FILE).read_text()


def test_a_report_that_cannot_be_built_is_one_warning_never_an_exception(
        tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no plots today\nsecond line")
    monkeypatch.setattr("harness.report.plots.render", broken)
    run_dir = hand_written_run(tmp_path / "run", STALE_READ, ["stats"])
    with caplog.at_level(logging.WARNING, logger="faultline.report"):
        assert build_quietly(run_dir) is None
        runner._build_report(run_dir)          # what a run does once results.json is out
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert "RuntimeError: no plots today" in warnings[0]
    assert not (run_dir / REPORT_FILE).exists()


def test_a_large_history_builds_quickly_and_stays_small(tmp_path):
    # 50,000 events, as a 60 s run at 400 ops/s: every point drawn, as pixels in the SVG.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    raw = []
    for i in range(25_000):
        t = i * 2_400_000
        kind = ("ok", "ok", "ok", "fail", "info")[i % 5]
        raw += [(t, i % 10, "invoke", ("read", "write", "cas")[i % 3], f"k{i % 7}", None, None),
                (t + 1_000_000 + (i % 97) * 10_000, i % 10, kind,
                 ("read", "write", "cas")[i % 3], f"k{i % 7}", 1, "n1")]
    write_events(run_dir / "history.jsonl", raw)
    started = time.perf_counter()
    path = write_report(run_dir)
    assert time.perf_counter() - started < 15
    assert path.stat().st_size < 2_000_000


# --- a real run ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    spec = TestSpec(time_limit=6.0, nemesis=("partition", "kill"), nemesis_interval=2.0,
                    seed=3, runs_dir=str(tmp_path_factory.mktemp("runs")), rate=150.0)
    return run_test(spec)


def test_every_run_ends_with_its_report(real_run):
    assert real_run.valid is True, json.dumps(real_run.results)[:2000]
    page = (real_run.run_dir / REPORT_FILE).read_text()
    # A valid run says so and shows no violation.
    assert '<span class="badge valid">valid</span>' in page
    assert 'id="valid"' in page and 'id="violation"' not in page and 'id="timeline"' not in page
    # Its faults ran, and are bands in the plots and rows in the schedule.
    data = read_run(real_run.run_dir)
    assert data.bands and find_violation(data) is None
    kinds = {band.kind for band in data.bands}
    for anchor in ("latency", "throughput", "roles"):
        svg = section(page, anchor)
        assert "<svg" in svg, anchor
        assert all(f"fault: {kind}" in svg for kind in kinds), anchor
    assert section(page, "faults").count("<td>applied</td>") >= len(data.bands)
    # The observer's roles: every node has a lane, someone led.
    assert data.has_observations and ">leader<" in section(page, "roles")
    assert all(f">{node}<" in section(page, "roles") for node in ("n1", "n2", "n3"))
    assert "seed</th><td>3<" in page


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser on the PATH: "
                    "the report is not opened in a real browser here")
def test_the_report_opens_in_a_headless_browser(stale_read_report, tmp_path):
    from PIL import Image

    run_dir, _ = stale_read_report
    shot = tmp_path / "shot.png"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'profile'}",
                           "--window-size=1280,2400", f"--screenshot={shot}",
                           (run_dir / REPORT_FILE).as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    # A blank page is one colour; the report has text, badges, bands and points.
    assert len(colours) > 50
    # Somewhere the INVALID badge's red is drawn.
    assert any(r > 180 and g < 80 and b < 80 for _, (r, g, b) in colours)
