"""Frames and request validation: round trips, every kind of malformed stream, fuzzing of the
incremental decoder and of read_frame, and each invalid request field named in its error."""

from __future__ import annotations

import asyncio
import functools
import itertools
import struct

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refnode.frames import (MAX_FRAME_BYTES, MAX_KEY_LENGTH, FrameDecoder, FrameError,
                            RequestError, encode_frame, read_frame, validate_request)
from refnode.messages import MAX_VALUE_BYTES, Entry


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def reader_with(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def read_all(data: bytes, max_bytes: int = MAX_FRAME_BYTES) -> list[dict]:
    """Every frame read_frame returns from a stream holding `data`, up to a clean EOF."""

    async def go():
        reader = reader_with(data)
        out = []
        while (obj := await read_frame(reader, max_bytes)) is not None:
            out.append(obj)
        return out

    return asyncio.run(asyncio.wait_for(go(), 5))


# -- round trips ---------------------------------------------------------------------------------

OBJECTS = [{}, {"id": 1, "op": "read", "key": "k"}, {"u": "ünïcødé ✓", "n": None, "f": 1.5,
           "deep": [[{"a": [True, False]}]]}, {"big": "x" * 100_000}]


def test_encode_frame_layout():
    data = encode_frame({"a": 1})
    assert data == b"\x00\x00\x00\x07" + b'{"a":1}'


def test_round_trip_through_read_frame_and_decoder():
    stream = b"".join(encode_frame(o) for o in OBJECTS)
    assert read_all(stream) == OBJECTS
    assert FrameDecoder().feed(stream) == OBJECTS


def test_clean_eof_is_none():
    assert read_all(b"") == []


def test_encode_frame_refuses_what_the_peer_would_refuse():
    with pytest.raises(TypeError):
        encode_frame([1, 2])
    with pytest.raises(TypeError):
        encode_frame({"x": object()})
    with pytest.raises(TypeError):
        encode_frame({1: "non-string key"})
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame({"x": "y" * 100}, max_bytes=50)
    assert len(encode_frame({"x": "y" * 100}, max_bytes=200)) > 100


# -- malformed streams ---------------------------------------------------------------------------

def test_oversized_length_is_refused_before_the_body_arrives():
    """The length alone decides: read_frame must not wait for (or buffer) the body."""

    async def go():
        reader = reader_with(struct.pack(">I", MAX_FRAME_BYTES + 1), eof=False)
        return await read_frame(reader)

    with pytest.raises(FrameError, match="exceeds the limit"):
        asyncio.run(asyncio.wait_for(go(), 2))
    decoder = FrameDecoder()
    with pytest.raises(FrameError, match="4294967295 exceeds"):
        decoder.feed(b"\xff\xff\xff\xff")
    assert decoder.buffered == 0


def test_frame_limit_is_configurable():
    data = frame(b'{"a":"' + b"x" * 50 + b'"}')
    assert read_all(data, max_bytes=len(data) - 4) == [{"a": "x" * 50}]
    with pytest.raises(FrameError, match="exceeds"):
        read_all(data, max_bytes=len(data) - 5)
    with pytest.raises(FrameError):
        FrameDecoder(max_bytes=10).feed(data)


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00", "2 of 4 length bytes"),
    (frame(b'{"a":1}')[:-1], "6 of 7 payload bytes"),
    (frame(b"{}") + b"\x00", "1 of 4 length bytes"),
])
def test_truncated_frame(data, message):
    with pytest.raises(FrameError, match=message):
        read_all(data)
    decoder = FrameDecoder()
    decoder.feed(data)
    with pytest.raises(FrameError, match="truncated"):
        decoder.eof()


