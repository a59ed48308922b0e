"""Two runs side by side: what each found, what each measured, what faults each had, and how
their configurations differ.

`compare` gives rows of plain text, so the terminal table and `--json` say the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.rundirs import store
from harness.rundirs.catalog import (INCOMPLETE, format_seconds, format_size, is_run_dir,
                                     read_run_json, summarize)

# Parts of a test's configuration shown in the run section or compared elsewhere.
_SHOWN_ELSEWHERE = {"name", "system", "workload", "seed", "schedule", "runs_dir"}
_QUANTILES = ("0.5", "0.95", "0.99", "max")


@dataclass
class Row:
    """One line of the comparison: `section`, the `item` compared, each run's value."""

    section: str
    item: str
    a: str
    b: str

    @property
    def differs(self) -> bool:
        return self.a != self.b

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "differs": self.differs}


def compare(a: Path, b: Path) -> list[Row]:
    """Rows comparing the run directories `a` and `b`; ValueError naming the path when one
    is not a run directory or its JSON cannot be read."""
    runs = [_load(Path(a)), _load(Path(b))]
    rows: list[Row] = []
    rows += _run_rows(runs)
    rows += _checker_rows(runs)
    rows += _figure_rows(runs)
    rows += _fault_rows(runs)
    rows += _config_rows(runs)
    return rows


def _load(run_dir: Path) -> dict[str, Any]:
    if not is_run_dir(run_dir):
        raise ValueError(f"{run_dir}: not a run directory (a run directory holds "
                         f"{store.TEST_FILE} and {store.HISTORY_FILE})")
    test = read_run_json(run_dir / store.TEST_FILE)
    results = read_run_json(run_dir / store.RESULTS_FILE)
    return {"summary": summarize(run_dir),
            "test": test if isinstance(test, dict) else {},
            "results": results if isinstance(results, dict) else {}}


def _pair(section: str, item: str, values: list[Any]) -> Row:
    return Row(section, item, *(_text(v) for v in values))


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return str(value)


def _run_rows(runs: list[dict]) -> list[Row]:
    s = [r["summary"] for r in runs]
    recovered = [{True: "recovered", False: "NOT recovered"}.get(x.recovered) for x in s]
    return [
        _pair("run", "path", [x.path for x in s]),
        _pair("run", "when", [x.when.strftime("%Y-%m-%d %H:%M:%S") for x in s]),
        _pair("run", "test", [x.test for x in s]),
        _pair("run", "system", [x.system for x in s]),
        _pair("run", "workload", [x.workload for x in s]),
        _pair("run", "seed", [x.seed for x in s]),
        _pair("run", "verdict", [x.verdict + (f" ({x.problem})" if x.problem else "")
                                 for x in s]),
        _pair("run", "liveness", recovered),
        _pair("run", "first violation (s)", [x.first_violation_seconds for x in s]),
        _pair("run", "duration", [format_seconds(x.duration_seconds) or None for x in s]),
        _pair("run", "size", [format_size(x.size_bytes) for x in s]),
    ]


def _verdict(value: Any) -> str:
    return {True: "valid", False: "INVALID"}.get(value, "unknown")


def _checker_rows(runs: list[dict]) -> list[Row]:
    checkers = [r["results"].get("checkers") or {} for r in runs]
    names = list(dict.fromkeys(name for c in checkers for name in c))
    rows = []
    for name in names:
        cells = []
        for run, c in zip(runs, checkers):
            if name in c and isinstance(c[name], dict):
                cells.append(f"{_verdict(c[name].get('valid'))}: {c[name].get('summary', '')}")
            else:
                cells.append(INCOMPLETE if not run["results"] else "not run")
        rows.append(Row("checkers", name, *cells))
    return rows


def _stats(run: dict) -> dict[str, Any]:
    stats = (run["results"].get("checkers") or {}).get("stats") or {}
    figures = stats.get("figures") if isinstance(stats, dict) else None
    return figures if isinstance(figures, dict) else {}


