"""What a checker is, as a plug-in: a class that names itself, says which histories it applies
to, declares its options, and judges a history.

A checker is a `Checker` subclass declaring:

- `name`: what `--checker` calls it, and the name it is registered under (`checkers.registry`);
- `APPLIES`: the histories it is meant for (`Applies`): the kinds it judges, whether it is among
  the checkers chosen for such a history when none are named, and a line of help;
- `OPTIONS`: its own settings (`pluginkit.options.Option`), checked when it is made, so that a
  misspelt or mistyped option is an `OptionError` before any history is read;
- `MODELS`: the models it judges histories by, as a corpus manifest names them (the register
  models for linearizability, "list-append" for transactions), if any;
- `check(history, context)`: the verdict, a `checkers.result.Result`.

What every checker may need that is no option of its own (where the history came from, the
run's observations of node roles, somewhere to report progress) arrives as a `CheckContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from checkers.history import OK, READ_FS, Op, client_events
from checkers.linearizability import KeyProgress
from checkers.models import ADDS, WRITES
from checkers.result import Result
from pluginkit.options import Option, resolve

# The kinds of history, told apart by their operations (`kind_of`).
REGISTERS = "registers"         # reads, writes, cas (and whatever else is not below)
SETS = "sets"                   # adds of elements, and reads of whole sets
TRANSACTIONS = "transactions"   # list-append transactions (f "txn") only
KINDS = (REGISTERS, SETS, TRANSACTIONS)


@dataclass(frozen=True)
class Traits:
    """What the choice of checkers looks at in a history: its kind, and whether every ok read
    and write carries a version (as a store that reports them gives; False when there are
    none)."""

    kind: str
    versioned: bool


def traits_of(history: Sequence[Op]) -> Traits:
    """The traits of `history`: transactions when every client operation is one; sets when it
    adds and does nothing but add and read; otherwise registers."""
    fs: set[str] = set()
    versioned = seen = 0
    for op in client_events(history):
        fs.add(op.f)
        if op.type == OK and op.f in READ_FS | WRITES:
            seen += 1
            versioned += op.version is not None
    if fs == {"txn"}:
        kind = TRANSACTIONS
    elif ADDS & fs and fs <= ADDS | READ_FS:
        kind = SETS
    else:
        kind = REGISTERS
    return Traits(kind, bool(seen) and versioned == seen)


@dataclass(frozen=True)
class Applies:
    """The histories a checker is meant for.

    - `kinds`: the kinds of history (`KINDS`) it judges; empty: none (it reads something else,
      as election safety reads the run's observations);
    - `text`: the same in a few words, for `faultline check --help`;
    - `chosen`: whether it is among the checkers run on such a history when none are named;
    - `needs_versions`: chosen only when every ok read and write carries a version.
    """

    kinds: tuple[str, ...]
    text: str
    chosen: bool = False
    needs_versions: bool = False

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown history kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")

    def chosen_for(self, traits: Traits) -> bool:
        """Whether a checker with these declarations is run on a history with `traits` when
        no checkers are named."""
        return self.chosen and traits.kind in self.kinds and \
            (traits.versioned or not self.needs_versions)


@dataclass
class CheckContext:
    """What every checker receives besides the history and its own options: where the history
    came from (for messages), the run's observations of node roles (None: none recorded) and
    where to report progress (None: nowhere)."""

    source: str | None = None
    observations: list[dict[str, Any]] | None = None
    progress: KeyProgress | None = None


class Checker:
    """The common part: options checked against `OPTIONS` when the checker is made, and kept
    in `options` (every declared option, its default where none was given)."""

    name: ClassVar[str] = "checker"
    APPLIES: ClassVar[Applies] = Applies((), "")
    OPTIONS: ClassVar[tuple[Option, ...]] = ()
    MODELS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Mapping[str, Any] | None = None):
        """OptionError, naming the checker and the option, for an option it does not declare
        or a value the option does not take. A None value is "not given"."""
        given = {key: value for key, value in (options or {}).items() if value is not None}
        self.options: dict[str, Any] = resolve(self.OPTIONS, given, f"checker {self.name}: ")

    @classmethod
    def options_for_model(cls, model: str, conventions: Mapping[str, Any]) -> dict[str, Any]:
        """This checker's options for a history described as judged by `model` under
        `conventions` (a corpus manifest entry's "options" beside its "model"): the
        conventions, as they are, by default. A checker whose options name the model itself,
        or spell a convention otherwise, says so here."""
        return dict(conventions)

    def check(self, history: Sequence[Op], context: CheckContext) -> Result:
        """The verdict on `history`. Raises HistoryError (or ModelError) for a history this
        checker cannot read, never for one it finds invalid."""
        raise NotImplementedError
