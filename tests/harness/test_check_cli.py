"""`faultline check` as a user runs it: a real process, its output and its exit code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checkers.jsonl import write_jsonl
from checkers.synthetic import Shape, generate
from tests.corpora import MANIFEST, manifest_entries, needs_corpora

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def faultline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last, last


def test_a_valid_history_exits_0():
    proc = faultline("check", str(EXAMPLES / "register-history.jsonl"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: valid" in proc.stdout


def test_an_invalid_history_exits_1_with_a_counterexample():
    proc = faultline("check", str(EXAMPLES / "stale-read-history.jsonl"))
    assert proc.returncode == 1
    assert "INVALID" in proc.stdout
    assert "cannot place:" in proc.stdout and "state before it:" in proc.stdout


def test_json_output_has_a_top_level_valid():
    proc = faultline("check", str(EXAMPLES / "stale-read-history.jsonl"), "--json",
                     "--checker", "linearizable,stats")
    result = json.loads(proc.stdout)
    assert result["valid"] is False
    assert set(result["checkers"]) == {"linearizable", "stats"}
    counterexample = result["checkers"]["linearizable"]["counterexample"]
    assert counterexample["op"]["key"] == counterexample["key"]
    assert counterexample["op"]["f"] == "read"


def test_a_run_directory_gets_results_json(tmp_path):
    shutil.copy(EXAMPLES / "register-history.jsonl", tmp_path / "history.jsonl")
    proc = faultline("check", str(tmp_path), "--checker", "linearizable",
                     "--checker", "session")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["valid"] is True
    assert results["checkers"]["session"]["valid"] is True


def test_a_spent_budget_exits_2(tmp_path):
    path = tmp_path / "hard.jsonl"
    write_jsonl(generate(Shape(clients=30, ops=3000, unique_values=False, small_values=3,
                               info_share=0.2, cas_share=0.2), seed=3), path)
    proc = faultline("check", str(path), "--budget", "0.3", "--checker", "linearizable")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unknown" in proc.stdout


def test_edn_with_knossos_conventions(tmp_path):
    path = tmp_path / "h.edn"
    path.write_text("[{:process 0 :type :invoke :f :read :value nil}\n"
                    " {:process 0 :type :ok :f :read :value 0}]\n")
    assert faultline("check", str(path)).returncode == 1          # initial nil by default
    assert faultline("check", str(path), "--model", "cas-register",
                     "--initial", "0").returncode == 0


@pytest.mark.parametrize("args, fragments", [
    (["check", "no/such/file.jsonl"], ["no/such/file.jsonl"]),
    (["check"], ["PATH"]),
    (["check", "examples/register-history.jsonl", "--checker", "nope"], ["nope"]),
    (["check", "examples/register-history.jsonl", "--initial", "{bad"], ["--initial"]),
    (["check", "examples/register-history.jsonl", "--format", "edn"], ["register-history"]),
    (["check", "examples/register-history.jsonl", "--budget", "-1"], ["--budget"]),
    (["check", "examples"], ["history.jsonl"]),
    (["check", "--manifest", "no/such/manifest.json"], ["manifest"]),
    (["frobnicate"], ["frobnicate"]),
    (["check", "examples/register-history.jsonl", "--model", "string-append"], ["strings"]),
])
def test_bad_input_is_one_line_and_exit_3(args, fragments):
    assert_one_line_error(faultline(*args), *fragments)


def test_a_malformed_line_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = (EXAMPLES / "register-history.jsonl").read_text().splitlines()[:10]
    lines[6] = lines[6].replace('"type":"', '"type":"x')
    path.write_text("\n".join(lines) + "\n")
    assert_one_line_error(faultline("check", str(path)), "bad.jsonl:7", "type")


def test_a_truncated_last_line_is_reported(tmp_path):
    path = tmp_path / "cut.jsonl"
    text = (EXAMPLES / "register-history.jsonl").read_text()
    path.write_text(text[: len(text) // 2])
    assert_one_line_error(faultline("check", str(path)), "cut.jsonl:")


def test_a_second_invoke_before_completion_is_bad_input(tmp_path):
    path = tmp_path / "double.jsonl"
    path.write_text(
        '{"index":0,"time":1,"process":1,"type":"invoke","f":"read","key":null,"value":null}\n'
        '{"index":1,"time":2,"process":1,"type":"invoke","f":"read","key":null,"value":null}\n')
    assert_one_line_error(faultline("check", str(path)), "double.jsonl:2", "invokes again")


def test_a_method_that_does_not_apply_is_bad_input(tmp_path):
    path = tmp_path / "cas.edn"
    path.write_text("[{:process 0 :type :invoke :f :cas :value [0 1]}\n"
                    " {:process 0 :type :ok :f :cas :value [0 1]}]\n")
    assert_one_line_error(faultline("check", str(path), "--method", "zones"), "zones method")


@needs_corpora
def test_the_shared_manifest_agrees_everywhere():
    proc = faultline("check", "--manifest", str(MANIFEST), "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["histories"] == len(manifest_entries())
    assert summary["disagreements"] == 0


def test_a_manifest_disagreement_exits_1(tmp_path):
    shutil.copy(EXAMPLES / "stale-read-history.jsonl", tmp_path / "stale.jsonl")
    shutil.copy(EXAMPLES / "register-history.jsonl", tmp_path / "fine.jsonl")
    manifest = {"histories": [
        {"file": "stale.jsonl", "format": "jsonl", "options": {"model": "kv"},
         "expected": True},
        {"file": "fine.jsonl", "format": "jsonl", "options": {"model": "kv"},
         "expected": True}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    proc = faultline("check", "--manifest", str(tmp_path / "manifest.json"))
    assert proc.returncode == 1
    assert "DISAGREES" in proc.stdout
    assert "2 histories, 1 agree, 1 disagree" in proc.stdout


def test_faultline_proxy_serves_the_api_and_stops_on_sigterm():
    import signal
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "harness", "proxy", "--port", "0"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("faultline proxy listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as reply:
            assert json.loads(reply.read())["version"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


# --- verdicts users can trust ------------------------------------------------------------

def _write_events(path: Path, events: list[tuple]) -> Path:
    """Events as (time, process, type, f, key, value) tuples, written as JSON Lines."""
    lines = [json.dumps({"index": i, "time": t, "process": p, "type": kind, "f": f, "key": k,
                         "value": v}) for i, (t, p, kind, f, k, v) in enumerate(events)]
    path.write_text("\n".join(lines) + "\n")
    return path


SET_WITH_A_LOSS = [(0, 0, "invoke", "add", "s", 1), (10, 0, "ok", "add", "s", 1),
                   (20, 1, "invoke", "add", "s", 2), (30, 1, "ok", "add", "s", 2),
                   (40, 0, "invoke", "read", "s", None), (50, 0, "ok", "read", "s", [1])]


def test_a_set_history_gets_the_set_checkers_without_options(tmp_path):
    path = _write_events(tmp_path / "set.jsonl", SET_WITH_A_LOSS)
    proc = faultline("check", str(path), "--json")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result["checkers"]) == {"set-full", "stats"}
    assert result["checkers"]["set-full"]["figures"]["lost_count"] == 1


def test_a_register_history_with_versions_gets_the_session_checks_too():
    proc = faultline("check", str(EXAMPLES / "stale-read-history.jsonl"), "--json")
    result = json.loads(proc.stdout)
    assert list(result["checkers"]) == ["linearizable", "session", "stats"]
    assert result["checkers"]["session"]["valid"] is False


def test_a_set_checker_on_a_register_history_is_bad_input_not_a_crash():
    proc = faultline("check", str(EXAMPLES / "register-history.jsonl"), "--checker", "set")
    assert_one_line_error(proc, "set checkers need reads that return the whole set")


def test_an_empty_history_is_bad_input(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_line_error(faultline("check", str(empty)), "no client operations")
    only_faults = _write_events(tmp_path / "faults.jsonl",
                                [(0, "nemesis", "info", "start-partition", None, None)])
    assert_one_line_error(faultline("check", str(only_faults)), "no client operations")


CRASHING_CHECKER = (
    "import sys\n"
    "from checkers.builtin import StatsChecker\n"
    "def crash(self, history, context):\n"
    "    raise KeyError('boom')\n"
    "StatsChecker.check = crash\n"
    "from harness.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n")


@pytest.mark.parametrize("debug", [False, True])
def test_a_crashing_checker_is_an_internal_error_not_a_verdict(debug):
    args = (["--debug"] if debug else []) + ["check", str(EXAMPLES / "register-history.jsonl"),
                                             "--checker", "stats"]
    proc = subprocess.run([sys.executable, "-c", CRASHING_CHECKER, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 6, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("faultline: internal error: KeyError: 'boom'")
    assert ("Traceback" in proc.stderr) is debug
    assert ("--debug" in last) is not debug


def test_counterexamples_read_as_text(tmp_path):
    proc = faultline("check", str(EXAMPLES / "stale-read-history.jsonl"))
    assert proc.returncode == 1
    assert "{'" not in proc.stdout and "key: None" not in proc.stdout
    assert " s]" in proc.stdout          # times in seconds from the start of the history
    single_key = _write_events(tmp_path / "one.jsonl", [
        (0, 0, "invoke", "write", None, 1), (10, 0, "ok", "write", None, 1),
        (20, 1, "invoke", "write", None, 2), (30, 1, "ok", "write", None, 2),
        (40, 0, "invoke", "read", None, None), (50, 0, "ok", "read", None, 1),
        (60, 2, "invoke", "write", None, 3)])
    proc = faultline("check", str(single_key))
    assert proc.returncode == 1
    assert "key: None" not in proc.stdout and "....." not in proc.stdout
    proc = faultline("check", str(_write_events(tmp_path / "set.jsonl", SET_WITH_A_LOSS)))
    assert "{'" not in proc.stdout and "lost_add_calls" not in proc.stdout
    assert "missing from: process 0 read s -> [1]" in proc.stdout


def test_a_rechecked_run_directory_says_where_its_first_violation_stands(tmp_path):
    from tests.harness.test_violations import _history
    write_jsonl(_history(), tmp_path / "history.jsonl")
    proc = faultline("check", str(tmp_path), "--checker", "linearizable")
    assert proc.returncode == 1, proc.stderr
    assert "cannot place: process 2 read k -> 0 (ok) [4.000000..5.000000 s] (event 6, " \
           "served by n3)" in proc.stdout
    assert "first violation at 4.0 s into the run: process 2 read k -> 0" in proc.stdout
    assert "faults in force then: start-partition shape=isolate" in proc.stdout
