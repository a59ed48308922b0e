"""truncate: cut the tail off a down node's data files, then restart it (Jepsen's truncate)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from harness.faults.disk import DiskFault

MAX_CUT = 64 * 1024        # most bytes cut off one file


class TruncateFault(DiskFault):
    name = "truncate"
    START, STOP = "truncate", "start"
    SUMMARY = "kill nodes, cut the tail off their data files, restart them"

    def damage(self, path: Path, rng: random.Random) -> dict[str, Any]:
        size = path.stat().st_size
        cut = rng.randint(1, min(size, MAX_CUT))
        os.truncate(path, size - cut)
        return {"bytes_cut": cut, "size": size - cut}
