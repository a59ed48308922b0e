"""Reading and writing histories: JSON Lines, EDN, Jepsen text logs, and format detection."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.edn import read_edn, write_edn
from checkers.formats import FORMATS, detect_format, load_history, save_history
from checkers.history import NEMESIS, TYPES, HistoryError, Op
from checkers.jepsen_log import read_jepsen_log
from checkers.jsonl import HistoryWriter, iter_jsonl, read_jsonl, write_jsonl

from tests.corpora import CORPORA, needs_corpora


def corpus_files() -> list[Path]:
    if not CORPORA.is_dir():
        return []
    return sorted(p for p in CORPORA.rglob("*")
                  if p.is_file() and p.name not in ("README.md", "manifest.json"))


def assert_names(exc: HistoryError, path: Path, line: int | None, field: str | None = None):
    """The message is one line naming the file, the line and the field."""
    message = str(exc)
    assert "\n" not in message
    where = f"{path}:{line}:" if line is not None else f"{path}:"
    assert message.startswith(where), message
    assert exc.source == str(path) and exc.line == line
    if field is not None:
        assert f"field '{field}'" in message, message
        assert exc.field_name == field


def sample_ops() -> list[Op]:
    return [
        Op(0, 0, 0, "invoke", "write", "k1", 5),
        Op(1, 10, "nemesis", "invoke", "start-partition", None, {"isolated": ["n1"]}),
        Op(2, 10, 0, "ok", "write", "k1", 5, node="n2", version=7),
        Op(3, 25, 1, "invoke", "cas", None, [1, 2]),
        Op(4, 30, "nemesis", "info", "start-partition", None, [["n1"], ["n2", "n3"]]),
        Op(5, 31, 1, "info", "cas", None, [1, 2], error="timed-out"),
        Op(6, 40, 2, "invoke", "read", 3, None),
        Op(7, 41, 2, "ok", "read", 3, {"nested": [1.5, "é", True, None]}, node="n1",
           version=0),
        Op(8, 50, 3, "invoke", "weird f!", "", "x"),
        Op(9, 51, 3, "fail", "weird f!", "", "x", error=""),
    ]


# --- JSON Lines -----------------------------------------------------------------------------

def test_jsonl_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "h.jsonl"
    ops = sample_ops()
    write_jsonl(ops, path)
    back = read_jsonl(path)
    assert back == ops
    assert [op.line for op in back] == list(range(1, len(ops) + 1))
    assert list(iter_jsonl(path)) == ops
    first = orjson.loads(path.read_bytes().splitlines()[2])
    assert first == {"index": 2, "time": 10, "process": 0, "type": "ok", "f": "write",
                     "key": "k1", "value": 5, "node": "n2", "version": 7}


def test_jsonl_skips_blank_lines_and_ignores_unknown_fields(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('\n{"index":0,"time":1,"process":0,"type":"invoke","f":"read",'
                    '"extra":{"a":1}}\n   \n'
                    '{"index":1,"time":2,"process":0,"type":"ok","f":"read","value":3}\n\n')
    ops = read_jsonl(path)
    assert ops == [Op(0, 1, 0, "invoke", "read"), Op(1, 2, 0, "ok", "read", None, 3)]
    assert [op.line for op in ops] == [2, 4]


def test_history_writer_flushes_each_event(tmp_path):
    path = tmp_path / "run.jsonl"
    ops = sample_ops()
    with HistoryWriter(path) as writer:
        for n, op in enumerate(ops, 1):
            writer.append(op)
            # Another process reading now (the file as a crash would leave it) sees them all.
            assert read_jsonl(path) == ops[:n]
        assert writer.count == len(ops)
    writer.close()
    assert read_jsonl(path) == ops


def test_history_writer_refuses_what_the_reader_would_refuse(tmp_path):
    path = tmp_path / "run.jsonl"
    with HistoryWriter(path) as writer:
        writer.append(Op(0, 5, 0, "invoke", "read"))
        with pytest.raises(HistoryError) as bad:
            writer.append(Op(2, 6, 0, "ok", "read"))
        assert_names(bad.value, path, 2, "index")
        with pytest.raises(HistoryError) as bad:
            writer.append(Op(1, 4, 0, "ok", "read"))
        assert_names(bad.value, path, 2, "time")
        with pytest.raises(HistoryError) as bad:
            writer.append(Op(1, 6, 0, "ok", "read", None, object()))
        assert_names(bad.value, path, 2, "value")
        writer.append(Op(1, 6, 0, "ok", "read", None, 1))
    assert len(read_jsonl(path)) == 2


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8)

EVENTS = st.lists(st.tuples(
    st.integers(0, 10 ** 12),
    st.one_of(st.integers(-5, 10 ** 6), st.just(NEMESIS)),
    st.sampled_from(TYPES),
    st.text(min_size=1, max_size=12),
    st.one_of(st.none(), st.text(max_size=6), st.integers(-(2 ** 63), 2 ** 63 - 1)),
    JSON_VALUES,
    st.one_of(st.none(), st.text(max_size=4)),
    st.one_of(st.none(), st.integers(0, 2 ** 63 - 1)),
    st.one_of(st.none(), st.text(max_size=10)),
), max_size=20)


def build_history(events) -> list[Op]:
    ops, time = [], 0
    for index, (step, process, typ, f, key, value, node, version, error) in enumerate(events):
        time += step
        ops.append(Op(index, time, process, typ, f, key, value, node, version, error))
    return ops


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS)
def test_jsonl_round_trip_of_random_histories(events):
    ops = build_history(events)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.jsonl"
        write_jsonl(ops, path)
        assert read_jsonl(path) == ops
        assert load_history(path) == ops


VALID = {"index": 0, "time": 5, "process": 1, "type": "invoke", "f": "read", "key": None,
         "value": None}


def write_lines(path: Path, *objects) -> Path:
    path.write_bytes(b"".join(orjson.dumps(o) + b"\n" for o in objects))
    return path


def test_jsonl_truncated_last_line(tmp_path):
    path = write_lines(tmp_path / "h.jsonl", VALID)
    with path.open("ab") as fh:
        fh.write(b'{"index": 1, "time": 7, "proc')
    with pytest.raises(HistoryError) as bad:
        read_jsonl(path)
    assert_names(bad.value, path, 2)
    assert "truncated" in str(bad.value)


def test_jsonl_not_json(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(VALID) + "\nthis is not json\n")
    with pytest.raises(HistoryError) as bad:
        read_jsonl(path)
    assert_names(bad.value, path, 2)
    assert "not valid JSON" in str(bad.value)


@pytest.mark.parametrize("line", [b"[1, 2]", b'"op"', b"42", b"null"])
def test_jsonl_not_an_object(tmp_path, line):
    path = tmp_path / "h.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(HistoryError) as bad:
        read_jsonl(path)
    assert_names(bad.value, path, 1)
    assert "expected a JSON object" in str(bad.value)


@pytest.mark.parametrize("field", ["index", "time", "process", "type", "f"])
def test_jsonl_missing_required_field(tmp_path, field):
    op = {k: v for k, v in VALID.items() if k != field}
    path = write_lines(tmp_path / "h.jsonl", op)
    with pytest.raises(HistoryError) as bad:
        read_jsonl(path)
    assert_names(bad.value, path, 1, field)
    assert "missing" in str(bad.value)


@pytest.mark.parametrize("field,value", [
    ("index", "0"), ("index", 0.0), ("index", True), ("index", None),
    ("time", "5"), ("time", 5.5), ("time", False),
    ("process", "client-1"), ("process", 1.0), ("process", True), ("process", None),
    ("process", [1]),
    ("type", "done"), ("type", "INVOKE"), ("type", 1), ("type", ["ok"]),
    ("f", 3), ("f", None), ("f", ["read"]),
    ("key", 1.5), ("key", ["a"]), ("key", True), ("key", {"k": 1}),
    ("node", 1), ("node", ["n1"]),
    ("version", "7"), ("version", 7.0), ("version", True),
    ("error", 1), ("error", {"why": "timeout"}),
])
def test_jsonl_wrong_type(tmp_path, field, value):
    second = dict(VALID, index=1)
    second[field] = value
    path = write_lines(tmp_path / "h.jsonl", VALID, second)
    with pytest.raises(HistoryError) as bad:
        read_jsonl(path)
    assert_names(bad.value, path, 2, field)


def test_jsonl_time_going_backwards(tmp_path):
    path = write_lines(tmp_path / "h.jsonl", VALID, dict(VALID, index=1, time=5),
                       dict(VALID, index=2, time=4))
    with pytest.raises(HistoryError) as bad:
        read_jsonl(path)
    assert_names(bad.value, path, 3, "time")
    assert "backwards" in str(bad.value)


@pytest.mark.parametrize("indexes,bad_line", [([0, 2], 2), ([1], 1), ([0, 1, 1], 3)])
def test_jsonl_index_not_its_position(tmp_path, indexes, bad_line):
    path = write_lines(tmp_path / "h.jsonl", *(dict(VALID, index=i) for i in indexes))
    with pytest.raises(HistoryError) as bad:
        read_jsonl(path)
    assert_names(bad.value, path, bad_line, "index")


def test_jsonl_errors_while_streaming_come_after_the_good_events(tmp_path):
    path = write_lines(tmp_path / "h.jsonl", VALID, dict(VALID, index=1, type="done"))
    events = iter_jsonl(path)
    assert next(events).index == 0
    with pytest.raises(HistoryError):
        next(events)


# --- EDN ------------------------------------------------------------------------------------

def test_edn_export_then_import(tmp_path):
    path = tmp_path / "h.edn"
    ops = sample_ops()
    write_edn(ops, path)
    text = path.read_text()
    assert text.startswith("[{") and ":type :invoke" in text and ":process :nemesis" in text
    back = read_edn(path)
    assert back == ops
    # One map per line: each op's line is where its map is.
    assert [op.line for op in back] == list(range(1, len(ops) + 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS)
def test_edn_round_trip_of_random_histories(events):
    ops = build_history(events)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.edn"
        save_history(ops, path, "edn")
        assert load_history(path) == ops


def test_edn_vector_without_times(tmp_path):
    path = tmp_path / "h.edn"
    path.write_text("; a comment first\n"
                    "[{:process 0, :type :invoke, :f :read, :value nil, :index 9}\n"
                    " ; a comment between\n"
                    " {:process 0,\n"
                    "  :type :fail,\n"
                    "  :f :read,\n"
                    "  :value :timed-out, :error [:temporarily-unavailable nil]}\n"
                    " {:process :nemesis :type :info :f :start-partition :value [:n1 \"n2\"]}\n"
                    " {:process 1, :type :invoke, :f :cas, :value (1 2), :node :n3}]\n")
    ops = read_edn(path)
    assert ops == [
        Op(0, 0, 0, "invoke", "read", None, None),
        Op(1, 1, 0, "fail", "read", None, "timed-out", error="[:temporarily-unavailable nil]"),
        Op(2, 2, "nemesis", "info", "start-partition", None, ["n1", "n2"]),
        Op(3, 3, 1, "invoke", "cas", None, [1, 2], node="n3"),
    ]
    assert [op.line for op in ops] == [2, 4, 8, 9]


def test_edn_times_are_used_and_kept_in_file_order(tmp_path):
    path = tmp_path / "h.edn"
    path.write_text("({:process 0 :type :invoke :f :read :time 100}\n"
                    " {:process 1 :type :invoke :f :read :time 90}\n"
                    " {:process 1 :type :ok :f :read :value 1 :time 90}\n"
                    " {:process 0 :type :ok :f :read :value 1 :time 200})\n")
    assert [op.time for op in read_edn(path)] == [100, 101, 102, 200]
    path.write_text("[{:process 0 :type :invoke :f :read :time 100}\n"
                    " {:process 0 :type :ok :f :read}]\n")
    assert [op.time for op in read_edn(path)] == [0, 1]


def test_edn_one_map_per_line(tmp_path):
    path = tmp_path / "kv.txt"
    path.write_text('{:process 0, :type :invoke, :f :get, :key "6", :value nil}\n'
                    '\n'
                    '{:process 0, :type :ok, :f :get, :key "6", :value "x 0 1 y"}\n')
    ops = load_history(path)
    assert ops == [Op(0, 0, 0, "invoke", "get", "6", None),
                   Op(1, 1, 0, "ok", "get", "6", "x 0 1 y")]
    assert [op.line for op in ops] == [1, 3]


INDEPENDENT = """[{:process 0, :type :invoke, :f :read, :value [1 nil]}
 {:process 0, :type :ok, :f :read, :value [1 3]}
 {:process :nemesis, :type :info, :f :start, :value nil}
 {:process 1, :type :invoke, :f :cas, :value [:k2 [3 4]]}
 {:process 1, :type :fail, :f :cas, :value [:k2 [3 4]]}]