@pytest.mark.parametrize("payload, message", [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b'{"a":NaN}', "not valid JSON"),
    (b'"\\ud800"', "not valid JSON"),
    (b"[" * 5000, "not valid JSON"),
    (b"[1,2]", "JSON array, not an object"),
    (b"42", "JSON number, not an object"),
    (b"null", "JSON null, not an object"),
    (b'"s"', "JSON string, not an object"),
    (b"true", "JSON boolean, not an object"),
])
def test_bad_payloads(payload, message):
    with pytest.raises(FrameError, match=message) as info:
        read_all(frame(payload))
    assert "\n" not in str(info.value)
    with pytest.raises(FrameError, match=message):
        FrameDecoder().feed(frame(payload))


def test_decoder_returns_good_frames_before_an_error_then_stays_failed():
    decoder = FrameDecoder()
    assert decoder.feed(frame(b"{}") + frame(b"[]") + frame(b'{"late":1}')) == [{}]
    with pytest.raises(FrameError, match="array"):
        decoder.feed(b"")
    with pytest.raises(FrameError, match="array"):
        decoder.feed(frame(b"{}"))
    with pytest.raises(FrameError):
        decoder.eof()


# -- fuzzing -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=4),
    max_leaves=12)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300) | st.lists(
           st.one_of(st.binary(max_size=20),
                     json_objects.map(encode_frame),
                     st.integers(0, 2 ** 32 - 1).map(lambda n: struct.pack(">I", n))),
           max_size=6).map(b"".join),
       cuts=st.lists(st.integers(0, 10 ** 6), max_size=8),
       max_bytes=st.sampled_from([0, 1, 16, 256, MAX_FRAME_BYTES]))
def test_decoder_on_arbitrary_bytes_raises_only_frame_error(data, cuts, max_bytes):
    decoder = FrameDecoder(max_bytes=max_bytes)
    got = []
    try:
        for chunk in chunked(data, cuts):
            got.extend(decoder.feed(chunk))
        decoder.eof()
    except FrameError as e:
        assert "\n" not in str(e)
    assert all(isinstance(o, dict) for o in got)
    assert decoder.buffered <= max(len(data), 0)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200) | st.lists(json_objects.map(encode_frame), max_size=3).flatmap(
           lambda fs: st.binary(max_size=8).map(lambda tail: b"".join(fs) + tail)))
def test_read_frame_on_arbitrary_bytes_ends_or_raises_frame_error(data):
    try:
        frames = read_all(data, max_bytes=1024)
    except FrameError:
        return
    assert all(isinstance(o, dict) for o in frames)


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(json_objects, max_size=6), cuts=st.lists(st.integers(0, 10 ** 6),
                                                                   max_size=12))
def test_valid_frames_split_anywhere_decode_the_same(objects, cuts):
    stream = b"".join(encode_frame(o) for o in objects)
    expected = [orjson.loads(orjson.dumps(o)) for o in objects]
    decoder = FrameDecoder()
    got = []
    for chunk in chunked(stream, cuts):
        got.extend(decoder.feed(chunk))
    decoder.eof()
    assert got == expected
    assert decoder.buffered == 0
    assert read_all(stream) == expected


def test_byte_at_a_time():
    stream = b"".join(encode_frame(o) for o in OBJECTS[:3])
    decoder = FrameDecoder()
    got = []
    for i in range(len(stream)):
        got.extend(decoder.feed(stream[i:i + 1]))
    assert got == OBJECTS[:3]


# -- request validation ------------------------------------------------------------------------

keys = st.text(min_size=1, max_size=30)      # an empty key is refused (no peer takes one)
ids = st.integers(-(2 ** 63), 2 ** 63 - 1)
optional_version = st.one_of(st.none(), st.integers(0, 2 ** 40))


@st.composite
def valid_requests(draw):
    op = draw(st.sampled_from(["read", "write", "cas", "add", "status", "admin"]))
    req = {"id": draw(ids), "op": op}
    if op in ("read", "write", "cas", "add"):
        req["key"] = draw(keys)
        version = draw(optional_version)
        if version is not None:
            req["min_version"] = version
    if op == "read" and draw(st.booleans()):
        req["read_mode"] = draw(st.sampled_from(["leader", "lease", "follower"]))
    if op in ("write", "add"):
        req["value"] = draw(json_values)
    if op == "cas":
        req["value"] = [draw(json_values), draw(json_values)]
    if op == "admin":
        req["token"] = draw(st.text(max_size=10))
        which = draw(st.sampled_from(["offset", "rate", "both"]))
        if which != "rate":
            req["clock_offset"] = draw(st.floats(-1e6, 1e6) | st.integers(-100, 100))
        if which != "offset":
            req["clock_rate"] = draw(st.floats(0.01, 100.0) | st.integers(1, 10))
    return req


