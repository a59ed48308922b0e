"""`faultline campaign FILE.toml`: run a matrix of tests and say which rows showed what
they must (a table, campaign.json, optionally JUnit)."""

from __future__ import annotations

import argparse
import json
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.campaigns.cell import RAN, interrupt_on
from harness.campaigns.dispatch import NOT_RUN, connect, run_here, run_on_dask
from harness.campaigns.matrix import (KEEPS_WRITES, Campaign, CampaignError, Cell, load,
                                      parse_duration)
from harness.cli import exits, terminal
from harness.rundirs import store

CAMPAIGN_FILE = "campaign.json"
MET, MISSED, SHORT = "met", "missed", "could-not-run"


def register(sub) -> None:
    """Add `campaign` to the `faultline` parser."""
    p = sub.add_parser(
        "campaign", help="run a matrix of tests from a TOML file",
        description="Run every row of a campaign file over its seeds and check that each row "
                    "shows what it must (valid, invalid, loses-writes or keeps-writes in "
                    "enough seeds). "
                    "The runs and campaign.json go to RUNS_DIR/NAME/TIME/; the JUnit file "
                    "where --junit says. "
                    "Exit codes: 0 every row met its target, 1 some row did not, 5 some runs "
                    "could not run (and no row missed), 3 bad input, 130 interrupted.")
    p.add_argument("file", type=Path, metavar="FILE.toml", help="the campaign file")
    p.add_argument("rows", nargs="*", metavar="ROW", help="rows to run (default all)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"),
                   help="where the campaign's directory goes (default runs)")
    p.add_argument("--jobs", type=int, help="runs at once on this machine (default: the "
                   "file's, else one per core; docs/benchmarks.md shows what they pay)")
    p.add_argument("--budget", help="no run starts after this long, e.g. 90m or 2h "
                   "(default: the file's, else none)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run each cell as a task on this Dask scheduler (tcp://host:8786); "
                        "workers must offer the resource faultline=1")
    p.add_argument("--junit", type=Path, metavar="FILE", help="also write a JUnit XML file")
    p.add_argument("--json", action="store_true", help="print campaign.json's rows as JSON")
    p.set_defaults(handler=campaign_command)


def campaign_command(args: argparse.Namespace) -> int:
    """Carry out `faultline campaign`; returns the exit code (see `exit_code`)."""
    # SIGTERM (a CI job cancelled) stops the runs as Ctrl-C does, each cleaning up.
    interrupt_on(signal.SIGTERM)
    try:
        campaign = load(args.file, args.rows or None, check=not args.scheduler)
        if args.budget is not None:
            campaign.budget = parse_duration(args.budget, "--budget")
    except CampaignError as exc:
        raise exits.UsageError(str(exc)) from None
    if args.jobs is not None:
        if args.jobs < 1:
            raise exits.UsageError(f"--jobs must be 1 or more, got {args.jobs}")
        campaign.jobs = args.jobs
    check_runs_dir(args.runs_dir)
    if args.junit is not None and not args.junit.parent.is_dir():
        raise exits.UsageError(f"--junit {args.junit}: no directory {args.junit.parent} to "
                               f"write it in")
    if not args.scheduler:
        # On Dask the workers run the tests: what they need is checked where they run.
        _check_available(campaign)
    client = None
    if args.scheduler:
        try:
            client = connect(args.scheduler)
        except ConnectionError as exc:
            terminal.err.print(f"faultline: could not run: {escape(str(exc))}")
            return exits.COULD_NOT_RUN
    campaign_dir, rows = execute(campaign, args.runs_dir, client=client,
                                 scheduler=args.scheduler, junit=args.junit)
    if args.json:
        print(json.dumps(rows))
    else:
        for table in tables(campaign, rows):
            terminal.out.print(table)
        terminal.out.print(f"campaign: {campaign_dir / CAMPAIGN_FILE}" +
                         (f"; JUnit: {args.junit}" if args.junit else ""))
    return exit_code(rows)


