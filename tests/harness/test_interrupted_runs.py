"""A run stopped by Ctrl-C or SIGTERM is marked interrupted in its directory (interrupted.json),
and nothing later takes its short history for a whole run: `faultline check` says unknown
(exit 2) with the reason in one line, unless the part recorded holds a violation (invalid
stands); `faultline runs` and runs/index.html list it as interrupted."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import exits
from harness.rundirs import store

REPO = Path(__file__).resolve().parents[2]


def faultline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def _client_events(history: Path) -> int:
    try:
        lines = history.read_text().splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if '"process":"nemesis"' not in line.replace(" ", ""))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_is_marked_and_never_checks_valid(tmp_path, sig):
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--time-limit", "60",
                             "--runs-dir", str(runs), "--seed", "4"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = list(runs.glob("*/*/history.jsonl"))
            if found and _client_events(found[0]) >= 100:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run recorded no history")
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == exits.INTERRUPTED
    finally:
        proc.kill()
        proc.wait()
    (run_dir,) = (runs / "refnode-register").iterdir()
    assert not (run_dir / store.RESULTS_FILE).exists()
    marker = json.loads((run_dir / store.INTERRUPTED_FILE).read_text())
    assert marker["interrupted"] is True and marker["phase"] == "running"
    assert marker["events"] >= 100 and 0 < marker["history_seconds"] < 60

    # Listed as interrupted, on the command line and in the index the run rewrote.
    listed = json.loads(faultline("runs", str(runs), "--json").stdout)["runs"]
    assert [(r["verdict"], r["interrupted"]) for r in listed] == [("interrupted", True)]
    assert 'class="interrupted">interrupted' in (runs / "index.html").read_text()

    # Checked: unknown, with the reason in one line; results.json says so.
    check = faultline("check", str(run_dir))
    assert check.returncode == exits.UNKNOWN, check.stdout + check.stderr
    reasons = [line for line in check.stdout.splitlines() if line.startswith("interrupted:")]
    assert reasons == [f"interrupted: the history was cut short at "
                       f"{marker['history_seconds']:g} s, while running; the verdict is unknown"]
    results = json.loads((run_dir / store.RESULTS_FILE).read_text())
    assert results["valid"] == "unknown"
    assert results["interrupted"]["reason"] == reasons[0]
    assert results["interrupted"]["history_seconds"] == marker["history_seconds"]
    as_json = faultline("check", str(run_dir), "--json")
    assert as_json.returncode == exits.UNKNOWN
    assert json.loads(as_json.stdout)["valid"] == "unknown"
    assert as_json.stderr.strip() == reasons[0]

    # Checked, it is still listed interrupted, not valid.
    listed = json.loads(faultline("runs", str(runs), "--json").stdout)["runs"]
    assert [(r["verdict"], r["interrupted"]) for r in listed] == [("interrupted", True)]
    shown = faultline("runs", str(runs)).stdout
    assert " interrupted " in shown and " valid " not in shown


def _hand_made_run(runs: Path, history: Path) -> Path:
    """A run directory as an interrupted run leaves it, from a recorded history."""
    run_dir = runs / "stale" / "20240101T000000Z-s1"
    run_dir.mkdir(parents=True)
    store.write_json(run_dir / store.TEST_FILE, {"test": {"name": "stale", "seed": 1}})
    shutil.copy(history, run_dir / store.HISTORY_FILE)
    store.mark_interrupted(run_dir, "running", 0.5, 40)
    return run_dir


def test_a_violation_in_an_interrupted_history_stands(tmp_path):
    runs = tmp_path / "runs"
    run_dir = _hand_made_run(runs, REPO / "examples" / "stale-read-history.jsonl")
    check = faultline("check", str(run_dir))
    assert check.returncode == exits.INVALID, check.stdout + check.stderr
    assert ("interrupted: the history was cut short at 0.5 s, while running; the violation "
            "found in it stands") in check.stdout
    results = json.loads((run_dir / store.RESULTS_FILE).read_text())
    assert results["valid"] is False and "stands" in results["interrupted"]["reason"]
    (listed,) = json.loads(faultline("runs", str(runs), "--json").stdout)["runs"]
    assert (listed["verdict"], listed["interrupted"]) == ("INVALID", True)
    assert "INVALID (interrupted)" in faultline("runs", str(runs)).stdout


def test_the_same_history_without_the_marker_checks_as_before(tmp_path):
    run_dir = _hand_made_run(tmp_path / "runs", REPO / "examples" / "register-history.jsonl")
    assert faultline("check", str(run_dir)).returncode == exits.UNKNOWN
    (run_dir / store.INTERRUPTED_FILE).unlink()
    check = faultline("check", str(run_dir))
    assert check.returncode == exits.VALID, check.stdout + check.stderr
    assert "interrupted" not in json.loads((run_dir / store.RESULTS_FILE).read_text())


def test_an_unreadable_marker_still_marks_the_run_interrupted(tmp_path):
    run_dir = _hand_made_run(tmp_path / "runs", REPO / "examples" / "register-history.jsonl")
    (run_dir / store.INTERRUPTED_FILE).write_text("{")
    assert store.interruption(run_dir)["reason"].startswith(
        "interrupted: the history was cut short (interrupted.json unreadable")
    assert faultline("check", str(run_dir)).returncode == exits.UNKNOWN