@settings(max_examples=300, deadline=None)
@given(valid_requests())
def test_valid_requests_are_accepted_and_normalized(req):
    out = validate_request(req)
    for name, value in req.items():
        assert out[name] == value
    if req["op"] == "read":
        assert out["read_mode"] == req.get("read_mode", "leader")
    if req["op"] in ("read", "write", "cas", "add"):
        assert out["min_version"] == req.get("min_version", 0)
    for name in ("clock_offset", "clock_rate"):
        if name in out:
            assert type(out[name]) is float
    assert set(out) - set(req) <= {"read_mode", "min_version"}
    # what a client sends over the wire validates the same
    assert validate_request(FrameDecoder().feed(encode_frame(req))[0]) == out


BASE = {
    "read": {"id": 1, "op": "read", "key": "k"},
    "write": {"id": 1, "op": "write", "key": "k", "value": 1},
    "cas": {"id": 1, "op": "cas", "key": "k", "value": [1, 2]},
    "add": {"id": 1, "op": "add", "key": "k", "value": "e"},
    "status": {"id": 1, "op": "status"},
    "admin": {"id": 1, "op": "admin", "token": "t", "clock_offset": 0.5},
}

BAD = [
    # (op, field, replacement value or DELETE, expected field)
    ("read", "id", "DELETE", "id"),
    ("read", "id", "1", "id"),
    ("read", "id", 1.0, "id"),
    ("read", "id", True, "id"),
    ("read", "id", None, "id"),
    ("read", "op", "DELETE", "op"),
    ("read", "op", "delete", "op"),
    ("read", "op", 3, "op"),
    ("read", "key", "DELETE", "key"),
    ("write", "key", 5, "key"),
    ("cas", "key", None, "key"),
    ("add", "key", "x" * (MAX_KEY_LENGTH + 1), "key"),
    ("write", "value", "DELETE", "value"),
    ("add", "value", "DELETE", "value"),
    ("cas", "value", "DELETE", "value"),
    ("cas", "value", [1], "value"),
    ("cas", "value", [1, 2, 3], "value"),
    ("cas", "value", {"expected": 1, "new": 2}, "value"),
    ("read", "value", 1, "value"),
    ("status", "value", 1, "value"),
    ("read", "read_mode", "linearizable", "read_mode"),
    ("read", "read_mode", None, "read_mode"),
    ("write", "read_mode", "leader", "read_mode"),
    ("read", "min_version", -1, "min_version"),
    ("read", "min_version", 1.5, "min_version"),
    ("write", "min_version", "3", "min_version"),
    ("read", "min_version", False, "min_version"),
    ("status", "min_version", 1, "min_version"),
    ("status", "key", "k", "key"),
    ("admin", "key", "k", "key"),
    ("admin", "token", "DELETE", "token"),
    ("admin", "token", 123, "token"),
    ("read", "token", "t", "token"),
    ("admin", "clock_offset", "1s", "clock_offset"),
    ("admin", "clock_offset", float("inf"), "clock_offset"),
    ("admin", "clock_offset", True, "clock_offset"),
    ("admin", "clock_rate", 0, "clock_rate"),
    ("admin", "clock_rate", -1.0, "clock_rate"),
    ("admin", "clock_rate", float("nan"), "clock_rate"),
    ("admin", "clock_rate", None, "clock_rate"),
    # Finite but past what a node's clock can keep (it used to spin at 100% CPU, deaf to
    # SIGTERM): refused.
    ("admin", "clock_offset", 1e15, "clock_offset"),
    ("admin", "clock_offset", -1e6 - 1, "clock_offset"),
    ("admin", "clock_rate", 1e6, "clock_rate"),
    ("admin", "clock_rate", 0.001, "clock_rate"),
    ("write", "clock_rate", 1.0, "clock_rate"),
    ("read", "keyy", "k", "keyy"),
    ("status", "extra", None, "extra"),
    # What no peer would accept in a log entry is refused where the request arrives.
    ("write", "key", "", "key"),
    ("read", "key", "", "key"),
    ("write", "value", functools.reduce(lambda inner, _: [inner], range(40), 0), "value"),
    ("add", "value", "x" * (MAX_VALUE_BYTES + 1), "value"),
    ("cas", "value", [1, "y" * MAX_VALUE_BYTES], "value"),
]


