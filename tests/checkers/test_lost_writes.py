"""Lost writes: Jepsen's set and set-full, and lost register writes."""

from __future__ import annotations

import orjson

from checkers.history import Op
from checkers.lost_writes import check_register_lost_writes, check_set, check_set_full

MS = 1_000_000


def history(*ops):
    """Events from dicts {p, f, value, call, ret, type="ok", out=None, key=None}, times in ms.
    `ret=None` leaves the op open (never completed). Events come out in time order."""
    timed = []
    for n, o in enumerate(ops):
        kind = o.get("type", "ok")
        f, key = o["f"], o.get("key")
        read = f == "read"
        timed.append((o["call"], n, 0, Op(0, o["call"] * MS, o["p"], "invoke", f, key,
                                           None if read else o.get("value"))))
        if o.get("ret") is not None:
            value = o.get("out") if read else o.get("value")
            timed.append((o["ret"], n, 1, Op(0, o["ret"] * MS, o["p"], kind, f, key, value)))
    timed.sort(key=lambda t: t[:3])
    events = [t[3] for t in timed]
    for i, event in enumerate(events):
        event.index = i
    return events


def add(p, value, call, ret, type="ok", key=None):
    return {"p": p, "f": "add", "value": value, "call": call, "ret": ret, "type": type,
            "key": key}


def read(p, out, call, ret, key=None):
    return {"p": p, "f": "read", "out": out, "call": call, "ret": ret, "key": key}


def write(p, value, call, ret, type="ok", key=None):
    return {"p": p, "f": "write", "value": value, "call": call, "ret": ret, "type": type,
            "key": key}


# --- set -------------------------------------------------------------------------------------

def test_set_all_acknowledged_elements_read_is_valid():
    result = check_set(history(add(0, 1, 0, 1), add(1, 2, 0, 2), read(2, [2, 1], 5, 6)))
    assert result.valid is True
    assert result.figures["attempt_count"] == 2
    assert result.figures["ok_count"] == 2
    assert result.figures["lost_count"] == 0


def test_set_lost_element():
    result = check_set(history(add(0, 1, 0, 1), add(1, 2, 0, 2),
                               read(2, [1, 2], 3, 4), read(2, [1], 5, 6)))
    assert result.valid is False
    assert result.figures["lost_count"] == 1
    [problem] = result.counterexample["keys"]
    assert problem["lost"] == [2]
    assert problem["unexpected"] == []
    orjson.dumps(result.to_json())


def test_set_unexpected_element():
    result = check_set(history(add(0, 1, 0, 1), read(2, [1, 99], 5, 6)))
    assert result.valid is False
    assert result.figures["unexpected_count"] == 1
    assert result.counterexample["keys"][0]["unexpected"] == [99]


def test_set_recovered_elements_are_counted_not_invalid():
    result = check_set(history(add(0, 1, 0, 1), add(1, 3, 0, 2, "info"), add(2, 4, 0, 2, "fail"),
                               add(3, 5, 0, 2, "info"), read(4, [1, 3, 4], 5, 6)))
    assert result.valid is True
    assert result.figures["recovered_count"] == 2
    assert result.figures["recovered"] == [3, 4]
    assert result.figures["ok_count"] == 3
    assert result.figures["attempt_count"] == 4
    assert result.figures["acknowledged_count"] == 1


def test_set_without_final_read_is_unknown():
    result = check_set(history(add(0, 1, 0, 1), read(1, None, 2, None)))
    assert result.valid == "unknown"
    assert check_set([]).valid == "unknown"


def test_set_keys_are_separate_sets():
    result = check_set(history(add(0, 1, 0, 1, key="a"), add(1, 1, 0, 1, key="b"),
                               read(2, [1], 2, 3, key="a"), read(2, [], 4, 5, key="b")))
    assert result.valid is False
    assert [p["key"] for p in result.counterexample["keys"]] == ["b"]


# --- set-full --------------------------------------------------------------------------------

def test_set_full_stable_latencies():
    result = check_set_full(history(
        add(0, 1, 0, 10),             # acknowledged at 10 ms
        add(1, 3, 1, 3, "info"),      # indeterminate: measured from its invocation, 1 ms
        add(2, 2, 11, 12),            # acknowledged at 12 ms
        read(5, [], 5, 6),
        read(5, [], 20, 21),          # misses 1 and 3, began after 1 and 2 were acknowledged
        read(5, [1, 2, 3], 30, 31),
        read(5, [1, 2, 3], 40, 41),
    ))
    assert result.valid is True
    figures = result.figures
    assert figures["stable_count"] == 3
    # 1: last missed by the read begun at 20 -> 10 ms; 3: 20 - 1 = 19 ms; 2: likewise 8 ms
    assert figures["stable_latency_ms"] == {"min": 8.0, "0.5": 10.0, "0.95": 19.0,
                                            "0.99": 19.0, "max": 19.0}
    # 2 was acknowledged before the read at 20 began, and that read missed it
    assert figures["stale_count"] == 2
    orjson.dumps(result.to_json())


def test_set_full_element_visible_at_once_has_zero_latency():
    result = check_set_full(history(read(5, [], 0, 1), add(0, 1, 2, 3), read(5, [1], 4, 5)))
    assert result.figures["stable_latency_ms"]["max"] == 0.0
    assert result.figures["stale_count"] == 0


def test_set_full_lost_element():
    result = check_set_full(history(
        add(0, 1, 0, 1), add(0, 2, 2, 3),
        read(5, [1, 2], 10, 11),
        read(5, [1], 20, 21),
    ))
    assert result.valid is False
    assert result.figures["lost_count"] == 1
    assert result.figures["stable_count"] == 1
    [lost] = result.counterexample["lost"]
    assert lost["element"] == 2
    assert "[0.020000..0.021000 s]" in lost["missing_from"]


