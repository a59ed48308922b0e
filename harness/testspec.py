"""A test is one data structure: everything a run needs, merged over defaults, saved as JSON.

`TestSpec` names the system and its options, the workload, the faults, concurrency, rate, time
limit and seed. `faultline run` builds it from command-line options or a TOML file; the run
saves it (with the fault schedule it generated) as `test.json`, and `faultline replay` reads it
back to run the same test again.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.workloads import WORKLOADS as WORKLOAD_CLASSES
from refnode.config import BUGS, READ_MODES, REPLICATION_MODES

WORKLOADS = tuple(WORKLOAD_CLASSES)
WORKLOAD_OPS = {name: cls.OPS for name, cls in WORKLOAD_CLASSES.items()}
DEFAULT_CAS_SHARE = 0.1
# The keys harness.nemesis.plan reads from nemesis_options.
NEMESIS_OPTIONS = ("shapes", "targets", "clock_rates", "clock_offsets", "overlap",
                   "latency_ms", "latency_from", "slow_link_ms", "restart_stagger",
                   "hold")
NEMESES = ("partition", "kill", "pause", "clock", "power-loss", "latency", "election-crash")
SYSTEMS = ("refnode",)


class SpecError(ValueError):
    """A test description that cannot run; the message names the option and the problem."""


@dataclass
class TestSpec:
    """One fault campaign (see the module docstring). Times are in seconds."""

    __test__ = False     # a name pytest would otherwise take for a test class

    name: str = "refnode-register"
    system: str = "refnode"
    nodes: int = 3
    replication: str = "quorum"
    read_mode: str = "leader"
    bug: str | None = None
    workload: str = "register"
    nemesis: tuple[str, ...] = ("partition", "kill")
    nemesis_interval: float = 5.0
    # Narrow what the nemesis picks from: "shapes" (partition shapes), "targets" (one, leader,
    # minority, majority, all), "clock_rates", "clock_offsets" ([low, high] seconds),
    # "slow_link_ms" (isolate-leader keeps one slow link), "latency_ms", "latency_from" (one,
    # leader: only that node's outgoing links), "overlap" (faults of different kinds at once),
    # "restart_stagger" and "hold" (election-crash: seconds between the old leader's restart
    # and the voters', and that the crashed winner then stays down).
    nemesis_options: dict = dataclasses.field(default_factory=dict)
    # refnode ClusterConfig fields beyond the replication mode (timeouts, drift bound).
    system_options: dict = dataclasses.field(default_factory=dict)
    time_limit: float = 30.0
    concurrency: int = 10
    rate: float = 200.0
    keys: int = 5
    # register workload: share of cas among operations (cas is decided by the version sweep
    # when the store is consistent, but rules out the zone method on a violation).
    cas_share: float = DEFAULT_CAS_SHARE
    # The share of each operation, e.g. {"read": 0.9, "write": 0.1} (default: the workload's
    # own; for register, reads half the time and cas_share of cas).
    mix: dict | None = None
    # Phases of client load, one after another: [{"seconds": 10, "rate": 50, "mix": {...}},
    # ...]; each may change the rate and the mix. With phases, the time limit is their total.
    phases: list | None = None
    op_timeout: float = 1.0
    recovery_timeout: float = 10.0
    seed: int | None = None
    runs_dir: str = "runs"
    # Filled in by the run, so that a replay repeats it exactly.
    schedule: list[dict] | None = None

    def validate(self) -> "TestSpec":
        """Check every field; SpecError naming the first bad one. Returns self."""
        _one_of("system", self.system, SYSTEMS)
        _one_of("replication", self.replication, REPLICATION_MODES)
        _one_of("read-mode", self.read_mode, READ_MODES)
        _one_of("workload", self.workload, WORKLOADS)
        if self.bug is not None:
            _one_of("bug", self.bug, tuple(BUGS))
        for fault in self.nemesis:
            _one_of("nemesis", fault, NEMESES)
        _at_least("nodes", self.nodes, 1)
        _at_least("concurrency", self.concurrency, 1)
        _at_least("keys", self.keys, 1)
        for name in ("time_limit", "rate", "op_timeout", "recovery_timeout",
                     "nemesis_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise SpecError(f"--{name.replace('_', '-')} must be a positive number, got "
                                f"{value!r}")
        if not isinstance(self.cas_share, (int, float)) or not 0 <= self.cas_share <= 0.5:
            raise SpecError(f"--cas-share must be between 0 and 0.5, got {self.cas_share!r}")
        if self.mix is not None:
            if self.cas_share != DEFAULT_CAS_SHARE:
                raise SpecError("give --mix or --cas-share, not both")
            _check_mix("--mix", self.mix, self.workload)
        if self.phases is not None:
            self.time_limit = _check_phases(self.phases, self.workload)
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise SpecError(f"--seed must be a non-negative integer, got {self.seed!r}")
        unknown = set(self.nemesis_options) - set(NEMESIS_OPTIONS)
        if unknown:
            raise SpecError(f"nemesis_options: unknown {', '.join(sorted(unknown))}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise SpecError(f"--name must be a plain file name, got {self.name!r}")
        return self

    def phase_at(self, elapsed: float) -> tuple[float, dict | None]:
        """(rate, mix) of the client load `elapsed` seconds into the test: the phase's own,
        else the test's (mix None: the workload's default)."""
        start = 0.0
        for phase in self.phases or ():
            start += phase["seconds"]
            if elapsed < start:
                return phase.get("rate", self.rate), phase.get("mix", self.mix)
        return self.rate, self.mix

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON data (tuples as lists)."""
        data = dataclasses.asdict(self)
        data["nemesis"] = list(self.nemesis)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TestSpec":
        """A spec from JSON data (test.json's "test" object); SpecError for unknown fields."""
        return _build(data, "test.json")


