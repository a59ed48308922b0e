"""A run's report: one self-contained HTML page, `report.html` in its run directory.

`write_report(run_dir)` reads the run (`harness.report.data`), draws its plots
(`harness.report.plots`) and writes the page; `build_quietly` is the same for the harness's own
callers, for whom a report that cannot be built must never cost the run. The page opens from
disk with nothing else: its style is inline, its plots are inline SVG (points rasterised within
them), its links point at the run's own files beside it. Every piece of text from the run is
escaped.
"""

from __future__ import annotations

import html
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable

import orjson

from harness.report.data import FaultBand, RunData, Violation, find_violation, read_run
from harness.rundirs import store

REPORT_FILE = "report.html"
FIGURE_ROWS_MAX = 60          # rows of one checker's figures shown
COUNTEREXAMPLE_CHARS = 20_000  # of a counterexample's JSON shown in full
NAMED_OPS_MAX = 40             # operations of a violation listed
SCHEDULE_ROWS_OPEN = 24        # a longer schedule is shown folded
log = logging.getLogger("faultline.report")

_VERDICTS = {True: ("valid", "valid"), False: ("INVALID", "invalid"),
             "unknown": ("unknown", "unknown")}
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #212529;
       max-width: 1180px; margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em;
  border-bottom: 1px solid #dee2e6; padding-bottom: .2em; }
.path, code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace;
  font-size: 12.5px; }
