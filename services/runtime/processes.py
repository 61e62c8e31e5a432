"""Stopping the twin's processes, and knowing they are gone.

``govflow up`` starts every process in a session of its own (its pid is its process
group), so a stop reaches anything it started.  :func:`stop_processes` asks all of them
at once to stop (SIGTERM), waits, escalates to SIGKILL for those still running after the
timeout, and returns only when each one has exited — or says which did not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable

#: What became of a process asked to stop.
EXITED, KILLED, GONE, ALIVE = "exited", "killed", "not running", "still running"


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie — exited, not yet reaped — does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal the process and its group (the session ``govflow up`` gave it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect our own exited child (a no-op for others' processes)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait(pids: set[int], deadline: float) -> set[int]:
    """The pids still running at ``deadline`` (or earlier, when none is)."""
    running = set(pids)
    while running and time.monotonic() < deadline:
        for pid in list(running):
            _reap(pid)
            if not process_alive(pid):
                running.discard(pid)
        if running:
            time.sleep(0.05)
    return running


def stop_processes(
    pids: Iterable[int], timeout: float = 10.0, kill_timeout: float = 5.0
) -> dict[int, str]:
    """Stop every process of ``pids``: SIGTERM, then SIGKILL after ``timeout``; returns
    once all have exited (or ``kill_timeout`` after the SIGKILL), each pid's outcome."""
    outcome: dict[int, str] = {}
    asked: set[int] = set()
    for pid in pids:
        if process_alive(pid):
            _signal(pid, signal.SIGTERM)
            asked.add(pid)
        else:
            outcome[pid] = GONE
    stubborn = _wait(asked, time.monotonic() + timeout)
    outcome.update(dict.fromkeys(asked - stubborn, EXITED))
    for pid in stubborn:
        _signal(pid, signal.SIGKILL)
    alive = _wait(stubborn, time.monotonic() + kill_timeout)
    outcome.update(dict.fromkeys(stubborn - alive, KILLED))
    outcome.update(dict.fromkeys(alive, ALIVE))
    return outcome


def stop_process(pid: int, timeout: float = 10.0) -> bool:
    """Stop one process (see :func:`stop_processes`); True if it was running."""
    return stop_processes([pid], timeout)[pid] != GONE
