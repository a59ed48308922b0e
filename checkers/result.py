"""What every checker returns, and how verdicts combine.

A verdict is True (the property holds), False (a violation was found) or "unknown" (the
checker could not decide within its budget). Combining several verdicts, False beats "unknown"
beats True: one proven violation makes the whole history invalid, and one undecided check
makes a clean history undecided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

Verdict = bool | Literal["unknown"]
UNKNOWN: Literal["unknown"] = "unknown"


@dataclass
class Result:
    """One checker's verdict on one history.

    - `figures`: numbers a person may want (counts, times, quantiles), JSON-serialisable.
    - `counterexample`: on False, a JSON-serialisable description of the violation.
    - `summary`: one line saying what was found, fit for a table cell.
    """

    checker: str
    valid: Verdict
    summary: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    counterexample: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object with a top-level `valid`."""
        out: dict[str, Any] = {"checker": self.checker, "valid": self.valid,
                               "summary": self.summary, "figures": self.figures}
        if self.counterexample is not None:
            out["counterexample"] = self.counterexample
        return out


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The combined verdict: False if any is False, else "unknown" if any is, else True."""
    combined: Verdict = True
    for verdict in verdicts:
        if verdict is False:
            return False
        if verdict == UNKNOWN:
            combined = UNKNOWN
    return combined


def combine(results: Iterable[Result]) -> dict[str, Any]:
    """Several checkers' results over one history, as the `results.json` object.

    Returns ``{"valid": <worst verdict>, "checkers": {name: result-json, ...}}``.
    """
    results = list(results)
    return {"valid": worst(r.valid for r in results),
            "checkers": {r.checker: r.to_json() for r in results}}
