"""Small real servers to put behind proxies in tests: an echo server on 127.0.0.1.

`EchoServer` runs in threads of the calling process (no event loop needed), echoes every byte
back, and on end-of-stream from the client closes the connection. It counts what it received,
so a test can tell what crossed a proxy upstream. `stop()` closes the listener and every
connection and joins every thread: nothing outlives it.
"""

from __future__ import annotations

import socket
import threading


class EchoServer:
    """A threaded TCP echo server on 127.0.0.1 and a free port (or `port`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._listener = socket.create_server((host, port), backlog=128)
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self.received = bytearray()  # everything received, over all connections
        self.accepted = 0
        self._acceptor = threading.Thread(target=self._accept_loop, name="echo-accept",
                                          daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopped:
                    conn.close()
                    return
                self.accepted += 1
                self._conns.add(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), name="echo-conn",
                                          daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                with self._lock:
                    self.received += data
                conn.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def stop(self) -> None:
        """Close the listener and every connection; wait for every thread."""
        with self._lock:
            self._stopped = True
            conns = list(self._conns)
            threads = list(self._threads)
        # shutdown() wakes the blocked accept(); close() alone would not on Linux.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._acceptor.join(5)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
