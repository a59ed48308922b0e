"""Every history of the shared corpora decided as the project it came from expects."""

from __future__ import annotations

import pytest

from checkers.formats import load_history
from checkers.linearizability import Budget, check_linearizable
from checkers.models import make_model
from tests.corpora import CORPORA, manifest_entries, needs_corpora

ENTRIES = manifest_entries()


@needs_corpora
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_corpus_history_gets_its_expected_verdict(entry):
    options = dict(entry["options"])
    timed_out_fail = options.pop("timed_out_fail", None)
    model = make_model(options.pop("model"), **options)
    history = load_history(CORPORA / entry["file"], entry["format"])
    result = check_linearizable(history, model, timed_out_fail=timed_out_fail,
                                budget=Budget(seconds=60))
    assert result.valid == entry["expected"], result.summary
    if entry["expected"] is False:
        assert result.counterexample["op"]["description"]


@needs_corpora
def test_the_corpus_has_histories_of_both_verdicts():
    verdicts = {entry["expected"] for entry in ENTRIES}
    assert verdicts == {True, False}