@pytest.mark.parametrize("op, name, replacement, field", BAD)
def test_each_bad_field_is_named(op, name, replacement, field):
    req = dict(BASE[op])
    if replacement == "DELETE":
        del req[name]
    else:
        req[name] = replacement
    with pytest.raises(RequestError) as info:
        validate_request(req)
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.request_id == (req["id"] if type(req.get("id")) is int else None)


@settings(max_examples=300, deadline=None)
@given(valid_requests())
def test_what_a_client_may_write_every_peer_accepts_in_a_log_entry(req):
    """One validation wherever a request arrives: an entry made of an accepted write comes
    through a peer's decoding (JSON bytes and back, the strict entry reader) unchanged."""
    out = validate_request(req)
    if out["op"] not in ("write", "cas", "add"):
        return
    entry = Entry(7, 3, out["op"], out["key"], out["value"])
    decoded = Entry.from_dict(orjson.loads(orjson.dumps(entry.to_dict())))
    assert decoded == entry
    assert len(encode_frame(entry.to_dict())) <= MAX_FRAME_BYTES


def test_a_value_at_the_limits_is_accepted_and_its_entry_fits_a_frame():
    deep = functools.reduce(lambda inner, _: [inner], range(32), 0)
    big = "z" * (MAX_VALUE_BYTES - 2)                     # 2 quotes: exactly the limit
    for value in (deep, big):
        out = validate_request({"id": 1, "op": "write", "key": "k" * 1024, "value": value})
        entry = Entry(1, 1, "write", out["key"], out["value"])
        assert Entry.from_dict(orjson.loads(orjson.dumps(entry.to_dict()))) == entry
        assert len(encode_frame({"entries": [entry.to_dict()]})) <= MAX_FRAME_BYTES


def test_bases_are_valid():
    for req in BASE.values():
        validate_request(req)


def test_admin_needs_a_clock_change():
    with pytest.raises(RequestError, match="clock_offset or clock_rate"):
        validate_request({"id": 3, "op": "admin", "token": "t"})


def test_not_an_object():
    for bad in ([], "read", None, 3):
        with pytest.raises(RequestError, match="JSON object"):
            validate_request(bad)


def test_long_garbage_is_not_echoed_in_full():
    with pytest.raises(RequestError) as info:
        validate_request({"id": 1, "op": "x" * 10_000})
    assert len(str(info.value)) < 200


@settings(max_examples=300, deadline=None)
@given(req=valid_requests(), name=st.text(min_size=1, max_size=12), value=json_values)
def test_any_extra_field_is_rejected_by_name(req, name, value):
    if name in req or name in ("read_mode", "min_version") and req["op"] in (
            "read", "write", "cas", "add") or name in ("clock_offset", "clock_rate") and \
            req["op"] == "admin":
        return
    req[name] = value
    with pytest.raises(RequestError) as info:
        validate_request(req)
    assert info.value.field == name


@settings(max_examples=300, deadline=None)
@given(obj=json_values)
def test_arbitrary_json_raises_only_request_error(obj):
    try:
        validate_request(obj)
    except RequestError as e:
        assert "\n" not in str(e)
