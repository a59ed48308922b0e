"""The checkers faultline ships, as plug-in classes: each adapts one check function of its own
module (`check_linearizable`, `check_session`, ...) to `checkers.base.Checker`, and declares
the options that function takes. The functions stay as they are, for callers that want one
check and no registry.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Mapping, Sequence

from checkers.base import KINDS, REGISTERS, SETS, TRANSACTIONS, Applies, CheckContext, Checker
from checkers.election import check_election_safety
from checkers.history import Op
from checkers.linearizability import DEFAULT_MEMORY_BYTES, Budget, check_linearizable
from checkers.list_append import MODELS as CONSISTENCY_MODELS
from checkers.list_append import check_list_append
from checkers.lost_writes import check_register_lost_writes, check_set, check_set_full
from checkers.models import FAILED_CAS, MODELS, NIL_READS, ModelError, make_model
from checkers.result import Result
from checkers.session import check_session
from checkers.staleness import check_staleness
from checkers.stats import check_stats
from pluginkit.options import Option

MIB = 1024 * 1024
METHODS = ("auto", "search", "zones", "chains", "versions")
# The options of the linearizable checker that describe its model, as make_model takes them.
MODEL_OPTIONS = ("initial", "nil_read", "failed_cas", "partition")


class LinearizableChecker(Checker):
    """Linearizability of each key (or the whole history) under a model of `checkers.models`,
    within a budget of time and memory."""

    name = "linearizable"
    APPLIES = Applies((REGISTERS,), "registers (read, write, cas; get, put, append on "
                                    "strings), judged by a model", chosen=True)
    MODELS = tuple(sorted(MODELS))
    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option("model", "str", "cas-register", "the model each key is judged by",
               choices=tuple(sorted(MODELS))),
        Option("initial", "str", None, "the value before any write, as JSON (unset: the "
                                       "model's own)"),
        Option("nil_read", "str", None, "a read of nil matches any value, or means absent "
                                        "(unset: the model's own)", choices=NIL_READS),
        Option("failed_cas", "str", None, "a failed cas did not happen, or saw another value "
                                          "(unset: the model's own)", choices=FAILED_CAS),
        Option("partition", "str", None, "check each key independently, or the history as "
                                         "one (unset: the model's own)", choices=("key", "none")),
        Option("budget", "float", None, "seconds for the search before the verdict is "
                                        "unknown (unset or 0: no limit)", minimum=0),
        Option("memory", "int", DEFAULT_MEMORY_BYTES // MIB,
               "MiB for the search's configurations", minimum=1),
        Option("workers", "int", None, "worker processes for independent keys (unset: by "
                                       "history size)", minimum=1),
        Option("method", "str", "auto", "auto (fast paths where they apply), or one method "
                                        "forced", choices=METHODS),
        Option("timed_out_fail", "str", None, "info: a :fail whose value is :timed-out is "
                                              "indeterminate", choices=("info",)),
    )

    def __init__(self, options: Mapping[str, Any] | None = None):
        """As `Checker`, and ModelError for a model that does not take the options given (or
        an `initial` that is not JSON): refused before any history is read."""
        super().__init__(options)
        given = {name: self.options[name] for name in MODEL_OPTIONS
                 if self.options[name] is not None}
        if "initial" in given:
            try:
                given["initial"] = json.loads(given["initial"])
            except json.JSONDecodeError:
                raise ModelError(f"initial must be JSON (e.g. 0, null, '\"\"'), got "
                                 f"{given['initial']!r}") from None
        self.model = make_model(self.options["model"], **given)
        self.budget = Budget(seconds=self.options["budget"] or None,
                             memory_bytes=self.options["memory"] * MIB)

    @classmethod
    def options_for_model(cls, model: str, conventions: Mapping[str, Any]) -> dict[str, Any]:
        """The model is an option of this checker; `initial`, any JSON value in a manifest,
        is written as JSON."""
        options = {"model": model, **conventions}
        if "initial" in options:
            options["initial"] = json.dumps(options["initial"])
        return options

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_linearizable(history, self.model, budget=self.budget,
                                  workers=self.options["workers"], method=self.options["method"],
                                  timed_out_fail=self.options["timed_out_fail"],
                                  source=context.source, progress=context.progress)


class SessionChecker(Checker):
    """Read-your-writes, monotonic reads and writes, writes-follow-reads, from versions."""

    name = "session"
    APPLIES = Applies((REGISTERS,), "registers whose ok reads and writes carry versions",
                      chosen=True, needs_versions=True)
    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option("scope", "str", "key", "compare session versions per key, or across keys (a "
                                      "global log index)", choices=("key", "global")),)

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_session(list(history), scope=self.options["scope"])


class SetChecker(Checker):
    """Jepsen's set checker: acknowledged adds in the final read."""

    name = "set"
    APPLIES = Applies((SETS,), "sets: adds of elements, reads of whole sets")

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_set(list(history))


class SetFullChecker(Checker):
    """Jepsen's set-full checker: every added element through every read."""

    name = "set-full"
    APPLIES = Applies((SETS,), "sets: adds of elements, reads of whole sets", chosen=True)

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_set_full(list(history))


class LostWritesChecker(Checker):
    """Acknowledged register writes that no later read saw."""

    name = "lost-writes"
    APPLIES = Applies((REGISTERS,), "registers whose written values are unique per key")

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_register_lost_writes(list(history))


class StalenessChecker(Checker):
    """How far behind the latest write each read was, in versions and time."""

    name = "staleness"
    APPLIES = Applies((REGISTERS,), "registers whose reads and writes carry versions")

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_staleness(list(history))


class ListAppendChecker(Checker):
    """Elle's list-append inference, judged by consistency models."""

    name = "list-append"
    APPLIES = Applies((TRANSACTIONS,), "transactions (f txn) of list reads and appends",
                      chosen=True)
    MODELS = ("list-append",)
    OPTIONS: ClassVar[tuple[Option, ...]] = (
        Option("consistency_models", "str-list", ("strict-serializable",),
               "the consistency models to judge transactions by", choices=CONSISTENCY_MODELS),)

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.consistency_models = tuple(self.options["consistency_models"])

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_list_append(history, self.consistency_models, source=context.source)


class ElectionSafetyChecker(Checker):
    """No two leaders in one term, from the run's observations of node roles."""

    name = "election-safety"
    APPLIES = Applies((), "a run's observations of node roles (observations.jsonl), not its "
                          "history")

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_election_safety(context.observations)


class StatsChecker(Checker):
    """Counts, latencies, availability and throughput: figures, never a violation."""

    name = "stats"
    APPLIES = Applies(KINDS, "any history (figures only)", chosen=True)

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        return check_stats(list(history))
