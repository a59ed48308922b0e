"""The nemesis over fault objects, against a stand-in cluster: each stop undoes only its own
fault, a fault that cannot be applied is recorded (history and report), the final heal
sweeps what is left, and old schedules (without kinds) still replay."""

from __future__ import annotations

import pytest

from harness import faults
from harness.faults import partition_shapes as partitions
from harness.faults import schedule as nemesis
from harness.networks.base import DROP, Network
from harness.run.cluster import ClusterError


class MemoryNetwork(Network):
    """The bookkeeping of a real backend, applying nothing: what is cut and slowed now."""

    name = "memory"

    def __init__(self, nodes):
        super().__init__(nodes, ".")
        self.cut_now: dict = {}
        self.slowed: set = set()

    def _apply_cuts(self, cuts):
        self.cut_now = {mode: set(links) for mode, links in cuts.items()}

    def _add_slow(self, change):
        self.slowed |= {(change.id, link) for link in change.links}

    def _remove_slow(self, change):
        self.slowed = {(i, link) for i, link in self.slowed if i != change.id}


class Process:
    def __init__(self):
        self.running, self.paused, self.pid = True, False, 100


class StandInCluster:
    """Nodes that can be killed, paused and restarted, except those in `broken`."""

    def __init__(self, broken=()):
        self.ids = ["n1", "n2", "n3"]
        self.network = MemoryNetwork(self.ids)
        self.processes = {n: Process() for n in self.ids}
        self.broken = set(broken)
        self.clocks = {}

    def leader(self):
        return "n1"

    def process(self, node):
        return self.processes[node]

    def kill(self, node):
        if node in self.broken:
            raise ClusterError(f"{node}: cannot be killed")
        self.processes[node].running = False

    def pause(self, node):
        self.processes[node].paused = True

    def resume(self, node):
        self.processes[node].paused = False

    def restart(self, node, wait=True):
        self.processes[node].running = True
        self.processes[node].pid += 1

    def power_loss(self, node):
        self.kill(node)
        return {"node": node}

    def set_clock(self, node, offset, rate):
        if self.processes[node].paused:
            raise ClusterError(f"{node}: timed out")
        self.clocks[node] = (offset, rate)

    def down(self):
        return [n for n in self.ids if not self.processes[n].running]


class History:
    def __init__(self):
        self.events = []

    def record(self, process, type, f, key=None, value=None, **_):
        self.events.append((type, f, value))


def test_stopping_latency_leaves_an_overlapping_partition():
    cluster, history = StandInCluster(), History()
    n = nemesis.Nemesis(cluster, [], history.record, 1, requested=["partition", "latency"])
    grudge = partitions.describe(partitions.isolate(cluster.ids, "n3"))
    n.apply("partition", "start-partition", {"shape": "isolate", "mode": DROP,
                                             "grudge": grudge})
    n.apply("latency", "start-latency", {"latency_ms": 50, "jitter_ms": 0})
    assert cluster.network.slowed
    n.apply("latency", "stop-latency", {"of": "start-latency"})
    assert not cluster.network.slowed
    assert cluster.network.cut_now[DROP] == {("n1", "n3"), ("n2", "n3"), ("n3", "n1"),
                                             ("n3", "n2")}
    n.apply("partition", "stop-partition", {"of": "start-partition"})
    assert cluster.network.cut_now[DROP] == set()
    assert n.report()["latency"]["applied"] == n.report()["partition"]["applied"] == 1


def test_a_fault_that_cannot_be_applied_is_recorded_and_counted():
    cluster, history = StandInCluster(broken={"n2"}), History()
    schedule = nemesis.plan(("kill",), cluster.ids, 20, 4, seed=3,
                            options={"targets": ["all"]})
    n = nemesis.Nemesis(cluster, schedule, history.record, 3, requested=["kill", "pause"])
    for step in schedule:
        n.apply(nemesis.kind_of(step), step["f"], step["value"])
    infos = [value for type, f, value in history.events if type == "info" and f == "kill"]
    assert infos and all("cannot be killed" in v["error"] for v in infos)
    # n1 went down before n2 failed; the stop that follows restarts it all the same.
    assert cluster.down() == []
    report = n.report()
    assert report["kill"]["planned"] == len(infos) and report["kill"]["applied"] == 0
    assert len(report["kill"]["errors"]) == len(infos)
    assert report["pause"] == {"planned": 0, "applied": 0, "skipped": 0, "skip_reasons": [],
                               "errors": [], "aims": {}, "nodes": {}, "combined": {}}
    assert report["kill"]["aims"] == {} and report["kill"]["nodes"] == {}   # none applied


