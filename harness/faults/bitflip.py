"""bitflip: flip random bits in a down node's data files, then restart it (Jepsen's bitflip)."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from harness.faults.disk import DiskFault

FLIPS = (1, 8)       # fewest and most bits flipped in one file


class BitflipFault(DiskFault):
    name = "bitflip"
    START, STOP = "bitflip", "start"
    SUMMARY = "kill nodes, flip random bits in their data files, restart them"

    def damage(self, path: Path, rng: random.Random) -> dict[str, Any]:
        size = path.stat().st_size
        flipped = []
        with open(path, "r+b") as f:
            for _ in range(rng.randint(*FLIPS)):
                offset, bit = rng.randrange(size), rng.randrange(8)
                f.seek(offset)
                byte = f.read(1)[0]
                f.seek(offset)
                f.write(bytes([byte ^ (1 << bit)]))
                flipped.append(offset)
            f.flush()
            os.fsync(f.fileno())
        return {"flipped": sorted(flipped)}
