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
