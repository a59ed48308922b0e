"""Closed-loop load for the benchmarks: worker threads that run until told to stop."""

from __future__ import annotations

import threading
import time
from typing import Callable


def run_threads(worker: Callable[[int, threading.Event], None], count: int,
                seconds: float) -> None:
    """Run `worker(i, stop)` in `count` threads for `seconds`, then set `stop` and wait for
    every worker to return (each finishes the operation it has in flight)."""
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(i, stop)) for i in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
