"""Session guarantees: hand-made sessions for each guarantee, and simulated stores."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checkers.history import Op
from checkers.session import (GUARANTEES, MONOTONIC_READS, MONOTONIC_WRITES, READ_YOUR_WRITES,
                              WRITES_FOLLOW_READS, check_session)


def history(*ops):
    """Events from (process, f, key, value, version[, type]) tuples, run one after another:
    each op is invoked at 10*i and completes at 10*i + 5."""
    events = []
    for i, spec in enumerate(ops):
        process, f, key, value, version, *rest = spec
        kind = rest[0] if rest else "ok"
        invoke_value = None if f == "read" else value
        events.append(Op(len(events), 10 * i, process, "invoke", f, key, invoke_value))
        events.append(Op(len(events), 10 * i + 5, process, kind, f, key, value,
                         version=version if kind == "ok" else None))
    return events


def broken(result):
    return {g for g, n in result.figures["violations"].items() if n}


def test_correct_sessions_are_accepted():
    result = check_session(history(
        (0, "write", "x", 1, 1),
        (1, "read", "x", None, 0),      # another session may lag behind process 0
        (0, "read", "x", 1, 1),
        (1, "read", "x", 1, 1),
        (0, "write", "x", 2, 4),
        (0, "read", "x", 3, 5),         # a newer write by someone else is fine
        (1, "write", "x", 9, 6),
        (1, "read", "x", 9, 6),
    ))
    assert result.valid is True
    assert result.figures["sessions"] == 2
    assert result.figures["ops_checked"] == 8
    assert broken(result) == set()
    assert result.counterexample is None
    orjson.dumps(result.to_json())


def test_read_your_writes_violation_names_the_write():
    result = check_session(history(
        (0, "write", "x", 1, 5),
        (0, "read", "x", 0, 3),
    ))
    assert result.valid is False
    assert broken(result) == {READ_YOUR_WRITES}
    [violation] = result.counterexample[READ_YOUR_WRITES]
    assert violation["process"] == 0 and violation["key"] == "x"
    assert violation["earlier"]["version"] == 5 and violation["violating"]["version"] == 3
    assert violation["earlier"]["id"] == 0 and violation["violating"]["id"] == 1
    assert "write x 1" in violation["earlier"]["op"]
    orjson.dumps(result.to_json())


def test_monotonic_reads_violation():
    result = check_session(history(
        (0, "read", "x", 2, 5),
        (0, "read", "x", 1, 3),
    ))
    assert result.valid is False
    assert broken(result) == {MONOTONIC_READS}
    assert result.counterexample[MONOTONIC_READS][0]["violating"]["version"] == 3


def test_monotonic_writes_violation():
    result = check_session(history(
        (0, "write", "x", 2, 5),
        (0, "write", "x", 3, 5),       # not strictly newer
    ))
    assert result.valid is False
    assert broken(result) == {MONOTONIC_WRITES}
    assert "monotonic-writes" in result.summary


def test_writes_follow_reads_violation():
    result = check_session(history(
        (0, "read", "x", 2, 5),
        (0, "cas", "x", [2, 3], 4),    # an ok cas is a write
    ))
    assert result.valid is False
    assert broken(result) == {WRITES_FOLLOW_READS}


def test_every_earlier_version_counts_not_just_the_last():
    result = check_session(history(
        (0, "read", "x", 1, 7),
        (0, "read", "x", 1, 8),
        (0, "read", "x", 1, 6),
        (0, "read", "x", 1, 7),        # behind 8, though ahead of the previous read
    ))
    assert result.figures["violations"][MONOTONIC_READS] == 2
    assert [v["earlier"]["version"] for v in result.counterexample[MONOTONIC_READS]] == [8, 8]


def test_sessions_and_keys_are_independent_in_key_scope():
    ops = (
        (0, "write", "x", 1, 5),
        (1, "read", "x", 0, 0),        # another process: no guarantee
        (0, "read", "y", 0, 2),        # another key: versions not comparable
    )
    assert check_session(history(*ops)).valid is True
    glob = check_session(history(*ops), scope="global")
    assert glob.valid is False
    assert broken(glob) == {READ_YOUR_WRITES}
    assert glob.counterexample[READ_YOUR_WRITES][0]["key"] == "y"
    assert glob.counterexample[READ_YOUR_WRITES][0]["earlier"]["key"] == "x"


def test_failed_and_indeterminate_ops_are_ignored():
    result = check_session(history(
        (0, "write", "x", 1, 5),
        (0, "write", "x", 2, None, "fail"),
        (0, "read", "x", 1, 5),
        (0, "read", "x", None, None, "info"),
    ))
    assert result.valid is True
    assert result.figures["ops_checked"] == 2
    assert result.figures["ops_skipped_without_version"] == 0


def test_guarantees_option_restricts_the_check():
    ops = history((0, "write", "x", 1, 5), (0, "read", "x", 0, 3))
    assert check_session(ops, guarantees=[MONOTONIC_READS, MONOTONIC_WRITES]).valid is True
    assert check_session(ops, guarantees=[READ_YOUR_WRITES]).valid is False
    with pytest.raises(ValueError):
        check_session(ops, guarantees=["read-my-mind"])
    with pytest.raises(ValueError):
        check_session(ops, scope="node")


def test_no_versions_at_all_is_unknown():
    events = history((0, "write", "x", 1, None), (0, "read", "x", 0, None))
    result = check_session(events)
    assert result.valid == "unknown"
    assert "version" in result.summary
    orjson.dumps(result.to_json())


def test_ops_without_version_are_skipped_and_counted():
    result = check_session(history(
        (0, "write", "x", 1, 5),
        (0, "read", "x", 0, None),
        (0, "read", "x", 1, 5),
    ))
    assert result.valid is True
    assert result.figures["ops_skipped_without_version"] == 1
    assert result.figures["ops_checked"] == 2


# --- simulated stores ------------------------------------------------------------------------

steps = st.lists(st.tuples(st.integers(0, 3),                         # process
                           st.sampled_from(["read", "write", "fail"]),
                           st.sampled_from(["a", "b"]),               # key
                           st.integers(0, 10**6)),                    # replica choice
                 min_size=2, max_size=60)


def simulate(plan, *, global_index: bool):
    """A store that serves each session versions no older than it has seen.

    Key scope: a read returns the version of some write of its key (0: initial) at least as new
    as the session's newest for that key. Global: a read reports an applied log index at least
    the session's newest across keys. Returns (ops, history)."""
    written = {"a": [0], "b": [0]}
    last_index = 0
    seen: dict = {}
    ops = []
    for process, kind, key, choice in plan:
        token_key = (process,) if global_index else (process, key)
        floor = seen.get(token_key, 0)
        if kind == "fail":
            ops.append((process, "write", key, "lost", None, "fail"))
            continue
        if kind == "write":
            last_index += 1
            written[key].append(last_index)
            version = last_index
        elif global_index:
            version = floor + choice % (last_index - floor + 1)
        else:
            newer = [v for v in written[key] if v >= floor]
            version = newer[choice % len(newer)]
        seen[token_key] = max(floor, version)
        ops.append((process, kind, key, choice, version))
    return ops


