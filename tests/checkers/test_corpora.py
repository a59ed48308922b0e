"""Every history of the shared corpora decided as the project it came from expects."""

from __future__ import annotations

import pytest

from checkers.base import CheckContext
from checkers.formats import load_history
from checkers.registry import for_model
from tests.corpora import CORPORA, manifest_entries, needs_corpora

ENTRIES = manifest_entries()
# How each checker's counterexample names the violation: the operation that cannot be placed
# (linearizability), the dependency cycle and its anomaly (list-append).
VIOLATION = {"linearizable": lambda counterexample: counterexample["op"]["description"],
             "list-append": lambda counterexample: counterexample["cycle"]
             and counterexample["anomaly"]}


@needs_corpora
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_corpus_history_gets_its_expected_verdict(entry):
    options = dict(entry["options"])
    # The entry's model names the checker: a register model linearizability, "list-append"
    # the list-append checker; the other options are that checker's.
    checker = for_model(options.pop("model"), options, budget=60)
    history = load_history(CORPORA / entry["file"], entry["format"])
    result = checker.check(history, CheckContext())
    assert result.valid == entry["expected"], result.summary
    if entry["expected"] is False:
        assert VIOLATION[checker.name](result.counterexample)


@needs_corpora
def test_the_corpus_has_histories_of_both_verdicts():
    verdicts = {entry["expected"] for entry in ENTRIES}
    assert verdicts == {True, False}
