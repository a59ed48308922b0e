"""Stats: counts, latencies, availability and throughput on a hand-computed history."""

from __future__ import annotations

import orjson

from checkers.figures import quantiles
from checkers.history import Op
from checkers.stats import check_stats

MS = 1_000_000


def history(*events):
    """Events from (time_ms, process, type, f[, value]) tuples, already in time order."""
    return [Op(i, t * MS, p, kind, f, None, rest[0] if rest else None)
            for i, (t, p, kind, f, *rest) in enumerate(events)]


EXAMPLE = history(
    (0, 0, "invoke", "write", 1),
    (1, 1, "invoke", "read"),
    (2, 0, "ok", "write", 1),                 # write ok, 2 ms
    (3, 2, "invoke", "write", 2),
    (4, 2, "fail", "write", 2),               # write fail
    (5, 1, "ok", "read", 1),                  # read ok, 4 ms
    (6, 3, "invoke", "read"),
    (7, "nemesis", "invoke", "start-partition"),
    (8, 3, "info", "read"),                   # read info
    (8, "nemesis", "info", "start-partition"),
    (10, 0, "invoke", "cas", [1, 3]),
    (11, 0, "ok", "cas", [1, 3]),             # cas ok, 1 ms
    (12, 4, "invoke", "write", 4),            # never completes: info, not "completed"
    (20, "nemesis", "invoke", "stop-partition"),
)


def test_hand_computed_figures():
    result = check_stats(EXAMPLE)
    assert result.valid is True
    figures = result.figures
    assert figures["count"] == 6
    assert figures["by_type"] == {"ok": 3, "fail": 1, "info": 2}
    assert figures["by_f"] == {"cas": {"ok": 1, "fail": 0, "info": 0},
                               "read": {"ok": 1, "fail": 0, "info": 1},
                               "write": {"ok": 1, "fail": 1, "info": 1}}
    assert figures["latency_ms"]["write"] == {"0.5": 2.0, "0.95": 2.0, "0.99": 2.0, "max": 2.0}
    assert figures["latency_ms"]["read"]["max"] == 4.0
    assert figures["latency_ms"]["cas"]["0.5"] == 1.0
    assert figures["availability"]["overall"] == 0.6      # 3 ok of 5 completed
    assert figures["availability"]["by_f"] == {"cas": 1.0, "read": 0.5, "write": 0.5}
    assert figures["throughput_per_s"] == 150.0           # 3 ok over 20 ms
    assert figures["nemesis_events"] == 3
    orjson.dumps(result.to_json())


def test_latency_quantiles_are_nearest_rank():
    events = []
    for i in range(1, 101):                  # 100 sequential reads of 1..100 ms
        start = sum(range(1, i)) + i
        events += [(start, 0, "invoke", "read"), (start + i, 0, "ok", "read", 0)]
    figures = check_stats(history(*events)).figures
    assert figures["latency_ms"]["read"] == {"0.5": 50.0, "0.95": 95.0, "0.99": 99.0,
                                             "max": 100.0}


def test_no_successful_operation_is_reported_not_judged():
    # Availability is not safety: Knossos has linearizable histories in which nothing
    # succeeded, and they must not come out invalid.
    result = check_stats(history((0, 0, "invoke", "write", 1), (1, 0, "fail", "write", 1),
                                 (2, 1, "invoke", "read")))
    assert result.valid is True
    assert result.summary.startswith("no operation succeeded")
    assert result.figures["availability"]["overall"] == 0.0
    assert result.figures["latency_ms"]["write"] is None
    assert check_stats([]).valid is True


def test_quantiles_helper():
    values = list(range(100, 0, -1))
    # 0.07 * 100 is 7.000000000000001 in floating point: still rank 7
    assert quantiles(values, (0, 0.07, 0.55, 1)) == {"min": 1, "0.07": 7, "0.55": 55, "max": 100}
    assert quantiles([5], (0.5, 0.99)) == {"0.5": 5, "0.99": 5}
    assert quantiles([], (0.5,)) is None
