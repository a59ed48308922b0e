"""Staleness: figures on a hand-computed example, limits, and the sweep against brute force."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.history import Op, pair
from checkers.staleness import check_staleness

MS = 1_000_000


def history(*ops):
    """Events from (process, f, key, version, call_ms, ret_ms) tuples, in time order."""
    timed = []
    for n, (process, f, key, version, call, ret) in enumerate(ops):
        timed.append((call, n, 0, Op(0, call * MS, process, "invoke", f, key, None)))
        timed.append((ret, n, 1, Op(0, ret * MS, process, "ok", f, key, None, version=version)))
    timed.sort(key=lambda t: t[:3])
    events = [t[3] for t in timed]
    for i, event in enumerate(events):
        event.index = i
    return events


EXAMPLE = history(
    (0, "write", "x", 1, 5, 10),
    (0, "write", "x", 2, 12, 20),
    (0, "write", "x", 3, 22, 30),
    (1, "read", "x", 0, 15, 16),     # missed v1 (returned at 10): 1 behind, 5 ms
    (1, "read", "x", 2, 25, 26),     # v3 not yet returned at 25: fresh
    (1, "read", "x", 1, 35, 36),     # missed v2 (20) and v3 (30): 2 behind, 35 - 20 = 15 ms
    (1, "read", "x", 3, 40, 41),     # fresh
    (2, "write", "y", 9, 0, 1),      # another key: never counted against x
)


def test_hand_computed_figures():
    result = check_staleness(EXAMPLE)
    assert result.valid is True
    figures = result.figures
    assert figures["reads_checked"] == 4
    assert figures["stale_reads"] == 2
    assert figures["stale_share"] == 0.5
    # nearest rank over [0, 0, 1, 2] and [0, 0, 5, 15]
    assert figures["versions_behind"] == {"0.5": 0, "0.9": 2, "0.99": 2, "max": 2}
    assert figures["time_behind_ms"] == {"0.5": 0.0, "0.9": 15.0, "0.99": 15.0, "max": 15.0}
    orjson.dumps(result.to_json())


def test_version_limit_exceeded_names_the_worst_read():
    result = check_staleness(EXAMPLE, max_versions_behind=1)
    assert result.valid is False
    [worst] = result.counterexample["reads"]
    assert worst["versions_behind"] == 2
    assert worst["time_behind_ms"] == 15.0
    assert worst["oldest_missed_write"]["version"] == 2
    assert check_staleness(EXAMPLE, max_versions_behind=2).valid is True
    orjson.dumps(result.to_json())


def test_time_limit_exceeded():
    result = check_staleness(EXAMPLE, max_time_behind_ms=4.5)
    assert result.valid is False
    assert [r["time_behind_ms"] for r in result.counterexample["reads"]] == [15.0, 5.0]
    assert check_staleness(EXAMPLE, max_time_behind_ms=15).valid is True


def test_reads_without_versions():
    unversioned = history((0, "write", "x", None, 0, 1), (1, "read", "x", None, 2, 3))
    # Nothing measured: no judgement to make, unless limits asked for one.
    plain = check_staleness(unversioned)
    assert plain.valid is True and plain.summary.startswith("not measured")
    assert check_staleness(unversioned, max_versions_behind=3).valid == "unknown"
    mixed = history((0, "write", "x", 1, 0, 1), (1, "read", "x", None, 2, 3),
                    (1, "read", "x", 0, 4, 5))
    result = check_staleness(mixed)
    assert result.figures["reads_skipped_without_version"] == 1
    assert result.figures["stale_reads"] == 1


def test_duplicate_versions_count_once():
    result = check_staleness(history((0, "write", "x", 1, 0, 3), (1, "write", "x", 1, 1, 2),
                                      (2, "read", "x", 0, 5, 6)))
    assert result.figures["versions_behind"]["max"] == 1
    assert result.figures["time_behind_ms"]["max"] == 3.0      # from the earlier return


# --- against the definition ------------------------------------------------------------------

def brute_force(events):
    operations = pair(events)
    writes = [w for w in operations if w.f == "write"]
    out = []
    for r in operations:
        if r.f != "read":
            continue
        missed = [w for w in writes if w.key == r.key and w.ret < r.call and w.version > r.version]
        behind = len({w.version for w in missed})
        time = r.call - min(w.ret for w in missed) if missed else 0
        out.append((behind, time))
    return out


ops = st.lists(st.tuples(st.sampled_from(["read", "write"]), st.sampled_from(["x", "y"]),
                         st.integers(0, 8), st.integers(0, 50), st.integers(0, 20)),
               max_size=40)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_sweep_matches_the_definition(specs):
    events = history(*[(p, f, key, version, call, call + length)
                       for p, (f, key, version, call, length) in enumerate(specs)])
    expected = brute_force(events)
    result = check_staleness(events, max_versions_behind=-1)   # every read "over": all listed
    if not expected:
        assert result.figures["reads_checked"] == 0
        return
    assert result.figures["stale_reads"] == sum(1 for b, _ in expected if b)
    assert result.figures["versions_behind"]["max"] == max(b for b, _ in expected)
    assert result.figures["time_behind_ms"]["max"] == max(t for _, t in expected) / MS
    reads = result.counterexample["reads"]
    worst = sorted(expected, key=lambda e: (-e[0], -e[1]))[:len(reads)]
    assert [(r["versions_behind"], r["time_behind_ms"]) for r in reads] == \
        [(b, t / MS) for b, t in worst]