"""


def test_edn_tuple_keys_are_detected(tmp_path):
    path = tmp_path / "independent.edn"
    path.write_text(INDEPENDENT)
    ops = read_edn(path)
    assert [(op.key, op.value) for op in ops] == [
        (1, None), (1, 3), (None, None), ("k2", [3, 4]), ("k2", [3, 4])]
    assert read_edn(path, tuple_keys=True) == ops
    unsplit = read_edn(path, tuple_keys=False)
    assert [(op.key, op.value) for op in unsplit][:2] == [(None, [1, None]), (None, [1, 3])]


def test_edn_plain_register_is_not_taken_for_tuples(tmp_path):
    path = tmp_path / "register.edn"
    path.write_text("[{:process 0, :type :invoke, :f :cas, :value [1 2]}\n"
                    " {:process 0, :type :ok, :f :cas, :value [1 2]}\n"
                    " {:process 1, :type :invoke, :f :read, :value nil}\n"
                    " {:process 1, :type :ok, :f :read, :value 2}]\n")
    assert [(op.key, op.value) for op in read_edn(path)] == [
        (None, [1, 2]), (None, [1, 2]), (None, None), (None, 2)]
    with pytest.raises(HistoryError) as bad:
        read_edn(path, tuple_keys=True)
    assert_names(bad.value, path, 3, "value")


def test_edn_explicit_key_is_the_key(tmp_path):
    path = tmp_path / "keyed.edn"
    path.write_text('[{:process 0, :type :invoke, :f :cas, :key "a", :value [1 2]}\n'
                    ' {:process 0, :type :ok, :f :cas, :key "a", :value [1 2]}]\n')
    assert [(op.key, op.value) for op in read_edn(path)] == [("a", [1, 2]), ("a", [1, 2])]


@pytest.mark.parametrize("text,line", [
    ("[{:process 0 :type :invoke :f :read}\n {:process 1 :type :ok :f :read]\n", 2),
    ("[{:process 0 :type :invoke :f :read}\n {:process 1 :type :ok\n", 3),
    ("{:process 0 :type :invoke :f :read}\n{:process \x01}\n", 2),
    ("[{:process 0 :type :invoke :f :read}\n {:process 1 :type :ok :f}]\n", None),
])
def test_edn_garbage(tmp_path, text, line):
    path = tmp_path / "h.edn"
    path.write_text(text)
    with pytest.raises(HistoryError) as bad:
        read_edn(path)
    assert_names(bad.value, path, line)
    assert "not valid EDN" in str(bad.value)


def test_edn_element_that_is_not_a_map(tmp_path):
    path = tmp_path / "h.edn"
    path.write_text("[{:process 0 :type :invoke :f :read}\n [:process 0 :type :ok]]\n")
    with pytest.raises(HistoryError) as bad:
        read_edn(path)
    assert_names(bad.value, path, 2)
    assert "expected an op map" in str(bad.value)


@pytest.mark.parametrize("op,field", [
    ("{:type :invoke :f :read}", "process"),
    ("{:process 1 :f :read}", "type"),
    ("{:process 1 :type :invoke}", "f"),
    ("{:process 1 :type :done :f :read}", "type"),
    ('{:process 1 :type "invoked" :f :read}', "type"),
    ("{:process :client :type :ok :f :read}", "process"),
    ("{:process 1.5 :type :ok :f :read}", "process"),
    ("{:process 1 :type :ok :f 3}", "f"),
    ("{:process 1 :type :ok :f :read :time :now}", "time"),
    ("{:process 1 :type :ok :f :read :key 1.5}", "key"),
    ("{:process 1 :type :ok :f :read :version \"3\"}", "version"),
])
def test_edn_bad_op(tmp_path, op, field):
    path = tmp_path / "h.edn"
    path.write_text(f"[{{:process 0 :type :invoke :f :read}}\n\n {op}]\n")
    with pytest.raises(HistoryError) as bad:
        read_edn(path)
    assert_names(bad.value, path, 3, field)


# --- Jepsen text logs -----------------------------------------------------------------------

def test_jepsen_log_lines(tmp_path):
    path = tmp_path / "jepsen.log"
    path.write_text("INFO  jepsen.core - Running test\n"
                    "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n"
                    "INFO  jepsen.util - :nemesis\t:info\t:start\t{:n1 #{:n2}}\n"
                    "some stack trace line\n"
                    "INFO  jepsen.util - 8\t:fail\t:read\t:timed-out\n"
                    "INFO  jepsen.util - 1   :ok     :cas    [2 4]\n"
                    "INFO  jepsen.util - 2\t:info\t:write\t3\t:timeout\n"
                    "INFO  [2018-02-22 19:10:36,720] jepsen worker 0 - jepsen.util 0\t:invoke"
                    "\t:write\t\"s p a c e\"\n")
    ops = read_jepsen_log(path)
    assert ops == [
        Op(0, 0, 3, "invoke", "read", None, None),
        Op(1, 1, "nemesis", "info", "start", None, {"n1": ["n2"]}),
        Op(2, 2, 8, "fail", "read", None, "timed-out"),
        Op(3, 3, 1, "ok", "cas", None, [2, 4]),
        Op(4, 4, 2, "info", "write", None, 3, error="timeout"),
        Op(5, 5, 0, "invoke", "write", None, "s p a c e"),
    ]
    assert [op.line for op in ops] == [2, 3, 5, 6, 7, 8]


@pytest.mark.parametrize("line,field", [
    ("INFO  jepsen.util - 3\t:done\t:read\tnil", "type"),
    ("INFO  jepsen.util - 3\t:invoke\t:read", None),
    ("INFO  jepsen.util - 3", None),
    ("INFO  jepsen.util - :client\t:invoke\t:read\tnil", "process"),
    ("INFO  jepsen.util - 3\t:ok\t:read\t[1 2", "value"),
    ("INFO  jepsen.util - 3\t:ok\t:read\t1 2", "value"),
])
def test_jepsen_log_malformed_op_line(tmp_path, line, field):
    path = tmp_path / "jepsen.log"
    path.write_text(f"INFO  jepsen.util - 1\t:invoke\t:read\tnil\n{line}\n")
    with pytest.raises(HistoryError) as bad:
        read_jepsen_log(path)
    assert_names(bad.value, path, 2, field)


# --- load_history, save_history and detection ------------------------------------------------

@pytest.mark.parametrize("name,text,expected", [
    ("a.txt", '{"index":0,"time":0,"process":0,"type":"invoke","f":"read"}\n', "jsonl"),
    ("a", '\n  { "index":0,"time":0,"process":0,"type":"invoke","f":"read"}\n', "jsonl"),
    ("a.txt", "{:process 0, :type :invoke, :f :read}\n", "edn"),
    ("a.hist", "[{:process 0, :type :invoke, :f :read}]\n", "edn"),
    ("a.hist", "; comment\n({:process 0, :type :invoke, :f :read})\n", "edn"),
    ("a.txt", "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n", "jepsen-log"),
    ("a.txt", "2024-01-01 12:00:00,000{GMT}\tINFO\t[worker 0] jepsen.core: Running\n"
              "2024-01-01 12:00:00,001{GMT}\tINFO\t[worker 0] jepsen.util: 0\t:invoke\t"
              ":read\tnil\n", "jepsen-log"),
])
def test_detection_by_content(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert detect_format(path) == expected
    ops = load_history(path)
    assert (ops[0].process, ops[0].type, ops[0].f) == (0, "invoke", "read")


def test_detection_by_extension_and_explicit_format(tmp_path):
    assert detect_format(tmp_path / "x.JSONL") == "jsonl"
    assert detect_format(tmp_path / "x.json") == "jsonl"
    assert detect_format(tmp_path / "x.edn") == "edn"
    assert detect_format(tmp_path / "x.log") == "jepsen-log"
    path = tmp_path / "history.log"
    write_jsonl(sample_ops(), path)
    assert load_history(path, format="jsonl") == sample_ops()
    assert set(FORMATS) == {"jsonl", "edn", "jepsen-log"}


def test_save_history_in_each_writable_format(tmp_path):
    for fmt in ("jsonl", "edn"):
        path = tmp_path / f"h.{fmt}"
        save_history(sample_ops(), path, fmt)
        assert load_history(path) == sample_ops()
    with pytest.raises(HistoryError) as bad:
        save_history(sample_ops(), tmp_path / "h.log", "jepsen-log")
    assert_names(bad.value, tmp_path / "h.log", None)


def test_unknown_format_name(tmp_path):
    path = write_lines(tmp_path / "h.jsonl", VALID)
    with pytest.raises(HistoryError) as bad:
        load_history(path, format="yaml")
    assert_names(bad.value, path, None)
    assert all(name in str(bad.value) for name in FORMATS)


def test_undetectable_content(tmp_path):
    path = tmp_path / "h.txt"
    path.write_text("hello, world\n")
    with pytest.raises(HistoryError) as bad:
        load_history(path)
    assert_names(bad.value, path, 1)
    assert all(name in str(bad.value) for name in FORMATS)
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(HistoryError):
        load_history(empty)


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.jsonl"
    for load in (load_history, read_jsonl, read_edn, read_jepsen_log):
        with pytest.raises(HistoryError) as bad:
            load(missing)
        assert_names(bad.value, missing, None)
    with pytest.raises(HistoryError) as bad:
        load_history(tmp_path)
    assert_names(bad.value, tmp_path, None)
    assert "directory" in str(bad.value)


def test_options_are_passed_to_their_format_only(tmp_path):
    path = tmp_path / "independent.edn"
    path.write_text(INDEPENDENT)
    assert load_history(path, tuple_keys=False)[0].value == [1, None]
    with pytest.raises(TypeError):
        load_history(write_lines(tmp_path / "h.jsonl", VALID), tuple_keys=True)


# --- The corpora ----------------------------------------------------------------------------

@needs_corpora
def test_every_corpus_file_parses(tmp_path):
    manifest = json.loads((CORPORA / "manifest.json").read_text())
    formats = {entry["file"]: entry["format"] for entry in manifest["histories"]}
    files = corpus_files()
    assert files, f"no history files under {CORPORA}"
    for path in files:
        relative = path.relative_to(CORPORA).as_posix()
        ops = load_history(path)
        assert ops, relative
        if relative in formats:
            assert detect_format(path) == formats[relative], relative
        assert [op.index for op in ops] == list(range(len(ops)))
        assert all(a.time <= b.time for a, b in zip(ops, ops[1:])), relative
        assert all(op.type in TYPES for op in ops)
        # Every imported history can be kept in the native format.
        native = tmp_path / "native.jsonl"
        save_history(ops, native)
        assert read_jsonl(native) == ops, relative


@needs_corpora
def test_manifest_lists_existing_files():
    manifest = json.loads((CORPORA / "manifest.json").read_text())
    for entry in manifest["histories"]:
        assert (CORPORA / entry["file"]).is_file(), entry["file"]


@needs_corpora
def test_etcd_logs_invoke_counts():
    logs = sorted((CORPORA / "porcupine" / "jepsen-etcd").glob("etcd_*.log"))
    assert len(logs) == 52
    known = {"etcd_000.log": 85, "etcd_002.log": 77, "etcd_100.log": 77, "etcd_102.log": 73}
    total = 0
    for path in logs:
        ops = read_jepsen_log(path)
        invokes = sum(op.type == "invoke" for op in ops)
        # Independently of the parser: lines naming :invoke as the op's type.
        lines = path.read_text().splitlines()
        assert invokes == sum(bool(re.search(r"\s:invoke\s", line)) for line in lines)
        assert len(ops) == sum("jepsen.util" in line for line in lines)
        if path.name in known:
            assert invokes == known[path.name], path.name
        total += invokes
    assert total == 4333


@needs_corpora
def test_knossos_timed_corpus_keeps_jepsen_times():
    path = CORPORA / "knossos" / "cas-register" / "bad" / "rethink-fail.edn"
    ops = read_edn(path)
    assert len(ops) == 500
    assert ops[0].time == 99286665244 and ops[0].value == [1, 4] and ops[0].key is None
    assert ops[-1].line == 906 and ops[-1].type == "fail"