.path { color: #495057; word-break: break-all; }
.badge { display: inline-block; padding: .1em .6em; border-radius: .3em; font-weight: 700;
  color: #fff; } .badge.valid { background: #2b8a3e; } .badge.invalid { background: #c92a2a; }
.badge.unknown, .badge.none { background: #e67700; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #dee2e6;
  padding: .25em .55em; text-align: left; vertical-align: top; } th { background: #f1f3f5; }
table.wide { width: 100%; }
tr.violating td { background: #ffe3e3; } tr.violating td:first-child {
  border-left: 4px solid #c92a2a; font-weight: 700; }
tr.related td { background: #e7f5ff; } tr.related td:first-child {
  border-left: 4px solid #1864ab; }
.missing { background: #fff3bf; border: 1px solid #fab005; padding: .5em 1em; }
.valid-note { background: #ebfbee; border: 1px solid #2b8a3e; padding: .5em 1em; }
.state { background: #fff5f5; border: 1px solid #c92a2a; padding: .4em .8em;
  display: inline-block; }
.plot svg { max-width: 100%; height: auto; } .muted { color: #868e96; }
details { margin: .3em 0; } summary { cursor: pointer; } .nowrap { white-space: nowrap; }
pre { background: #f8f9fa; padding: .6em; overflow-x: auto; max-height: 30em; }
"""


def write_report(run_dir: Path) -> Path:
    """Build `run_dir/report.html` from the run's files and return its path.

    A partial run (no results.json yet, an empty or cut history) still gets a page, which
    says what is missing. Raises `harness.report.data.NotARunDirectory` when `run_dir` holds
    none of a run's files, OSError when the page cannot be written; the page is replaced
    atomically, so a reader never sees half of one."""
    from harness.report.plots import render  # matplotlib only when a report is made

    run_dir = Path(run_dir)
    data = read_run(run_dir)
    violation = find_violation(data)
    page = render_page(data, violation, render(data, violation))
    path = run_dir / REPORT_FILE
    tmp = run_dir / f".{REPORT_FILE}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def build_quietly(run_dir: Path) -> Path | None:
    """`write_report`, for the harness's own callers (the end of a run, a re-check): a
    report that cannot be built is one warning line on the log and None, never an exception,
    so that it never loses a run or changes a verdict."""
    try:
        return write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run comes first
        log.warning("faultline: warning: no %s for %s: %s: %s", REPORT_FILE, run_dir,
                    type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None


def render_page(data: RunData, violation: Violation | None,
                plots: dict[str, str | None]) -> str:
    """The whole page as text, from the run's data, its first violation (None: none found)
    and its plots as SVG (by name, None: nothing to draw)."""
    spec = data.spec
    name = spec.get("name") or data.run_dir.parent.name
    valid = (data.results or {}).get("valid") if data.results is not None else None
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{_e(name)}: {_e(_verdict_word(valid))}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(name)} {_badge(valid)}</h1>",
        f"<div class=\"path\">{_e(str(data.run_dir))}</div>",
        _problems(data),
        _summary(data),
        _verdicts(data),
        _violation_section(data, violation, plots.get("timeline")),
        _plot_section("latency", "Latency", plots.get("latency"),
                      "Each operation is a point at its invocation, its latency up the log "
                      "scale; shapes tell the kinds apart, colours the outcomes (an info "
                      "operation: when its client gave up). Faults are the shaded bands.",
                      "no operation completed"),
        _plot_section("throughput", "Throughput", plots.get("throughput"),
                      "Operations completed per second, by outcome, with the faults as "
                      "shaded bands.", "no operation completed"),
        _plot_section("roles", "Node roles", plots.get("roles"),
                      "Each node's role as it reported it to the observer, held from each "
                      "reported change to the next; a hatched stretch is a fault keeping the "
                      "node down or paused (it could not report).",
                      "no observations.jsonl: this system does not report node roles"
                      if not data.has_observations else "no role was observed"),
        _faults(data),
        _files(data),
        f"<p class=\"muted\">built by faultline report at "
        f"{_e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}</p>",
        "</body></html>\n"]
    return "\n".join(part for part in parts if part)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _verdict_word(valid: Any) -> str:
    if valid is None:
        return "not checked"
    return _VERDICTS.get(valid, (str(valid), ""))[0]


def _badge(valid: Any) -> str:
    cls = "none" if valid is None else _VERDICTS.get(valid, ("", "unknown"))[1]
    return f"<span class=\"badge {cls}\">{_e(_verdict_word(valid))}</span>"


def _problems(data: RunData) -> str:
    if not data.problems:
        return ""
    items = "".join(f"<li>{_e(p)}</li>" for p in data.problems)
    return (f"<section id=\"missing\" class=\"missing\"><strong>This run directory is "
            f"incomplete; the report shows what there is.</strong><ul>{items}</ul></section>")


def _summary(data: RunData) -> str:
    spec = data.spec
    test = data.test or {}
    system = test.get("system") if isinstance(test.get("system"), dict) else {}
    rows: list[tuple[str, Any]] = []
    if spec:
        system_name = spec.get("system", system.get("name"))
        version = system.get("version")
        rows.append(("system", f"{system_name}" + (f" {version}" if version else "") +
                     (f", options {_compact(spec.get('system_options'))}"
                      if spec.get("system_options") else "")))
        for label, key in (("network", "network"), ("nodes", "nodes"),
                           ("workload", "workload"), ("seed", "seed"),
                           ("time limit (s)", "time_limit"), ("concurrency", "concurrency"),
                           ("rate (ops/s)", "rate"), ("keys", "keys"),
                           ("op timeout (s)", "op_timeout")):
            if spec.get(key) is not None:
                rows.append((label, spec[key]))
        nemesis = spec.get("nemesis")
        rows.append(("nemesis", ", ".join(map(str, nemesis)) if isinstance(nemesis, list)
                     and nemesis else nemesis or "none"))
        if spec.get("nemesis_options"):
            rows.append(("nemesis options", _compact(spec["nemesis_options"])))
    if isinstance(test.get("command"), list):
        rows.append(("command", " ".join(map(str, test["command"]))))
    rows.append(("replay", store.replay_command(data.run_dir)))
    counts: dict[str, int] = {}
    for op in data.ops:
        counts[op.outcome] = counts.get(op.outcome, 0) + 1
    if data.ops:
        rows.append(("operations", f"{len(data.ops):,} (" + ", ".join(
            f"{counts.get(o, 0):,} {o}" for o in ("ok", "fail", "info")) +
            f") over {data.end / 1e9:.1f} s"))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<section id=\"test\"><h2>Test</h2><table>{body}</table></section>"


def _verdicts(data: RunData) -> str:
    results = data.results
    if results is None:
        return ("<section id=\"verdicts\"><h2>Verdicts</h2><p>No verdict: the run has no "
                "results.json (it did not get as far as checking). <code>faultline check "
                f"{_e(data.run_dir)}</code> checks its history and rebuilds this report."
                "</p></section>")
    rows = []
    checkers = results.get("checkers") if isinstance(results.get("checkers"), dict) else {}
    for name, result in checkers.items():
        if not isinstance(result, dict):
            continue
        figures = result.get("figures")
        details = ""
        if isinstance(figures, dict) and figures:
            flat = _flatten(figures)
            shown = "".join(f"<tr><td><code>{_e(k)}</code></td><td>{_e(v)}</td></tr>"
                            for k, v in flat[:FIGURE_ROWS_MAX])
            more = (f"<p class=\"muted\">{len(flat) - FIGURE_ROWS_MAX} more in "
                    f"results.json</p>" if len(flat) > FIGURE_ROWS_MAX else "")
            details = (f"<details><summary>figures</summary><table>{shown}</table>{more}"
                       f"</details>")
        rows.append(f"<tr><td>{_e(name)}</td><td>{_badge(result.get('valid'))}</td>"
                    f"<td>{_e(result.get('summary', ''))}{details}</td></tr>")
    liveness = results.get("liveness")
    if isinstance(liveness, dict) and liveness:
        recovered = liveness.get("recovered")
        words = (f"recovered {liveness.get('seconds')} s after every fault ended"
                 if recovered else liveness.get("reason", "not recovered"))
        down = liveness.get("down")
        for node, why in (down.items() if isinstance(down, dict) else []):
            words += f"; {node} was down at the end" + (f" ({why})" if why else "")
        rows.append(f"<tr><td>liveness</td><td>{_badge(bool(recovered))}</td>"
                    f"<td>{_e(words)}</td></tr>")
    table = ("<table class=\"wide\"><tr><th>checker</th><th>verdict</th><th>summary</th></tr>"
             + "".join(rows) + "</table>")
    return f"<section id=\"verdicts\"><h2>Verdicts</h2>{table}</section>"


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested figures as (dotted name, short text) rows."""
    if isinstance(value, dict) and value:
        rows: list[tuple[str, str]] = []
        for key, item in value.items():
            rows += _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list):
        text = ", ".join(_compact(v) for v in value[:10])
        return [(prefix, f"[{text}{', …' if len(value) > 10 else ''}] ({len(value)})"
                 if len(value) > 10 else f"[{text}]")]
    return [(prefix, _compact(value))]


def _compact(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        return text if len(text) <= 200 else text[:199] + "…"
    return "null" if value is None else str(value)


def _violation_section(data: RunData, violation: Violation | None,
                       timeline: str | None) -> str:
    results = data.results
    if results is None:
        return ""
    valid = results.get("valid")
    if valid is True:
        return ("<section id=\"valid\" class=\"valid-note\"><strong>Valid.</strong> No checker "
                "found a violation in this run's history.</section>")
    if valid is not False:
        return ("<section id=\"no-verdict\" class=\"missing\"><strong>Unknown.</strong> The "
                "checkers could not decide (a budget ran out, or nothing to judge); no "
                "violation to show.</section>")
    parts = ["<section id=\"violation\"><h2>First violation</h2>"]
    first = results.get("first_violation")
    if isinstance(first, dict):
        parts.append(_first_violation(first))
    if violation is None:
        parts.append("<p>The counterexample names no operation this history holds, so there "
                     "is no timeline to draw; see the counterexamples below.</p>")
    else:
        parts.append(f"<p>checker: <strong>{_e(violation.checker)}</strong>" +
                     (f", key <code>{_e(violation.key)}</code>"
                      if violation.key is not None else "") + "</p>")
        if violation.explanation:
            parts.append(f"<p>{_e(violation.explanation)}</p>")
        if violation.state_before is not None:
            parts.append(f"<div class=\"state\">model state before the violating operation: "
                         f"<code>{_e(violation.state_before)}</code></div>")
        parts.append(_named_ops(data, violation))
        if timeline:
            start, end = violation.window
            parts.append(f"<h3>Timeline</h3><p>Operations {_key_words(violation)} from "
                         f"{start / 1e9:.3f} to {end / 1e9:.3f} s, each a bar from its "
                         f"invocation to its completion on its client's lane; the violating "
                         f"operation outlined in red, the operations named with it in "
                         f"blue.</p><div class=\"plot\" id=\"timeline\">{timeline}</div>")
    parts.append(_counterexamples(data))
    parts.append("</section>")
    return "\n".join(parts)


def _key_words(violation: Violation) -> str:
    return "of every key" if violation.key is None else f"on key {_e(violation.key)}"


def _first_violation(first: dict[str, Any]) -> str:
    rows = [("at", f"{first.get('seconds')} s into the run")]
    for label, key in (("operation", "op"), ("process", "process"), ("served by", "node")):
        if first.get(key) is not None:
            rows.append((label, first[key]))
    faults = first.get("faults")
    rows.append(("faults in force", "; ".join(map(str, faults)) if faults else "none"))
    last = first.get("last_fault")
    if isinstance(last, dict):
        rows.append(("last fault ended", f"{last.get('fault')}, "
                                         f"{last.get('ended_seconds_before')} s before"))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _named_ops(data: RunData, violation: Violation) -> str:
    start, end = violation.window
    rows = []
    named = [("violating", op) for op in violation.primary] + \
        [("named with it", op) for op in violation.related]
    for role, op in named[:NAMED_OPS_MAX]:
        cls = "violating" if role == "violating" else "related"
        where = "" if start <= op.call <= end else " (outside the timeline's window)"
        rows.append(f"<tr class=\"{cls}\"><td>{_e(role)}</td><td><code>{_e(op.describe())}"
                    f"</code>{_e(where)}</td><td>{_e(op.node or '')}</td>"
                    f"<td>{_e(op.error or '')}</td></tr>")
    more = len(named) - NAMED_OPS_MAX
    if more > 0:
        rows.append(f"<tr><td colspan=\"4\" class=\"muted\">{more} more</td></tr>")
    for text in violation.unmatched[:10]:
        rows.append(f"<tr><td>named, not in the history</td><td><code>{_e(text)}</code>"
                    f"</td><td></td><td></td></tr>")
    return ("<table class=\"wide\"><tr><th></th><th>operation</th><th>node</th>"
            "<th>error</th></tr>" + "".join(rows) + "</table>")


def _counterexamples(data: RunData) -> str:
    checkers = (data.results or {}).get("checkers") or {}
    parts = []
    for name, result in checkers.items():
        if not isinstance(result, dict) or result.get("valid") is not False:
            continue
        ce = result.get("counterexample")
        text = orjson.dumps(ce, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() \
            if ce is not None else "none"
        if len(text) > COUNTEREXAMPLE_CHARS:
            text = text[:COUNTEREXAMPLE_CHARS] + "\n… (the rest in results.json)"
        parts.append(f"<details><summary>{_e(name)}: {_e(result.get('summary', ''))}"
                     f"</summary><pre>{_e(text)}</pre></details>")
    if not parts:
        return ""
    return "<h3>Counterexamples</h3>" + "".join(parts)


def _plot_section(anchor: str, title: str, svg: str | None, caption: str,
                  absent: str) -> str:
    if svg is None:
        return (f"<section id=\"{anchor}\"><h2>{_e(title)}</h2><p class=\"muted\">"
                f"{_e(absent)}</p></section>")
    return (f"<section id=\"{anchor}\"><h2>{_e(title)}</h2><p>{_e(caption)}</p>"
            f"<div class=\"plot\">{svg}</div></section>")


def _faults(data: RunData) -> str:
    parts = ["<section id=\"faults\"><h2>Faults</h2>"]
    tally = (data.results or {}).get("faults")
    if isinstance(tally, dict) and tally:
        rows = []
        for kind, t in tally.items():
            if not isinstance(t, dict):
                continue
            rows.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (
                kind, t.get("planned"), t.get("applied"), t.get("skipped", 0),
                len(t.get("errors") or []), _compact(t.get("aims") or {}),
                _compact(t.get("nodes") or {}))) + "</tr>")
        parts.append("<table><tr><th>kind</th><th>planned</th><th>applied</th>"
                     "<th>skipped</th><th>errors</th><th>aims</th><th>nodes hit</th></tr>" +
                     "".join(rows) + "</table>")
    if data.schedule:
        rows = []
        for row in data.schedule:
            planned_at = "" if row.at is None else f"{row.at:g}"
            applied_at = "" if row.applied_at is None else f"{row.applied_at / 1e9:.3f}"
            what = _compact(row.applied if row.applied is not None else row.planned)
            cls = " class=\"muted\"" if row.outcome == "not reached" else ""
            rows.append(f"<tr{cls}><td>{_e(planned_at)}</td><td>{_e(applied_at)}</td>"
                        f"<td>{_e(row.kind)}</td><td class=\"nowrap\">{_e(row.f)}</td>"
                        f"<td><code>{_e(what)}"
                        f"</code></td><td>{_e(row.outcome)}</td></tr>")
        # A long schedule folds away, so that it does not bury what follows it.
        opened = " open" if len(rows) <= SCHEDULE_ROWS_OPEN else ""
        parts.append(f"<h3>Schedule</h3><details{opened}><summary>{len(rows)} steps: "
                     "planned times count from the start of the clients, applied times are "
                     "on the history's clock, as in the plots</summary><table class=\"wide\">"
                     "<tr><th>planned (s)</th><th>applied (s)</th><th>kind</th><th>action</th>"
                     "<th>details</th><th>outcome</th></tr>" + "".join(rows) +
                     "</table></details>")
    else:
        parts.append("<p class=\"muted\">No faults were scheduled or recorded.</p>")
    if data.bands:
        parts.append(_bands(data.bands))
    parts.append("</section>")
    return "\n".join(parts)


def _bands(bands: Iterable[FaultBand]) -> str:
    rows = "".join(
        f"<tr><td>{b.start / 1e9:.3f}</td><td>"
        f"{'' if b.end is None else f'{b.end / 1e9:.3f}'}</td><td>{_e(b.kind)}</td>"
        f"<td>{_e(b.description)}</td></tr>" for b in bands)
    return ("<details><summary>faults in force (the shaded bands)</summary><table>"
            "<tr><th>from (s)</th><th>to (s)</th><th>kind</th><th>what</th></tr>"
            f"{rows}</table></details>")


def _files(data: RunData) -> str:
    if not data.files:
        return ""
    links = "".join(f"<li><a href=\"{_e(name)}\">{_e(name)}</a></li>" for name in data.files)
    return f"<section id=\"files\"><h2>Files</h2><ul>{links}</ul></section>"


