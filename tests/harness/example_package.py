"""The example plug-in package (examples/adapter: the tinykv adapter, the torn-write fault, the
version-integrity checker) installed for a test as pip would install it: a directory holding
the distribution's metadata and entry points, with the example's modules beside it on the
path; and `faultline` run in that environment, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "adapter"
DIST = "faultline-example-tinykv"


def install(site: Path, entry_points: str) -> Path:
    """Write the distribution's metadata into `site`, declaring `entry_points` (the text of
    an entry_points.txt); returns `site`."""
    dist = site / "faultline_example_tinykv-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)
    return site


def environment(site: Path) -> dict[str, str]:
    """This process's environment with the installed distribution and the example on the
    path."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(EXAMPLE), str(REPO)]))


def faultline(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess:
    """`faultline ARGS` in `env` (and the variables `extra`), its output captured."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO,
                          env=dict(env, **extra), capture_output=True, text=True, timeout=120)