def test_set_full_seen_then_missing_is_lost_even_without_ack():
    result = check_set_full(history(add(0, 7, 0, None), read(5, [7], 10, 11),
                                    read(5, [], 20, 21)))
    assert result.valid is False
    assert result.figures["lost_count"] == 1


def test_set_full_stale_element_invalid_only_when_linearizable():
    ops = history(add(0, 1, 0, 1), read(5, [1], 10, 11), read(5, [], 20, 21),
                  read(5, [1], 30, 31))
    assert check_set_full(ops).valid is True
    assert check_set_full(ops).figures["stale_count"] == 1
    strict = check_set_full(ops, linearizable=True)
    assert strict.valid is False
    assert strict.counterexample["stale"][0]["element"] == 1


def test_set_full_never_read_and_unacknowledged():
    result = check_set_full(history(
        add(0, 1, 0, 1),
        read(5, [1], 2, 10),
        add(1, 2, 3, 4),              # acknowledged after the last read began
        add(2, 3, 3, 4, "fail"),      # never happened
        add(3, 4, 3, 4, "info"),      # may never have happened
    ))
    assert result.valid is True
    assert result.figures["stable_count"] == 1
    assert result.figures["never_read_count"] == 1
    assert result.figures["unacknowledged_count"] == 2


def test_set_full_unexpected_and_unread():
    result = check_set_full(history(add(0, 1, 0, 1), read(5, [1, 42], 2, 3), read(5, [42], 4, 5)))
    assert result.valid is False
    assert result.figures["unexpected_count"] == 1
    assert result.counterexample["unexpected"][0]["element"] == 42
    assert check_set_full(history(add(0, 1, 0, 1))).valid == "unknown"


# --- registers -------------------------------------------------------------------------------

def test_register_lost_write_detected():
    result = check_register_lost_writes(history(
        write(0, 1, 0, 10),
        write(1, 2, 20, 30),
        read(2, 1, 40, 50),           # back to 1, which was written before 2 began
    ))
    assert result.valid is False
    assert result.figures["lost_count"] == 1
    [lost] = result.counterexample["lost"]
    assert "write 2" in lost["write"]
    assert lost["read_id"] == 2
    assert "write 1" in lost["read_value_written_by"]
    orjson.dumps(result.to_json())


def test_register_read_of_initial_value_after_ack_is_a_loss():
    result = check_register_lost_writes(history(write(0, 1, 0, 10), read(1, None, 20, 30)))
    assert result.valid is False
    assert result.counterexample["lost"][0]["read_value_written_by"] == "the initial value"


def test_register_correct_history_accepted():
    result = check_register_lost_writes(history(
        write(0, 1, 0, 10),
        read(1, 1, 5, 15),
        write(0, 2, 20, 30),
        write(2, 3, 25, 45),          # concurrent with 2: may overwrite it
        read(1, 3, 50, 60),
        read(1, 3, 70, 80),
    ))
    assert result.valid is True
    assert result.figures["writes_checked"] == 3
    assert result.figures["unobserved_count"] == 1      # 2 was never read: informational
    assert result.figures["unobserved_by_key"] == [{"key": None, "count": 1}]


def test_register_overwrite_by_a_concurrent_write_is_not_a_loss():
    result = check_register_lost_writes(history(
        write(0, 1, 0, 20),
        write(1, 2, 10, 30),          # overlaps 1, which may have taken effect after it
        read(2, 1, 40, 50),
    ))
    assert result.valid is True
    assert result.figures["lost_count"] == 0


def test_register_stale_read_followed_by_the_value_is_not_lost():
    result = check_register_lost_writes(history(
        write(0, 1, 0, 10), write(0, 2, 20, 30),
        read(1, 1, 40, 50),           # stale, but 2 shows up again afterwards
        read(1, 2, 60, 70),
    ))
    assert result.valid is True


def test_register_keys_and_cas():
    events = history(
        write(0, 1, 0, 10, key="a"),
        {"p": 1, "f": "cas", "value": [1, 2], "call": 20, "ret": 30, "key": "a"},
        write(2, 1, 0, 10, key="b"),
        read(3, 1, 40, 50, key="b"),  # key b is fine
        read(4, 1, 40, 50, key="a"),  # key a went back behind the cas
    )
    result = check_register_lost_writes(events)
    assert result.valid is False
    assert result.counterexample["lost"][0]["key"] == "a"
    assert "cas a [1, 2]" in result.counterexample["lost"][0]["write"]


def test_register_without_reads_is_unknown():
    assert check_register_lost_writes(history(write(0, 1, 0, 10))).valid == "unknown"


def test_a_lost_element_is_described_briefly_and_dated():
    """A set read of thousands of elements is shown by its ends and its size, and the lost
    add's invocation time is given (the run's 'first violation')."""
    elements = list(range(2, 3000))
    h = history({"p": 0, "f": "add", "value": 1, "call": 1, "ret": 2},
                *({"p": 1, "f": "add", "value": v, "call": 3, "ret": 4} for v in elements[:1]),
                {"p": 2, "f": "read", "call": 10, "ret": 11, "out": elements})
    result = check_set_full(h)
    assert result.valid is False
    lost = result.counterexample["lost"][0]
    assert lost["element"] == 1 and lost["call"] == 1 * MS
    assert "(2998 elements)" in lost["missing_from"]
    assert len(lost["missing_from"]) < 200
