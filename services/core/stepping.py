"""What happens to a case at one step — the rule both engines follow.

Given the step's :class:`~services.core.steps.StepDraw` for a case and attempt:

1. a blocked step (arrears) first waits out its block delay on the department calendar;
2. a service or approval step then joins its county's clerk pool
   (:class:`~services.core.clerks.ClerkPool`) and, after the clerk's work, any lag;
   an external step just takes its duration;
3. at completion the step either rejects the case, fails and is retried with capped
   exponential backoff (a transient fault, or its department in a ``retry`` outage),
   sends it back for rework (the next attempt is enabled after the applicant's delay),
   or is done — and its successors may start. Work reaching a department inside a
   ``hold`` outage waits until the outage ends.

The capacity engine calls these from SimPy callbacks; a live department service calls
them from its stream processor and timer.  Neither decides any of this itself.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from services.core.calendar import WorkingCalendar
from services.core.clerks import ClerkPool
from services.core.scenario import RetryPolicy, Scenario
from services.core.steps import StepDraw, advance


class DepartmentFaults(NamedTuple):
    """A department's outage windows (POSIX seconds) and the retry policy."""

    holds: tuple[tuple[float, float], ...] = ()
    failures: tuple[tuple[float, float], ...] = ()
    retry: RetryPolicy = RetryPolicy()

    @classmethod
    def of(cls, scenario: Scenario, department: str) -> DepartmentFaults:
        outages = [o for o in scenario.faults.outages if o.department == department]
        return cls(
            tuple(o.window() for o in outages if o.mode == "hold"),
            tuple(o.window() for o in outages if o.mode == "retry"),
            scenario.faults.retry,
        )


NO_FAULTS = DepartmentFaults()


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
    RETRY = "retry"


def arrival(
    draw: StepDraw, enabled: float, calendar: WorkingCalendar, faults: DepartmentFaults = NO_FAULTS
) -> float:
    """When the case reaches the clerks: at once, or after the block delay (arrears),
    and not before a ``hold`` outage of the department is over."""
    at = enabled if draw.block_delay is None else advance(enabled, draw.block_delay, calendar)
    for start, end in faults.holds:
        if start <= at < end:
            at = end
    return at


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


def outcome(draw: StepDraw, done: float = 0.0, faults: DepartmentFaults = NO_FAULTS) -> Outcome:
    """What the attempt completed at ``done`` means for the case."""
    if draw.reject:
        return Outcome.REJECT
    if draw.fault or any(start <= done < end for start, end in faults.failures):
        return Outcome.RETRY
    if draw.rework:
        return Outcome.REWORK
    return Outcome.DONE


def retry_at(done: float, attempt: int, faults: DepartmentFaults) -> float:
    """When a failed attempt (0-based ``attempt``) is tried again: capped backoff."""
    return done + faults.retry.delay_seconds(attempt)


def rework_at(draw: StepDraw, done: float, calendar: WorkingCalendar) -> float:
    """When the next attempt is enabled: after the applicant has completed the materials."""
    return advance(done, draw.rework_delay, calendar)
