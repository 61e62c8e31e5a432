"""The capacity engine: one replication of a scenario as a SimPy discrete-event simulation.

Each case walks its matter's step graph: a step is enabled when all its predecessors
are done; parallel branches run at once and join.  A service or approval step may first
be blocked (arrears), then joins its department's clerk pool in its county — a
virtual-time server on the department's calendar (:class:`~services.core.clerks.ClerkPool`)
— then waits out any lag; it may send the applicant away to complete materials and
repeat (容缺 rework) or reject the case.  External steps (the applicant's works, comment
periods) just take their time.

SimPy keeps events in time order, which is all the clerk pools need: they are assigned
work in order of arrival, so the schedule is exactly the one a live department service
computes from the same arrivals.  Every random quantity comes from
:class:`~services.core.steps.StepModel` streams indexed by the case's sequence number.

The engine imports no Kafka and no runtime: it is pure simulation.
"""

from __future__ import annotations

import math
import time as wallclock
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from services.core import saga, stepping
from services.core.calendar import WorkingCalendar
from services.core.catalog import Catalog, Matter
from services.core.clerks import ClerkPool
from services.core.saga import UnitRegister, UnitState, UtilityAccounts
from services.core.scenario import Scenario
from services.core.stepping import Outcome
from services.core.steps import StepDraw, StepModel
from simulator.demand import MatterArrivals, case_id, generate_demand, midnight


@dataclass
class StepRecords:
    """One row per step attempt (columns as arrays)."""

    matter: array = field(default_factory=lambda: array("i"))  # index into Replication.matters
    seq: array = field(default_factory=lambda: array("i"))
    step: array = field(default_factory=lambda: array("i"))  # index into the matter's steps
    attempt: array = field(default_factory=lambda: array("i"))
    clerk: array = field(default_factory=lambda: array("i"))  # -1: no clerk (external)
    enabled: array = field(default_factory=lambda: array("d"))  # POSIX seconds
    arrival: array = field(default_factory=lambda: array("d"))  # at the pool (after a block)
    start_w: array = field(default_factory=lambda: array("q"))  # working clock at service start
    done: array = field(default_factory=lambda: array("d"))

    def __len__(self) -> int:
        return len(self.seq)

    def columns(self) -> dict[str, np.ndarray]:
        return {
            name: np.frombuffer(col, dtype=col.typecode).copy()
            if len(col)
            else np.empty(0, dtype=col.typecode)
            for name, col in self.__dict__.items()
        }


@dataclass
class MatterOutcome:
    """Per case of one matter (aligned with its arrivals)."""

    matter: Matter
    arrivals: MatterArrivals
    completed: np.ndarray  # POSIX, NaN if rejected
    rejected_at_step: np.ndarray  # step index, -1 if not rejected


@dataclass
class PoolStats:
    department: str
    county: str
    clerks: int
    busy_us: int
    assigned: int


@dataclass
class Replication:
    scenario: str
    seed: int
    matters: list[str]
    outcomes: dict[str, MatterOutcome]
    steps: StepRecords
    pools: list[PoolStats]
    calendars: list[WorkingCalendar]
    step_calendars: list[list[int]]  # per matter, per step: index into calendars
    horizon_start: float
    horizon_end: float
    measured_from: float
    wall_seconds: float
    counties: list[str]
    #: the saga's end state: the property register per unit code, each utility's holders
    register: dict[str, UnitState] = field(default_factory=dict)
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)
    linked_units: set[str] = field(default_factory=set)  # units a linked transfer touched

    @property
    def cases(self) -> int:
        return sum(len(o.arrivals) for o in self.outcomes.values())

    def columns(self) -> dict[str, np.ndarray]:
        """The step records as arrays, with derived ``county``, ``department`` (index into
        :meth:`departments`) and ``start`` (POSIX) columns; computed once."""
        cached = self.__dict__.get("_columns")
        if cached is not None:
            return cached
        cols = self.steps.columns()
        n = len(cols["seq"]) if cols["seq"].size else 0
        departments = self.departments()
        county = np.zeros(n, dtype=np.int64)
        department = np.zeros(n, dtype=np.int64)
        calendar = np.zeros(n, dtype=np.int64)
        for mi, matter_id in enumerate(self.matters):
            rows = cols["matter"] == mi
            if not rows.any():
                continue
            outcome = self.outcomes[matter_id]
            county[rows] = outcome.arrivals.county[cols["seq"][rows]]
            steps = outcome.matter.steps
            dept_lut = np.array([departments.index(s.department) for s in steps])
            cal_lut = np.array([self.step_calendars[mi][si] for si in range(len(steps))])
            department[rows] = dept_lut[cols["step"][rows]]
            calendar[rows] = cal_lut[cols["step"][rows]]
        start = cols["enabled"].copy() if n else np.empty(0)
        served = cols["clerk"] >= 0 if n else np.zeros(0, dtype=bool)
        for index, cal in enumerate(self.calendars):
            mask = served & (calendar == index)
            if mask.any():
                start[mask] = cal.posix_at_many(cols["start_w"][mask], at_start=True)
        cols.update(county=county, department=department, start=start)
        self.__dict__["_columns"] = cols
        return cols

    def departments(self) -> list[str]:
        return sorted({s.department for o in self.outcomes.values() for s in o.matter.steps})


