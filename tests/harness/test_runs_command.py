"""`faultline runs` and `faultline serve`: listing, pruning, comparing and indexing runs
directories, and serving one read-only.

Most runs here are synthetic, written in the shape the harness writes (test.json,
history.jsonl, results.json, nodes/); one small real run checks the listing against what the
harness really writes.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.cli import exits
from harness.cli import main as cli
from harness.cli import run as run_command
from harness.run.spec import TestSpec
from harness.rundirs import store
from harness.rundirs.catalog import list_runs, summarize
from harness.rundirs.index import write_index
from harness.rundirs.prune import PruneRefused, parse_duration, remove
from harness.rundirs.serve import make_server, resolve, server_url

REPO = Path(__file__).resolve().parents[2]
DAY = 86400.0


def make_run(root: Path, test: str, started: float, seed: int, valid=True, *,
             workload: str = "register", first_violation: float | None = None,
             age: float | None = None, rate: float = 200.0, history_seconds: float = 3.5,
             faults: dict | None = None) -> Path:
    """A run directory shaped as the harness writes one. `valid` None: no results.json
    (running, or cut short). Its files are dated `age` seconds back (default: its start)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    run = root / test / f"{stamp}-s{seed}"
    (run / "nodes").mkdir(parents=True)
    (run / "nodes" / "n1.log").write_text("started\n" * 50)
    store.write_json(run / store.TEST_FILE, {
        "test": {"name": test, "system": "refnode", "workload": workload, "seed": seed,
                 "rate": rate, "nemesis": ["partition"], "time_limit": 3.0,
                 "schedule": [{"at": 1.0, "fault": "partition", "f": "start-partition",
                               "value": {"shape": "halves"}}]},
        "command": ["faultline", "run"], "versions": {"faultline": "0.1.0"},
        "system": {"name": "refnode", "options": {"replication": "quorum"},
                   "network": "proxy"},
        "check": {"checkers": ["linearizable", "stats"], "model": {"name": "kv"}}})
    events = [{"index": 0, "time": 1_000_000, "process": 1, "type": "invoke", "f": "write",
               "key": "k0", "value": 1},
              {"index": 1, "time": int(history_seconds * 1e9), "process": 1, "type": "ok",
               "f": "write", "key": "k0", "value": 1, "node": "n1", "version": 1}]
    (run / store.HISTORY_FILE).write_text("".join(json.dumps(e) + "\n" for e in events))
    if valid is not None:
        store.write_json(run / store.RESULTS_FILE, {
            "valid": valid,
            "checkers": {
                "linearizable": {"checker": "linearizable", "valid": valid,
                                 "summary": "linearizable" if valid is True else "not"},
                "stats": {"checker": "stats", "valid": True, "summary": "1 ok",
                          "figures": {"count": 1, "by_type": {"ok": 1},
                                      "latency_ms": {"write": {"0.5": 1.5, "0.95": 2.0,
                                                               "0.99": 3.0, "max": 4.0}},
                                      "availability": {"overall": 1.0,
                                                       "by_f": {"write": 1.0}}}}},
            "liveness": {"recovered": True, "seconds": 0.01},
            "faults": faults if faults is not None else {
                "partition": {"planned": 1, "applied": 1, "skipped": 0, "skip_reasons": [],
                              "errors": [], "aims": {"halves": 1}}},
            "seed": seed, "first_violation_seconds": first_violation})
    when = time.time() - age if age is not None else started
    for path in [run, run / "nodes", *run.rglob("*")]:
        os.utime(path, (when, when))
    return run


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """Five runs of two tests, a day apart, newest last made: valid, INVALID, unknown,
    incomplete, and the newest linked from `latest`."""
    root = tmp_path / "runs"
    now = time.time()
    make_run(root, "refnode-register", now - 5 * DAY, 11, True)
    make_run(root, "refnode-register", now - 4 * DAY, 12, False, first_violation=5.89)
    make_run(root, "refnode-set", now - 3 * DAY, 13, "unknown", workload="set")
    make_run(root, "refnode-set", now - 2 * DAY, 14, None, workload="set")
    newest = make_run(root, "refnode-register", now - 1 * DAY, 15, True)
    store.update_latest(root, newest)
    return root


