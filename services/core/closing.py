"""When a case's state may be dropped, and the marker that still drops its duplicates.

A case a service is done with (a department: every step it performs for the case is
done, or the case is rejected and none of its work is left; the tracker: the verdict is
given) is replaced by a **closed marker** — ``{"closed": <wall seconds>}``, a few dozen
bytes instead of the ids of every event seen.  An event for a closed case is a late
duplicate (a redelivery after a crash, a re-executed tick's republished completion) and
is dropped.  Markers are deleted once they are older than the service's horizon
(``GOVFLOW_CLOSED_CASE_HORIZON_S``), so a service's state is bounded by its open cases
plus the cases closed within the horizon.  A duplicate that arrives later than that is
taken for a new event: the horizon must exceed the longest outage a worker recovers from.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

CLOSED = "closed"


def closed_marker(wall: float) -> dict[str, float]:
    return {CLOSED: wall}


def closed_at(data: Any) -> float | None:
    """When a stored case was closed (None: it is open, or not stored)."""
    if isinstance(data, dict) and len(data) == 1 and CLOSED in data:
        return float(data[CLOSED])
    return None


def expired(data: Any, now: float, horizon: float, since: float = 0.0) -> bool:
    """A closed marker older than ``horizon`` seconds at wall time ``now``, counted from
    ``since`` at the earliest (:func:`serving_since`: the worker's start, moved on by
    rebalances; after an outage the redelivered events come first, and their markers must
    still be there)."""
    at = closed_at(data)
    return at is not None and now - max(at, since) > horizon


def serving_since(since: float | None, revoked_at: float | None, now: float) -> float:
    """The ``since`` of :func:`expired` after the state was recovered at ``now``.

    A worker's first recovery (``since`` None: a start, perhaps after a crash of unknown
    length) counts every marker's age from ``now``: the redelivered backlog comes first.
    A later one in the same live worker is a rebalance, a pause of ``now - revoked_at``
    seconds: ``since`` moves on by the pause and no further.  Counting from every
    rebalance instead meant a marker was never forgotten in a service whose group
    rebalanced more often than the horizon (the Kafka soak of 2026-12-02: every group
    rebalanced 5 minutes in, and no closed marker was forgotten in the whole run)."""
    if since is None or revoked_at is None:
        return now
    return since + max(0.0, now - revoked_at)


#: How many ended cases a unit's entry remembers (newest last): the register's
#: ended transfers, tax's deed-tax clearances: enough to drop a late
#: redelivery of any of them — redeliveries come within the closed-case horizon, and no
#: unit is transferred that often within it — while a unit of a finite housing stock,
#: transferred again and again over the years, keeps a bounded entry.
CLOSED_KEPT = 16


def remember(closed: tuple[Hashable, ...], case: Hashable) -> tuple[Hashable, ...]:
    """``closed`` with ``case`` appended, the oldest beyond :data:`CLOSED_KEPT` forgotten."""
    return (*closed, case)[-CLOSED_KEPT:]
