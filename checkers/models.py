"""Sequential specifications that linearizability is checked against.

A model is a small object in the manner of Porcupine's: `init()` gives the starting state,
`step(state, op)` says whether `op` is legal in `state` and what state follows. States must be
hashable and compare by value: the search memoizes (linearized ops, state) configurations.

Model options carry the conventions of the project a history comes from
(docs/checking.md), never special cases in the checker:

- `initial`: the value before any write (None: absent);
- `nil_read`: "any" (Knossos: a read that returned nil tells nothing) or "absent" (nil means the
  key has no value);
- `failed_cas`: "no-op" (a failed cas did not happen) or "mismatch" (it happened and saw a value
  other than the expected one: an observation the model must explain).
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Protocol

from checkers.history import FAIL, OK, Operation, freeze

NIL_READS = ("any", "absent")
FAILED_CAS = ("no-op", "mismatch")

# The f names each model understands, so that histories from Jepsen (read/write/cas),
# Porcupine's kv tests (get/put/append) and refnode all map onto the same models.
READS = frozenset({"read", "get", "r"})
WRITES = frozenset({"write", "put", "w"})
CAS = frozenset({"cas", "compare-and-set"})
APPENDS = frozenset({"append"})
ADDS = frozenset({"add"})


class ModelError(ValueError):
    """An operation the model cannot interpret (unknown f, malformed value): a bad history."""


class Model(Protocol):
    """The interface every model offers to the checkers."""

    name: str
    split_by_key: bool  # check each key independently (P-compositionality)

    def init(self) -> Hashable: ...

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]: ...

    def relevant(self, op: Operation) -> bool:
        """Whether the op constrains the search at all (failed ops, crashed reads do not)."""
        ...

    def describe_state(self, state: Hashable) -> str: ...


class CasRegister:
    """A register with read, write and compare-and-set; one per key when split by key.

    With no cas in a history this is the plain register. A cas's input is [expected, new].
    An `info` (crashed) operation may have taken effect or not: the search decides; a crashed
    read constrains nothing and is dropped.
    """

    name = "cas-register"

    def __init__(self, initial: Any = None, nil_read: str = "absent", failed_cas: str = "no-op",
                 split_by_key: bool = True):
        if nil_read not in NIL_READS:
            raise ModelError(f"nil_read must be one of {', '.join(NIL_READS)}, got {nil_read!r}")
        if failed_cas not in FAILED_CAS:
            raise ModelError(
                f"failed_cas must be one of {', '.join(FAILED_CAS)}, got {failed_cas!r}")
        self.initial = freeze(initial)
        self.nil_read = nil_read
        self.failed_cas = failed_cas
        self.split_by_key = split_by_key

    def init(self) -> Hashable:
        return self.initial

    def relevant(self, op: Operation) -> bool:
        if op.f in READS:
            if op.outcome != OK:
                return False
            return not (op.output is None and self.nil_read == "any")
        if op.outcome == FAIL:
            return op.f in CAS and self.failed_cas == "mismatch"
        return True

    def transition(self, op: Operation) -> tuple[str, Hashable, Hashable]:
        """The op as data: (kind, a, b) with kind one of read (state must be a), write (to b),
        cas (state must be a, then b), mismatch (state must not be a). Raises ModelError."""
        f = op.f
        if f in READS:
            return ("read", freeze(op.output), None)
        if f in WRITES:
            return ("write", None, freeze(op.input))
        if f in CAS:
            value = op.input
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ModelError(f"cas value must be [expected, new], got {value!r} "
                                 f"(process {op.process})")
            expected, new = freeze(value[0]), freeze(value[1])
            if op.outcome == FAIL:
                return ("mismatch", expected, None)
            return ("cas", expected, new)
        raise ModelError(f"the {self.name} model has no operation {f!r} (process {op.process})")

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        kind, a, b = self.transition(op)
        if kind == "read":
            return state == a, state
        if kind == "write":
            return True, b
        if kind == "cas":
            return (True, b) if state == a else (False, state)
        return state != a, state

    def describe_state(self, state: Hashable) -> str:
        return "nil" if state is None else repr(state)


class _CollectionModel:
    """What string-append and set share: failed ops did not happen, crashed reads say nothing."""

    initial: Hashable

    def init(self) -> Hashable:
        return self.initial

    def relevant(self, op: Operation) -> bool:
        if op.outcome == FAIL:
            return False
        return not (op.f in READS and op.outcome != OK)


class StringAppend(_CollectionModel):
    """A string per key with get, put and append (Porcupine's kv test model)."""

    name = "string-append"

    def __init__(self, initial: Any = "", split_by_key: bool = True):
        self.initial = "" if initial is None else str(initial)
        self.split_by_key = split_by_key

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        f = op.f
        if f in READS:
            return state == self._string(op.output, op), state
        if f in WRITES:
            return True, self._string(op.input, op)
        if f in APPENDS:
            return True, state + self._string(op.input, op)
        raise ModelError(f"the {self.name} model has no operation {f!r} (process {op.process})")

    def _string(self, value: Any, op: Operation) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ModelError(f"the {self.name} model takes strings, got {value!r} "
                             f"(process {op.process} {op.f})")
        return value

    def describe_state(self, state: Hashable) -> str:
        return repr(state)


class SetModel(_CollectionModel):
    """A set per key with add (of one element) and read (of the whole set)."""

    name = "set"

    def __init__(self, initial: Any = None, split_by_key: bool = True):
        self.initial = frozenset(freeze(v) for v in (initial or ()))
        self.split_by_key = split_by_key

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        f = op.f
        if f in READS:
            seen = op.output
            if not isinstance(seen, (list, tuple, set, frozenset)):
                raise ModelError(f"a set read must return a collection, got {seen!r} "
                                 f"(process {op.process})")
            return frozenset(freeze(v) for v in seen) == state, state
        if f in ADDS:
            return True, state | {freeze(op.input)}
        raise ModelError(f"the {self.name} model has no operation {f!r} (process {op.process})")

    def describe_state(self, state: Hashable) -> str:
        return "#{" + " ".join(sorted(map(repr, state))) + "}"


MODELS: dict[str, Callable[..., Model]] = {
    "register": CasRegister,
    "cas-register": CasRegister,
    "kv": CasRegister,
    "string-append": StringAppend,
    "set": SetModel,
}


def make_model(name: str, **options: Any) -> Model:
    """Build a model by name with the given options; ModelError for an unknown name or option.

    `partition` ("key" or "none") maps onto `split_by_key`. Options a model does not take are
    an error, so a misspelt option is never silently ignored.
    """
    factory = MODELS.get(name)
    if factory is None:
        raise ModelError(f"unknown model {name!r}; models: {', '.join(sorted(MODELS))}")
    options = dict(options)
    partition = options.pop("partition", None)
    if partition is not None:
        if partition not in ("key", "none"):
            raise ModelError(f"partition must be 'key' or 'none', got {partition!r}")
        options["split_by_key"] = partition == "key"
    try:
        model = factory(**options)
    except TypeError as exc:
        raise ModelError(f"bad option for model {name!r}: {exc}") from None
    if name == "register":
        model.name = "register"
    return model


# Options that belong to the reading of a history, not to a model.
HISTORY_OPTIONS = frozenset({"timed_out_fail"})
