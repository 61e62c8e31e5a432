"""What happens to a case at one step — the rule both engines follow.

Given the step's :class:`~services.core.steps.StepDraw` for a case and attempt:

1. a blocked step (arrears) first waits out its block delay on the department calendar;
2. a service or approval step then joins its county's clerk pool
   (:class:`~services.core.clerks.ClerkPool`) and, after the clerk's work, any lag;
   an external step just takes its duration;
3. at completion the step either rejects the case, sends it back for rework (the next
   attempt is enabled after the applicant's delay), or is done — and its successors
   may start.

The capacity engine calls these from SimPy callbacks; a live department service calls
them from its stream processor and timer.  Neither decides any of this itself.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from services.core.calendar import WorkingCalendar
from services.core.clerks import ClerkPool
from services.core.steps import StepDraw, advance


class Served(NamedTuple):
    """A clerk's assignment: who, when the work starts (working clock) and when the step
    (work and lag) is done (POSIX seconds)."""

    clerk: int
    start_w: int
    done: float


class Outcome(Enum):
    DONE = "done"
    REWORK = "rework"
    REJECT = "reject"


def arrival(draw: StepDraw, enabled: float, calendar: WorkingCalendar) -> float:
    """When the case reaches the clerks: at once, or after the block delay (arrears)."""
    if draw.block_delay is None:
        return enabled
    return advance(enabled, draw.block_delay, calendar)


def serve(pool: ClerkPool, calendar: WorkingCalendar, arrived: float, draw: StepDraw) -> Served:
    """Assign the clerk who frees earliest; the step is done after the work and the lag."""
    assert draw.service is not None, "a service step needs clerk time"
    given = pool.assign(calendar.clock_at(arrived), draw.service.us)
    lag = draw.lag
    if lag is not None and lag.clock == "working":
        done = calendar.posix_at(given.done + lag.us)
    else:
        done = calendar.posix_at(given.done) + (lag.us / 1e6 if lag is not None else 0.0)
    return Served(given.clerk, given.start, done)


def external_done(draw: StepDraw, enabled: float, office: WorkingCalendar) -> float:
    """When an external step (the applicant's works, a comment period) is over."""
    return advance(enabled, draw.duration, office)


def outcome(draw: StepDraw) -> Outcome:
    """What the completed attempt means for the case."""
    if draw.reject:
        return Outcome.REJECT
    if draw.rework:
        return Outcome.REWORK
    return Outcome.DONE


def rework_at(draw: StepDraw, done: float, calendar: WorkingCalendar) -> float:
    """When the next attempt is enabled: after the applicant has completed the materials."""
    return advance(done, draw.rework_delay, calendar)