def test_the_report_counts_what_each_applied_fault_aimed_at_and_hit():
    cluster, history = StandInCluster(), History()
    n = nemesis.Nemesis(cluster, [], history.record, 1, requested=["kill", "partition"])
    n.apply("kill", "kill", {"target": "minority", "nodes": ["n2"]})
    n.apply("kill", "start", {"of": "kill", "target": "minority", "nodes": ["n2"]})
    n.apply("kill", "kill", {"target": "majority", "nodes": ["n1", "n2"]})
    grudge = partitions.describe(partitions.isolate(cluster.ids, "n3"))
    n.apply("partition", "start-partition", {"shape": "isolate", "mode": DROP,
                                             "grudge": grudge})
    report = n.report()
    assert report["kill"]["aims"] == {"minority": 1, "majority": 1}
    assert report["kill"]["nodes"] == {"n1": 1, "n2": 2}
    assert report["partition"]["aims"] == {"isolate": 1}
    assert report["partition"]["nodes"] == {"n3": 1}
    assert report["partition"]["combined"] == report["kill"]["combined"] == {}


def test_the_report_counts_the_combinations_applied_with_the_kind_that_opens_them():
    cluster, history = StandInCluster(), History()
    schedule = nemesis.plan(("partition", "kill"), cluster.ids, 120.0, 5.0, seed=4)
    n = nemesis.Nemesis(cluster, schedule, history.record, 4)
    for step in schedule:
        n.apply(nemesis.kind_of(step), step["f"], step["value"], step.get("combination"))
    planned = len(_occurrences(schedule, "partition-then-kill"))
    report = n.report()
    assert planned and report["partition"]["combined"] == {"partition-then-kill": planned}
    assert report["kill"]["combined"] == {}


def test_heal_all_stops_each_fault_then_sweeps():
    cluster, history = StandInCluster(), History()
    n = nemesis.Nemesis(cluster, [], history.record, 1, requested=["pause", "partition"])
    n.apply("pause", "pause", {"target": "one", "nodes": ["n2"]})
    n.apply("partition", "start-partition", {"shape": "one-way", "mode": DROP,
                                             "grudge": {"n2": ["n1"]}})
    cluster.kill("n3")                      # down for a reason no fault knows
    n.heal_all()
    assert not cluster.process("n2").paused and cluster.down() == []
    assert cluster.network.active() == []
    stops = [(f, v) for type, f, v in history.events if type == "info"][-3:]
    assert [f for f, _ in stops] == ["resume", "stop-partition", "heal"]
    assert stops[-1][1]["restarted"] == ["n3"] and stops[-1][1]["resumed"] == []
    assert n.active == {}


def test_schedules_stored_before_steps_named_their_kind_still_replay():
    assert nemesis.kind_of({"f": "kill", "value": {}}) == "kill"
    assert nemesis.kind_of({"f": "start", "value": {"of": "power-loss"}}) == "power-loss"
    assert nemesis.kind_of({"f": "start", "value": {"of": "kill"}}) == "kill"
    with pytest.raises(ValueError, match="unknown nemesis action"):
        nemesis.kind_of({"f": "meteor", "value": {}})


def test_a_fault_restarts_only_what_no_other_fault_keeps_down():
    cluster, history = StandInCluster(), History()
    n = nemesis.Nemesis(cluster, [], history.record, 1, requested=["kill", "power-loss"])
    n.apply("kill", "kill", {"target": "one", "nodes": ["n2"]})
    n.apply("power-loss", "power-loss", {"target": "one", "nodes": ["n2"]})
    n.apply("kill", "start", {"of": "kill"})
    assert cluster.down() == ["n2"]              # power loss still keeps it down
    n.apply("power-loss", "start", {"of": "power-loss"})
    assert cluster.down() == []


def test_a_clock_a_stop_could_not_reset_is_reset_by_the_final_heal():
    cluster, history = StandInCluster(), History()
    n = nemesis.Nemesis(cluster, [], history.record, 1, requested=["clock", "pause"])
    n.apply("clock", "skew-clock", {"target": "one", "nodes": ["n1"], "offset": 2.0,
                                    "rate": 1.25})
    n.apply("pause", "pause", {"target": "one", "nodes": ["n1"]})
    # Paused by another fault: the reset waits (an overlap, not an error).
    done = n.apply("clock", "reset-clock", {"of": "skew-clock"})
    assert "error" not in done and done["nodes"] == []
    assert cluster.clocks["n1"] == (2.0, 1.25)
    n.heal_all()                                 # resumes n1, then resets its clock
    assert cluster.clocks["n1"] == (0.0, 1.0)
    assert history.events[-1][2]["reset_clocks"] == ["n1"]
    assert n.report()["clock"]["errors"] == []


