"""Waiting in process tests for something that real processes make true in their own time."""

from __future__ import annotations

import time


def wait_for(probe, timeout: float = 10.0):
    """Call `probe` every 50 ms until it returns something truthy, and return that; an
    AssertionError naming the probe when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"nothing from {probe} within {timeout} s")