class _MatterRun:
    """Static structure of one matter for the run: step indices, successors, models."""

    def __init__(
        self,
        scenario: Scenario,
        matter: Matter,
        index: int,
        arrivals: MatterArrivals,
        seed: int,
        calendar_index: dict[int, int],
    ) -> None:
        self.matter = matter
        self.index = index
        self.arrivals = arrivals
        self.steps = list(matter.steps)
        position = {s.id: i for i, s in enumerate(self.steps)}
        self.predecessors = [len(s.depends_on) for s in self.steps]
        self.successors: list[list[int]] = [[] for _ in self.steps]
        for i, s in enumerate(self.steps):
            for dep in s.depends_on:
                self.successors[position[dep]].append(i)
        self.entry = [i for i, n in enumerate(self.predecessors) if n == 0]
        final = {s.id for s in matter.final_steps}
        self.n_final = len(final)
        self.is_final = [s.id in final for s in self.steps]
        timings = scenario.timing[matter.id]
        self.effects = [s.effect for s in self.steps]
        self.faults = [stepping.DepartmentFaults.of(scenario, s.department) for s in self.steps]
        can_reject = any(timings[s.id].reject is not None for s in self.steps) or any(
            e in ("lock", "transfer") for e in self.effects
        )
        can_retry = [
            timings[s.id].fault is not None or bool(f.failures)
            for s, f in zip(self.steps, self.faults, strict=True)
        ]
        # A final step's completion enables nothing; unless some step may still reject
        # the case (or this one fail and retry, or change the register at its time), it
        # can be booked when its time is known instead of as a SimPy event.
        self.book_at_once = [
            final and not can_reject and not retry and effect is None
            for final, retry, effect in zip(self.is_final, can_retry, self.effects, strict=True)
        ]
        self.holds_lock = "lock" in self.effects
        self.is_linked = "account" in self.effects
        self.calendars = [scenario.calendar(s.department) for s in self.steps]
        self.calendar_ids = [
            calendar_index.setdefault(id(c), len(calendar_index)) for c in self.calendars
        ]
        self.models = [
            StepModel(scenario, matter.id, s, seed, cal)
            for s, cal in zip(self.steps, self.calendars, strict=True)
        ]
        n = len(arrivals)
        for model in self.models:
            model.prepare(n)
        demand = scenario.demand[matter.id]
        self.scales = [seg.time_scale for seg in demand.segments]
        self.county = arrivals.county.tolist()
        self.segment = arrivals.segment.tolist()
        self.pools: list[list[ClerkPool]] = []  # per step, per county (filled by the engine)
        self.completed = np.full(n, math.nan)
        self.rejected_at = np.full(n, -1)


