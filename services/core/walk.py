"""The walk of one case through its matter's step graph — the rule every driver follows.

Three drivers run the walk: the SimPy capacity engine (``simulator/engine.py``), the
broker-free virtual twin (``simulator/virtual.py``) and the live department services
(``services/runtime/department.py``, through :mod:`services.core.department`).  Each
keeps only its own scheduling — SimPy timeouts, a heap, the Faust timer — and its I/O;
every decision about a case is taken here.

One case, one attempt at one step at a time, on the case's **route** — the path its
segment takes through the matter's steps (:mod:`services.core.routes`; the default path
without one):

1. **enable** — an attempt is enabled: an entry step at the submission, a successor
   once *all* its predecessors are done (at the latest predecessor's completion; a
   completion heard twice enables nothing twice), a retried or corrected step at the
   time the walk gave for its next attempt.
2. **begin** — the step's draw for this case and attempt (:mod:`services.core.steps`).
   An *external* step (the applicant's works, a comment period, a 容缺 supplement) needs
   no clerk: it is done after its duration on the office calendar — or, a 容缺 supplement
   later than its deadline whose scenario says ``missed: reject``, at the deadline.
   Any other step reaches the clerks once a block (arrears; first attempts only) is
   settled, and not inside a ``hold`` outage of its department (it waits until the
   outage ends).
3. **serve** — the county's clerk pool (:class:`~services.core.clerks.ClerkPool`)
   assigns the clerk who frees earliest; the attempt is done after the clerk's work and
   any lag.
4. **finish** — at completion the attempt either rejects the case (a rejection drawn,
   or a 容缺 supplement past its deadline); or fails and is
   retried after a capped exponential backoff (a transient fault, or completion inside a
   ``retry`` outage); or sends the applicant away to correct the materials (补正: the next
   attempt is enabled after the applicant's delay); or is done.  A done step applies its
   *effect* on the property register or a utility's accounts — which may refuse it (the
   case is then rejected) — and enables its ready successors; the case is complete when
   all its final steps are done, at the latest of their completions.
5. **reject** — a rejected case does nothing more: no attempt begins, is served or
   finishes after it.  If its matter took a lock on the unit, the lock is released.

Effects are named here as an interface (:class:`Effects`); the departments implement
them — the register and its lock and seizure rules in ``services/property``, the deed-tax
pivot in ``services/tax``, the account holders in ``services/utilities`` — and the
drivers wire the two together, so this module imports no department.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import IntEnum
from typing import NamedTuple, Protocol

import numpy as np

from services.core.calendar import WorkingCalendar
from services.core.catalog import Matter, StepEffect
from services.core.clerks import ClerkPool
from services.core.routes import MatterGraph, MatterRoutes
from services.core.scenario import RetryPolicy, Scenario, StepTiming
from services.core.steps import BLOCK, FAULT, REJECT, REWORK, StepModel, advance

REWORK_REASON = "补正: 一次性告知, 补齐材料后再办"
MISSED_REASON = "容缺受理: 未在规定期限内补齐材料"


class Outcome(IntEnum):
    """What a finished attempt means for the case (stored as a small integer)."""

    DONE = 0
    REWORK = 1  # 补正: the applicant corrects the materials, the step is attempted again
    REJECT = 2
    RETRY = 3  # a transient fault or an outage: the step is attempted again later


# -- effects: the interface the departments implement --------------------------------


class Subject(NamedTuple):
    """Who and what a case's effects concern: the case, its 不动产单元 and the buyer.

    Live, these are the case id, the unit code and the buyer's name; the capacity engine
    uses compact integer keys and formats them only when it writes a ledger."""

    case: Hashable
    unit: Hashable | None = None
    owner: Hashable | None = None


class Decision(NamedTuple):
    """An effect's answer: go ahead, or refuse the case (with why)."""

    ok: bool
    reason: str = ""
    released: bool = False  # the effect also released the case's lock


ACCEPTED = Decision(True)


