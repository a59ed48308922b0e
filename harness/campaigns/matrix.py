"""A campaign: a matrix of runs described in one TOML file, and what each row must show.

    [campaign]
    name = "nightly"           # names the campaign's directory under the runs dir
    seeds = 5                  # per row, unless a row says otherwise
    first_seed = 1
    jobs = 2                   # runs at once on this machine (default: one per core)
    budget = "90m"             # no run starts once this much time has passed

    [defaults]                 # test options every row starts from (a run's TOML names)
    time_limit = 60

    [[matrix]]                 # rows: every combination of the lists below
    system = [{name = "refnode"}, {name = "refnode", read_mode = "lease"}]
    workload = ["register", "set"]
    nemesis = [["partition"], ["partition", "kill"]]
    expect = "valid"           # valid | invalid | loses-writes | keeps-writes
    seeds = 10

    [[row]]                    # one row, any test option overridden
    label = "stale-leader-read"
    group = "planted bugs"     # rows of a group are tabled together
    system = {name = "refnode", bug = "stale-leader-read"}
    nemesis = ["partition"]
    expect = "invalid"
    needed = 4                 # seeds that must show it (default: every seed)

A row's runs are its cells, one per seed. `load` checks the whole file, and every row's test
(the system takes the workload, the faults, the options; seeds change none of that) before
anything runs: a mistake is one `CampaignError` line naming the file and the row.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.run.spec import SpecError, TestSpec, build, read_toml

VALID, INVALID, LOSES_WRITES = "valid", "invalid", "loses-writes"
KEEPS_WRITES = "keeps-writes"
EXPECTATIONS = (VALID, INVALID, LOSES_WRITES, KEEPS_WRITES)
CAMPAIGN_KEYS = ("name", "seeds", "first_seed", "jobs", "budget")
ROW_KEYS = ("label", "expect", "needed", "seeds", "group")
# A matrix block's axes: each a list whose elements vary from row to row.
AXES = ("system", "workload", "nemesis")
DEFAULT_SEEDS = 5
MOST_SEEDS = 10_000             # per row: beyond, a typo rather than a campaign
# Names a campaign's directory holds beside its rows' directories.
RESERVED_LABELS = ("latest", "cells", "campaign.json", "index.html")
# Runs at once by default: one per core. Measured on 2 cores (bench/campaign_bench.py,
# docs/benchmarks.md): 2 at once took half the time of 1 with the same verdicts and first
# violations; 3 at once saved a little more and caught a planted bug in one seed of two.
DEFAULT_JOBS = len(os.sched_getaffinity(0)) or 1      # the cores this process may use


class CampaignError(ValueError):
    """A campaign file that cannot be run as written; the message is one line naming the
    file and the place in it."""


@dataclass(frozen=True)
class Row:
    """One configuration over its seeds, and what it must show: `needed` of its runs valid
    (VALID), invalid (INVALID), losing acknowledged writes (LOSES_WRITES), or keeping every
    acknowledged write whatever else the checkers find (KEEPS_WRITES)."""

    label: str
    expect: str
    options: dict[str, Any]        # test options by name, as a run's TOML file gives them
    seeds: tuple[int, ...]
    needed: int
    group: str = ""

    def spec(self, seed: int, runs_dir: str) -> TestSpec:
        """The row's test with `seed`, stored under `runs_dir` (SpecError when it cannot
        run as written)."""
        return build(dict(self.options, name=self.label, seed=seed, runs_dir=runs_dir),
                     f"row {self.label}")

    def with_options(self, **options: Any) -> "Row":
        """The same row with test options replaced (those given as None left as they are)."""
        given = {k: v for k, v in options.items() if v is not None}
        return dataclasses.replace(self, options={**self.options, **given})

    def with_seeds(self, count: int, first: int = 1) -> "Row":
        """The same row over `count` seeds from `first`, its target scaled to them (at least
        one run must show it)."""
        needed = max(1, -(-self.needed * count // len(self.seeds)))
        return dataclasses.replace(self, seeds=tuple(range(first, first + count)),
                                   needed=min(needed, count))

    @property
    def bug(self) -> str | None:
        """The planted bug the row switches on (refnode's `bug` option), if any."""
        system = self.options.get("system")
        return system.get("bug") if isinstance(system, dict) else None


@dataclass(frozen=True)
class Cell:
    """One run of a campaign: a row and a seed."""

    row: Row
    seed: int

    @property
    def key(self) -> str:
        return f"{self.row.label} seed {self.seed}"


@dataclass
class Campaign:
    """A campaign's rows and how to run them: `jobs` at once here, none started after
    `budget` seconds; `source` names the file it came from."""

    name: str
    rows: list[Row]
    jobs: int = DEFAULT_JOBS
    budget: float | None = None     # seconds
    source: str = ""

    def cells(self) -> list[Cell]:
        """Every run, row by row, seeds in order."""
        return [Cell(row, seed) for row in self.rows for seed in row.seeds]


def load(path: Path, only: list[str] | None = None, check: bool = True) -> Campaign:
    """The campaign in the TOML file at `path`, checked (see the module docstring), keeping
    only the rows labelled in `only` when given. CampaignError when anything is wrong. With
    `check` false, rows' tests are not built (the file's own shape still is): for listing
    rows, or for a caller that checks each row itself and leaves out those this machine
    cannot run."""
    return parse(read_toml(path, CampaignError), str(path), only, check)


def parse(data: dict[str, Any], where: str, only: list[str] | None = None,
          check: bool = True) -> Campaign:
    """A checked campaign from TOML data (`where` names its source in errors; `check` as for
    `load`)."""
    unknown = sorted(set(data) - {"campaign", "defaults", "matrix", "row"})
    if unknown:
        raise CampaignError(f"{where}: unknown table {', '.join(unknown)}; tables: campaign, "
                            f"defaults, matrix, row")
    head = _table(data, "campaign", where)
    _no_unknown(head, CAMPAIGN_KEYS, f"{where}: [campaign]")
    name = head.get("name", Path(where).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise CampaignError(f"{where}: [campaign] name must be letters, digits, '.', '_' or "
                            f"'-', got {name!r}")
    seeds = _positive_int(head.get("seeds", DEFAULT_SEEDS), f"{where}: [campaign] seeds",
                          MOST_SEEDS)
    first_seed = _non_negative_int(head.get("first_seed", 1), f"{where}: [campaign] first_seed")
    jobs = _positive_int(head.get("jobs", DEFAULT_JOBS), f"{where}: [campaign] jobs")
    budget = parse_duration(head["budget"], f"{where}: [campaign] budget") \
        if "budget" in head else None
    defaults = _table(data, "defaults", where)
    rows: list[Row] = []
    for number, block in enumerate(_blocks(data, "matrix", where), 1):
        rows += _matrix_rows(block, defaults, seeds, first_seed, f"{where}: [[matrix]] {number}")
    for number, block in enumerate(_blocks(data, "row", where), 1):
        rows.append(_row(block, defaults, seeds, first_seed, f"{where}: [[row]] {number}"))
    if not rows:
        raise CampaignError(f"{where}: no rows: give at least one [[row]] or [[matrix]]")
    labels = [r.label for r in rows]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise CampaignError(f"{where}: two rows are labelled {', '.join(twice)}; give each "
                            f"its own label")
    if only:
        missing = [label for label in only if label not in labels]
        if missing:
            raise CampaignError(f"{where}: no row {', '.join(missing)}; rows: "
                                f"{', '.join(labels)}")
        rows = [r for r in rows if r.label in only]
    for row in rows if check else ():
        try:
            row.spec(row.seeds[0], "runs")
        except SpecError as exc:
            said = str(exc)
            if not said.startswith(f"row {row.label}: "):
                said = f"row {row.label}: {said}"
            raise CampaignError(f"{where}: {said}") from None
    return Campaign(name, rows, jobs, budget, where)


def _matrix_rows(block: dict[str, Any], defaults: dict[str, Any], seeds: int,
                 first_seed: int, where: str) -> list[Row]:
    """The rows of one [[matrix]] block: one per combination of its axes."""
    axes = {}
    for axis in AXES:
        if axis in block:
            values = block[axis]
            if not isinstance(values, list) or not values:
                raise CampaignError(f"{where}: {axis} must be a non-empty list (the values "
                                    f"the matrix runs through), got {values!r}")
            axes[axis] = values
    if not axes:
        raise CampaignError(f"{where}: a matrix needs at least one of {', '.join(AXES)} as a "
                            f"list; for a single configuration use [[row]]")
    if "label" in block:
        raise CampaignError(f"{where}: a matrix's rows are labelled by their values; label "
                            f"belongs to a [[row]]")
    fixed = {k: v for k, v in block.items() if k not in axes}
    rows = []
    for combination in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combination))
        label = "-".join(_label_part(axis, value) for axis, value in chosen.items())
        rows.append(_row({**fixed, **chosen, "label": label}, defaults, seeds, first_seed,
                         where))
    return rows