# --- default schedules: Jepsen's reach without tuning -----------------------------------

NODES = ["n1", "n2", "n3"]


def _starts(schedule, kind=None):
    return [s for s in schedule if s["f"] == faults.find(s["fault"]).START and
            (kind is None or s["fault"] == kind)]


def _spans(schedule):
    """(kind, start, end) of each fault, pairing each start with its kind's next stop."""
    spans, open_at = [], {}
    for step in schedule:
        cls = faults.find(step["fault"])
        if step["f"] == cls.START:
            open_at[step["fault"]] = step["at"]
        else:
            spans.append((step["fault"], open_at.pop(step["fault"]), step["at"]))
    return spans


def test_several_kinds_overlap_by_default_and_one_at_a_time_when_asked():
    overlapping = nemesis.plan(("partition", "kill"), NODES, 120.0, 5.0, seed=3)
    spans = _spans(overlapping)
    assert any(a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a in spans for b in spans)
    serial = nemesis.plan(("partition", "kill"), NODES, 120.0, 5.0, seed=3,
                          options={"overlap": False})
    ordered = sorted(_spans(serial), key=lambda s: s[1])
    assert all(a[2] <= b[1] for a, b in zip(ordered, ordered[1:]))
    assert {s[0] for s in ordered} == {"partition", "kill"}


def test_gaps_and_durations_are_drawn_over_a_range_and_end_in_time():
    schedule = nemesis.plan(("pause",), NODES, 300.0, 5.0, seed=8)
    spans = _spans(schedule)
    durations = [end - start for _, start, end in spans]
    gaps = [b[1] - a[1] for a, b in zip(spans, spans[1:])]
    assert min(durations) < 1.5 and max(durations) > 4.0, durations
    assert min(gaps) >= 3.0 - 1e-6 and max(gaps) <= 7.0 + 1e-6 and max(gaps) - min(gaps) > 2
    assert all(end < 300.0 for _, _, end in spans)


def test_half_the_faults_outlast_the_failure_detection_a_system_declares():
    import dataclasses

    from harness.systems.redis import RedisSystem
    from harness.systems.refnode import RefnodeSystem

    assert RefnodeSystem({"election_timeout_max": 2.5}).failure_detection() == 2.5
    assert RedisSystem({"down_after_ms": 4000}).failure_detection() == 4.0
    detection = 4.0                 # most drawn durations (1.25 to 6 s) fall below 1.5 times it
    setting = dataclasses.replace(nemesis.full_setting(3), failure_detection=detection)
    schedule = nemesis.plan(("pause",), NODES, 600.0, 5.0, seed=8, setting=setting)
    spans = sorted(_spans(schedule), key=lambda s: s[1])
    durations = [end - start for _, start, end in spans]
    outlasting = sum(d >= 1.5 * detection for d in durations)
    assert 0.35 < outlasting / len(durations) < 0.75, durations
    assert min(durations) < detection                # the rest as drawn: some ridden out
    assert max(durations) <= 3.0 * detection + 1e-6
    assert all(a[2] < b[1] for a, b in zip(spans, spans[1:]))       # widened gaps: no overlap
    # A combination's first fault always outlasts it: its second needs an election first.
    combined = nemesis.plan(("partition", "kill"), NODES, 600.0, 5.0, seed=4, setting=setting)
    occurrences = _occurrences(combined, "partition-then-kill")
    assert occurrences
    assert all(steps[2]["at"] - steps[0]["at"] >= 1.5 * detection for steps in occurrences)
    # Without a declared detection, schedules are drawn as before.
    plain = nemesis.plan(("pause",), NODES, 600.0, 5.0, seed=8)
    assert sum(e - s >= 1.5 * detection for _, s, e in _spans(plain)) / len(_spans(plain)) \
        < 0.2


def test_each_kind_aims_at_its_own_default_targets():
    def targets(kind, seed=1):
        return {s["value"]["target"] for s in _starts(nemesis.plan(
            (kind,), NODES, 400.0, 5.0, seed=seed))}
    assert targets("kill") == {"one", "leader", "minority", "majority", "all"}
    assert targets("pause") == {"one", "leader", "minority", "majority"}
    assert targets("power-loss") == {"leader", "majority", "all"}
    # Without a leader probe the leader is never a default target.
    from harness.faults import Setting
    blind = Setting(3, frozenset({"power-loss"}), "proxy", frozenset({"partition"}))
    plan = nemesis.plan(("power-loss",), NODES, 400.0, 5.0, seed=1, setting=blind)
    assert {s["value"]["target"] for s in _starts(plan)} == {"majority", "all"}


