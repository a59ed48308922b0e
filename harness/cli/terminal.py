"""What a person sees in the terminal: progress while work goes on, tables when it ends.

Progress goes to stderr (and only to a terminal), results to stdout, so that piping the
output of a command keeps only its results.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

# Piped output is read in logs and CI, where 80 columns would cut tables short.
out = Console(highlight=False)
if not out.is_terminal:
    out = Console(highlight=False, width=120)
err = Console(stderr=True, highlight=False)
if not err.is_terminal:
    err = Console(stderr=True, highlight=False, width=120)

_VERDICT_STYLE = {True: ("valid", "bold green"), False: ("INVALID", "bold red"),
                  "unknown": ("unknown", "bold yellow")}

# Text from a history (a value written or read) is shortened for the terminal, kept whole in
# results.json: a run of this many characters without a space is a value, not words, and is
# cut to its start and its length; a whole text longer than a screenful is cut too. A 10 MB
# value took 190 s to print (rich wrapping it line by line) and filled 57 MB of output.
LONG_RUN = 60
_LONG_RUN = re.compile(r"\S{%d,}" % (LONG_RUN + 1))
LONG_TEXT = 2000


def shorten(text: Any) -> str:
    """`text` as a string short enough for a terminal: each run of more than LONG_RUN
    characters without a space as its first 24 and its length ("'abc...' (N chars)", N
    counting what stands between the quotes of a quoted value), and the whole cut after
    LONG_TEXT characters with a word of how much more there is (results.json has all)."""
    text = _LONG_RUN.sub(_shortened_run, str(text))
    if len(text) > LONG_TEXT:
        text = f"{text[:LONG_TEXT]}... ({len(text) - LONG_TEXT:,} more chars in results.json)"
    return text


def _shortened_run(match: re.Match) -> str:
    run = match.group()
    quote = run[0] if run[0] in "'\"" and run.endswith(run[0]) else ""
    inner = run[1:-1] if quote else run
    return f"{quote}{inner[:24]}...{quote} ({len(inner):,} chars)"


def verdict_text(valid: Any) -> str:
    """A verdict as rich markup: valid, INVALID or unknown."""
    word, style = _VERDICT_STYLE.get(valid, (str(valid), "bold"))
    return f"[{style}]{word}[/]"


@contextlib.contextmanager
def status(message: str, quiet: bool = False) -> Iterator[None]:
    """A spinner with `message` on stderr while the block runs (nothing when not a terminal)."""
    if quiet or not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


@contextlib.contextmanager
def progress(total: int, message: str, quiet: bool = False) -> Iterator[Callable[[], None]]:
    """A progress bar over `total` steps; yields the function that advances it by one."""
    if quiet or not err.is_terminal:
        yield lambda: None
        return
    bar = Progress(TextColumn(message), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, transient=True)
    with bar:
        task = bar.add_task(message, total=total)
        yield lambda: bar.advance(task)


@contextlib.contextmanager
def check_progress(message: str, quiet: bool = False) -> Iterator[Callable[..., None]]:
    """Progress of a check on stderr while the block runs; yields the function the
    linearizability check calls with (ops done, ops in all, keys done, keys in all). On a
    terminal: a bar with ops and keys done, time elapsed and an estimate of what is left.
    Elsewhere (a CI log): a line every 10 s once the check has run 2 s, and a last one."""
    if quiet:
        yield lambda *_: None
        return
    if err.is_terminal:
        bar = Progress(TextColumn(message), BarColumn(), TextColumn("{task.fields[done]}"),
                       TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                       console=err, transient=True)
        with bar:
            task = bar.add_task(message, total=None, done="")

            def update(ops: int, total: int, keys: int, keys_total: int) -> None:
                bar.update(task, completed=ops, total=max(total, 1),
                           done=f"{ops:,}/{total:,} ops, {keys:,}/{keys_total:,} keys")
            yield update
        return
    started = time.monotonic()
    last_line: list[float | None] = [None]

    def log(ops: int, total: int, keys: int, keys_total: int) -> None:
        now = time.monotonic()
        finished = ops >= total
        recent = last_line[0] is not None and now - last_line[0] < 10
        if now - started < 2 or (recent and not finished):
            return
        last_line[0] = now
        elapsed = now - started
        left = "" if finished or not ops else \
            f", about {elapsed * (total - ops) / ops:.0f} s left"
        err.print(f"{message}: {ops:,} of {total:,} ops, {keys:,} of {keys_total:,} keys, "
                  f"{elapsed:.0f} s{left}")
    yield log


def print_context(results: dict) -> None:
    """Where a run's results place its first violation (the node that served it, the faults
    in force, the last one to end before it) and its lost elements (by fault)."""
    first = results.get("first_violation")
    if first:
        served = f", served by {first['node']}" if first.get("node") else ""
        what = f": {shorten(first['op'])}{served}" if first.get("op") else ""
        out.print(f"first violation at {first['seconds']} s into the run{what}")
        out.print(f"  faults in force then: {'; '.join(first['faults']) or 'none'}")
        if first.get("last_fault"):
            last = first["last_fault"]
            out.print(f"  the last fault before it, ended {last['ended_seconds_before']} s "
                      f"earlier: {last['fault']}")
    elif results.get("first_violation_seconds") is not None:
        out.print(f"first violation at {results['first_violation_seconds']} s into the run")
    losses = results.get("losses")
    if losses:
        low, high = losses["added_between_seconds"]
        out.print(f"lost: {losses['lost']:,} element(s), {losses['acknowledged']:,} of them "
                  f"acknowledged, added between {low} and {high} s into the run:")
        for fault, count in losses["by_fault"].items():
            out.print(f"  {count:>7,} added during {fault}" if not fault.startswith("no fault")
                      else f"  {count:>7,} added with {fault}")


def print_results(combined: dict, results: list, written: Path | None = None) -> None:
    """The verdict of each checker, the combined verdict, and the counterexamples."""
    table = Table(title=f"checked {combined.get('history', '')}", title_justify="left")
    table.add_column("checker")
    table.add_column("verdict")
    table.add_column("summary", overflow="fold")
    for result in results:
        table.add_row(result.checker, verdict_text(result.valid), shorten(result.summary))
    out.print(table)
    for result in results:
        if result.valid is False and result.counterexample:
            _print_counterexample(result)
    print_context(combined)
    seconds = combined.get("seconds", {})
    out.print(f"verdict: {verdict_text(combined['valid'])}"
              f"  (read {seconds.get('read', 0):.2f} s, checked {seconds.get('check', 0):.2f} s)")
    if written:
        out.print(f"results written to {written}")


def _print_counterexample(result) -> None:
    ce = result.counterexample
    out.print(f"\n[bold]{result.checker}: counterexample[/]")
    if result.checker == "linearizable":
        key = "" if ce.get("key") is None else f"key: {ce['key']}   "
        out.print(f"  {key}method: {ce.get('method')}")
        out.print(f"  {shorten(ce.get('explanation'))}")
        op = ce["op"]
        where = f"event {op.get('invoke_index')}" + \
            (f", served by {op['node']}" if op.get("node") else "")
        out.print(f"  cannot place: {shorten(op['description'])} ({where})")
        out.print(f"  state before it: {shorten(ce.get('state_before'))}")
        if ce.get("prefix_length"):
            out.print(f"  longest linearizable prefix: {ce['prefix_length']} ops, ending with:")
            for op in ce.get("prefix_tail", []):
                out.print(f"    {shorten(op['description'])}")
        for label in ("conflicting", "concurrent"):
            if ce.get(label):
                out.print(f"  {label} ops:")
                for op in ce[label]:
                    out.print(f"    {shorten(op['description'])}")
        return
    # Other checkers' counterexamples are JSON: one readable line per entry, operations by
    # their descriptions, raw times and indexes (kept in results.json) left out.
    for name, value in ce.items():
        if name in HIDDEN_ENTRIES:
            continue
        label = name.replace("_", " ")
        if isinstance(value, list):
            out.print(f"  {label}:" + ("" if value else " none"))
            for item in value[:10]:
                out.print(f"    {shorten(readable(item))}", highlight=False)
            if len(value) > 10:
                out.print(f"    ... and {len(value) - 10} more (all in results.json)")
        else:
            out.print(f"  {label}: {shorten(readable(value))}", highlight=False)


# Counterexample entries kept for other uses (the run summary), not for reading.
HIDDEN_ENTRIES = frozenset({"lost_add_calls"})
# Fields of an entry a person does not read: raw nanosecond times and event indexes (the
# operation's description carries its times in seconds).
HIDDEN_FIELDS = frozenset({"call", "ret", "id", "invoke_index", "complete_index"})


def readable(value: Any) -> str:
    """A counterexample entry as one line: "name: value" pairs, an operation by its
    description (with its version, when it has one), absent fields left out."""
    if isinstance(value, dict):
        if "op" in value and isinstance(value["op"], str):
            version = value.get("version")
            return value["op"] + (f" (version {version})" if version is not None else "")
        if "description" in value:
            return str(value["description"])
        parts = [f"{k.replace('_', ' ')}: {readable(v)}" for k, v in value.items()
                 if k not in HIDDEN_FIELDS and v is not None and v != []]
        return "; ".join(parts)
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(v) for v in value)
    return str(value)


def print_manifest(rows: list[dict]) -> None:
    """A table of expected against found verdicts for a corpus, and a count of disagreements."""
    table = Table(title="corpus", title_justify="left")
    table.add_column("history", overflow="fold")
    for column in ("model", "expected", "found", "method", "seconds", ""):
        table.add_column(column, no_wrap=True)
    for row in rows:
        mark = "[green]agrees[/]" if row["agrees"] else "[bold red]DISAGREES[/]"
        table.add_row(row["file"], row["model"], verdict_text(row["expected"]),
                      verdict_text(row["found"]), row["method"], f"{row['seconds']:.3f}", mark)
    out.print(table)
    disagreements = sum(1 for row in rows if not row["agrees"])
    out.print(f"{len(rows)} histories, {len(rows) - disagreements} agree, "
              f"{disagreements} disagree")