def _row(block: dict[str, Any], defaults: dict[str, Any], seeds: int, first_seed: int,
         where: str) -> Row:
    if not isinstance(block, dict):
        raise CampaignError(f"{where}: must be a table, got {block!r}")
    label = block.get("label")
    if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", label):
        raise CampaignError(f"{where}: label must be letters, digits, '.', '_', '+' or '-' (it "
                            f"names the row's runs), got {label!r}")
    if label in RESERVED_LABELS:
        raise CampaignError(f"{where}: label {label} names a file of the campaign's own "
                            f"directory; choose another")
    where = f"{where} ({label})"
    expect = block.get("expect", VALID)
    if expect not in EXPECTATIONS:
        raise CampaignError(f"{where}: expect must be one of {', '.join(EXPECTATIONS)}, got "
                            f"{expect!r}")
    count = _positive_int(block.get("seeds", seeds), f"{where}: seeds", MOST_SEEDS)
    needed = _positive_int(block.get("needed", count), f"{where}: needed")
    if needed > count:
        raise CampaignError(f"{where}: needed ({needed}) is more than its seeds ({count})")
    options = _merge(defaults, {k: v for k, v in block.items() if k not in ROW_KEYS})
    for key in ("name", "seed", "runs_dir", "schedule"):
        if key in options:
            raise CampaignError(f"{where}: {key} is set by the campaign, not by a row")
    group = block.get("group", "")
    if not isinstance(group, str):
        raise CampaignError(f"{where}: group must be a text, got {group!r}")
    return Row(label, expect, options, tuple(range(first_seed, first_seed + count)), needed,
               group)


