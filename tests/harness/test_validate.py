"""The reduced planted-bug matrix, on both networks (the namespace network's with the slow
tests): two planted bugs caught by plain cases
(only the bug, the workload and the fault kinds given; shortened), one safe configuration
valid under the default schedule.

The full matrix (every bug over five seeds, every safe configuration over ten) is its own
command: `make validate`.
"""

from __future__ import annotations

import pytest

from harness.campaigns.validate import PLAIN, REDUCED, is_bug, is_safe, matrix, select
from harness.networks.netns import may_make_namespaces
from harness.run.runner import run_test

TIME_LIMIT = 10.0       # the safe configuration's run
BUG_TIME_LIMIT = 20.0   # a planted bug's (refnode's fast test timings elect in 0.3 to 0.6 s)


# On the namespace network the same cases take another minute; they run with the slow tests
# (`make test-slow`), and the fast suite covers that network through its etcd, Redis and
# PostgreSQL runs and tests/harness/test_networks.py.
NETWORKS = ["proxy", pytest.param("netns", marks=[pytest.mark.slow, pytest.mark.skipif(
    not may_make_namespaces(),
    reason="the namespace network needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")])]


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("case", select(REDUCED), ids=REDUCED)
def test_reduced_matrix(case, network, tmp_path):
    runs = str(tmp_path / "runs")
    if is_bug(case):
        # Real processes and real timing: on a busy machine the faults come late and
        # elections take longer, so a bug is given a second seed before it counts as missed
        # (the full matrix asks for 4 of 5).
        verdicts = []
        for seed in (1, 2):
            result = run_test(case.with_options(time_limit=BUG_TIME_LIMIT, network=network)
                              .spec(seed, runs))
            assert sum(t["applied"] for t in result.results["faults"].values()) > 0
            verdicts.append(result.valid)
            if result.valid is False:
                failing = [n for n, c in result.results["checkers"].items()
                           if c["valid"] is False]
                assert failing, result.results
                return
        pytest.fail(f"{case.label} was not caught in 2 seeds: {verdicts}")
    assert is_safe(case)
    result = run_test(case.with_options(time_limit=TIME_LIMIT, network=network).spec(1, runs))
    assert result.valid is True, result.results
    faults = result.results["faults"].values()
    assert sum(t["applied"] for t in faults) >= 1 and not any(t["errors"] for t in faults)
    assert result.liveness["recovered"]


def test_the_matrix_covers_every_planted_bug():
    from refnode.config import BUGS

    rows = matrix().rows
    assert {c.bug for c in rows if is_bug(c)} - {None} == set(BUGS)
    assert len([c for c in rows if is_safe(c)]) >= 4


@pytest.mark.skipif(not may_make_namespaces(), reason="the etcd and Redis rows need root")
def test_every_row_of_the_shipped_matrix_is_a_test_faultline_accepts():
    from harness.campaigns.matrix import load
    from harness.campaigns.validate import VALIDATE_FILE

    assert len(load(VALIDATE_FILE, check=True).rows) == len(matrix().rows)


def test_the_headline_runs_every_planted_bug_as_a_plain_campaign():
    from refnode.config import BUGS

    rows = matrix().rows
    plain = [c for c in rows if c.group == PLAIN]
    # lease-no-margin's window is the drift allowance, which clocks within the declared bound
    # cannot widen (see campaigns/validate.toml); every other bug has its plain row.
    assert {c.bug for c in plain if is_bug(c)} == set(BUGS) - {"lease-no-margin"}
    assert rows[:len(plain)] == plain                    # the headline comes first
    for case in plain:
        # Nothing a user would not give: no fault options, no interval, no timings.
        assert set(case.options) <= {"time_limit", "nemesis", "system", "workload"}
        assert set(case.options["system"]) <= {"name", "bug", "read_mode", "replication"}
        assert case.options["time_limit"] == 60.0


@pytest.mark.slow
@pytest.mark.parametrize("label, checker", [("no-fencing", "set-full"),
                                            ("forget-vote", "election-safety")])
def test_the_hardest_planted_bugs_are_caught_by_their_checker(label, checker, tmp_path):
    """The two bugs that need choreographed faults (a deposed leader heard from late; voters
    crashed between their vote and the winner's first message), at their full length."""
    (case,) = select([label])
    outcomes = []
    for seed in (1, 2):
        result = run_test(case.spec(seed, str(tmp_path / "runs")))
        outcomes.append(result.results["checkers"][checker]["valid"])
        if outcomes[-1] is False:
            return
    pytest.fail(f"{label} was not caught by {checker} in 2 seeds: {outcomes}")


@pytest.mark.skipif(not may_make_namespaces(), reason="the namespace network needs root")
def test_a_case_the_network_cannot_take_is_refused_when_named():
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.run([sys.executable, "-m", "harness", "validate", "--network", "netns",
                           "no-fencing"], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert "no-fencing: " in last and "slow_link_ms" in last and "netns" in last
