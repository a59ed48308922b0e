"""A campaign as JUnit XML, for the CI that runs it every night (junitparser writes it).

One test case per run, grouped in a suite per row. A run that did not show what its row
expects is a failure, its message the finding in brief and its text the command that replays
it, unless it only missed a bug its row's other seeds caught enough times (skipped, saying
so): a violation in a row that must stay valid is always a failure. A run that could not run
(or never started) is an error when its row could not reach its target for it, else skipped
with the reason. The system-out of every case that ran names its run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from harness.campaigns.cell import RAN
from harness.campaigns.matrix import VALID, Campaign, Cell
from harness.rundirs import store

MET, SHORT = "met", "could-not-run"        # a row's status, as `faultline campaign` sums it up


def write_junit(path: Path, campaign: Campaign, outcomes: dict[str, dict[str, Any]],
                statuses: dict[str, str]) -> Path:
    """Write the JUnit file for `campaign`'s `outcomes` (by cell key) given each row's
    status (met, missed, could-not-run, by label); returns `path`."""
    xml = JUnitXml(name=f"faultline campaign {campaign.name}")
    for row in campaign.rows:
        # Dots in a classname read as packages to CI servers: a row's label is one name.
        classname = f"{campaign.name}.{row.label.replace('.', '_')}"
        suite = TestSuite(classname)
        status = statuses.get(row.label)
        for seed in row.seeds:
            found = outcomes.get(Cell(row, seed).key)
            case = TestCase(f"seed {seed}", classname=classname,
                            time=(found or {}).get("elapsed", 0.0))
            if found is None or found.get("status") != RAN:
                why = (found or {}).get("error") or "not run"
                case.result = [Error(why, "could-not-run")] if status == SHORT else \
                    [Skipped(f"{why}; the row's target was decided by its other seeds")]
            elif not found.get("shows"):
                what = _finding(found, row.expect)
                if status == MET and row.expect != VALID:
                    case.result = [Skipped(f"{what}; the row's target was met by its other "
                                           f"seeds")]
                else:
                    failure = Failure(what, "unexpected")
                    failure.text = f"replay: {store.replay_command(found['run_dir'])}" \
                        if found.get("run_dir") else "no run directory to replay"
                    case.result = [failure]
            if found and found.get("run_dir"):
                case.system_out = f"run directory: {found['run_dir']}"
            suite.add_testcase(case)
        suite.update_statistics()
        xml.add_testsuite(suite)
    xml.update_statistics()
    xml.write(str(path), pretty=True)
    return Path(path)


def _finding(found: dict[str, Any], expect: str) -> str:
    """In brief, how a run differed from what its row expects."""
    verdict = {True: "valid", False: "invalid"}.get(found.get("valid"), str(found.get("valid")))
    if found.get("valid") is True and expect == VALID:
        verdict = "valid, but the cluster did not recover after the faults"
    text = f"expected {expect}, the run was {verdict}"
    if found.get("summary"):
        text += f": {found['summary']}"
    if found.get("first_violation"):
        text += f" (first violation: {found['first_violation']})"
    return text