@settings(max_examples=150, deadline=None)
@given(steps)
def test_simulated_monotone_store_is_accepted(plan):
    assert check_session(history(*simulate(plan, global_index=False))).valid is True


@settings(max_examples=150, deadline=None)
@given(steps)
def test_simulated_global_index_store_is_accepted(plan):
    ops = simulate(plan, global_index=True)
    assert check_session(history(*ops), scope="global").valid is True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(steps, st.integers(0, 10**6))
def test_one_injected_regression_is_rejected(plan, pick):
    ops = simulate(plan, global_index=False)
    eligible = []          # (position, highest version earlier in the same session and key)
    for i, (process, _f, key, _, _version, *rest) in enumerate(ops):
        if rest:
            continue
        earlier = [o[4] for o in ops[:i] if o[:1] == (process,) and o[2] == key and len(o) == 5]
        if earlier:
            eligible.append((i, max(earlier)))
    assume(eligible)
    i, highest = eligible[pick % len(eligible)]
    process, f, key, value, _ = ops[i]
    # a write must be newer than everything the session saw; a read at least as new
    ops[i] = (process, f, key, value, highest if f == "write" else highest - 1)
    result = check_session(history(*ops))
    assert result.valid is False
    violating = {v["violating"]["id"] for g in result.counterexample
                 for v in result.counterexample[g]}
    assert i in violating
    assert set(result.counterexample) <= set(GUARANTEES)
