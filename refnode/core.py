"""refnode's protocol core: Leader and Followers with a generation clock, as one pure class.

`Core` holds one node's whole protocol state and does no I/O: it never reads a clock, opens a
socket, touches a file or draws randomness of its own. Each input carries the node's current
time, every random choice comes from the `random.Random` it was given, and each input returns
an `Effects` bundle saying what the runtime must do. The same core runs inside the asyncio
process (refnode's runtime) and inside the deterministic simulator (`refnode.sim`).

Inputs                                          Output of each: an `Effects` bundle
  tick(now)                   timers              hard_state     term and vote to persist
  receive(message, now)       a peer message      truncate_from  cut the log from this index
  client_request(req, ref, now)  a client         append         then append these entries
  campaign(now)               force an election   messages       peer messages to send
  Core.restore(...)           restart from disk   replies        (client_ref, ClientReply)
                                                  next_deadline  call tick(now) by this time

Ordering contract (persist before send): the runtime makes a bundle's hard state and log
changes durable (written and synced) before it sends any message or reply of that bundle, and
handles bundles in the order they were returned, so a bundle's messages also go out only after
every earlier bundle's persistence is durable. This is what makes a granted vote, an
acknowledged append and an acknowledged write survive a crash. Bundles may be merged
(`Effects.merge`) to persist several with one sync (group commit).

Time: float seconds on the node's own clock (a monotonic reading, possibly skewed). Only
differences matter. Passing a time earlier than a previous one is harmless (timers wait).

The rules, each in one place
- Generation clock (`receive`, `_become_follower`): every message carries its sender's term.
  A higher term is adopted (and persisted, vote cleared) before anything else is done with the
  message; a message of an older term is refused (fencing) and answered with the current
  term, so its sender learns it is stale; a leader that sees a higher term steps down at once
  and answers its pending writes "stepped-down" (indeterminate).
- The election rule (`_on_vote_request`): a vote is granted to at most one candidate per term
  (persisted before the reply), only to a log at least as up to date as the voter's, never
  while a leader was heard within the minimum election timeout (stickiness; a leader always
  counts itself as heard), and never in a term where the voter knows a leader. A node that
  boots counts its boot as hearing a leader, because it may have acknowledged a lease round
  just before it crashed. A follower that hears no leader for a randomized election timeout
  campaigns; a candidate re-asks silent peers every heartbeat interval.
- Leader health (`_tick_leader`): a leader that has heard from no quorum within the maximum
  election timeout steps down.
- The commit rule (`_replicated_index`, `_maybe_commit`): sync: every node's log has the
  entry; quorum: a majority including the leader; async: the leader's own log. Only an entry of
  the leader's current term commits by this count (Raft 5.4.2); earlier entries commit with it,
  which is why a new leader appends a no-op entry at once.
- The lease rule (`_renew_lease`): each heartbeat round is numbered and every append message
  carries the latest round number; when a quorum has answered round r, the lease runs until
  round r's start + min election timeout * (1 - max clock drift). No follower of that quorum
  votes for anyone until min election timeout after it heard round r, so no other leader can
  exist before the lease ends, as long as the slower of any two clocks runs at least
  (1 - drift) times as fast as the faster one. Clock jumps void that assumption: leases need
  monotonic clocks (the other read modes do not depend on clocks for safety).
- Reads (`client_request`): `leader` reads wait for a heartbeat round started after they
  arrived to be answered by a quorum (ReadIndex) and for the leader's first entry of its term
  to commit, then answer from the applied state; `lease` reads answer at once while the lease
  holds (else they take the `leader` path); `follower` reads are answered by any node from its
  applied state once its applied index reaches the request's `min_version` (waiting at most
  `follower_read_wait`). Writes go to the leader; other nodes answer "not-leader" with a hint.

Theory of operation. A follower appends what its leader sends, in order: an append message
names the entry before its entries (prev index and term), the follower refuses it unless its
log has that entry, and otherwise replaces any conflicting suffix with the leader's entries.
The leader keeps one `FollowerProgress` per follower: in probe state it sends one message at
a time and backs off with the follower's conflict hint until it finds where the logs agree; in
replicate state it streams entries (a few messages in flight) and advances on acknowledgements.
Entries are applied to the `KeyValueState` in order as the commit index grows, and a pending
client write is answered when its entry is applied. In `async` mode a new leader may lack entries an
old one committed: followers then cut those entries, move their commit index back and rebuild
their state from the log (the mode's documented loss; never in `sync` or `quorum` mode).
There is no pre-vote: a node that comes back from a partition with a higher term makes the
leader step down once (its own log is behind, so another node wins the next term).

Planted bugs (`config.bugs`, see `refnode.config.BUGS`) are marked `PLANTED BUG` at the one
place each rule lives; `no-fsync` belongs to runtimes, which read `Core.bugs`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from refnode.config import ClusterConfig
from refnode.messages import (NOT_LEADER, STEPPED_DOWN, TIMEOUT, VERSION_UNAVAILABLE, AppendEntries,
                              AppendReply, ClientReply, ClientRequest, Entry, PeerMessage,
                              VoteReply, VoteRequest, entry_bytes)
from refnode.statemachine import ApplyResult, KeyValueState

FOLLOWER = "follower"
CANDIDATE = "candidate"
LEADER = "leader"
ROLES = (FOLLOWER, CANDIDATE, LEADER)

NEVER = -math.inf
# Messages of entries a leader streams to one follower before it waits for acknowledgements.
MAX_INFLIGHT_MESSAGES = 4


@dataclass(frozen=True, slots=True)
class HardState:
    """What a node must persist before acting on it: its term and its vote in that term."""

    term: int
    vote: str | None


@dataclass(slots=True)
class Effects:
    """What one input asks the runtime to do, in this order (see the module's contract):

    1. persist: write `hard_state` (if not None), cut the log from `truncate_from` (if not
       None: drop entries with index >= it), append `append`; make all of it durable;
    2. then send `messages` to their `dst` and `replies` to their client refs;
    3. call `tick(now)` once the node's clock reaches `next_deadline` (or earlier: harmless).
    """

    hard_state: HardState | None = None
    truncate_from: int | None = None
    append: list[Entry] = field(default_factory=list)
    messages: list[PeerMessage] = field(default_factory=list)
    replies: list[tuple[Any, ClientReply]] = field(default_factory=list)
    next_deadline: float = math.inf

    @property
    def persists(self) -> bool:
        """Whether this bundle has anything to persist before its messages may go out."""
        return (self.hard_state is not None or self.truncate_from is not None
                or bool(self.append))

    def merge(self, later: Effects) -> Effects:
        """One bundle equivalent to this one followed by `later` (for group commit)."""
        truncate = self.truncate_from
        append = list(self.append)
        if later.truncate_from is not None:
            append = [e for e in append if e.index < later.truncate_from]
            truncate = (later.truncate_from if truncate is None
                        else min(truncate, later.truncate_from))
        return Effects(later.hard_state if later.hard_state is not None else self.hard_state,
                       truncate, append + later.append, self.messages + later.messages,
                       self.replies + later.replies, later.next_deadline)


@dataclass(slots=True)
class FollowerProgress:
    """A leader's view of one follower (etcd's Progress): where to send from, what it has."""

    match_index: int = 0            # highest index known to be in the follower's log
    next_index: int = 1             # next index to send
    probing: bool = True            # probe: one message at a time; else stream (replicate)
    probe_sent_at: float = NEVER    # when the outstanding probe went out
    last_contact: float = NEVER     # when the follower last answered in this term
    acked_round: int = 0            # highest heartbeat round it has answered
    sent_commit: int = 0            # commit index last told to it
    caught_up_at: float = NEVER     # when it last had the leader's whole log


@dataclass(slots=True)
class _PendingWrite:
    ref: Any
    request: ClientRequest
    deadline: float


@dataclass(slots=True)
class _PendingRead:
    ref: Any
    request: ClientRequest
    round: int                      # the heartbeat round that must be confirmed first
    deadline: float


@dataclass(slots=True)
class _WaitingRead:
    ref: Any
    request: ClientRequest
    min_version: int
    deadline: float


class Core:
    """One node's protocol state machine; see the module text for the rules and contract.

    Construct a fresh node with `Core(node_id, config, rng, now)`, or a restarted one with
    `Core.restore(...)` from what it persisted. Inputs are `tick`, `receive`, `client_request`
    and `campaign`; each returns the `Effects` the runtime must carry out. Attributes such as
    `role`, `term`, `leader`, `commit_index` are for reading only.
    """

    def __init__(self, node_id: str, config: ClusterConfig, rng: random.Random, now: float, *,
                 term: int = 0, vote: str | None = None, entries: Iterable[Entry] = (),
                 rebuilt: bool = False):
        if node_id not in config.nodes:
            raise ValueError(f"node {node_id!r} is not in the configuration "
                             f"({', '.join(config.nodes)})")
        self.id = node_id
        self.config = config
        self.bugs: frozenset[str] = config.bugs
        self.peers: tuple[str, ...] = config.peers_of(node_id)
        self._rng = rng
        self._log: list[Entry] = [Entry(0, 0, "noop")]      # index 0: a sentinel
        self._load(term, vote, list(entries))

        self.role = FOLLOWER
        self.leader: str | None = None
        self.commit_index = 0
        self.state = KeyValueState()
        self.now = now
        # Booting counts as hearing a leader: see the election rule.
        self._last_leader_contact = now
        self._election_deadline = now + self._random_timeout()
        self._out = Effects()
        # candidate
        self._votes: dict[str, bool] = {}
        self._vote_retry_deadline = math.inf
        # leader
        self._progress: dict[str, FollowerProgress] = {}
        self._round = 0
        self._round_sent: dict[int, float] = {}
        self._confirmed_round = 0
        self._round_wanted = False
        self._heartbeat_due = False
        self._heartbeat_deadline = math.inf
        self._lease_expiry = NEVER
        self._term_start_index = 0
        self._pending_writes: dict[int, _PendingWrite] = {}
        self._pending_reads: list[_PendingRead] = []
        # any role
        self._waiting_reads: list[_WaitingRead] = []
        # A node rebuilt from nothing (its log was damaged and set aside) may have voted in
        # terms it no longer knows of: it neither votes nor campaigns until it has heard a
        # leader, whose term it then adopts (see `restore`).
        self.abstaining = rebuilt

    @classmethod
    def restore(cls, node_id: str, config: ClusterConfig, rng: random.Random, now: float,
                term: int, vote: str | None, entries: Iterable[Entry],
                rebuilt: bool = False) -> Core:
        """A node restarted from its persisted hard state (term, vote) and log entries.

        It starts as a follower with commit and applied index 0 (it learns the commit index
        from the leader and re-applies from its log), and refuses votes for the minimum
        election timeout. `rebuilt`: its persisted state was lost (an operator set a damaged
        log aside); it abstains (`abstaining`: no vote, no campaign) until it hears a leader,
        so that it cannot vote twice in a term whose vote it forgot, or in any term before
        that leader's. (What only its lost log held, or a vote of its in a later term than any
        leader it hears, is beyond repair: rebuilding is the operator's choice.) Raises
        ValueError for persisted state that cannot be right (entries not numbered 1, 2, ...,
        terms decreasing or above `term`, an unknown vote)."""
        return cls(node_id, config, rng, now, term=term, vote=vote, entries=entries,
                   rebuilt=rebuilt)

    def _load(self, term: int, vote: str | None, entries: list[Entry]) -> None:
        if not isinstance(term, int) or term < 0:
            raise ValueError(f"persisted term must be a non-negative integer, got {term!r}")
        if vote is not None and vote not in self.config.nodes:
            raise ValueError(f"persisted vote {vote!r} is not a node of the configuration")
        previous = 0
        for position, entry in enumerate(entries, start=1):
            if entry.index != position:
                raise ValueError(f"persisted log entry {position} has index {entry.index}")
            if entry.term < previous or entry.term > term:
                raise ValueError(f"persisted log entry {position} has term {entry.term} "
                                 f"(previous {previous}, current term {term})")
            previous = entry.term
        self.term = term
        self.vote = vote
        self._log.extend(entries)

    # --- reading the state ------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return len(self._log) - 1

    @property
    def last_term(self) -> int:
        return self._log[-1].term

    @property
    def applied_index(self) -> int:
        return self.state.applied_index

    @property
    def lease_expiry(self) -> float:
        """When the leader's lease ends (node clock); -inf when it holds none."""
        return self._lease_expiry

    @property
    def next_deadline(self) -> float:
        """When the core next wants `tick` (also in every bundle); for a freshly built core."""
        return self._next_deadline()

    def entry(self, index: int) -> Entry | None:
        """The log entry at `index` (1-based), or None past the end."""
        return self._log[index] if 1 <= index <= self.last_index else None

    def entries(self, start: int = 1) -> list[Entry]:
        """A copy of the log from `start` on."""
        return self._log[max(start, 1):]

    def progress(self, peer: str) -> FollowerProgress | None:
        """A leader's progress record of `peer` (None when not leader)."""
        return self._progress.get(peer)

    def status(self, now: float | None = None) -> dict[str, Any]:
        """The node's status as a JSON object: role, term, leader, commit and applied index,
        last log index, per-follower progress (leader only) and lease expiry."""
        now = self.now if now is None else now
        progress = {}
        for peer, p in self._progress.items():
            behind = self.last_index - p.match_index
            progress[peer] = {
                "state": "probe" if p.probing else "replicate",
                "match_index": p.match_index, "next_index": p.next_index,
                "lag_entries": behind,
                "lag_seconds": 0.0 if behind == 0 else _finite(now - p.caught_up_at),
                "last_contact_ago": _finite(now - p.last_contact),
            }
        holds = self.role == LEADER and now < self._lease_expiry
        return {"node": self.id, "role": self.role, "term": self.term, "vote": self.vote,
                "leader": self.leader, "commit_index": self.commit_index,
                "applied_index": self.applied_index, "last_log_index": self.last_index,
                "last_log_term": self.last_term, "replication": self.config.replication,
                "progress": progress,
                "lease_expiry": _finite(self._lease_expiry) if holds else None,
                "lease_remaining": (self._lease_expiry - now) if holds else 0.0,
                "bugs": sorted(self.bugs)}

    # --- inputs -------------------------------------------------------------------------------

    def tick(self, now: float) -> Effects:
        """Time has reached `now` on this node's clock: fire whatever timers are due."""
        self.now = now
        if self.role == LEADER:
            self._tick_leader(now)
        elif now >= self._election_deadline:
            if self.abstaining:
                self._reset_election_timer(now)     # a rebuilt node waits for a leader
            else:
                self._campaign(now)
        elif self.role == CANDIDATE and now >= self._vote_retry_deadline:
            self._ask_for_votes(now, retry=True)
        self._expire_waiting_reads(now)
        return self._take()

    def campaign(self, now: float) -> Effects:
        """Start an election now, as if the election timeout had fired (tests, operators).
        A leader ignores it."""
        self.now = now
        if self.role != LEADER and not self.abstaining:
            self._campaign(now)
        return self._take()

    def receive(self, message: PeerMessage, now: float) -> Effects:
        """A peer message arrived. Messages not addressed to this node or from an unknown
        sender are ignored."""
        self.now = now
        m = message
        if m.dst != self.id or m.src not in self.peers:
            return self._take()
        if isinstance(m, VoteRequest):
            self._on_vote_request(m, now)
            return self._take()
        if m.term > self.term:
            self._become_follower(m.term, m.src if isinstance(m, AppendEntries) else None, now)
        elif m.term < self.term:
            # Fencing: a message of an older term is refused and told the current term.
            if isinstance(m, AppendEntries):
                if "no-fencing" in self.bugs and self.role == FOLLOWER:
                    # PLANTED BUG no-fencing: a stale leader's entries are accepted.
                    self._accept_entries(m)
                else:
                    # No round is echoed: the stale sender may lead again in this newer term,
                    # where its old round numbers mean other rounds, and a refusal is no
                    # acknowledgement of leadership (it did not reset our election timer).
                    self._send(AppendReply(self.id, m.src, self.term, False))
            return self._take()
        if self.role == LEADER:
            self._step_leader(m, now)
        elif self.role == CANDIDATE:
            self._step_candidate(m, now)
        else:
            self._step_follower(m, now)
        return self._take()

    def client_request(self, request: ClientRequest, client_ref: Any, now: float) -> Effects:
        """A client's request; its reply comes in this bundle's `replies` or a later one's,
        tagged with `client_ref` (exactly one reply per request)."""
        self.now = now
        op = request.op
        if op == "status":
            self._reply(client_ref, ClientReply(True, op, self.id, self.term, self.leader,
                                                self.status(now), id=request.id))
        elif op == "read" and request.read_mode == "follower":
            self._follower_read(request, client_ref, now)
        elif self.role != LEADER:
            self._reply(client_ref, self._refusal(request, NOT_LEADER))
        elif op == "read" and request.read_mode == "lease":
            if self._lease_holds(now) and self._committed_in_term():
                self._answer_read(client_ref, request)
            else:
                self._confirm_then_read(request, client_ref, now)
        elif op == "read":
            if "stale-leader-read" in self.bugs and self._committed_in_term():
                # PLANTED BUG stale-leader-read: no quorum round confirms leadership.
                self._answer_read(client_ref, request)
            else:
                self._confirm_then_read(request, client_ref, now)
        else:
            self._propose(request, client_ref, now)
        return self._take()

    # --- roles --------------------------------------------------------------------------------

    def _step_follower(self, m: PeerMessage, now: float) -> None:
        if isinstance(m, AppendEntries):
            self._on_append(m, now)
        # Replies of an earlier candidacy or leadership in this term are stale: ignored.

    def _step_candidate(self, m: PeerMessage, now: float) -> None:
        if isinstance(m, AppendEntries):
            # A leader of this term exists: it won; follow it.
            self._become_follower(self.term, m.src, now)
            self._on_append(m, now)
        elif isinstance(m, VoteReply):
            self._votes[m.src] = m.granted
            if sum(self._votes.values()) >= self.config.quorum:
                self._become_leader(now)

    def _step_leader(self, m: PeerMessage, now: float) -> None:
        if isinstance(m, AppendReply):
            self._on_append_reply(m, now)
        # An AppendEntries of this same term would mean two leaders in one term, which the
        # election rule excludes; it is ignored. Late vote replies are ignored.

    def _tick_leader(self, now: float) -> None:
        if now - self._quorum_contact() >= self.config.election_timeout_max:
            # Leader health: no quorum heard within an election timeout: step down.
            self._become_follower(self.term, None, now)
            return
        if now >= self._heartbeat_deadline:
            self._retransmit_stalled(now)
            self._start_round(now)
        self._expire_pending(now)

    # --- generation clock and role changes ----------------------------------------------------

    def _set_hard_state(self, term: int, vote: str | None) -> None:
        self.term = term
        self.vote = vote
        self._out.hard_state = self._persisted_hard_state()

    def _persisted_hard_state(self) -> HardState:
        vote = self.vote
        if "forget-vote" in self.bugs:
            vote = None             # PLANTED BUG forget-vote: the vote is never persisted.
        return HardState(self.term, vote)

    def _become_follower(self, term: int, leader: str | None, now: float,
                         reset_timer: bool = True) -> None:
        was_leader = self.role == LEADER
        if term > self.term:
            self._set_hard_state(term, None)
        self.role = FOLLOWER
        self.leader = leader
        self._votes = {}
        self._vote_retry_deadline = math.inf
        if was_leader:
            self._abandon_leadership()
        if reset_timer or was_leader:
            self._reset_election_timer(now)

    def _campaign(self, now: float) -> None:
        self._set_hard_state(self.term + 1, self.id)
        self.role = CANDIDATE
        self.leader = None
        self._votes = {self.id: True}
        self._reset_election_timer(now)
        if self.config.quorum <= 1:
            self._become_leader(now)
            return
        self._ask_for_votes(now, retry=False)

    def _ask_for_votes(self, now: float, retry: bool) -> None:
        for peer in self.peers:
            if not retry or peer not in self._votes:
                self._send(VoteRequest(self.id, peer, self.term, self.last_index,
                                       self.last_term))
        self._vote_retry_deadline = now + self.config.heartbeat_interval

    def _become_leader(self, now: float) -> None:
        self.role = LEADER
        self.leader = self.id
        self._votes = {}
        self._vote_retry_deadline = math.inf
        next_index = self.last_index + 1
        self._progress = {peer: FollowerProgress(next_index=next_index, last_contact=now)
                          for peer in self.peers}
        self._round = 0
        self._round_sent = {}
        self._confirmed_round = 0
        self._lease_expiry = NEVER
        self._append_local([Entry(next_index, self.term, "noop")])
        self._term_start_index = next_index
        self._start_round(now)
        self._maybe_commit()

    def _abandon_leadership(self) -> None:
        """A leader stepped down: pending writes may or may not commit (indeterminate);
        pending reads were not served (definite)."""
        for pending in self._pending_writes.values():
            self._reply(pending.ref, self._refusal(pending.request, STEPPED_DOWN))
        for pending in self._pending_reads:
            self._reply(pending.ref, self._refusal(pending.request, STEPPED_DOWN))
        self._pending_writes = {}
        self._pending_reads = []
        self._progress = {}
        self._lease_expiry = NEVER
        self._heartbeat_deadline = math.inf
        self._round_wanted = False
        self._heartbeat_due = False

    def _reset_election_timer(self, now: float) -> None:
        self._election_deadline = now + self._random_timeout()

    def _random_timeout(self) -> float:
        return self._rng.uniform(self.config.election_timeout_min,
                                 self.config.election_timeout_max)

    # --- the election rule --------------------------------------------------------------------

    def _on_vote_request(self, m: VoteRequest, now: float) -> None:
        """THE ELECTION RULE, voter side. Refuse a candidate of an older term; refuse anyone
        while a leader was heard within the minimum election timeout (stickiness: the term is
        not even adopted, so a partitioned node cannot depose a healthy leader); adopt a newer
        term; grant at most one vote per term, only to a log at least as up to date as ours
        and never in a term whose leader we know. The vote is persisted before the reply."""
        if m.term < self.term or self._heard_leader_recently(now) or self.abstaining:
            self._send(VoteReply(self.id, m.src, self.term, False))
            return
        if m.term > self.term:
            # Adopting a newer term does not restart the election timer; only a granted vote
            # does (Raft 5.2), so a candidate whose log is behind cannot hold elections off.
            self._become_follower(m.term, None, now, reset_timer=False)
        grant = (self.vote in (None, m.src)
                 and (self.vote == m.src or self.leader is None)
                 and (m.last_log_term, m.last_log_index) >= (self.last_term, self.last_index))
        if grant:
            if self.vote != m.src:
                self._set_hard_state(self.term, m.src)
            self._reset_election_timer(now)
        self._send(VoteReply(self.id, m.src, self.term, grant))

    def _heard_leader_recently(self, now: float) -> bool:
        if self.role == LEADER:
            return True
        return now - self._last_leader_contact < self.config.election_timeout_min

    # --- replication: follower side -----------------------------------------------------------

    def _on_append(self, m: AppendEntries, now: float) -> None:
        self.abstaining = False        # a leader of this term heard: terms up to it are over
        self.leader = m.src
        self._last_leader_contact = now
        self._reset_election_timer(now)
        self._accept_entries(m)

    def _accept_entries(self, m: AppendEntries) -> None:
        if m.prev_index > self.last_index:
            self._send(AppendReply(self.id, m.src, self.term, False,
                                   conflict_index=self.last_index + 1, round=m.round))
            return
        found = self._log[m.prev_index].term
        if found != m.prev_term:
            first = m.prev_index
            while first > 1 and self._log[first - 1].term == found:
                first -= 1
            self._send(AppendReply(self.id, m.src, self.term, False, conflict_index=first,
                                   conflict_term=found, round=m.round))
            return
        start = len(m.entries)
        for offset, entry in enumerate(m.entries):
            if entry.index > self.last_index:
                start = offset
                break
            if self._log[entry.index].term != entry.term:
                self._truncate_from(entry.index)
                start = offset
                break
        if start < len(m.entries):
            self._append_local(list(m.entries[start:]))
        last_new = m.prev_index + len(m.entries)
        if m.leader_commit > self.commit_index:
            self._commit_to(min(m.leader_commit, last_new))
        self._send(AppendReply(self.id, m.src, self.term, True, match_index=last_new,
                               round=m.round))

    def _truncate_from(self, index: int) -> None:
        """Cut the log from `index`. Cutting committed entries happens only in async mode (a
        new leader lacked them: the mode's documented loss) or with a planted bug; the commit
        index then goes back and the state is rebuilt from the log."""
        del self._log[index:]
        out = self._out
        out.truncate_from = index if out.truncate_from is None else min(out.truncate_from, index)
        out.append = [e for e in out.append if e.index < index]
        if self.commit_index >= index:
            self.commit_index = index - 1
        if self.state.applied_index >= index:
            self.state = KeyValueState()
            for entry in self._log[1:self.commit_index + 1]:
                self.state.apply(entry)

    def _append_local(self, entries: list[Entry]) -> None:
        self._log.extend(entries)
        self._out.append.extend(entries)

    # --- replication: leader side -------------------------------------------------------------

    def _propose(self, request: ClientRequest, ref: Any, now: float) -> None:
        entry = Entry(self.last_index + 1, self.term, request.op, request.key, request.value)
        self._append_local([entry])
        self._pending_writes[entry.index] = _PendingWrite(ref, request,
                                                          now + self.config.request_timeout)
        self._maybe_commit()

    def _flush_replication(self) -> None:
        force = self._heartbeat_due
        self._heartbeat_due = False
        for peer, p in self._progress.items():
            self._replicate_to(peer, p, force)

    def _replicate_to(self, peer: str, p: FollowerProgress, force: bool) -> None:
        last = self.last_index
        if p.probing:
            if force or (p.next_index <= last
                         and self.now - p.probe_sent_at >= self.config.heartbeat_interval):
                self._send_append(peer, p)
                p.probe_sent_at = self.now
            return
        window = self.config.max_append_entries * MAX_INFLIGHT_MESSAGES
        sent = False
        while p.next_index <= last and p.next_index - 1 - p.match_index < window:
            self._send_append(peer, p)
            sent = True
        if not sent and (force or p.sent_commit < self.commit_index):
            self._send_append(peer, p)

    def _send_append(self, peer: str, p: FollowerProgress) -> None:
        prev = min(p.next_index - 1, self.last_index)
        entries = self._append_batch(prev + 1)
        self._send(AppendEntries(self.id, peer, self.term, prev, self._log[prev].term, entries,
                                 self.commit_index, self._round))
        p.sent_commit = self.commit_index
        if not p.probing:
            p.next_index = prev + len(entries) + 1

    def _append_batch(self, first: int) -> tuple[Entry, ...]:
        """The entries of one append message from index `first`: at most
        `max_append_entries`, and at most `max_append_bytes` of values and keys (at least one
        entry), so that a message never outgrows a frame, however large the values."""
        budget = self.config.max_append_bytes
        batch = self._log[first:first + self.config.max_append_entries]
        used = 0
        for count, entry in enumerate(batch):
            used += entry_bytes(entry)
            if used > budget and count > 0:
                return tuple(batch[:count])
        return tuple(batch)

    def _on_append_reply(self, m: AppendReply, now: float) -> None:
        p = self._progress.get(m.src)
        if p is None:
            return
        p.last_contact = now
        if m.round <= self._round:      # a round of this leadership, not an echo of another
            p.acked_round = max(p.acked_round, m.round)
        if m.success:
            if m.match_index > p.match_index:
                p.match_index = min(m.match_index, self.last_index)
            if p.probing:
                p.probing = False
                p.next_index = p.match_index + 1
            elif p.next_index <= p.match_index:
                p.next_index = p.match_index + 1
            if p.match_index >= self.last_index:
                p.caught_up_at = now
            self._maybe_commit()
        else:
            hint = m.conflict_index
            if m.conflict_term is not None:
                last_of_term = self._last_index_of_term(m.conflict_term)
                if last_of_term:
                    hint = last_of_term + 1
            next_index = max(1, min(hint, p.next_index, self.last_index + 1))
            if next_index <= p.match_index:
                # The follower no longer holds what it acknowledged (a disk that lost writes,
                # or a reordered old rejection): resend from where it says its log ends.
                p.match_index = next_index - 1
            if next_index < p.next_index or not p.probing:
                p.probe_sent_at = NEVER         # progress: probe again at once
            p.next_index = next_index
            p.probing = True
        self._advance_rounds()

    def _last_index_of_term(self, term: int) -> int:
        index = self.last_index
        while index > 0 and self._log[index].term > term:
            index -= 1
        return index if index > 0 and self._log[index].term == term else 0

    def _retransmit_stalled(self, now: float) -> None:
        """Entries streamed to a follower that has not answered for a heartbeat interval
        may be lost: go back to probing from what it is known to have."""
        for p in self._progress.values():
            if (not p.probing and p.next_index - 1 > p.match_index
                    and now - p.last_contact >= self.config.heartbeat_interval):
                p.probing = True
                p.next_index = p.match_index + 1
                p.probe_sent_at = NEVER

    def _quorum_contact(self) -> float:
        """The latest time by which a quorum (the leader included) had answered."""
        times = sorted([math.inf] + [p.last_contact for p in self._progress.values()],
                       reverse=True)
        return times[self.config.quorum - 1]

    # --- the commit rule ----------------------------------------------------------------------

    def _replicated_index(self) -> int:
        """THE COMMIT RULE: the highest index the replication mode counts as replicated.
        sync: every node's log has it; quorum: a majority, the leader included; async: the
        leader's own log. (Which of those entries may commit is `_maybe_commit`'s business.)"""
        own = self.last_index
        mode = self.config.replication
        if mode == "async":
            return own
        if mode == "quorum" and "early-ack" in self.bugs:
            # PLANTED BUG early-ack: entries sent count as entries the follower has.
            matched = [p.next_index - 1 for p in self._progress.values()]
        else:
            matched = [p.match_index for p in self._progress.values()]
        if mode == "sync":
            return min([own] + matched)
        ranked = sorted([own] + matched, reverse=True)
        return ranked[self.config.quorum - 1]

    def _maybe_commit(self) -> bool:
        """Commit up to the replicated index if that entry is of the current term (Raft
        5.4.2: an older entry commits only with one of the current term)."""
        index = self._replicated_index()
        if index > self.commit_index and self._log[index].term == self.term:
            self._commit_to(index)
            return True
        return False

    def _commit_to(self, index: int) -> None:
        if index <= self.commit_index:
            return
        self.commit_index = index
        while self.state.applied_index < self.commit_index:
            entry = self._log[self.state.applied_index + 1]
            result = self.state.apply(entry)
            pending = self._pending_writes.pop(entry.index, None)
            if pending is not None:
                self._reply(pending.ref, self._write_reply(pending.request, result))
        self._serve_reads()

    def _committed_in_term(self) -> bool:
        return self.role == LEADER and self.commit_index >= self._term_start_index

    # --- heartbeat rounds and the lease rule --------------------------------------------------

    def _start_round(self, now: float) -> None:
        self._round += 1
        self._round_sent[self._round] = now
        self._heartbeat_due = True
        self._heartbeat_deadline = now + self.config.heartbeat_interval
        self._advance_rounds()

    def _advance_rounds(self) -> None:
        """A quorum answered round `q`: it confirms leadership for reads waiting on rounds up
        to `q` and renews the lease from round `q`'s start."""
        acked = sorted([self._round] + [p.acked_round for p in self._progress.values()],
                       reverse=True)
        q = acked[self.config.quorum - 1]
        if q <= self._confirmed_round:
            return
        self._confirmed_round = q
        self._renew_lease(self._round_sent[q])
        for old in [r for r in self._round_sent if r < q]:
            del self._round_sent[old]
        self._serve_reads()

    def _renew_lease(self, round_start: float) -> None:
        """THE LEASE RULE: a quorum answered a round that started at `round_start` (leader
        clock), so no other leader can be elected before round_start + min election timeout
        on the voters' clocks; shortened by the drift bound for clock rates that differ."""
        margin = 1.0 - self.config.max_clock_drift
        if "lease-no-margin" in self.bugs:
            margin = 1.0            # PLANTED BUG lease-no-margin: no allowance for drift.
        expiry = round_start + self.config.election_timeout_min * margin
        self._lease_expiry = max(self._lease_expiry, expiry)

    def _lease_holds(self, now: float) -> bool:
        return self.role == LEADER and now < self._lease_expiry

    # --- reads --------------------------------------------------------------------------------

    def _confirm_then_read(self, request: ClientRequest, ref: Any, now: float) -> None:
        """ReadIndex: answer once a round started after now is confirmed by a quorum and an
        entry of this term has committed."""
        self._pending_reads.append(_PendingRead(ref, request, self._round + 1,
                                                now + self.config.request_timeout))
        self._round_wanted = True

    def _follower_read(self, request: ClientRequest, ref: Any, now: float) -> None:
        min_version = request.min_version or 0
        if "follower-ignores-token" in self.bugs:
            min_version = 0         # PLANTED BUG follower-ignores-token: no session token.
        if self.state.applied_index >= min_version:
            self._answer_read(ref, request)
        else:
            self._waiting_reads.append(_WaitingRead(ref, request, min_version,
                                                    now + self.config.follower_read_wait))

    def _serve_reads(self) -> None:
        if self._pending_reads and self._committed_in_term():
            waiting = []
            for pending in self._pending_reads:
                if pending.round <= self._confirmed_round:
                    self._answer_read(pending.ref, pending.request)
                else:
                    waiting.append(pending)
            self._pending_reads = waiting
        if self._waiting_reads:
            applied = self.state.applied_index
            waiting_f = []
            for w in self._waiting_reads:
                if applied >= w.min_version:
                    self._answer_read(w.ref, w.request)
                else:
                    waiting_f.append(w)
            self._waiting_reads = waiting_f

    def _answer_read(self, ref: Any, request: ClientRequest) -> None:
        value, version = self.state.read(request.key)
        self._reply(ref, ClientReply(True, "read", self.id, self.term, self.leader, value,
                                     version, id=request.id))

    def _expire_waiting_reads(self, now: float) -> None:
        if not self._waiting_reads:
            return
        keep = []
        for w in self._waiting_reads:
            if now >= w.deadline:
                self._reply(w.ref, self._refusal(w.request, VERSION_UNAVAILABLE))
            else:
                keep.append(w)
        self._waiting_reads = keep

    def _expire_pending(self, now: float) -> None:
        while self._pending_writes:
            index, pending = next(iter(self._pending_writes.items()))
            if now < pending.deadline:
                break
            del self._pending_writes[index]
            self._reply(pending.ref, self._refusal(pending.request, TIMEOUT))
        while self._pending_reads and now >= self._pending_reads[0].deadline:
            pending = self._pending_reads.pop(0)
            self._reply(pending.ref, self._refusal(pending.request, TIMEOUT))

    # --- output -------------------------------------------------------------------------------

    def _send(self, message: PeerMessage) -> None:
        self._out.messages.append(message)

    def _reply(self, ref: Any, reply: ClientReply) -> None:
        self._out.replies.append((ref, reply))

    def _refusal(self, request: ClientRequest, error: str) -> ClientReply:
        """An error reply. Writes that may still commit are indeterminate; the rest definite."""
        definite = not (request.is_write and error in (STEPPED_DOWN, TIMEOUT))
        return ClientReply(False, request.op, self.id, self.term, self.leader, error=error,
                           definite=definite, id=request.id)

    def _write_reply(self, request: ClientRequest, result: ApplyResult) -> ClientReply:
        return ClientReply(result.ok, request.op, self.id, self.term, self.leader,
                           result.value, result.version, result.error, True, request.id)

    def _take(self) -> Effects:
        """Finish an input: a leader sends what its followers need, then the bundle is
        handed over with the next timer deadline."""
        if self.role == LEADER:
            if self._round_wanted:
                self._round_wanted = False
                self._start_round(self.now)
            self._flush_replication()
            if self._maybe_commit():
                self._flush_replication()
        out = self._out
        out.next_deadline = self._next_deadline()
        self._out = Effects()
        return out

    def _next_deadline(self) -> float:
        if self.role == LEADER:
            deadline = min(self._heartbeat_deadline,
                           self._quorum_contact() + self.config.election_timeout_max)
            if self._pending_writes:
                deadline = min(deadline, next(iter(self._pending_writes.values())).deadline)
            if self._pending_reads:
                deadline = min(deadline, self._pending_reads[0].deadline)
        else:
            deadline = self._election_deadline
            if self.role == CANDIDATE:
                deadline = min(deadline, self._vote_retry_deadline)
        for w in self._waiting_reads:
            deadline = min(deadline, w.deadline)
        return deadline


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
