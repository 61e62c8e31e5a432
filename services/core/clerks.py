"""A department's clerks in one county, as a virtual-time server.

On arrival at working-clock time ``t`` with work ``d``, the clerk who frees earliest
takes the case: ``start = max(t, free_at)``, ``done = start + d``, ``free_at = done``.
FIFO, non-preemptive, and deterministic given the order of arrivals — so the capacity
engine (which yields until ``done``) and a live service (which keeps the assignment in a
table and emits the completion when the sim clock reaches ``done``) compute the same
schedule from the same arrivals.

**Late arrivals (backfilling).** A live department can receive an arrival after it has
already scheduled later ones (events take wall time in transit, and at high replay
speeds a few wall seconds are days of sim time). Served strictly in order of receipt,
such an arrival would queue behind work that arrived after it while its clerk sat idle
in between. With ``backfill`` > 0 the pool remembers each clerk's idle gaps for that
long (working-clock µs behind the latest arrival) and places a late arrival in the
earliest gap where its work fits, if that is earlier than the FIFO start. For arrivals
in time order no gap can ever take the work (every gap ends by the current arrival), so
the schedule is exactly the FIFO one — the simulation and the live twin still agree
case by case when events are not reordered.

Times are integers on the department calendar's working clock (see
:mod:`services.core.calendar`), so office hours, weekends and holidays are already
folded in: a pool never has to know about them.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

_PRUNE_EVERY = 64  # assignments between sweeps of expired gaps
_heapreplace = heapq.heapreplace
_heappush = heapq.heappush
_new = tuple.__new__  # an Assignment built without the NamedTuple constructor (hot path)


class Assignment(NamedTuple):
    clerk: int
    start: int  # working clock, µs
    done: int  # working clock, µs

    def wait(self, arrival: int) -> int:
        return self.start - arrival


class ClerkPool:
    """``clerks`` identical clerks serving in order of arrival (late arrivals backfilled)."""

    def __init__(self, clerks: int, name: str = "", backfill: int = 0) -> None:
        if clerks < 1:
            raise ValueError(f"pool {name or '?'} needs at least one clerk (got {clerks})")
        if backfill < 0:
            raise ValueError(f"pool {name or '?'}: negative backfill horizon")
        self.name = name
        self.clerks = clerks
        self.backfill = backfill
        # Clerks join the heap when first needed, in index order: one who never worked
        # has been free since 0, so the heap's earliest-free clerk is the earliest-free
        # of all unless it is busy at 0 and someone has not worked yet — then that one.
        # A pool of thousands (the planner's "unlimited") keeps a heap as deep as the
        # clerks ever busy at once.
        self._free: list[tuple[int, int]] = [(0, 0)]
        self._unhired = clerks - 1  # clerks not in the heap yet (free since 0)
        self._gaps: list[tuple[int, int, int]] = []  # (start, end, clerk) idle, end > start
        self._latest = 0  # latest arrival seen
        self.busy_us = 0
        self.assigned = 0
        self.backfilled = 0

    def assign(self, arrival: int, work: int) -> Assignment:
        """Give ``work`` µs of clerk time arriving at ``arrival`` to the earliest-free clerk."""
        if work < 0:
            raise ValueError("negative work")
        self.busy_us += work
        self.assigned += 1
        if self.backfill and self._gaps:
            given = self._fit_in_gap(arrival, work)
            if given is not None:
                self.backfilled += 1
                return given
        free = self._free
        free_at, clerk = free[0]
        if free_at and self._unhired:  # a clerk who has not worked yet takes it
            clerk = self.clerks - self._unhired
            self._unhired -= 1
            free_at = 0
            start = arrival
            done = start + work
            _heappush(free, (done, clerk))
        else:
            start = arrival if arrival > free_at else free_at
            done = start + work
            _heapreplace(free, (done, clerk))
        if self.backfill:
            if start > free_at:
                self._gaps.append((free_at, start, clerk))
            if arrival > self._latest:
                self._latest = arrival
            if self.assigned % _PRUNE_EVERY == 0:
                self._prune()
        return _new(Assignment, (clerk, start, done))

    def _fit_in_gap(self, arrival: int, work: int) -> Assignment | None:
        fifo_start = max(arrival, 0 if self._unhired else self._free[0][0])
        best: tuple[int, int, int] | None = None  # (start, gap start, index)
        expiry = self._latest - self.backfill
        for index, (gap_start, gap_end, _) in enumerate(self._gaps):
            if gap_end <= expiry:
                continue  # forgotten (swept away in the next prune)
            start = arrival if arrival > gap_start else gap_start
            if start < gap_end and start + work <= gap_end and start < fifo_start:
                key = (start, gap_start, index)
                if best is None or key < best:
                    best = key
        if best is None:
            return None
        start, _, index = best
        gap_start, gap_end, clerk = self._gaps[index]
        done = start + work
        pieces = [(gap_start, start, clerk), (done, gap_end, clerk)]
        self._gaps[index : index + 1] = [p for p in pieces if p[1] > p[0]]
        return Assignment(clerk, start, done)

    def _prune(self) -> None:
        expiry = self._latest - self.backfill
        self._gaps = [gap for gap in self._gaps if gap[1] > expiry]

    def free_at(self) -> list[int]:
        """When each clerk frees (by clerk index)."""
        out = [0] * self.clerks
        for t, clerk in self._free:
            out[clerk] = t
        return out

    def gaps(self) -> list[tuple[int, int, int]]:
        """Remembered idle gaps ``(start, end, clerk)`` a late arrival may still take."""
        self._prune()
        return sorted(self._gaps)

    def snapshot(self) -> dict[str, object]:
        state: dict[str, object] = {
            "clerks": self.clerks,
            "free_at": self.free_at(),
            "busy_us": self.busy_us,
            "assigned": self.assigned,
        }
        if self.backfill:
            self._prune()
            state["backfill"] = self.backfill
            state["gaps"] = [list(gap) for gap in self._gaps]
            state["latest"] = self._latest
            state["backfilled"] = self.backfilled
        return state

    @classmethod
    def restore(cls, state: dict[str, object], name: str = "") -> ClerkPool:
        free_at = list(state["free_at"])  # type: ignore[call-overload]
        pool = cls(len(free_at), name, int(state.get("backfill", 0)))  # type: ignore[call-overload]
        pool._free = [(int(t), i) for i, t in enumerate(free_at)]
        pool._unhired = 0
        heapq.heapify(pool._free)
        pool.busy_us = int(state["busy_us"])  # type: ignore[call-overload]
        pool.assigned = int(state["assigned"])  # type: ignore[call-overload]
        pool._gaps = [(int(a), int(b), int(c)) for a, b, c in state.get("gaps", [])]  # type: ignore[attr-defined]
        pool._latest = int(state.get("latest", 0))  # type: ignore[call-overload]
        pool.backfilled = int(state.get("backfilled", 0))  # type: ignore[call-overload]
        return pool
