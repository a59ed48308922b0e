"""A guard process: runs one command and kills it when the harness goes away, however it goes.

    python -m harness.processes.guard [--netns NAME] -- COMMAND [ARGS...]

The harness starts every node and server through a guard, with the guard's standard input a
pipe whose other end only the harness holds. When the harness exits, crashes or is SIGKILLed,
the kernel closes that end; the guard reads end-of-file and kills the command's whole process
group. This needs nothing from the command (etcd or Redis work as well as refnode) and no
`preexec_fn`, which is unsafe in a threaded parent.

Protocol: the guard prints the command's pid on its first line of standard output, then
nothing else. It exits with the command's exit status (128+N for a signal), and on SIGTERM it
passes SIGTERM to the command, waits up to `--grace` seconds, then SIGKILLs the group.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the guard; returns its exit status (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m harness.processes.guard")
    parser.add_argument("--grace", type=float, default=5.0,
                        help="seconds between SIGTERM and SIGKILL on shutdown")
    parser.add_argument("--netns", help="run the command in this network namespace")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    if args.netns:
        # The guard joins the namespace itself (it is single-threaded here), so that the
        # command is started inside it and needs no `ip netns exec`.
        from pyroute2 import netns

        try:
            netns.setns(args.netns, flags=0)
        except OSError as exc:
            sys.stderr.write(f"guard: cannot enter network namespace {args.netns}: {exc}\n")
            return 126

    # A session of its own, so that the whole tree the command starts can be killed at once
    # and a Ctrl-C in the harness's terminal reaches the harness only.
    # The command's output goes where the guard's errors go (the node's log file): the guard's
    # own standard output carries the protocol.
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                             start_new_session=True)
    pgid = child.pid

    def on_term(signum, frame):  # noqa: ARG001 - signal handler signature
        # No waiting here: the main thread is inside child.wait(), which holds the lock any
        # wait from this handler would need. SIGKILL follows from a timer if SIGTERM is not
        # enough; the main thread's wait returns as soon as the command is gone.
        _kill_group(pgid, signal.SIGCONT)     # a paused process cannot act on SIGTERM
        _kill_group(pgid, signal.SIGTERM)
        timer = threading.Timer(args.grace, _kill_group, (pgid, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch_lifeline() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        # The harness is gone: nobody is left to stop the command cleanly.
        _kill_group(pgid, signal.SIGKILL)

    # Watching before anything else can fail: the harness may already be gone.
    threading.Thread(target=watch_lifeline, daemon=True).start()
    try:
        sys.stdout.write(f"{child.pid}\n")
        sys.stdout.flush()
    except OSError:          # the harness died before reading the pid: nobody will stop it
        _kill_group(pgid, signal.SIGKILL)
        sys.stdout = open(os.devnull, "w")
    status = child.wait()
    # Whatever the command left behind in its group goes with it.
    _kill_group(pgid, signal.SIGKILL)
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main())
