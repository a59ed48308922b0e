"""PostgreSQL clients (psycopg 3): registers and list-append transactions on the primary.

A client connects as an application behind a failover does: to every node's address at once,
its own node first, keeping the one that takes writes (`target_session_attrs=read-write`), so
that after a promotion a new connection finds the new primary. It connects when it first has
an operation to perform, so a client is always made, even while no node answers.

Tables (created by the adapter's setup): `registers (key text primary key, val jsonb)` and
`lists (key text primary key, val bigint[])`.

Outcomes:
- register read: `SELECT`; a read that does not complete `fail`s (it changed nothing).
- write: an upsert; cas: `UPDATE ... WHERE val = expected` (`fail` when no row matched).
- txn (list-append): `BEGIN ISOLATION LEVEL <isolation>`, each micro-operation in turn (a
  read selects the whole list, an append upserts `val || ARRAY[element]`), `COMMIT`. Anything
  that goes wrong before COMMIT was sent (a serialization failure, a cancelled statement, a
  lost connection) leaves the transaction rolled back: `fail`. Once COMMIT was sent, only the
  server's refusal of it (a serialization failure) is `fail`; anything else (a lost
  connection, a cancelled or terminated backend) is `info`, since PostgreSQL commits locally
  before it waits for a standby.
- A commit that PostgreSQL acknowledges with a warning (its wait for the synchronous standby
  cancelled: "The transaction has already committed locally, but might not have been
  replicated to the standby") is `ok`, with the warning in `error`: the application was told
  it committed, as PostgreSQL tells it.

Each operation has a deadline (the client's patience). Past it the client shuts its socket
down (from a timer thread: psycopg has no per-query timeout, and a paused server would hold
the call forever); the call then fails as a lost connection would, with the outcome above.
With `cancel_on_timeout`, the client first sends a cancel request halfway through its
patience, as an application with a query timeout does (JDBC's): a commit waiting for a
standby that cannot answer then comes back acknowledged with the warning above.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

ISOLATION_SQL = {"read-committed": "READ COMMITTED", "repeatable-read": "REPEATABLE READ",
                 "serializable": "SERIALIZABLE"}
SYNC_CANCELLED = "synchronous replication"     # in the warning of a cancelled sync wait
OPERATIONS = ("read", "write", "cas", "txn")
MICRO_OPS = ("r", "append")
DATABASE = "postgres"
CANCEL_GRACE = 0.5          # share of a client's patience left to the server after a cancel
CANCEL_REQUEST_TIMEOUT = 1.0
USER = "faultline"


def conninfo(hosts: list[tuple[str, int]], timeout: float, read_write: bool = True) -> str:
    """A libpq connection string for `hosts` in order; `read_write` keeps only a primary."""
    params = {
        "host": ",".join(h for h, _ in hosts), "port": ",".join(str(p) for _, p in hosts),
        "dbname": DATABASE, "user": USER, "connect_timeout": str(max(2, round(timeout))),
        "application_name": "faultline-client",
    }
    if read_write:
        params["target_session_attrs"] = "read-write"
    return psycopg.conninfo.make_conninfo(**params)


class Deadline:
    """Ends an operation on `connection` that outlasts `seconds`. With `cancel`, it first
    asks the server to cancel it (a cancel request, as JDBC's query timeout sends) and gives
    the server `CANCEL_GRACE` of the time to answer; then, or at once without `cancel`, it
    shuts the socket down.

    The socket is held through a duplicate of its descriptor, taken now and closed when the
    operation is over: libpq closes its own descriptor as soon as it sees the connection end,
    and a timer acting on that number could hit another socket given the same number since.
    The lock keeps the timers from acting once the operation is over. `cancelling` says a
    cancel request was sent (or is being sent): it may still reach the server after the
    operation ended, so the connection must not serve another operation."""

    def __init__(self, connection: psycopg.Connection, seconds: float, cancel: bool = False):
        self._connection = connection
        self._socket = socket.socket(fileno=os.dup(connection.pgconn.socket))
        self._lock = threading.Lock()
        self._over = False
        self.cancelling = False
        grace = seconds * CANCEL_GRACE if cancel else 0.0
        self._timers = [threading.Timer(seconds, self._cut)] if not cancel else [
            threading.Timer(seconds - grace, self._cancel), threading.Timer(seconds, self._cut)]
        for timer in self._timers:
            timer.daemon = True

    def _cancel(self) -> None:
        with self._lock:
            if self._over:
                return
            self.cancelling = True
        try:
            # Its own connection to the server, bounded: a paused server never answers it.
            self._connection.cancel_safe(timeout=CANCEL_REQUEST_TIMEOUT)
        except Exception:        # the cut that follows ends the operation all the same
            pass

    def _cut(self) -> None:
        with self._lock:
            if self._over:
                return
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "Deadline":
        for timer in self._timers:
            timer.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._over = True
        for timer in self._timers:
            timer.cancel()
        self._socket.close()


class PostgresClient:
    """One logical client (see the module docstring)."""

    def __init__(self, conninfo_text: str, timeout: float, isolation: str,
                 node_of_host: dict[str, str], cancel_on_timeout: bool = False):
        self.conninfo = conninfo_text
        self.timeout = timeout
        self.cancel_on_timeout = cancel_on_timeout
        self.isolation = ISOLATION_SQL[isolation]
        self.node_of_host = node_of_host
        self._connection: psycopg.Connection | None = None
        self._warnings: list[str] = []

    # --- connection ------------------------------------------------------------------------

    def _connected(self) -> psycopg.Connection:
        if self._connection is not None and self._connection.broken:
            self.close()
        if self._connection is None or self._connection.closed:
            connection = psycopg.connect(self.conninfo, autocommit=True)
            connection.add_notice_handler(self._notice)
            self._connection = connection
        return self._connection

    def _notice(self, diagnostic) -> None:
        """Keep what the server says beside its answers (a cancelled synchronous wait)."""
        self._warnings.append(diagnostic.message_primary or "")

    def _node(self) -> str | None:
        connection = self._connection
        if connection is None or connection.closed:
            return None
        return self.node_of_host.get(connection.info.host)

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:       # a connection cut by the deadline closes as it can
                pass
            self._connection = None

    # --- operations ------------------------------------------------------------------------

    def invoke(self, f: str, key: str | None, value: Any, **options: Any) -> dict:
        if f not in OPERATIONS:
            raise ValueError(f"postgres clients do not perform {f!r}")
        if f == "txn":
            unknown = sorted({mop[0] for mop in value} - set(MICRO_OPS))
            if unknown:
                raise ValueError(f"postgres transactions have no micro-operation {unknown[0]!r}")
        try:
            connection = self._connected()
        except psycopg.Error as exc:
            return self._failed("fail", value, f"not connected: {_said(exc)}")
        node = self._node()
        self._warnings.clear()
        try:
            deadline = Deadline(connection, self.timeout, self.cancel_on_timeout)
        except (psycopg.Error, OSError) as exc:       # the connection went meanwhile
            self.close()
            return self._failed("fail", value, f"not connected: {_said(exc)}")
        try:
            if f == "txn":
                return self._transaction(connection, deadline, value, node)
            try:
                with deadline:
                    result = self._single(connection, f, key, value)
            except psycopg.Error as exc:
                self.close()
                sure = f == "read" or _refused(exc)
                return self._failed("fail" if sure else "info", value, _said(exc), node)
            result["node"] = node
            return result
        finally:
            if deadline.cancelling:
                # A cancel request sent for this operation may reach the server during the
                # next one: this connection serves no other.
                self.close()

    def _single(self, connection: psycopg.Connection, f: str, key: str, value: Any) -> dict:
        if f == "read":
            row = connection.execute("SELECT val FROM registers WHERE key = %s",
                                     (key,)).fetchone()
            return {"type": "ok", "value": row[0] if row else None}
        if f == "write":
            connection.execute("INSERT INTO registers (key, val) VALUES (%s, %s) ON CONFLICT "
                               "(key) DO UPDATE SET val = EXCLUDED.val", (key, Jsonb(value)))
            return self._ok(value)
        if f == "cas":
            expected, new = value
            done = connection.execute("UPDATE registers SET val = %s WHERE key = %s AND "
                                      "val = %s", (Jsonb(new), key, Jsonb(expected)))
            if done.rowcount == 1:
                return self._ok(value)
            return {"type": "fail", "value": value, "error": "cas: another value"}
        raise ValueError(f"postgres clients do not perform {f!r}")    # checked in invoke

    def _transaction(self, connection: psycopg.Connection, deadline: Deadline, mops: list,
                     node: str | None) -> dict:
        committing = False
        done: list = []
        try:
            with deadline:
                connection.execute(sql.SQL("BEGIN ISOLATION LEVEL {}").format(
                    sql.SQL(self.isolation)))
                for f, key, element in mops:
                    if f == "r":
                        row = connection.execute("SELECT val FROM lists WHERE key = %s",
                                                 (key,)).fetchone()
                        done.append([f, key, list(row[0]) if row else []])
                    elif f == "append":
                        connection.execute(
                            "INSERT INTO lists (key, val) VALUES (%s, ARRAY[%s]::bigint[]) "
                            "ON CONFLICT (key) DO UPDATE SET val = lists.val || EXCLUDED.val",
                            (key, element))
                        done.append([f, key, element])
                committing = True
                connection.execute("COMMIT")
        except psycopg.Error as exc:
            if not committing:
                # Nothing is committed before COMMIT: a refusal or a lost connection alike
                # leave the transaction rolled back.
                self._rollback()
                return self._failed("fail", mops, _said(exc), node)
            self.close()
            return self._failed("fail" if _refused(exc) else "info", mops, _said(exc), node)
        return dict(self._ok(done), node=node)

    def _commit_warning(self) -> str | None:
        for said in self._warnings:
            if SYNC_CANCELLED in said:
                return said
        return None

    def _rollback(self) -> None:
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            self.close()
            return
        try:
            with Deadline(self._connection, self.timeout):
                self._connection.execute("ROLLBACK")
        except Exception:        # the connection is no longer usable: start afresh
            self.close()

    def _ok(self, value: Any) -> dict:
        result = {"type": "ok", "value": value}
        warning = self._commit_warning()
        if warning:
            result["error"] = f"warning: {warning}"
        return result

    @staticmethod
    def _failed(kind: str, value: Any, error: str, node: str | None = None) -> dict:
        return {"type": kind, "value": value, "error": error, "node": node}


# Errors that mean the statement (and with COMMIT, the transaction) did not take effect, by
# SQLSTATE: serialization failure, deadlock; integrity constraints, bad data, syntax or access
# (whole classes); a read-only transaction's write, a statement in a failed transaction. Not
# a whole class where some of its errors can come after a local commit (class 40 also holds
# "statement completion unknown", class 25 transaction timeouts).
REFUSED_STATES = frozenset({"40001", "40P01", "25006", "25P02"})
REFUSED_CLASSES = ("23", "22", "42")


def _refused(exc: psycopg.Error) -> bool:
    """Whether the server refused the statement with an ERROR, so that it certainly did not
    take effect. A lost connection (no SQLSTATE), a cancelled or terminated statement could
    have committed: PostgreSQL commits locally before it waits for a standby."""
    state = getattr(exc, "sqlstate", None)
    diagnostic = getattr(exc, "diag", None)
    severity = getattr(diagnostic, "severity_nonlocalized", None) or \
        getattr(diagnostic, "severity", None)
    if not state or severity not in ("ERROR", None):
        return False
    return state in REFUSED_STATES or state[:2] in REFUSED_CLASSES


def _said(exc: BaseException) -> str:
    """An error in one line: its class and the server's or libpq's first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