def test_default_partitions_cut_the_leader_off_half_the_time_some_with_a_slow_link():
    shapes = [s["value"] for s in _starts(nemesis.plan(("partition",), NODES, 2000.0, 5.0,
                                                       seed=2))]
    leader = [v for v in shapes if v["shape"] == "isolate-leader"]
    assert 0.4 < len(leader) / len(shapes) < 0.75, (len(leader), len(shapes))
    slow = [v for v in leader if v.get("slow_link_ms")]
    assert 0.15 < len(slow) / len(leader) < 0.5
    assert len({v["shape"] for v in shapes}) == len(partitions.SHAPES)
    # Shapes the test names are drawn evenly, and no slow link is added to them.
    named = [s["value"] for s in _starts(nemesis.plan(
        ("partition",), NODES, 2000.0, 5.0, seed=2,
        options={"shapes": ["isolate-leader", "halves"]}))]
    assert not any(v.get("slow_link_ms") for v in named)
    assert 0.35 < sum(v["shape"] == "halves" for v in named) / len(named) < 0.65


def test_overlapping_faults_take_turns_on_a_node_another_fault_took_down():
    cluster, history = StandInCluster(), History()
    n = nemesis.Nemesis(cluster, [], history.record, 1, requested=["kill", "pause"])
    n.apply("kill", "kill", {"target": "one", "nodes": ["n2"]})
    n.apply("pause", "pause", {"target": "one", "nodes": ["n2"]})
    n.apply("pause", "pause", {"target": "minority", "nodes": ["n1", "n2"]})
    report = n.report()
    assert report["pause"]["errors"] == [] and report["pause"]["skipped"] == 1
    assert report["pause"]["nodes"] == {"n1": 1}
    assert cluster.process("n1").paused and not cluster.process("n2").running


def test_a_partition_that_isolates_nobody_hits_no_node():
    cluster, history = StandInCluster(), History()
    n = nemesis.Nemesis(cluster, [], history.record, 1, requested=["partition"])
    n.apply("partition", "start-partition", {"shape": "one-way", "mode": DROP,
                                             "grudge": partitions.describe(
                                                 partitions.one_way("n1", "n2"))})
    report = n.report()
    assert report["partition"]["aims"] == {"one-way": 1} and report["partition"]["nodes"] == {}


def _occurrences(schedule, name):
    """The steps of each occurrence of the combination `name`, four per occurrence."""
    steps = [s for s in schedule if s.get("combination") == name]
    assert len(steps) % 4 == 0
    first = nemesis.combinations.BY_NAME[name].first
    starts = [i for i, s in enumerate(steps)
              if s["fault"] == first and s["f"] == faults.find(first).START]
    return [steps[i:j] for i, j in zip(starts, starts[1:] + [len(steps)])]


def test_a_cut_off_leader_is_followed_by_a_kill_of_the_new_leader_across_the_heal():
    schedule = nemesis.plan(("partition", "kill"), NODES, 600.0, 5.0, seed=4)
    occurrences = _occurrences(schedule, "partition-then-kill")
    assert len(occurrences) >= 10
    for steps in occurrences:
        cut, kill, heal, restart = steps
        assert (cut["f"], kill["f"], heal["f"], restart["f"]) == \
            ("start-partition", "kill", "stop-partition", "start"), steps
        assert cut["value"]["shape"] == "isolate-leader"
        assert cut["value"]["slow_link_ms"] > 0       # the deposed leader heard from late
        assert kill["value"]["target"] == "leader"
        assert cut["at"] < kill["at"] < heal["at"] < restart["at"]
    # Lone faults fill the rest, never during a combination, and no two faults of one kind
    # ever overlap.
    assert any("combination" not in s for s in schedule)
    for steps in occurrences:
        start, end = steps[0]["at"], max(s["at"] for s in steps)
        assert not any(start <= s["at"] <= end for s in schedule if "combination" not in s)
    for kind in ("partition", "kill"):
        spans = sorted((s, e) for k, s, e in _spans(schedule) if k == kind)
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), kind
    assert any("partition-then-kill" in line for line in nemesis.describe_plan(schedule))
    # Where the network cannot slow a link, the leader is cut off outright.
    from harness.faults import Setting
    no_latency = Setting(3, frozenset({"leader-probe"}), "netns", frozenset({"partition"}))
    cuts = [o[0]["value"] for o in _occurrences(nemesis.plan(
        ("partition", "kill"), NODES, 600.0, 5.0, seed=4, setting=no_latency),
        "partition-then-kill")]
    assert cuts and not any(v.get("slow_link_ms") for v in cuts)