def _figure_rows(runs: list[dict]) -> list[Row]:
    stats = [_stats(r) for r in runs]
    rows = [_pair("figures", "operations", [s.get("count") for s in stats])]
    for kind in ("ok", "fail", "info"):
        rows.append(_pair("figures", f"  {kind}", [(s.get("by_type") or {}).get(kind)
                                                   for s in stats]))
    rows.append(_pair("figures", "throughput (ops/s)", [s.get("throughput_per_s")
                                                       for s in stats]))
    latency = [s.get("latency_ms") or {} for s in stats]
    for f in sorted({f for lat in latency for f in lat}):
        rows.append(Row("figures", f"latency {f} (ms)",
                        *(_quantiles(lat.get(f)) for lat in latency)))
    availability = [s.get("availability") or {} for s in stats]
    rows.append(_pair("figures", "availability", [_share(a.get("overall"))
                                                  for a in availability]))
    for f in sorted({f for a in availability for f in (a.get("by_f") or {})}):
        rows.append(_pair("figures", f"  availability {f}",
                          [_share((a.get("by_f") or {}).get(f)) for a in availability]))
    return rows


def _quantiles(q: Any) -> str:
    if not isinstance(q, dict):
        return "—"
    names = {"0.5": "p50", "0.95": "p95", "0.99": "p99", "max": "max"}
    return " ".join(f"{names[k]} {q[k]:g}" for k in _QUANTILES
                    if isinstance(q.get(k), (int, float)))


def _share(value: Any) -> str | None:
    return f"{value:.1%}" if isinstance(value, (int, float)) else None


def _fault_rows(runs: list[dict]) -> list[Row]:
    faults = [r["results"].get("faults") or {} for r in runs]
    rows = []
    for kind in list(dict.fromkeys(k for f in faults for k in f)):
        cells = []
        for f in faults:
            t = f.get(kind)
            if not isinstance(t, dict):
                cells.append("—")
                continue
            text = f"{t.get('applied')}/{t.get('planned')} applied"
            aims = t.get("aims") or {}
            if aims:
                text += " (" + ", ".join(f"{aim} x{n}" for aim, n in aims.items()) + ")"
            if t.get("skipped"):
                text += f", {t['skipped']} skipped"
            if t.get("errors"):
                text += f", {len(t['errors'])} errors"
            cells.append(text)
        rows.append(Row("faults", kind, *cells))
    return rows


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, into)
    else:
        into[prefix] = value


def _spec(run: dict) -> dict[str, Any]:
    """The test's own options, as test.json keeps them under "test"."""
    spec = run["test"].get("test")
    return spec if isinstance(spec, dict) else {}


def _settings(run: dict) -> dict[str, Any]:
    test = run["test"]
    spec = _spec(run)
    flat: dict[str, Any] = {}
    _flatten("", {k: v for k, v in spec.items() if k not in _SHOWN_ELSEWHERE}, flat)
    system = test.get("system") if isinstance(test.get("system"), dict) else {}
    _flatten("system", {k: v for k, v in system.items() if k != "name"}, flat)
    _flatten("check", test.get("check") or {}, flat)
    _flatten("versions", test.get("versions") or {}, flat)
    command = test.get("command")
    flat["command"] = " ".join(map(str, command)) if isinstance(command, list) else command
    flat["fault schedule"] = f"{len(spec.get('schedule') or [])} steps"
    return flat


def _config_rows(runs: list[dict]) -> list[Row]:
    """Only the settings that differ (the same schedule drawn from two seeds differs too),
    then how many agree."""
    settings = [_settings(r) for r in runs]
    schedules = [_spec(r).get("schedule") for r in runs]
    rows = []
    same = 0
    for key in list(dict.fromkeys(k for s in settings for k in s)):
        a, b = (_text(s.get(key)) for s in settings)
        if a == b and not (key == "fault schedule" and schedules[0] != schedules[1]):
            same += 1
            continue
        if key == "fault schedule":
            a, b = a + " (differs)", b + " (differs)"
        rows.append(Row("configuration", key, a, b))
    rows.append(Row("configuration", "settings alike", f"{same}", f"{same}"))
    return rows