def check_runs_dir(runs_dir: Path) -> None:
    """A runs directory that exists must be a directory (else a one-line usage error)."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise exits.UsageError(f"--runs-dir {runs_dir}: not a directory")


def execute(campaign: Campaign, runs_dir: Path, *, client=None, scheduler: str | None = None,
            junit: Path | None = None) -> tuple[Path, list[dict]]:
    """Run every cell of `campaign` (here, or on the Dask cluster of `client`) into a new
    directory RUNS_DIR/NAME/TIME, a line on stderr as each ends; write campaign.json there
    (and the JUnit file `junit`, and index.html); returns the directory and the rows'
    summaries (`summarise`)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    campaign_dir = store.new_directory((runs_dir / campaign.name).resolve(), stamp)
    cells = campaign.cells()
    where = f"on the Dask cluster at {scheduler}" if client else \
        f"{campaign.jobs} at a time"
    terminal.err.print(f"campaign {campaign.name}: {len(campaign.rows)} rows, {len(cells)} runs, "
                     f"{where}; into {campaign_dir}")
    started = time.monotonic()
    done = 0
    collected: dict[str, dict[str, Any]] = {}

    def on_done(cell: Cell, found: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        collected[cell.key] = found
        place = found.get("run_dir")
        if place and Path(place).is_relative_to(campaign_dir):
            place = Path(place).relative_to(campaign_dir)
        terminal.err.print(f"[{done}/{len(cells)}] {cell.row.label} seed {cell.seed}: "
                         f"{_word(found, cell.row.expect)}, {found.get('elapsed', 0):.1f} s, "
                         f"{escape(str(place or found.get('error', '')))}")

    def summary(outcomes: dict[str, dict[str, Any]], **extra: Any) -> list[dict]:
        rows = summarise(campaign, outcomes)
        data = {"name": campaign.name, "file": campaign.source,
                "directory": str(campaign_dir), "started": stamp,
                "seconds": round(time.monotonic() - started, 1),
                "jobs": None if client else campaign.jobs, "scheduler": scheduler,
                "budget_seconds": campaign.budget, **extra, "rows": rows}
        (campaign_dir / CAMPAIGN_FILE).write_text(json.dumps(data, indent=1))
        return rows

    try:
        if client is not None:
            with client:
                outcomes = run_on_dask(cells, campaign_dir, client, campaign.budget, on_done)
        else:
            outcomes = run_here(cells, campaign_dir, campaign.jobs, campaign.budget, on_done)
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or failed: what finished is kept on record.
        summary(collected, interrupted=True)
        raise
    rows = summary(outcomes)
    if junit:
        from harness.campaigns.junit import write_junit

        write_junit(junit, campaign, outcomes, {r["label"]: r["status"] for r in rows})
    _write_index(campaign_dir)
    return campaign_dir, rows


def exit_code(rows: list[dict]) -> int:
    """0 when every row met its target, 1 when one missed, 5 when runs could not run."""
    statuses = {r["status"] for r in rows}
    if MISSED in statuses:
        return exits.INVALID
    if SHORT in statuses:
        return exits.COULD_NOT_RUN
    return exits.VALID


def summarise(campaign: Campaign, outcomes: dict[str, dict[str, Any]]) -> list[dict]:
    """Per row: its runs' outcomes, how many showed what the row expects, and its status:
    met (enough did), missed (not enough, every run ran), or could-not-run (not enough, and
    some runs could not run or never started)."""
    rows = []
    for row in campaign.rows:
        runs = [dict(outcomes.get(Cell(row, seed).key) or
                     {"status": NOT_RUN, "error": "not run"}, seed=seed) for seed in row.seeds]
        shown = sum(1 for r in runs if r.get("status") == RAN and r.get("shows"))
        ran = sum(1 for r in runs if r.get("status") == RAN)
        # Missed as soon as the runs that did not run could not make up the shortfall: a
        # failed seed must not hide behind another that could not run.
        status = MET if shown >= row.needed else \
            MISSED if shown + (len(runs) - ran) < row.needed else SHORT
        firsts = sorted(r["first_violation_seconds"] for r in runs
                        if r.get("first_violation_seconds") is not None)
        caught_by = sorted({name for r in runs for name in r.get("caught_by") or ()})
        rows.append({"label": row.label, "group": row.group, "expect": row.expect,
                     "needed": row.needed, "caught_by": caught_by,
                     "seeds": len(row.seeds), "ran": ran, "shown": shown, "status": status,
                     "median_first_violation_seconds":
                         firsts[len(firsts) // 2] if firsts else None,
                     "options": row.options, "runs": runs})
    return rows


def tables(campaign: Campaign, rows: list[dict],
           titles: dict[str, str] | None = None) -> list[Table]:
    """The rows as tables, one per group in the order the groups first appear (titled by
    `titles`, else by the group's name), every row printed, met or not."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row.get("group") or "", []).append(row)
    out = []
    for group, members in groups.items():
        title = (titles or {}).get(group) or " ".join(
            part for part in (f"campaign {campaign.name}", group) if part)
        table = Table(title=title, title_justify="left")
        for column in ("row", "expected", "result", "caught by", "first violation (median)",
                       "target"):
            table.add_column(column)
        for row in members:
            result = f"{row['shown']}/{row['seeds']} {row['expect']}"
            if row["ran"] < row["seeds"]:
                result += f" ({row['seeds'] - row['ran']} not run)"
            first = row["median_first_violation_seconds"]
            status = {MET: "[green]met[/]", MISSED: "[bold red]MISSED[/]",
                      SHORT: "[bold yellow]could not run[/]"}[row["status"]]
            table.add_row(row["label"], f"{row['expect']} in {row['needed']}", result,
                          ", ".join(row["caught_by"]), "" if first is None else f"{first:.1f} s",
                          status)
        out.append(table)
    return out


def _word(found: dict[str, Any], expect: str) -> str:
    if found.get("status") != RAN:
        return "[yellow]not run[/]" if found.get("status") == NOT_RUN else \
            "[bold yellow]could not run[/]"
    verdict = {True: "valid", False: "INVALID"}.get(found.get("valid"), "unknown")
    mark = "as expected" if found.get("shows") else "[bold red]unexpected[/]"
    if expect == KEEPS_WRITES:
        # The verdict alone would not say it: an invalid run may keep every acknowledged write.
        verdict += ", acknowledged writes kept" if found.get("shows") else \
            ", acknowledged writes lost or the cluster not recovered"
    return f"{verdict} ({mark})"


def _check_available(campaign: Campaign) -> None:
    """Every system the campaign names is installed, or one line saying which is not."""
    seen = set()
    for row in campaign.rows:
        spec = row.spec(row.seeds[0], "runs")
        if spec.system in seen:
            continue
        seen.add(spec.system)
        found = spec.adapter().availability()
        if not found.available:
            raise exits.UsageError(f"{campaign.source}: row {row.label}: {spec.system} cannot "
                                   f"run here: {found.detail}; install: {found.install}")


def _write_index(campaign_dir: Path) -> None:
    """The campaign directory's index.html, where the runs browser is installed."""
    try:
        from harness.rundirs.index import write_index
    except ImportError:
        return
    try:
        write_index(campaign_dir)
    except Exception as exc:             # the campaign's results stand without it
        terminal.err.print(f"[yellow]warning[/]: no index.html: {exc}")

