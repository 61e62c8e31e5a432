"""A department's clerks in one county, as a virtual-time server.

On arrival at working-clock time ``t`` with work ``d``, the clerk who frees earliest
takes the case: ``start = max(t, free_at)``, ``done = start + d``, ``free_at = done``.
FIFO, non-preemptive, and deterministic given the order of arrivals — so the capacity
engine (which yields until ``done``) and a live service (which keeps the assignment in a
table and emits the completion when the sim clock reaches ``done``) compute the same
schedule from the same arrivals.

Times are integers on the department calendar's working clock (see
:mod:`services.core.calendar`), so office hours, weekends and holidays are already
folded in: a pool never has to know about them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    clerk: int
    start: int  # working clock, µs
    done: int  # working clock, µs

    def wait(self, arrival: int) -> int:
        return self.start - arrival


class ClerkPool:
    """``clerks`` identical clerks serving in order of arrival."""

    def __init__(self, clerks: int, name: str = "") -> None:
        if clerks < 1:
            raise ValueError(f"pool {name or '?'} needs at least one clerk (got {clerks})")
        self.name = name
        self.clerks = clerks
        self._free: list[tuple[int, int]] = [(0, i) for i in range(clerks)]
        self.busy_us = 0
        self.assigned = 0

    def assign(self, arrival: int, work: int) -> Assignment:
        """Give ``work`` µs of clerk time arriving at ``arrival`` to the earliest-free clerk."""
        if work < 0:
            raise ValueError("negative work")
        free_at, clerk = heapq.heappop(self._free)
        start = arrival if arrival > free_at else free_at
        done = start + work
        heapq.heappush(self._free, (done, clerk))
        self.busy_us += work
        self.assigned += 1
        return Assignment(clerk, start, done)

    def free_at(self) -> list[int]:
        """When each clerk frees (by clerk index) — the pool's whole state."""
        out = [0] * self.clerks
        for t, clerk in self._free:
            out[clerk] = t
        return out

    def snapshot(self) -> dict[str, object]:
        return {
            "clerks": self.clerks,
            "free_at": self.free_at(),
            "busy_us": self.busy_us,
            "assigned": self.assigned,
        }

    @classmethod
    def restore(cls, state: dict[str, object], name: str = "") -> ClerkPool:
        free_at = list(state["free_at"])  # type: ignore[call-overload]
        pool = cls(len(free_at), name)
        pool._free = [(int(t), i) for i, t in enumerate(free_at)]
        heapq.heapify(pool._free)
        pool.busy_us = int(state["busy_us"])  # type: ignore[call-overload]
        pool.assigned = int(state["assigned"])  # type: ignore[call-overload]
        return pool
