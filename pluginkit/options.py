"""Declared options: what a system adapter or a fault kind accepts, checked before a run starts.

An `Option` names one setting with its type, default, allowed values and a line of help. The
same declaration serves every way a value arrives: typed values from a TOML file or a stored
test.json (`Option.check`), text from the command line (`Option.parse`, for `--system-opt
replication=sync` and `--nemesis-opt shapes=isolate,halves`), and the help and the `faultline
systems` table (`Option.describe`). Every problem is an `OptionError` whose message names the
option and says what was wrong, in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# The value types an option may have: one scalar, or a list of scalars.
SCALARS = {"str": str, "int": int, "float": float, "bool": bool}
LIST_SUFFIX = "-list"
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class OptionError(ValueError):
    """A value an option does not accept; the message names the option."""


@dataclass(frozen=True)
class Option:
    """One declared setting.

    - `type`: "str", "int", "float", "bool", or a list of one of them ("str-list", ...);
    - `default`: the value when none is given (None: unset, the owner decides);
    - `choices`: the allowed values (of each element, for a list type);
    - `minimum`: the smallest allowed number (of each element, for a list type);
    - `length`: the exact number of elements, for a list type whose positions mean something
      (a [low, high] range).
    """

    name: str
    type: str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    length: int | None = None

    def __post_init__(self) -> None:
        if self.scalar_type not in SCALARS:
            raise ValueError(f"option {self.name}: unknown type {self.type!r}")

    @property
    def is_list(self) -> bool:
        return self.type.endswith(LIST_SUFFIX)

    @property
    def scalar_type(self) -> str:
        return self.type[:-len(LIST_SUFFIX)] if self.is_list else self.type

    @property
    def flag(self) -> str:
        """The command-line flag of an adapter's option: --read-mode for read_mode."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, where: str = "") -> Any:
        """`value` if this option accepts it (an int where a float is wanted is widened, a
        list type also accepts one bare element), else OptionError. The message starts with
        `where` and the option's name; a `where` that ends in the name (a flag such as
        --read-mode) stands for both."""
        if value is None:
            return None
        if self.is_list:
            items = list(value) if isinstance(value, (list, tuple)) else [value]
            if not items:
                raise OptionError(f"{self._label(where)} must list at least one value")
            if self.length is not None and len(items) != self.length:
                raise OptionError(f"{self._label(where)} must have {self.length} values, "
                                  f"got {value!r}")
            return [self._check_scalar(item, where) for item in items]
        return self._check_scalar(value, where)

    def parse(self, text: str, where: str = "") -> Any:
        """The value written as `text` on a command line (a list: comma-separated)."""
        text = text.strip()
        if self.is_list:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            return self.check([self._parse_scalar(p, where) for p in parts], where)
        return self.check(self._parse_scalar(text, where), where)

    def _label(self, where: str) -> str:
        return where.rstrip() if where.rstrip().endswith(self.flag) else f"{where}{self.name}"

    def describe(self) -> str:
        """'type, one of a|b, default X: help', for tables and --help (an option without a
        default says in its help what happens when it is not given)."""
        parts = [self.type]
        if self.choices:
            parts.append("one of " + "|".join(str(c) for c in self.choices))
        if self.default is not None:
            parts.append(f"default {format_value(self.default)}")
        return f"{', '.join(parts)}: {self.help}" if self.help else ", ".join(parts)

    def _check_scalar(self, value: Any, where: str) -> Any:
        kind = self.scalar_type
        ok = isinstance(value, SCALARS[kind]) and not (kind != "bool" and
                                                       isinstance(value, bool))
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise OptionError(f"{self._label(where)} must be {_article(kind)}, got {value!r}")
        if kind == "float" and not math.isfinite(value):
            raise OptionError(f"{self._label(where)} must be a finite number, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"{self._label(where)} must be one of "
                              f"{', '.join(str(c) for c in self.choices)}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise OptionError(f"{self._label(where)} must be at least {self.minimum:g}, got "
                              f"{value!r}")
        return value

    def _parse_scalar(self, text: str, where: str) -> Any:
        kind = self.scalar_type
        try:
            if kind == "int":
                return int(text)
            if kind == "float":
                return float(text)
        except ValueError:
            raise OptionError(f"{self._label(where)} must be {_article(kind)}, got "
                              f"{text!r}") from None
        if kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise OptionError(f"{self._label(where)} must be true or false, got {text!r}")
        return text


def _article(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "true or false",
            "str": "a string"}[kind]


def format_value(value: Any) -> str:
    """A value as a person writes it on the command line."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def resolve(declared: Iterable[Option], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Every declared option's value: the one given (checked) or its default. An option that
    is not declared is an OptionError listing the declared ones."""
    by_name = {o.name: o for o in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise OptionError(f"{where}unknown option {unknown[0]!r}; options: {known}")
    return {name: (option.check(given[name], where) if name in given else option.default)
            for name, option in by_name.items()}


def parse_assignments(texts: Iterable[str], declared: Iterable[Option],
                      flag: str) -> dict[str, Any]:
    """`['shapes=isolate,halves', 'hold=3']` -> typed values, by the declarations. Names may
    use dashes or underscores."""
    by_name = {o.name: o for o in declared}
    values: dict[str, Any] = {}
    for text in texts:
        name, sep, raw = text.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise OptionError(f"{flag} must look like NAME=VALUE, got {text!r}")
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise OptionError(f"{flag}: unknown option {name!r}; options: {known}")
        values[name] = by_name[name].parse(raw, f"{flag} ")
    return values
