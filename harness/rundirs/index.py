"""`index.html` of a runs directory: one self-contained page listing every run, newest first,
each linking to its `report.html` (or to its directory while it has none).

The page has no scripts and no external assets, so it opens from disk as well as from
`faultline serve`; its links are relative to the runs directory for the same reason. Every
text taken from a run is escaped: run directories come from anywhere.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from urllib.parse import quote

from harness.rundirs.catalog import (DAMAGED, INCOMPLETE, INTERRUPTED, INVALID, UNKNOWN, VALID,
                                     RunSummary, format_seconds, format_size, list_runs)

INDEX_FILE = "index.html"
REPORT_FILE = "report.html"         # each run's report (harness.report.html writes it)

_VERDICT_CLASS = {VALID: "valid", INVALID: "invalid", UNKNOWN: "unknown",
                  INCOMPLETE: "incomplete", DAMAGED: "damaged", INTERRUPTED: "interrupted"}
_VERDICT_WORDS = {INCOMPLETE: "running or incomplete"}
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.valid { color: #1a7f37; font-weight: bold; }
.invalid { color: #cf222e; font-weight: bold; }
.unknown { color: #9a6700; font-weight: bold; }
.incomplete { color: #6e7781; }
.damaged { color: #8250df; font-weight: bold; }
.interrupted { color: #9a6700; font-weight: bold; }
.note { color: #9a6700; }
"""


def write_index(runs_dir: Path) -> Path:
    """Write `runs_dir/index.html` (replaced atomically) listing the runs below `runs_dir`;
    returns its path. OSError when the directory cannot be written."""
    runs_dir = Path(runs_dir)
    path = runs_dir / INDEX_FILE
    tmp = runs_dir / f".{INDEX_FILE}.{os.getpid()}.tmp"
    tmp.write_text(render_index(runs_dir), encoding="utf-8")
    os.replace(tmp, path)
    return path


def render_index(runs_dir: Path, runs: list[RunSummary] | None = None) -> str:
    """The index page of `runs_dir` as HTML text (`runs`: its runs, newest first, when the
    caller has them already)."""
    runs_dir = Path(runs_dir)
    runs = list_runs(runs_dir) if runs is None else runs
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.verdict] = counts.get(run.verdict, 0) + 1
    tally = ", ".join(f"{n} {_VERDICT_WORDS.get(v, v)}" for v, n in counts.items()) or "no runs"
    rows = "\n".join(_row(runs_dir, run) for run in runs)
    e = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>faultline runs: {e(str(runs_dir))}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>faultline runs</h1>
<p>{e(str(runs_dir))}: {len(runs)} run(s): {e(tally)}. Written
{e(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))}.</p>
<table>
<thead><tr><th>when (UTC)</th><th>test</th><th>system</th><th>workload</th><th>seed</th>
<th>verdict</th><th>first violation</th><th>duration</th><th>size</th><th>run</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def run_link(runs_dir: Path, run: RunSummary) -> str:
    """The relative URL of a run's report, or of its directory while it has no report."""
    parts = [quote(part) for part in run.path.relative_to(runs_dir).parts]
    if (run.path / REPORT_FILE).is_file():
        return "/".join(parts + [REPORT_FILE])
    return "/".join(parts) + "/"


def _row(runs_dir: Path, run: RunSummary) -> str:
    e = html.escape
    verdict = _VERDICT_WORDS.get(run.verdict, run.verdict)
    note = ""
    if run.interrupted and run.verdict != INTERRUPTED:
        note += ' <span class="note">(interrupted)</span>'
    if run.recovered is False:
        note += ' <span class="note">(not recovered)</span>'
    title = f' title="{e(run.problem)}"' if run.problem else ""
    violation = "" if run.first_violation_seconds is None else \
        f"{run.first_violation_seconds:g} s"
    link = run_link(runs_dir, run)
    label = "report" if link.endswith(REPORT_FILE) else "directory"
    cells = [
        f"<td>{e(run.when.strftime('%Y-%m-%d %H:%M:%S'))}</td>",
        f"<td>{e(run.test)}</td>",
        f"<td>{e(run.system or '')}</td>",
        f"<td>{e(run.workload or '')}</td>",
        f'<td class="num">{e("" if run.seed is None else str(run.seed))}</td>',
        f'<td class="{_VERDICT_CLASS.get(run.verdict, "unknown")}"{title}>{e(verdict)}'
        f"{note}</td>",
        f'<td class="num">{e(violation)}</td>',
        f'<td class="num">{e(format_seconds(run.duration_seconds))}</td>',
        f'<td class="num">{e(format_size(run.size_bytes))}</td>',
        f'<td><a href="{e(link)}">{e(label)}</a> '
        f"{e(str(run.path.relative_to(runs_dir)))}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"
