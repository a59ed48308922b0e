"""A test is one data structure: everything a run needs, merged over defaults, saved as JSON.

`TestSpec` names the system and its options, the network, the workload, the faults and their
options, concurrency, rate, time limit and seed. `faultline run` builds it from command-line
options or a TOML file; the run saves it (with the fault schedule it generated) as
`test.json`, and `faultline replay` reads it back to run the same test again.

`validate` refuses, before anything starts, a test the system cannot take: an unknown system
or option, a workload or node count it does not support, a network it cannot run on or that
cannot be used here, a fault it lacks the capability for; and a workload option given to a
workload that has no such option. Every refusal is a `SpecError` of one line naming the
option.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkers import registry
from checkers.base import Checker
from checkers.suite import make_checkers
from harness import faults, networks, systems, workloads
from harness.faults import schedule as fault_schedule
from harness.networks.base import NetworkUnavailable
from harness.systems.base import Adapter, capabilities_of, capability_gaps
from harness.workloads.base import Workload
from harness.workloads.register import DEFAULT_CAS_SHARE
from pluginkit.options import OptionError

DEFAULT_SYSTEM = "refnode"
DEFAULT_NODES = 3
# Seconds the checkers of a run may spend on its history (the linearizability search's budget).
CHECK_BUDGET_SECONDS = 60.0


class SpecError(ValueError):
    """A test description that cannot run; the message names the option and the problem."""


@dataclass
class TestSpec:
    """One test under faults (see the module docstring). Times are in seconds."""

    __test__ = False     # a name pytest would otherwise take for a test class

    name: str | None = None          # default: system-workload[-label], e.g. refnode-register
    system: str = DEFAULT_SYSTEM
    # The adapter's own options, by name (refnode: replication, read_mode, bug, timings).
    system_options: dict = dataclasses.field(default_factory=dict)
    network: str | None = None       # "proxy" or "netns"; default: the adapter's first
    # Default: DEFAULT_NODES, or the nearest count the system takes (PostgreSQL: 2).
    nodes: int | None = None
    workload: str = "register"
    nemesis: tuple[str, ...] = ("partition", "kill")
    nemesis_interval: float = 5.0
    # Options of the fault kinds (harness.faults): shapes, partition_mode, slow_link_ms,
    # targets, clock_rates, clock_offsets, latency_ms, latency_from, restart_stagger, hold,
    # and the scheduler's overlap. `faultline systems` and `run --help` list them.
    nemesis_options: dict = dataclasses.field(default_factory=dict)
    time_limit: float = 30.0
    concurrency: int = 10
    rate: float = 200.0
    # Contention on few keys at a time, each retiring after a bounded number of operations
    # for a fresh one (0: never), as Jepsen's independent keys: during a fault's window most
    # operations meet on the same key, where a stale read or a lost write shows, and each
    # key's history stays short.
    keys: int = 2
    ops_per_key: int = 200
    # register workload: share of cas among operations (cas is decided by the version sweep
    # when the store is consistent, but rules out the zone method on a violation). Other
    # workloads ignore it: campaigns have long set it beside every workload.
    cas_share: float = DEFAULT_CAS_SHARE
    # Characters in each written value (0: small numbers); the workloads that take it
    # (register, session) say so in their TAKES.
    value_size: int = 0
    # list-append workload: the consistency models its checker judges transactions by
    # (checkers.list_append.MODELS; None: the workload's default, strict-serializable).
    consistency_models: list[str] | None = None
    # Checkers to run besides the workload's, by name (built-in or plug-in; `faultline check
    # --help` lists them), each with its defaults and the workload's settings it declares.
    checkers: list[str] | None = None
    # The share of each operation, e.g. {"read": 0.9, "write": 0.1} (default: the workload's
    # own; for register, reads half the time and cas_share of cas; for list-append, the
    # shares of its micro-operations r and append).
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
        """Check every field, and that the system can take the test; SpecError naming the
        first problem. Fills in the default name, network and node count. Returns self."""
        workload = self.workload_class()
        for fault in self.nemesis:
            fault_class(fault)
        if self.nodes is not None:
            _at_least("nodes", self.nodes, 1)
        _at_least("concurrency", self.concurrency, 1)
        _at_least("keys", self.keys, 1)
        _at_least("ops-per-key", self.ops_per_key, 0)
        _at_least("value-size", self.value_size, 0)
        if self.value_size:
            _taken_by("--value-size", "value_size", workload)
        if self.consistency_models is not None:
            self.consistency_models = _consistency_models(self.consistency_models, workload)
        if self.checkers is not None:
            self.checkers = _checkers(self.checkers)
        for name in ("time_limit", "rate", "op_timeout", "recovery_timeout",
                     "nemesis_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    not math.isfinite(value) or value <= 0:
                raise SpecError(f"--{name.replace('_', '-')} must be a positive, finite "
                                f"number, got {value!r}")
        if not isinstance(self.cas_share, (int, float)) or not 0 <= self.cas_share <= 0.5:
            raise SpecError(f"--cas-share must be between 0 and 0.5, got {self.cas_share!r}")
        if self.mix is not None:
            if self.cas_share != DEFAULT_CAS_SHARE:
                raise SpecError("give --mix or --cas-share, not both")
            _check_mix("--mix", self.mix, workload)
        if self.phases is not None:
            self.time_limit = _check_phases(self.phases, workload)
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise SpecError(f"--seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.system_options, dict):
            raise SpecError(f"system options must be a table of names and values, got "
                            f"{self.system_options!r}")
        if not isinstance(self.nemesis_options, dict):
            raise SpecError(f"nemesis options must be a table of names and values, got "
                            f"{self.nemesis_options!r}")
        adapter = self.adapter()
        self.make_system()                 # the adapter's own checks of its options
        if self.workload not in adapter.WORKLOADS:
            raise SpecError(f"--workload: {self.system} supports "
                            f"{', '.join(adapter.WORKLOADS)}, not {self.workload}")
        low, high = adapter.MIN_NODES, adapter.MAX_NODES
        if self.nodes is None:
            self.nodes = max(low, min(DEFAULT_NODES, high if high is not None else DEFAULT_NODES))
        if self.nodes < low or (high is not None and self.nodes > high):
            if low == high:
                takes = f"exactly {low} node" + ("s" if low > 1 else "")
            else:
                takes = f"{low} to {high} nodes" if high is not None else f"{low} or more nodes"
            raise SpecError(f"--nodes: {self.system} runs with {takes}, not {self.nodes}")
        self._check_network(adapter)
        self._check_faults(adapter)
        if self.name is None:
            label = adapter.label(self.system_options)
            self.name = f"{self.system}-{self.workload}" + (f"-{label}" if label else "")
        if not isinstance(self.name, str) or not self.name or "/" in self.name or \
                self.name.startswith("."):
            raise SpecError(f"--name must be a plain file name, got {self.name!r}")
        self._check_checkers()
        return self

    def _check_checkers(self) -> None:
        """Make the checkers a run of this test will judge it by (the workload's and those the
        test adds) with the options they will get, so that one they refuse is a SpecError now,
        not an error once the run is over."""
        try:
            self.judging_checkers(workloads.make_workload(self.workload, self.keys,
                                                          **self.workload_options()))
        except (OptionError, registry.UnknownChecker, registry.BrokenChecker) as exc:
            raise SpecError(f"checkers: {exc}") from None

    def judging_checkers(self, workload: Workload, observing: bool = False) -> list[Checker]:
        """The checkers a run of this test judges its history by, made with the options they
        get (`workloads.checker_options`, the run's CHECK_BUDGET_SECONDS): the workload's,
        those the test adds, and election safety when the nodes' roles are `observing`.
        OptionError, UnknownChecker or BrokenChecker for one that cannot be made."""
        names = list(dict.fromkeys([*workload.checkers, *(self.checkers or ()),
                                    *(["election-safety"] if observing else [])]))
        return make_checkers(names, workloads.checker_options(workload, names,
                                                              budget=CHECK_BUDGET_SECONDS))

    def workload_class(self) -> type[Workload]:
        """The class of the test's workload; SpecError when there is none."""
        if not isinstance(self.workload, str):
            _one_of("workload", self.workload, tuple(workloads.names()))
        try:
            return workloads.find(self.workload)
        except workloads.UnknownWorkload:
            raise SpecError(f"--workload must be one of {', '.join(workloads.names())}, got "
                            f"{self.workload!r}") from None
        except workloads.BrokenWorkload as exc:
            raise SpecError(f"--workload: {exc}") from None

    def workload_options(self) -> dict[str, Any]:
        """The test's settings that belong to workloads, by name, for `make_workload` (which
        hands each workload those it has); None for one not given."""
        return {"cas_share": self.cas_share, "value_size": self.value_size,
                "consistency_models": self.consistency_models}

    def adapter(self) -> type[Adapter]:
        """The adapter class of the test's system; SpecError when there is none."""
        try:
            return systems.find(self.system)
        except (systems.UnknownSystem, systems.BrokenAdapter) as exc:
            raise SpecError(f"--system: {exc}") from None

    def make_system(self) -> Adapter:
        """A fresh adapter for this test, configured by its system options."""
        try:
            return self.adapter()(self.system_options, workload=self.workload)
        except OptionError as exc:
            raise SpecError(str(exc)) from None

    def setting(self) -> faults.Setting:
        """What the test offers its faults (for planning and for refusals)."""
        backend = networks.backend(self.network)
        system = self.make_system()
        return faults.Setting(self.nodes, capabilities_of(self.adapter()), self.network,
                              backend.features(), dict(self.nemesis_options),
                              backend.missing, capability_gaps(self.adapter()),
                              system.clock_drift_bound(), system.failure_detection(),
                              system=self.system)

    def _check_network(self, adapter: type[Adapter]) -> None:
        if self.network is None:
            self.network = adapter.NETWORKS[0]
        _one_of("network", self.network, networks.NAMES)
        if self.network not in adapter.NETWORKS:
            raise SpecError(f"--network: {self.system} runs on "
                            f"{', '.join(adapter.NETWORKS)}, not {self.network}")
        try:
            networks.backend(self.network).check_usable()
        except NetworkUnavailable as exc:
            others = [n for n in adapter.NETWORKS if n != self.network]
            hint = f"; use --network {others[0]}" if others else \
                f" ({self.system} runs only on the {self.network} network)"
            raise SpecError(f"{exc}{hint}") from None

    def _check_faults(self, adapter: type[Adapter]) -> None:
        try:
            self.nemesis_options = fault_schedule.resolve_options(
                self.nemesis, self.nemesis_options, "--nemesis-opt")
        except OptionError as exc:
            raise SpecError(str(exc)) from None
        setting = self.setting()
        for kind in dict.fromkeys([*self.nemesis, *self._scheduled_kinds()]):
            refusal = fault_class(kind).refusal(setting)
            if refusal:
                raise SpecError(f"--nemesis {kind}: {refusal} ({self.system} on the "
                                f"{self.network} network)")

    def _scheduled_kinds(self) -> list[str]:
        """The fault kinds a stored schedule (a replay's) applies; SpecError for a step that
        is not one."""
        if self.schedule is None:
            return []
        if not isinstance(self.schedule, list):
            raise SpecError(f"schedule must be a list of steps, got {self.schedule!r}")
        kinds = []
        known = faults.names()
        for number, step in enumerate(self.schedule):
            try:
                kind = fault_schedule.kind_of(step)
                if kind not in known or not isinstance(step["value"], dict):
                    raise ValueError(f"unknown fault kind {kind!r}")
                float(step["at"])
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise SpecError(f"schedule[{number}]: not a fault step ({exc})") from None
            kinds.append(kind)
        return kinds

    def phase_at(self, elapsed: float) -> tuple[float, dict | None]:
        """(rate, mix) of the client load `elapsed` seconds into the test: the phase's own,
        else the test's (mix None: the workload's default). Past the end of the phases (the
        moments before the clients notice the time is up), the last phase's."""
        start = 0.0
        for phase in self.phases or ():
            start += phase["seconds"]
            if elapsed < start:
                break
        else:
            if not self.phases:
                return self.rate, self.mix
        return phase.get("rate", self.rate), phase.get("mix", self.mix)

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON data (tuples as lists)."""
        data = dataclasses.asdict(self)
        data["nemesis"] = list(self.nemesis)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TestSpec":
        """A spec from JSON data (test.json's "test" object); SpecError for unknown fields.
        Files written before fault options belonged to fault kinds may hold options of kinds
        the test did not run, which never had an effect: they are dropped."""
        values = dict(data)
        kinds = parse_nemesis(values.get("nemesis", cls.nemesis))
        if isinstance(values.get("nemesis_options"), dict):
            for kind in kinds:
                fault_class(kind)
            mine = fault_schedule.declared_options(kinds)
            values["nemesis_options"] = {k: v for k, v in values["nemesis_options"].items()
                                         if k in mine}
        return build(values, "test.json")


def build(data: dict[str, Any], where: str) -> TestSpec:
    """A validated spec from options by name (a TOML file's, test.json's, the command
    line's).

    The system may be a name or a table (`[system] name = "refnode"` with its options beside
    the name). A top-level name that is none of the test's options but one of the system's
    (refnode's `replication`, `read_mode`, `bug` in files written before systems had options
    of their own) is taken as a system option."""
    names = {f.name for f in dataclasses.fields(TestSpec)}
    values = _system_table(data, where)
    system = values.get("system", DEFAULT_SYSTEM)
    options = dict(values.get("system_options") or {})
    if not isinstance(system, str):
        raise SpecError(f"{where}: system must be a name, got {system!r}")
    values["system"] = system
    try:
        adapter = systems.find(system)
    except (systems.UnknownSystem, systems.BrokenAdapter) as exc:
        raise SpecError(f"{where}: {exc}") from None
    declared = {o.name for o in adapter.OPTIONS}
    moved = {key: values.pop(key) for key in sorted(set(values) - names) if key in declared}
    legacy = adapter.legacy_options({k: v for k, v in moved.items() if v is not None},
                                    values.get("workload", TestSpec.workload))
    options = {**legacy, **options}
    unknown = sorted(set(values) - names)
    if unknown:
        raise SpecError(f"{where}: unknown option {', '.join(unknown)}; options: "
                        f"{', '.join(sorted(names))}")
    values["system_options"] = options
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
    known = tuple(faults.names())
    for part in parts:
        _one_of("nemesis", part, known + ("none",))
    if "none" in parts:
        raise SpecError("--nemesis: 'none' cannot be combined with other faults")
    return tuple(parts)


def fault_class(kind: Any) -> type[faults.Fault]:
    """The fault kind called `kind` (a plug-in's included); SpecError in one line when there
    is none, or it cannot be loaded."""
    try:
        return faults.find(kind)
    except faults.UnknownFault:
        raise SpecError(f"--nemesis must be one of {', '.join(faults.names())}, got "
                        f"{kind!r}") from None
    except faults.BrokenFault as exc:
        raise SpecError(f"--nemesis: {exc}") from None


def _system_table(data: dict[str, Any], where: str) -> dict[str, Any]:
    """`system = {name = "refnode", replication = "sync"}` as system = "refnode" and those
    options in system_options (beside any given there)."""
    values = dict(data)
    for table in ("system_options", "nemesis_options"):
        if values.get(table) is not None and not isinstance(values[table], dict):
            raise SpecError(f"{where}: {table} must be a table of names and values, got "
                            f"{values[table]!r}")
    if isinstance(values.get("system"), dict):
        table = dict(values["system"])
        values["system"] = table.pop("name", DEFAULT_SYSTEM)
        values["system_options"] = {**(values.get("system_options") or {}),
                                    **{k.replace("-", "_"): v for k, v in table.items()}}
    return values


def read_toml(path: Path, error: type[Exception]) -> dict[str, Any]:
    """The TOML file at `path` as data; `error` with one line naming the file when it cannot
    be read, is not text, or is not TOML."""
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text file") from None


def from_toml(path: Path, overrides: dict[str, Any] | None = None) -> TestSpec:
    """A spec from a TOML file of options (same names as the command line, with underscores;
    the system's options in a `[system]` table, the faults' in `[nemesis_options]`), with
    `overrides` (from the command line) applied on top. Overriding options of the system or
    of the faults merge with the file's, name by name."""
    data = read_toml(path, SpecError)
    data = {k.replace("-", "_"): v for k, v in data.items()}
    data = _system_table(data, str(path))
    overrides = dict(overrides or {})
    # Options of the system and of the faults merge with the file's, name by name.
    for table in ("system_options", "nemesis_options"):
        if table in overrides and isinstance(data.get(table), dict):
            overrides[table] = {**data[table], **overrides[table]}
    data.update(overrides)
    return build(data, str(path))


PHASE_KEYS = ("seconds", "rate", "mix")


def _taken_by(flag: str, option: str, workload: type[Workload]) -> None:
    """SpecError, saying why when the workload says, unless `workload` takes `option`."""
    if option in workload.TAKES:
        return
    why = workload.NOT_TAKEN.get(option)
    others = [name for name in workloads.names() if _takes(name, option)]
    raise SpecError(f"{flag}: the {workload.name} workload has no {option.replace('_', ' ')}"
                    + (f" ({why})" if why else "")
                    + (f"; use {' or '.join(others)}" if others else ""))


def _takes(name: str, option: str) -> bool:
    """Whether the workload `name` takes `option` (a broken one takes nothing)."""
    try:
        cls = workloads.find(name)
    except workloads.BrokenWorkload:
        return False
    return option in cls.TAKES or option in [o.name for o in cls.CHECK_OPTIONS]


def _consistency_models(value: Any, workload: type[Workload]) -> list[str]:
    """The consistency models a test names, checked against its workload's checker option;
    SpecError in one line for a workload without one, or a model it does not know."""
    declared = {o.name: o for o in workload.CHECK_OPTIONS}
    if "consistency_models" not in declared:
        others = [name for name in workloads.names() if _takes(name, "consistency_models")]
        raise SpecError(f"--consistency-model: the {workload.name} workload's checkers judge "
                        f"no consistency models" + (f" ({', '.join(others)}'s do)"
                                                    if others else ""))
    option = declared["consistency_models"]
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    for model in value if isinstance(value, (list, tuple)) else ():
        if option.choices is not None and model not in option.choices:
            raise SpecError(f"--consistency-model: unknown model {model!r}; models: "
                            f"{', '.join(option.choices)}")
    try:
        return option.check(value, "--consistency-model: ")
    except OptionError as exc:
        raise SpecError(str(exc)) from None


def _checkers(value: Any) -> list[str]:
    """The extra checkers a test names, each found (a plug-in's loaded); SpecError in one line
    for a name that is no checker, or a checker that cannot be loaded."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(n, str) for n in value):
        raise SpecError(f"--checker must name checkers, got {value!r}")
    for name in value:
        try:
            registry.find(name)
        except (registry.UnknownChecker, registry.BrokenChecker) as exc:
            raise SpecError(f"--checker: {exc}") from None
    return list(value)


def _check_mix(where: str, mix: Any, workload: type[Workload]) -> None:
    allowed = workload.OPS
    if not isinstance(mix, dict) or not mix:
        example = ",".join(f"{f}={share}" for f, share in zip(allowed, ("0.9", "0.1")))
        raise SpecError(f"{where} must name operations with their shares, e.g. {example}; "
                        f"got {mix!r}")
    for f, share in mix.items():
        if f not in allowed:
            raise SpecError(f"{where}: the {workload.name} workload has no operation {f!r}; "
                            f"its operations: {', '.join(allowed)}")
        if not isinstance(share, (int, float)) or isinstance(share, bool) or share < 0:
            raise SpecError(f"{where}: the share of {f} must be a number >= 0, got {share!r}")
    if not any(mix.values()):
        raise SpecError(f"{where}: at least one share must be above 0")


def _check_phases(phases: Any, workload: type[Workload]) -> float:
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