class _Booking:
    """Stands in for an event when a completion is booked at once (see book_at_once)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None


class _CaseState:
    __slots__ = ("finals_left", "latest", "rejected", "remaining")

    def __init__(self, run: _MatterRun) -> None:
        self.remaining = list(run.predecessors)
        self.finals_left = run.n_final
        self.latest = -math.inf  # latest completion among the final steps so far
        self.rejected = False


def run_replication(catalog: Catalog, scenario: Scenario, seed: int) -> Replication:
    """Simulate the scenario once with ``seed``; runs until every case has finished."""
    wall = wallclock.perf_counter()
    env = simpy.Environment()
    t0 = midnight(scenario.horizon.start)
    office = scenario.office_calendar
    demand = generate_demand(scenario, seed)
    counties = list(scenario.counties)
    runs: list[_MatterRun] = []
    calendar_index: dict[int, int] = {}
    for matter_id, arrivals in demand.items():
        if len(arrivals) == 0:
            continue
        matter = scenario.matter(catalog, matter_id)
        runs.append(_MatterRun(scenario, matter, len(runs), arrivals, seed, calendar_index))
    calendars_by_id = {id(c): c for r in runs for c in r.calendars}
    calendars = [calendars_by_id[i] for i in sorted(calendar_index, key=calendar_index.get)]
    pools: dict[tuple[str, int], ClerkPool] = {}
    records = StepRecords()
    rec_matter, rec_seq, rec_step = records.matter.append, records.seq.append, records.step.append
    rec_attempt, rec_clerk = records.attempt.append, records.clerk.append
    rec_enabled, rec_arrival = records.enabled.append, records.arrival.append
    rec_start_w, rec_done = records.start_w.append, records.done.append

    def schedule(at: float, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` at POSIX time ``at`` (for the rarer events)."""
        delay = at - t0 - env.now
        event = env.timeout(delay if delay > 0 else 0.0)
        event.callbacks.append(lambda ev: fn(*args))

    def at_time(at: float, callback: Callable[[Any], None], value: Any) -> None:
        """Call ``callback(event)`` at ``at`` with ``value`` on the event — the hot path:
        no wrapper call per event (a third of SimPy's per-event cost here)."""
        delay = at - t0 - env.now
        env.timeout(delay if delay > 0 else 0.0, value).callbacks.append(callback)

    booking = _Booking()

    def pool_for(department: str, county: int) -> ClerkPool:
        key = (department, county)
        pool = pools.get(key)
        if pool is None:
            n = scenario.clerks(department, counties[county])
            pool = pools[key] = ClerkPool(n, f"{department}/{counties[county]}")
        return pool

    for run in runs:
        run.pools = [
            [pool_for(s.department, c) for c in range(len(counties))]
            if s.kind != "external"
            else []
            for s in run.steps
        ]

    def enable(
        run: _MatterRun, seq: int, state: _CaseState, si: int, attempt: int, at: float
    ) -> None:
        if state.rejected:
            return
        segment = run.segment[seq]
        scale = run.scales[segment] if segment >= 0 else 1.0
        draw = run.models[si].draw(seq, attempt, scale)
        step = run.steps[si]
        if step.kind == "external":
            done = stepping.external_done(draw, at, office)
            at_time(done, complete, (run, seq, state, si, attempt, at, at, 0, done, -1, draw))
            return
        arrived = stepping.arrival(draw, at, run.calendars[si], run.faults[si])
        if arrived > at:
            schedule(arrived, serve, run, seq, state, si, attempt, at, arrived, draw)
        else:
            serve(run, seq, state, si, attempt, at, arrived, draw)

    def serve(
        run: _MatterRun,
        seq: int,
        state: _CaseState,
        si: int,
        attempt: int,
        enabled: float,
        arrival: float,
        draw: StepDraw,
    ) -> None:
        if state.rejected:
            return
        served = stepping.serve(run.pools[si][run.county[seq]], run.calendars[si], arrival, draw)
        done = served.done
        args = (
            run,
            seq,
            state,
            si,
            attempt,
            enabled,
            arrival,
            served.start_w,
            done,
            served.clerk,
            draw,
        )
        if run.book_at_once[si]:
            booking.value = args
            complete(booking)
        else:
            at_time(done, complete, args)

    def complete(event: Any) -> None:
        """A step attempt is done (``event.value`` holds what ``serve`` worked out)."""
        run: _MatterRun
        state: _CaseState
        draw: StepDraw
        run, seq, state, si, attempt, enabled, arrival, start_w, done, clerk, draw = event.value
        if state.rejected:
            return
        rec_matter(run.index)
        rec_seq(seq)
        rec_step(si)
        rec_attempt(attempt)
        rec_clerk(clerk)
        rec_enabled(enabled)
        rec_arrival(arrival)
        rec_start_w(start_w)
        rec_done(done)
        result = stepping.outcome(draw, done, run.faults[si])
        effect = run.effects[si]
        if effect is not None and result is Outcome.DONE:
            result = apply_effect(run, seq, si, effect)
        if result is Outcome.REJECT:
            state.rejected = True
            run.rejected_at[seq] = si
            if run.holds_lock:
                register.release(unit_of(run, seq), case_id(run.matter.id, seq))
            return
        if result is Outcome.RETRY:
            again = stepping.retry_at(done, attempt, run.faults[si])
            schedule(again, enable, run, seq, state, si, attempt + 1, again)
            return
        if result is Outcome.REWORK:
            again = stepping.rework_at(draw, done, run.calendars[si])
            schedule(again, enable, run, seq, state, si, attempt + 1, again)
            return
        for nxt in run.successors[si]:
            state.remaining[nxt] -= 1
            if state.remaining[nxt] == 0:
                enable(run, seq, state, nxt, 0, done)
        if run.is_final[si]:
            state.finals_left -= 1
            if done > state.latest:
                state.latest = done
            if state.finals_left == 0:
                run.completed[seq] = state.latest

    register = UnitRegister()
    accounts: dict[str, UtilityAccounts] = {}
    linked_units: set[str] = set()

    def unit_of(run: _MatterRun, seq: int) -> str:
        units = run.arrivals.unit
        return saga.unit_code(run.county[seq], int(units[seq]) if units is not None else seq)

    def apply_effect(run: _MatterRun, seq: int, si: int, effect: str) -> Outcome:
        """The saga's register / account change at a completed step (services.core.saga)."""
        unit, case = unit_of(run, seq), case_id(run.matter.id, seq)
        if run.is_linked:
            linked_units.add(unit)
        if effect == "account":
            utility = run.steps[si].department
            accounts.setdefault(utility, UtilityAccounts()).transfer(unit, f"买受人-{case}")
            return Outcome.DONE
        decision = register.apply(effect, unit, case, f"买受人-{case}")
        return Outcome.DONE if decision.ok else Outcome.REJECT

    def start_case(run: _MatterRun, seq: int, at: float) -> None:
        state = _CaseState(run)
        for si in run.entry:
            enable(run, seq, state, si, 0, at)

    # one arrival stream over all matters, in time order
    times = np.concatenate([r.arrivals.submitted for r in runs]) if runs else np.empty(0)
    owners = np.concatenate([np.full(len(r.arrivals), r.index) for r in runs]) if runs else times
    seqs = np.concatenate([np.arange(len(r.arrivals)) for r in runs]) if runs else times
    order = np.argsort(times, kind="stable")
    arrival_list = list(
        zip(times[order].tolist(), owners[order].tolist(), seqs[order].tolist(), strict=True)
    )

    def arrive(event: Any) -> None:
        # start every case due now, then wait for the next arrival (one pending event)
        i, n = event.value, len(arrival_list)
        while i < n:
            at, owner, seq = arrival_list[i]
            if at - t0 > env.now:
                at_time(at, arrive, i)
                return
            start_case(runs[owner], seq, at)
            i += 1

    if arrival_list:
        at_time(arrival_list[0][0], arrive, 0)
    env.run()

    outcomes = {
        r.matter.id: MatterOutcome(r.matter, r.arrivals, r.completed, r.rejected_at) for r in runs
    }
    pool_stats = [
        PoolStats(dept, counties[c], p.clerks, p.busy_us, p.assigned)
        for (dept, c), p in sorted(pools.items())
    ]
    horizon_end = midnight(scenario.horizon.end) + 86400.0
    return Replication(
        scenario=scenario.name,
        seed=seed,
        matters=[r.matter.id for r in runs],
        outcomes=outcomes,
        steps=records,
        pools=pool_stats,
        calendars=calendars,
        step_calendars=[r.calendar_ids for r in runs],
        horizon_start=t0,
        horizon_end=horizon_end,
        measured_from=midnight(scenario.measured_from()),
        wall_seconds=wallclock.perf_counter() - wall,
        counties=counties,
        register=register.units,
        accounts={u: a.holders for u, a in accounts.items()},
        linked_units=linked_units,
    )