def faultline(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def listing(capsys, root: Path) -> list[dict]:
    code, out, _ = faultline(capsys, "runs", str(root), "--json")
    assert code == 0
    return json.loads(out)["runs"]


def disk_usage(path: Path) -> int:
    return sum(os.lstat(p).st_blocks * 512 for p in path.rglob("*"))


# Listing

def test_runs_are_listed_newest_first_with_their_verdicts(runs_dir, capsys):
    runs = listing(capsys, runs_dir)
    assert [r["seed"] for r in runs] == [15, 14, 13, 12, 11]   # latest is not listed twice
    assert [r["verdict"] for r in runs] == ["valid", "incomplete", "unknown", "INVALID",
                                            "valid"]
    assert runs[3]["first_violation_seconds"] == 5.89
    assert runs[0]["first_violation_seconds"] is None
    assert runs[0]["duration_seconds"] == 3.5
    assert runs[2]["workload"] == "set" and runs[2]["system"] == "refnode"
    assert all(r["size_bytes"] > 0 for r in runs)
    assert runs[0]["path"].startswith(str(runs_dir / "refnode-register"))

    code, out, _ = faultline(capsys, "runs", str(runs_dir))
    assert code == 0
    lines = [line for line in out.splitlines() if "refnode-" in line]
    assert len(lines) == 5                      # one row each, piped output not wrapped
    assert "running or incomplete" in lines[1]
    assert "INVALID" in lines[3] and "5.89 s" in lines[3]


def test_a_damaged_run_is_listed_as_damaged_and_a_run_being_written_as_incomplete(
        runs_dir, capsys):
    now = time.time()
    broken = make_run(runs_dir, "refnode-register", now - 0.5 * DAY, 16, True)
    (broken / store.TEST_FILE).write_text('{"test": {"name": ')        # cut short
    half = make_run(runs_dir, "refnode-register", now - 0.2 * DAY, 17, True)
    (half / store.RESULTS_FILE).write_text("[1, 2")
    # A campaign's run still writing its history: the last line half written.
    running = make_run(runs_dir, "refnode-register", now, 18, None, age=0)
    with open(running / store.HISTORY_FILE, "a") as f:
        f.write('{"index": 2, "time": 99')
    runs = listing(capsys, runs_dir)
    by_seed = {r["seed"]: r for r in runs}
    assert by_seed[18]["verdict"] == "incomplete"
    assert by_seed[18]["duration_seconds"] == 3.5              # the last complete event
    assert by_seed[17]["verdict"] == "damaged"
    assert "results.json" in by_seed[17]["problem"]
    broken_row = next(r for r in runs if r["path"] == str(broken))
    assert broken_row["verdict"] == "damaged" and "test.json" in broken_row["problem"]
    code, out, err = faultline(capsys, "runs", str(runs_dir))
    assert code == 0 and "Traceback" not in err
    assert "damaged" in out and "running or incomplete" in out


def test_a_link_out_of_the_runs_directory_is_not_followed(runs_dir, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    make_run(elsewhere, "other-test", time.time() - DAY, 99, True)
    (runs_dir / "other").symlink_to(elsewhere / "other-test", target_is_directory=True)
    assert 99 not in [r["seed"] for r in listing(capsys, runs_dir)]


def test_a_real_run_is_listed_as_the_harness_wrote_it(tmp_path, capsys):
    root = tmp_path / "runs"
    spec = TestSpec(time_limit=3.0, runs_dir=str(root), seed=7).validate()
    code = run_command.execute(spec, ["faultline", "run"])
    capsys.readouterr()
    run_dir = (root / store.LATEST).resolve()
    results = json.loads((run_dir / store.RESULTS_FILE).read_text())
    [row] = listing(capsys, root)
    assert Path(row["path"]).resolve() == run_dir
    assert row["verdict"] == {True: "valid", False: "INVALID"}.get(results["valid"],
                                                                   "unknown")
    if row["verdict"] == "valid":
        assert code == (exits.VALID if row["recovered"] else exits.LIVENESS)
    else:
        assert code in (exits.INVALID, exits.UNKNOWN)
    assert row["seed"] == 7 and row["test"] == spec.name
    assert (row["system"], row["workload"]) == ("refnode", spec.workload)
    assert row["recovered"] == results["liveness"]["recovered"]
    assert row["duration_seconds"] >= 3.0
    # `faultline run` refreshed the index, linking the run's directory (no report yet).
    index = (root / "index.html").read_text()
    rel = run_dir.relative_to(root.resolve()).as_posix()
    assert f'href="{rel}/"' in index or f'href="{rel}/report.html"' in index


# Pruning

def test_prune_keeps_exactly_the_newest_n_frees_their_space_and_mends_latest(runs_dir,
                                                                            capsys):
    oldest_three = [Path(r["path"]) for r in listing(capsys, runs_dir)[2:]]
    newest = Path(listing(capsys, runs_dir)[0]["path"])
    store.update_latest(runs_dir, oldest_three[0])           # latest on a run to be removed
    before = disk_usage(runs_dir)
    code, out, _ = faultline(capsys, "runs", str(runs_dir), "--prune", "--keep", "2",
                             "--json")
    assert code == 0
    done = json.loads(out)
    assert sorted(r["seed"] for r in done["removed"]) == [11, 12, 13]
    assert not any(p.exists() for p in oldest_three)
    assert [r["seed"] for r in listing(capsys, runs_dir)] == [15, 14]
    freed = before - disk_usage(runs_dir)
    assert done["freed_bytes"] > 0 and abs(done["freed_bytes"] - freed) <= 8192
    # latest pointed at a removed run: now at the newest left.
    assert (runs_dir / store.LATEST).resolve() == newest.resolve()


def test_prune_by_age_keeps_the_floor_and_a_dry_run_removes_nothing(runs_dir, capsys):
    code, out, _ = faultline(capsys, "runs", str(runs_dir), "--prune", "--older-than",
                             "60h", "--dry-run")
    assert code == 0
    assert "would remove" in out and "would free" in out
    assert len(listing(capsys, runs_dir)) == 5
    code, out, _ = faultline(capsys, "runs", str(runs_dir), "--prune", "--older-than", "36h",
                             "--keep", "4")
    assert code == 0
    assert "removed 1 run(s)" in out and "freed" in out
    assert [r["seed"] for r in listing(capsys, runs_dir)] == [15, 14, 13, 12]
    # Every run older than a day: all go, and so does latest.
    faultline(capsys, "runs", str(runs_dir), "--prune", "--older-than", "12h")
    assert not (runs_dir / store.LATEST).is_symlink()
    assert not any(runs_dir.rglob(store.TEST_FILE))


def test_prune_per_test_keeps_the_newest_of_each_test(runs_dir, capsys):
    faultline(capsys, "runs", str(runs_dir), "--prune", "--keep", "1", "--per-test")
    assert sorted(r["seed"] for r in listing(capsys, runs_dir)) == [14, 15]


def test_prune_leaves_a_run_still_being_written_unless_forced(runs_dir, capsys):
    make_run(runs_dir, "refnode-register", time.time() - 10 * DAY, 20, None, age=5)
    code, out, _ = faultline(capsys, "runs", str(runs_dir), "--prune", "--older-than", "9d")
    assert code == 0 and "skipped" in out and "--force" in out
    assert 20 in [r["seed"] for r in listing(capsys, runs_dir)]
    faultline(capsys, "runs", str(runs_dir), "--prune", "--older-than", "9d", "--force")
    assert 20 not in [r["seed"] for r in listing(capsys, runs_dir)]


def test_prune_never_removes_what_is_not_a_run_directory(runs_dir, tmp_path, capsys):
    old = time.time() - 30 * DAY
    # Looks like a run (a test.json), but has no history: not a run directory.
    stray = runs_dir / "notes" / "20200101T000000Z-s1"
    stray.mkdir(parents=True)
    (stray / store.TEST_FILE).write_text("{}")
    os.utime(stray / store.TEST_FILE, (old, old))
    # A real run outside, reached through a link inside.
    outside = make_run(tmp_path / "outside", "t", old, 5, True)
    (runs_dir / "linked").symlink_to(outside, target_is_directory=True)
    (runs_dir / "linked-test").symlink_to(outside.parent, target_is_directory=True)
    faultline(capsys, "runs", str(runs_dir), "--prune", "--older-than", "1m", "--force")
    assert stray.exists() and (outside / store.HISTORY_FILE).exists()
    assert (runs_dir / "linked").is_symlink()
    # And removal itself refuses, whatever it is asked.
    for path in (runs_dir / "linked", runs_dir / "linked-test" / outside.name, stray,
                 outside, runs_dir):
        with pytest.raises(PruneRefused):
            remove(runs_dir, path)
    assert (outside / store.TEST_FILE).exists()


# Comparing

def test_compare_sets_verdicts_figures_faults_and_settings_side_by_side(tmp_path, capsys):
    now = time.time()
    a = make_run(tmp_path / "runs", "t", now - 100, 1, True)
    b = make_run(tmp_path / "runs", "t", now - 50, 2, False, first_violation=4.2, rate=500.0,
                 faults={"partition": {"planned": 3, "applied": 2, "skipped": 1,
                                       "errors": [], "aims": {"isolate-leader": 2}}})
    code, out, _ = faultline(capsys, "runs", "--compare", str(a), str(b), "--json")
    assert code == 0
    rows = {(r["section"], r["item"]): r for r in json.loads(out)["rows"]}
    assert (rows[("run", "verdict")]["a"], rows[("run", "verdict")]["b"]) == ("valid",
                                                                              "INVALID")
    assert (rows[("run", "seed")]["a"], rows[("run", "seed")]["b"]) == ("1", "2")
    assert rows[("checkers", "linearizable")]["b"].startswith("INVALID")
    assert rows[("figures", "latency write (ms)")]["a"] == "p50 1.5 p95 2 p99 3 max 4"
    assert rows[("figures", "availability")]["a"] == "100.0%"
    assert rows[("faults", "partition")]["a"] == "1/1 applied (halves x1)"
    assert rows[("faults", "partition")]["b"] == "2/3 applied (isolate-leader x2), 1 skipped"
    assert rows[("configuration", "rate")]["differs"]
    assert ("configuration", "time_limit") not in rows               # alike: not shown
    code, out, _ = faultline(capsys, "runs", "--compare", str(a), str(b))
    assert code == 0 and "isolate-leader x2" in out and "INVALID" in out


def test_a_runs_directory_with_no_runs_yet_lists_none(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "README.md").write_text("runs go here")
    code, out, _ = faultline(capsys, "runs", str(tmp_path / "runs"))
    assert code == 0 and "no runs in" in out
    code, out, _ = faultline(capsys, "runs", str(tmp_path / "runs"), "--json")
    assert code == 0 and json.loads(out)["runs"] == []


# Bad input: one line, exit 3, no traceback

@pytest.mark.parametrize("args, fragment", [
    (["{missing}"], "no such directory"),
    (["{file}"], "not a directory"),
    (["{run}"], "a run directory, not a directory of runs"),
    (["{root}", "--prune", "--older-than", "7 days"], "not a duration"),
    (["{root}", "--prune", "--older-than", "0d"], "not a duration"),
    (["{root}", "--prune", "--keep", "0"], "--keep must be 1 or more"),
    (["{root}", "--prune", "--keep", "-3"], "--keep must be 1 or more"),
    (["{root}", "--prune", "--keep", "two"], "not a whole number"),
    (["{root}", "--prune"], "--prune needs"),
    (["{root}", "--keep", "2"], "only go with --prune"),
    (["--compare", "{run}", "{empty}"], "not a run directory"),
])
def test_bad_input_is_one_line_and_exit_3(runs_dir, tmp_path, capsys, args, fragment):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    names = {"missing": tmp_path / "missing", "file": tmp_path / "file",
             "empty": tmp_path / "empty", "root": runs_dir,
             "run": runs_dir / "refnode-set" / os.listdir(runs_dir / "refnode-set")[0]}
    code, _, err = faultline(capsys, "runs", *[a.format(**names) for a in args])
    assert code == exits.BAD_INPUT
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert "Traceback" not in err


def test_parse_duration():
    assert parse_duration("30m") == 1800 and parse_duration("7d") == 7 * DAY
    assert parse_duration("1.5h") == 5400
    for bad in ("7", "d", "-1d", "1y"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# The index

def test_the_index_links_each_run_to_its_report_or_its_directory(runs_dir, capsys):
    runs = list_runs(runs_dir)
    with_report = runs[0].path
    (with_report / "report.html").write_text("<html></html>")
    odd = make_run(runs_dir, "<script>alert(1)</script>", time.time() - 6 * DAY, 30, True)
    code, out, _ = faultline(capsys, "runs", str(runs_dir), "--index")
    assert code == 0 and out.strip() == str(runs_dir / "index.html")
    page = (runs_dir / "index.html").read_text()
    assert f'href="refnode-register/{with_report.name}/report.html"' in page
    assert f'href="refnode-set/{runs[1].path.name}/"' in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "%3Cscript%3E" in page                        # the link to it is quoted too
    assert not odd.joinpath("report.html").exists()
    assert page.count("<tr>") == 7                    # the header and six runs
    assert 'class="invalid">INVALID' in page and 'class="valid">valid' in page
    assert "running or incomplete" in page
    assert "http://" not in page and "https://" not in page      # nothing from outside


def test_an_index_that_cannot_be_written_is_one_warning(tmp_path, capsys):
    run_command._refresh_index(tmp_path / "not-there")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "index.html not updated" in err


def test_write_index_returns_its_path(runs_dir):
    path = write_index(runs_dir)
    assert path == runs_dir / "index.html" and path.read_text().startswith("<!DOCTYPE html>")
    assert summarize(list_runs(runs_dir)[0].path).verdict == "valid"


# Serving

@pytest.fixture
def served(runs_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    (runs_dir / "out").symlink_to(tmp_path)
    (runs_dir / "secret-link").symlink_to(secret)
    server = make_server(runs_dir, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)
    assert not thread.is_alive()


def fetch(server, path: str) -> tuple[int, bytes]:
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)             # sent as is: no client-side clean-up
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_serve_gives_the_index_and_the_raw_files(served, runs_dir):
    assert server_url(served).startswith("http://127.0.0.1:")
    status, body = fetch(served, "/")
    assert status == 200 and body.count(b"<tr>") == 6
    run = list_runs(runs_dir)[0].path.relative_to(runs_dir).as_posix()
    status, body = fetch(served, f"/{run}/history.jsonl")
    assert status == 200 and body == (runs_dir / run / store.HISTORY_FILE).read_bytes()
    status, body = fetch(served, f"/{run}/")
    assert status == 200 and b'href="history.jsonl"' in body
    status, _ = fetch(served, "/latest/results.json")       # a link inside: fine
    assert status == 200
    assert not (runs_dir / "index.html").exists()            # served, not written


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/refnode-set/../../secret.txt",
    "/latest/../../../secret.txt", "/out/secret.txt", "/secret-link", "//etc/passwd",
    "/%2Fetc%2Fpasswd", "/..%2fsecret.txt", "/no-such-file",
])
def test_serve_answers_404_to_anything_outside(served, path):
    status, body = fetch(served, path)
    assert status == 404 and b"not for the web" not in body


def test_resolve_stays_inside(runs_dir, tmp_path):
    assert resolve(runs_dir, "/refnode-set/") == (runs_dir / "refnode-set").resolve()
    assert resolve(runs_dir, "refnode-set") is None             # not an absolute URL path
    assert resolve(runs_dir, "/a\\..\\b") is None


def test_serve_refuses_a_public_address_without_public(runs_dir, capsys):
    code, _, err = faultline(capsys, "serve", str(runs_dir), "--host", "0.0.0.0")
    assert code == exits.BAD_INPUT and "--public" in err and len(err.strip().splitlines()) == 1


def test_serve_on_a_busy_port_is_one_line_and_exit_5(runs_dir, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = faultline(capsys, "serve", str(runs_dir), "--port", str(port))
    assert code == exits.COULD_NOT_RUN and "in use" in err
    assert len(err.strip().splitlines()) == 1


def test_serve_stops_cleanly_on_ctrl_c(runs_dir):
    process = subprocess.Popen([sys.executable, "-m", "harness", "serve", str(runs_dir),
                                "--port", "0"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == exits.INTERRUPTED
    assert "Traceback" not in err and err.count("\n") == 1