def _build(data: dict[str, Any], where: str) -> TestSpec:
    names = {f.name for f in dataclasses.fields(TestSpec)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"{where}: unknown option {', '.join(unknown)}; options: "
                        f"{', '.join(sorted(names))}")
    values = dict(data)
    if "nemesis" in values:
        values["nemesis"] = parse_nemesis(values["nemesis"])
    return TestSpec(**values).validate()


def parse_nemesis(value: Any) -> tuple[str, ...]:
    """'partition,kill' or ['partition', 'kill'] or 'none' -> ('partition', 'kill') or ()."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        parts = [str(p).strip() for p in value]
    else:
        raise SpecError(f"--nemesis must be a comma-separated list, got {value!r}")
    if parts == ["none"] or not parts:
        return ()
    for part in parts:
        _one_of("nemesis", part, NEMESES + ("none",))
    if "none" in parts:
        raise SpecError("--nemesis: 'none' cannot be combined with other faults")
    return tuple(parts)


def from_toml(path: Path, overrides: dict[str, Any] | None = None) -> TestSpec:
    """A spec from a TOML file of options (same names as the command line, with underscores),
    with `overrides` (from the command line) applied on top."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    data = {k.replace("-", "_"): v for k, v in data.items()}
    data.update(overrides or {})
    return _build(data, str(path))


PHASE_KEYS = ("seconds", "rate", "mix")


def _check_mix(where: str, mix: Any, workload: str) -> None:
    allowed = WORKLOAD_OPS[workload]
    if not isinstance(mix, dict) or not mix:
        raise SpecError(f"{where} must name operations with their shares, e.g. "
                        f"{allowed[0]}=0.9,{allowed[1]}=0.1; got {mix!r}")
    for f, share in mix.items():
        if f not in allowed:
            raise SpecError(f"{where}: the {workload} workload has no operation {f!r}; its "
                            f"operations: {', '.join(allowed)}")
        if not isinstance(share, (int, float)) or isinstance(share, bool) or share < 0:
            raise SpecError(f"{where}: the share of {f} must be a number >= 0, got {share!r}")
    if not any(mix.values()):
        raise SpecError(f"{where}: at least one share must be above 0")


def _check_phases(phases: Any, workload: str) -> float:
    """Validate the phases; returns their total length in seconds."""
    if not isinstance(phases, list) or not phases:
        raise SpecError(f"phases must be a list of tables with seconds, rate, mix; got "
                        f"{phases!r}")
    total = 0.0
    for number, phase in enumerate(phases, 1):
        where = f"phases[{number}]"
        if not isinstance(phase, dict):
            raise SpecError(f"{where} must be a table (seconds, rate, mix), got {phase!r}")
        unknown = sorted(set(phase) - set(PHASE_KEYS))
        if unknown:
            raise SpecError(f"{where}: unknown key {', '.join(unknown)}; keys: "
                            f"{', '.join(PHASE_KEYS)}")
        seconds = phase.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
            raise SpecError(f"{where}: seconds must be a positive number, got {seconds!r}")
        rate = phase.get("rate", 1.0)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 0:
            raise SpecError(f"{where}: rate must be a number >= 0 (0: no operations), got "
                            f"{rate!r}")
        if "mix" in phase:
            _check_mix(f"{where}.mix", phase["mix"], workload)
        total += seconds
    return total


def parse_mix(text: str) -> dict[str, float]:
    """'read=0.9,write=0.1' -> {'read': 0.9, 'write': 0.1}; SpecError when malformed."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, share = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            mix[name.strip()] = float(share)
        except ValueError:
            raise SpecError(f"--mix must look like read=0.9,write=0.1; got {text!r}") from None
    return mix


def _one_of(option: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"--{option} must be one of {', '.join(allowed)}, got {value!r}")


def _at_least(option: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpecError(f"--{option} must be an integer >= {minimum}, got {value!r}")


DEFAULTS = TestSpec()
