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
  read selects the whole list, an append upserts `val || ARRAY[element]`), `COMMIT`. An error
  from the server before COMMIT (a serialization failure, a statement timeout) rolls back:
  `fail`. So does a connection lost before COMMIT was sent, or an error the server gives for
  COMMIT itself. A connection lost once COMMIT was sent is `info`.
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
from psycopg import errors, sql
from psycopg.types.json import Jsonb

ISOLATION_SQL = {"read-committed": "READ COMMITTED", "repeatable-read": "REPEATABLE READ",
                 "serializable": "SERIALIZABLE"}
SYNC_CANCELLED = "synchronous replication"     # in the warning of a cancelled sync wait
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


class _Deadline:
    """Ends an operation that outlasts `seconds`. With `cancel`, it first asks the server to
    cancel it (a cancel request, as JDBC's query timeout sends) and gives the server
    `CANCEL_GRACE` of the time to answer; then, or at once without `cancel`, it shuts the
    socket down. The lock keeps the timers from touching the descriptor once the operation
    is over (it could by then be another connection's)."""

    def __init__(self, connection: psycopg.Connection, seconds: float, cancel: bool = False):
        self._connection = connection
        self._fd = connection.pgconn.socket
        self._lock = threading.Lock()
        self._over = False
        grace = seconds * CANCEL_GRACE if cancel else 0.0
        self._timers = [threading.Timer(seconds, self._cut)] if not cancel else [
            threading.Timer(seconds - grace, self._cancel), threading.Timer(seconds, self._cut)]
        for timer in self._timers:
            timer.daemon = True

    def _cancel(self) -> None:
        with self._lock:
            if self._over:
                return
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
                with socket.socket(fileno=os.dup(self._fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "_Deadline":
        for timer in self._timers:
            timer.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._over = True
        for timer in self._timers:
            timer.cancel()


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
        try:
            connection = self._connected()
        except psycopg.Error as exc:
            return self._failed("fail", value, f"not connected: {_said(exc)}")
        node = self._node()
        self._warnings.clear()
        if f == "txn":
            return self._transaction(connection, value, node)
        try:
            with _Deadline(connection, self.timeout, self.cancel_on_timeout):
                result = self._single(connection, f, key, value)
        except psycopg.Error as exc:
            self.close()
            sure = f == "read" or _refused(exc)
            return self._failed("fail" if sure else "info", value, _said(exc), node)
        result["node"] = node
        return result

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
        raise ValueError(f"postgres clients do not perform {f!r}")

    def _transaction(self, connection: psycopg.Connection, mops: list, node: str | None) -> dict:
        committing = False
        done: list = []
        try:
            with _Deadline(connection, self.timeout, self.cancel_on_timeout):
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
                    else:
                        raise ValueError(f"postgres transactions have no micro-operation {f!r}")
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
        result = {"type": "ok", "value": done, "node": node}
        warning = self._commit_warning()
        if warning:
            result["error"] = f"warning: {warning}"
        return result

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
            with _Deadline(self._connection, self.timeout):
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


# SQLSTATE classes of errors that mean the statement (and with COMMIT, the transaction) did not
# take effect: transaction rollback (serialization failures, deadlocks), integrity
# constraints, bad data, syntax or access, invalid transaction state.
REFUSALS = ("40", "23", "22", "42", "25")


def _refused(exc: psycopg.Error) -> bool:
    """Whether the server refused the statement, so that it certainly did not take effect. A
    lost connection (no SQLSTATE), a cancelled or terminated statement could have committed:
    PostgreSQL commits locally before it waits for a standby."""
    state = getattr(exc, "sqlstate", None)
    return bool(state) and state[:2] in REFUSALS


def _said(exc: BaseException) -> str:
    """An error in one line: its class and the server's or libpq's first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