class Effects(Protocol):
    """The state a step's ``effect`` changes (the register, the deed-tax records, the
    utility accounts), as one department — or a whole simulation — keeps it."""

    def apply(self, effect: StepEffect, department: str, subject: Subject) -> Decision:
        """Carry out ``effect`` of a done step of ``department`` for ``subject``."""
        ...

    def release(self, department: str, subject: Subject) -> bool:
        """Release the lock ``subject``'s case holds at ``department``; True if it held one."""
        ...


class NoEffects:
    """A department whose steps change no register or account."""

    def apply(self, effect: StepEffect, department: str, subject: Subject) -> Decision:
        raise ValueError(f"{department} keeps no state for the effect {effect!r}")

    def release(self, department: str, subject: Subject) -> bool:
        return False


NO_EFFECTS = NoEffects()


# -- faults ----------------------------------------------------------------------------


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

    def held_until(self, at: float) -> float:
        """When work reaching the department at ``at`` can be served (after a hold)."""
        for start, end in self.holds:
            if start <= at < end:
                at = end
        return at

    def failing(self, at: float) -> bool:
        """Whether an attempt completing at ``at`` falls in a ``retry`` outage."""
        return any(start <= at < end for start, end in self.failures)


# -- the step graph ---------------------------------------------------------------------


class CaseState:
    """What the walk knows of one case: the steps done (index → completion), whether it
    was rejected, and its :class:`Subject` (for effects).  A driver keeps one per case —
    a live department one per case *it has heard of*."""

    __slots__ = ("done", "graph", "rejected", "subject")

    def __init__(
        self,
        done: dict[int, float] | None = None,
        rejected: bool = False,
        subject: Subject | None = None,
        graph: MatterGraph | None = None,
    ) -> None:
        self.done: dict[int, float] = done if done is not None else {}
        self.rejected = rejected
        self.subject = subject
        #: the case's route through the matter (None: the walk's default graph)
        self.graph = graph


class Served(NamedTuple):
    """A clerk's assignment: who, when the work starts (working clock) and when the step
    (work and lag) is done (POSIX seconds)."""

    clerk: int
    start_w: int
    done: float


class Finished(NamedTuple):
    """A finished attempt: its outcome and what follows from it."""

    outcome: Outcome
    reason: str = ""
    again: float | None = None  # RETRY / REWORK: when the next attempt is enabled
    ready: tuple[tuple[int, float], ...] = ()  # DONE: successors enabled, and when
    completed: float | None = None  # DONE: the case is complete, at this instant
    released: bool = False  # REJECT: the case's lock was released


_new = tuple.__new__  # NamedTuples built positionally on the hot path
_NOTHING_READY = Finished(Outcome.DONE)