def test_combinations_only_where_the_test_leaves_the_aims_open():
    def names(faults, **kwargs):
        return {s.get("combination") for s in nemesis.plan(faults, NODES, 600.0, 5.0, seed=4,
                                                           **kwargs)} - {None}
    assert names(("clock", "partition")) == {"clock-then-partition"}
    assert names(("pause", "partition")) == {"pause-then-partition"}
    assert names(("partition", "kill"), options={"overlap": False}) == set()
    assert names(("partition", "kill"), options={"shapes": ["halves"]}) == set()
    assert names(("partition", "kill"), options={"targets": ["one", "leader"]}) == \
        {"partition-then-kill"}
    from harness.faults import Setting
    blind = Setting(3, frozenset(), "proxy", frozenset({"partition"}))
    assert names(("partition", "kill"), setting=blind) == set()


def test_clock_faults_stay_within_the_drift_bound_a_system_declares():
    import dataclasses

    from harness.systems.refnode import RefnodeSystem

    bound = RefnodeSystem({"max_clock_drift": 0.1}).clock_drift_bound()
    assert bound == 0.1
    setting = dataclasses.replace(nemesis.full_setting(3), clock_drift=bound)
    skews = [s["value"] for s in _starts(nemesis.plan(("clock",), NODES, 600.0, 5.0, seed=1,
                                                      setting=setting))]
    assert {v["rate"] for v in skews} == {0.9, 1.111}
    assert all(v["offset"] == 0.0 for v in skews)
    assert all(min(v["rate"], 1.0) / max(v["rate"], 1.0) >= 1 - bound for v in skews)
    # Without a declared bound: jumps and rates past any lease's allowance, as before; and
    # rates the test names win over the bound.
    free = [s["value"] for s in _starts(nemesis.plan(("clock",), NODES, 600.0, 5.0, seed=1))]
    assert any(v["offset"] != 0.0 for v in free) and {0.8, 1.25} <= {v["rate"] for v in free}
    named = [s["value"] for s in _starts(nemesis.plan(
        ("clock",), NODES, 600.0, 5.0, seed=1, setting=setting,
        options={"clock_rates": [0.5]}))]
    assert {v["rate"] for v in named} == {0.5}


def test_disk_faults_damage_a_down_nodes_files_the_same_way_each_replay(tmp_path):
    original = bytes(range(256)) * 64

    class DiskCluster(StandInCluster):
        def __init__(self, root):
            super().__init__()
            self.root = root
            for node in self.ids:
                (root / node).mkdir()
                (root / node / "wal.log").write_bytes(original)

        def data_files(self, node):
            return [self.root / node / "wal.log"]

    outcomes = []
    for attempt in ("a", "b"):
        root = tmp_path / attempt
        root.mkdir()
        cluster, history = DiskCluster(root), History()
        schedule = nemesis.plan(("bitflip", "truncate"), cluster.ids, 30.0, 5.0, seed=6,
                                options={"targets": ["one"]})
        n = nemesis.Nemesis(cluster, schedule, history.record, 6)
        flip = next(s for s in schedule if s["f"] == "bitflip")
        done = n.apply("bitflip", "bitflip", dict(flip["value"]))
        (node,) = done["nodes"]
        assert not cluster.process(node).running          # damaged while down
        data = (root / node / "wal.log").read_bytes()
        changed = [i for i, (x, y) in enumerate(zip(data, original)) if x != y]
        assert changed and changed == sorted(set(done["damaged"][0]["flipped"]))
        n.apply("bitflip", "start", {"of": "bitflip", "nodes": [node]})
        assert cluster.process(node).running               # restarted when it ends
        cut = next(s for s in schedule if s["f"] == "truncate")
        done_cut = n.apply("truncate", "truncate", dict(cut["value"]))
        (cut_node,) = done_cut["nodes"]
        after = (root / cut_node / "wal.log").stat().st_size
        assert after == len(original) - done_cut["damaged"][0]["bytes_cut"] < len(original)
        outcomes.append((done["damaged"], done_cut["damaged"]))
    strip = [[{k: v for k, v in d.items() if k != "file"} for d in part]
             for outcome in outcomes for part in outcome]
    assert strip[:2] == strip[2:]                           # the seed decides the damage


def test_disk_faults_need_a_system_that_names_its_data_files():
    from harness.faults import Setting, find

    blind = Setting(3, frozenset({"leader-probe"}), "proxy", frozenset({"partition"}))
    for kind in ("bitflip", "truncate"):
        assert "data files" in find(kind).refusal(blind)