def _merge(defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """A row's options over the defaults; the system's and the faults' options merge name
    by name (a row naming another system starts from that system's defaults)."""
    merged = {k.replace("-", "_"): v for k, v in defaults.items()}
    for key, value in options.items():
        key = key.replace("-", "_")
        if key == "system" and isinstance(value, dict) and isinstance(merged.get(key), dict) \
                and value.get("name", "refnode") == merged[key].get("name", "refnode"):
            value = {**merged[key], **value}
        elif key == "nemesis_options" and isinstance(value, dict) and \
                isinstance(merged.get(key), dict):
            value = {**merged[key], **value}
        merged[key] = value
    return merged


def _label_part(axis: str, value: Any) -> str:
    """A short, path-safe name for one axis value: `refnode`, `refnode.lease`, `set`,
    `partition+kill`."""
    if axis == "system" and isinstance(value, dict):
        extra = [str(v) for k, v in value.items() if k != "name"]
        text = ".".join([str(value.get("name", "refnode")), *extra])
    elif axis == "nemesis" and isinstance(value, list):
        text = "+".join(str(v) for v in value) or "none"
    else:
        text = str(value).replace(",", "+")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def _blocks(data: dict[str, Any], name: str, where: str) -> list[dict[str, Any]]:
    blocks = data.get(name, [])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise CampaignError(f"{where}: {name} must be written [[{name}]] (a list of tables)")
    return blocks


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise CampaignError(f"{where}: {name} must be a table [{name}], got {table!r}")
    return table


def _no_unknown(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise CampaignError(f"{where}: unknown key {', '.join(unknown)}; keys: "
                            f"{', '.join(known)}")


def _positive_int(value: Any, where: str, most: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or \
            (most is not None and value > most):
        bound = f" and <= {most}" if most is not None else ""
        raise CampaignError(f"{where} must be an integer >= 1{bound}, got {value!r}")
    return value


def _non_negative_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CampaignError(f"{where} must be an integer >= 0, got {value!r}")
    return value


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, where: str) -> float:
    """Seconds from a number of seconds or a text like '90m', '2h', '45s', '1d'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if found and float(found.group(1)) > 0:
            return float(found.group(1)) * _UNITS[found.group(2) or "s"]
    raise CampaignError(f"{where} must be a positive duration such as 3600, '90m' or '2h', "
                        f"got {value!r}")
