"""A campaign as JUnit XML, for the CI that runs it every night (junitparser writes it).

One test case per run, grouped in a suite per row. A run is a failure when it did not show
what its row expects and the row missed its target (a planted bug not caught in one seed of
five is no failure while four others caught it); its message is the finding in brief and its
text the command that replays it. A run that could not run (or was never started) is an
error. The system-out of every case holds its run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from harness.campaign import Campaign
from harness.campaign_cell import RAN


def write_junit(path: Path, campaign: Campaign, outcomes: dict[str, dict[str, Any]],
                met: dict[str, bool]) -> Path:
    """Write the JUnit file for `campaign`'s `outcomes` (by cell key) given which rows `met`
    their targets; returns `path`."""
    xml = JUnitXml(name=f"faultline campaign {campaign.name}")
    for row in campaign.rows:
        suite = TestSuite(f"{campaign.name}.{row.label}")
        for seed in row.seeds:
            key = f"{row.label} seed {seed}"
            found = outcomes.get(key)
            case = TestCase(f"seed {seed}", classname=f"{campaign.name}.{row.label}",
                            time=(found or {}).get("elapsed", 0.0))
            if found is None or found.get("status") != RAN:
                why = (found or {}).get("error") or "not run"
                case.result = [Error(why, "could-not-run")]
            elif not found.get("shows"):
                what = _finding(found, row.expect)
                if met.get(row.label):
                    case.result = [Skipped(f"{what}; the row's target was met by its other "
                                           f"seeds")]
                else:
                    failure = Failure(what, "unexpected")
                    failure.text = f"replay: faultline replay {found.get('run_dir')}"
                    case.result = [failure]
            case.system_out = f"run directory: {(found or {}).get('run_dir')}"
            suite.add_testcase(case)
        xml.add_testsuite(suite)
    xml.write(str(path), pretty=True)
    return Path(path)


def _finding(found: dict[str, Any], expect: str) -> str:
    """In brief, how a run differed from what its row expects."""
    verdict = {True: "valid", False: "invalid"}.get(found.get("valid"), str(found.get("valid")))
    text = f"expected {expect}, the run was {verdict}"
    if found.get("summary"):
        text += f": {found['summary']}"
    if found.get("first_violation"):
        text += f" (first violation: {found['first_violation']})"
    return text