class MatterWalk:
    """The walk for one matter under one scenario and seed (every case of the matter).

    ``time_scale`` per segment (a share of cases with its own speed) multiplies clerk
    time and lags; the office calendar counts external steps' time.
    """

    def __init__(self, scenario: Scenario, matter: Matter, seed: int) -> None:
        self.matter = matter
        #: each segment's route graph, and which targets its cases are measured against
        self.routes = routes = MatterRoutes.of(matter, scenario)
        self.graph = graph = routes.default
        every = routes.every
        self.office = scenario.office_calendar
        self.calendars: tuple[WorkingCalendar, ...] = tuple(
            self.office if external else scenario.calendar(department)
            for external, department in zip(graph.external, graph.departments, strict=True)
        )
        #: pools with hours of their own (延时), by pool name ("department/county")
        self.pool_calendars: dict[str, WorkingCalendar] = {
            name: calendar
            for department, external in zip(graph.departments, graph.external, strict=True)
            if not external
            for name, calendar in scenario.pool_calendars(department).items()
        }
        self.faults = tuple(DepartmentFaults.of(scenario, d) for d in graph.departments)
        self.models = tuple(
            StepModel(scenario, matter.id, step, seed, calendar)
            for step, calendar in zip(matter.steps, self.calendars, strict=True)
        )
        self.scales: tuple[float, ...] = tuple(s.time_scale for s in routes.segments)
        timings = scenario.timing.get(matter.id, {})
        #: 容缺 steps whose missed deadline rejects the case
        self.reject_missed: tuple[bool, ...] = tuple(
            (t := timings.get(step.id)) is not None
            and t.deadline is not None
            and t.missed == "reject"
            for step in matter.steps
        )
        can_reject = (
            graph.has_effects
            or any(self.reject_missed)
            or any(t.reject is not None and t.reject.probability > 0 for t in timings.values())
        )
        #: A final attempt whose outcome is certain once it is served: the matter can
        #: reject no case, the step has no effect and cannot fail.  Nothing can happen
        #: to the case between its service and its completion, so a driver may book the
        #: completion at once instead of waiting for it.
        #: On every route that runs it, that is.
        self.certain_at_service: tuple[bool, ...] = tuple(
            all(g.is_final[i] for g in every if g.present[i])
            and not can_reject
            and not _may_fail(timings.get(step.id), faults)
            for i, (step, faults) in enumerate(zip(matter.steps, self.faults, strict=True))
        )

    def prepare(self, segments: np.ndarray) -> None:
        """Draw the first attempts of every case in bulk (the engine's fast path);
        ``segments[seq]`` is case ``seq``'s segment (-1: none)."""
        scales = np.ones(len(segments))
        for index, scale in enumerate(self.scales):
            scales[segments == index] = scale
        for model in self.models:
            model.prepare(scales)

    def calendar_of(self, si: int, county: str) -> WorkingCalendar:
        """The calendar step ``si`` is served on in ``county`` (its pool's)."""
        calendar = self.calendars[si]
        if self.pool_calendars and not self.graph.external[si]:
            return self.pool_calendars.get(f"{self.graph.departments[si]}/{county}", calendar)
        return calendar

    def graph_of(self, segment: int) -> MatterGraph:
        """The route graph of a segment's cases (-1: no segment, the default path)."""
        return self.routes.graph_of(segment)

    def scale(self, segment: int) -> float:
        """The time scale of a segment's cases (clerk time and lags)."""
        return self.scales[segment] if 0 <= segment < len(self.scales) else 1.0

    # -- the walk ---------------------------------------------------------------------------

    def begin(
        self, state: CaseState, seq: int, si: int, attempt: int, enabled: float
    ) -> float | None:
        """Attempt ``attempt`` (0-based) of step ``si`` is enabled at ``enabled``: when it
        reaches the clerks — or, for an external step, when it is done.  None if the case
        was rejected meanwhile."""
        if state.rejected:
            return None
        model = self.models[si]
        if self.graph.external[si]:
            if self.reject_missed[si] and model.misses_deadline(seq, attempt):
                return advance(enabled, model.deadline(seq), self.office)  # rejected then
            return advance(enabled, model.duration(seq, attempt), self.office)
        at = enabled
        first = model.first
        blocked = (
            (first.flags[seq] if seq < first.n else model.branches(seq, 0)) & BLOCK
            if attempt == 0
            else 0
        )
        if blocked:
            at = advance(enabled, model.block_delay(seq), self.calendars[si])
        faults = self.faults[si]
        if faults.holds:
            at = faults.held_until(at)
        return at

    def serve(
        self,
        state: CaseState,
        pool: ClerkPool,
        seq: int,
        segment: int,
        si: int,
        attempt: int,
        arrived: float,
    ) -> Served | None:
        """The attempt reaches the clerks at ``arrived``; None if the case was rejected."""
        if state.rejected:
            return None
        calendar = self.calendars[si]
        if self.pool_calendars:  # this county's pool may keep hours of its own
            calendar = self.pool_calendars.get(pool.name, calendar)
        model = self.models[si]
        first = model.first
        if attempt == 0 and seq < first.n:  # prepared: read it directly (the hot path)
            work = first.service_us[seq]
            lag = first.lag[seq] if first.lag is not None else 0
        else:
            scale = self.scale(segment)
            work = model.service_us(seq, attempt, scale)
            lag = model.lag_us(seq, attempt, scale)
        clerk, start_w, done_w = pool.assign(calendar.clock_at(arrived), work)
        if not lag:
            done = calendar.posix_at(done_w)
        elif model.lag_clock == "working":
            done = calendar.posix_at(done_w + lag)
        else:
            done = calendar.posix_at(done_w) + lag / 1e6
        return _new(Served, (clerk, start_w, done))

    def finish(
        self,
        state: CaseState,
        seq: int,
        si: int,
        attempt: int,
        done: float,
        effects: Effects = NO_EFFECTS,
    ) -> Finished | None:
        """Attempt ``attempt`` of step ``si`` completes at ``done``; None if the case was
        rejected meanwhile (the attempt then leaves no trace)."""
        if state.rejected:
            return None
        graph = self.graph
        faults = self.faults[si]
        first = self.models[si].first
        if attempt == 0 and seq < first.n:  # prepared: read it directly (the hot path)
            branches = first.flags[seq]
        else:
            branches = self.models[si].branches(seq, attempt)
        if branches & REJECT:
            return self._rejected(state, effects, f"{self.matter.steps[si].name}: 不予办理")
        if self.reject_missed[si] and self.models[si].misses_deadline(seq, attempt):
            return self._rejected(state, effects, MISSED_REASON)
        if branches & FAULT or (faults.failures and faults.failing(done)):
            again = done + faults.retry.delay_seconds(attempt)
            return _new(Finished, (Outcome.RETRY, "故障或停运: 稍后重试", again, (), None, False))
        if branches & REWORK:
            delay = self.models[si].rework_delay(seq, attempt)
            again = advance(done, delay, self.calendars[si])
            return _new(Finished, (Outcome.REWORK, REWORK_REASON, again, (), None, False))
        effect = graph.effects[si]
        if effect is not None:
            subject = state.subject
            if subject is None:
                raise ValueError(
                    f"{self.matter.id} step {self.matter.steps[si].id} has the effect "
                    f"{effect!r} but the case has no subject (unit, owner)"
                )
            decision = effects.apply(effect, graph.departments[si], subject)
            if not decision.ok:
                rejected = self._rejected(state, effects, decision.reason)
                return rejected._replace(released=rejected.released or decision.released)
        return self.done(state, si, done)

    def done(self, state: CaseState, si: int, at: float) -> Finished:
        """Step ``si`` is done at ``at`` (this driver's own completion, or one heard from
        another department): the successors it makes ready, and the case's completion."""
        done = state.done
        if state.rejected or si in done:  # heard twice, or too late
            return _NOTHING_READY
        done[si] = at
        graph = state.graph or self.graph
        if graph.is_final[si]:
            return _new(Finished, (Outcome.DONE, "", None, (), graph.completed(done), False))
        return _new(Finished, (Outcome.DONE, "", None, graph.ready(done, si), None, False))

    def reject(self, state: CaseState) -> bool:
        """The case is rejected (here or, as heard, elsewhere): nothing more happens to it.
        True when a lock its matter took must now be released (see :meth:`release`)."""
        if state.rejected:
            return False
        state.rejected = True
        return (state.graph or self.graph).lock_step is not None

    def release(self, state: CaseState, effects: Effects) -> bool:
        """Release the lock of a rejected case (idempotent); True if one was held."""
        graph = state.graph or self.graph
        lock = graph.lock_step
        if lock is None or state.subject is None:
            return False
        return effects.release(graph.departments[lock], state.subject)

    def _rejected(self, state: CaseState, effects: Effects, reason: str) -> Finished:
        released = self.release(state, effects) if self.reject(state) else False
        return Finished(Outcome.REJECT, reason, released=released)


def _may_fail(timing: StepTiming | None, faults: DepartmentFaults) -> bool:
    """Whether an attempt at a step can fail (a fault branch, or a ``retry`` outage)."""
    fault = timing.fault if timing is not None else None
    return bool(faults.failures) or (fault is not None and fault.probability > 0)
