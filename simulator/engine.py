"""The capacity engine: one replication of a scenario as a SimPy discrete-event simulation.

A driver of the walk (:mod:`services.core.walk`): every decision about a case — joins,
blocks and outages, clerk assignment, rework, retries, rejection, the register and the
accounts, completion — is the walk's.  The engine only schedules: a SimPy timeout
until an attempt reaches the clerks, until it is done, until the next attempt; and it
records one row per step attempt.

SimPy keeps events in time order, which is all the clerk pools need: they are assigned
work in order of arrival, so the schedule is exactly the one the live departments
compute from the same arrivals.  Every random quantity comes from
:class:`~services.core.steps.StepModel` streams indexed by the case's sequence number.

The engine imports no Kafka and no runtime: it is pure simulation.
"""

from __future__ import annotations

import gc
import math
import time as wallclock
from array import array
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from services.core.calendar import WorkingCalendar
from services.core.catalog import Catalog, Matter
from services.core.clerks import ClerkPool
from services.core.scenario import Scenario
from services.core.walk import CaseState, MatterWalk, Outcome, Subject
from services.property.register import UnitState
from simulator.demand import MatterArrivals, case_id, generate_demand, midnight
from simulator.effects import Keepers

#: The integer and the float columns of a step attempt, in the order they are stored.
INT_COLUMNS = ("matter", "seq", "step", "attempt", "clerk", "start_w", "outcome")
FLOAT_COLUMNS = ("enabled", "arrival", "done")
_INT_TYPES = ("i", "i", "i", "i", "i", "q", "b")


class StepRecords:
    """One row per step attempt: ``matter`` (index into ``Replication.matters``), ``seq``,
    ``step`` (index into the matter's steps), ``attempt``, ``clerk`` (-1: none),
    ``start_w`` (working clock at service start), ``outcome`` (:class:`Outcome`);
    ``enabled``, ``arrival`` (at the pool, after a block) and ``done`` (POSIX seconds).

    Stored as two interleaved arrays, one extend each per row (the engine's hot path)."""

    def __init__(self) -> None:
        self._ints = array("q")
        self._floats = array("d")
        self.add_ints = self._ints.extend  # (matter, seq, step, attempt, clerk, start_w, outcome)
        self.add_floats = self._floats.extend  # (enabled, arrival, done)

    def add(
        self,
        matter: int,
        seq: int,
        step: int,
        attempt: int,
        clerk: int,
        enabled: float,
        arrival: float,
        start_w: int,
        done: float,
        outcome: int,
    ) -> None:
        self.add_ints((matter, seq, step, attempt, clerk, start_w, outcome))
        self.add_floats((enabled, arrival, done))

    def __len__(self) -> int:
        return len(self._floats) // len(FLOAT_COLUMNS)

    def columns(self) -> dict[str, np.ndarray]:
        ints = np.frombuffer(self._ints, dtype=np.int64).reshape(-1, len(INT_COLUMNS))
        floats = np.frombuffer(self._floats, dtype=np.float64).reshape(-1, len(FLOAT_COLUMNS))
        out = {
            name: ints[:, i].astype(np.dtype(typecode))
            for i, (name, typecode) in enumerate(zip(INT_COLUMNS, _INT_TYPES, strict=True))
        }
        out.update({name: floats[:, i].copy() for i, name in enumerate(FLOAT_COLUMNS)})
        return out


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
    #: the counties whose cases were simulated (None: all; see :func:`run_replication`)
    simulated_counties: list[str] | None = None
    #: the saga's end state in the engine's compact keys (unit numbers, :func:`case_key`
    #: for cases and buyers; see :mod:`simulator.ledger` for their codes and names):
    #: the property register, each utility's holders, tax's deed-tax clearances, the
    #: units of every linked transfer
    register: dict[int, UnitState] = field(default_factory=dict)
    accounts: dict[str, dict[int, int]] = field(default_factory=dict)
    cleared: dict[int, tuple[int, ...]] = field(default_factory=dict)  # deed tax paid
    linked_units: set[int] = field(default_factory=set)
    #: pools with hours of their own (延时): (department, county index) → index into
    #: calendars, in place of their step's calendar
    pool_calendars: dict[tuple[str, int], int] = field(default_factory=dict)
    #: each matter's demand segments by name (MatterArrivals.segment indexes them)
    segments: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def segment_names(self, matter_id: str) -> tuple[str, ...]:
        return self.segments.get(matter_id, ())

    @property
    def cases(self) -> int:
        return sum(int(self.simulated(o.arrivals.county).sum()) for o in self.outcomes.values())

    def simulated(self, county: np.ndarray) -> np.ndarray:
        """Which of these cases (by their county indices) the run simulated."""
        if self.simulated_counties is None:
            return np.ones(len(county), dtype=bool)
        chosen = [self.counties.index(c) for c in self.simulated_counties]
        return np.isin(county, chosen)

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
        by_matter = np.argsort(_small(cols["matter"]), kind="stable")
        bounds = np.searchsorted(cols["matter"][by_matter], np.arange(len(self.matters) + 1))
        for mi, matter_id in enumerate(self.matters):
            rows = by_matter[bounds[mi] : bounds[mi + 1]]
            if not len(rows):
                continue
            outcome = self.outcomes[matter_id]
            county[rows] = outcome.arrivals.county[cols["seq"][rows]]
            steps = outcome.matter.steps
            dept_lut = np.array([departments.index(s.department) for s in steps])
            cal_lut = np.array([self.step_calendars[mi][si] for si in range(len(steps))])
            department[rows] = dept_lut[cols["step"][rows]]
            calendar[rows] = cal_lut[cols["step"][rows]]
        for (dept, county_index), index in self.pool_calendars.items():
            if dept in departments:
                own = (department == departments.index(dept)) & (county == county_index)
                calendar[own] = index
        start = cols["enabled"].copy() if n else np.empty(0)
        served = cols["clerk"] >= 0 if n else np.zeros(0, dtype=bool)
        for index, cal in enumerate(self.calendars):
            mask = served & (calendar == index)
            if mask.any():
                start[mask] = cal.posix_at_many(cols["start_w"][mask], at_start=True)
        cols.update(county=county, department=department, start=start)
        self.__dict__["_columns"] = cols
        return cols

    def rows_of(self, matter_index: int, step: int) -> np.ndarray:
        """The step records of one matter's step, as row indices in record order
        (grouped once per replication: a mask per step would scan every record)."""
        grouped = self.__dict__.get("_grouped")
        if grouped is None:
            cols = self.steps.columns()
            width = 1 + max((len(o.matter.steps) for o in self.outcomes.values()), default=0)
            key = cols["matter"].astype(np.int64) * width + cols["step"]
            order = np.argsort(_small(key), kind="stable")
            bounds = np.searchsorted(key[order], np.arange(len(self.matters) * width + 1))
            grouped = self.__dict__["_grouped"] = (order, bounds, width)
        order, bounds, width = grouped
        k = matter_index * width + step
        return order[bounds[k] : bounds[k + 1]]

    def departments(self) -> list[str]:
        return sorted({s.department for o in self.outcomes.values() for s in o.matter.steps})


def _small(key: np.ndarray) -> np.ndarray:
    """``key`` as 16-bit integers when they fit: numpy sorts those stably by radix."""
    if len(key) and key.min() >= 0 and key.max() < 2**15:
        return key.astype(np.int16)
    return key


_SEQ_BITS = 32
_new = tuple.__new__  # NamedTuples built positionally on the hot path


class _Due(simpy.events.Event):
    """A timeout that carries its callback: one event per step attempt is the engine's
    hot path, and this saves SimPy's general-purpose checks and a call per event."""

    def __init__(self, env: simpy.Environment, delay: float, value: Any, callback: Any) -> None:
        self.env = env
        self.callbacks = [callback]
        self._value = value
        self._ok = True
        env.schedule(self, simpy.events.NORMAL, delay)


def case_key(matter_index: int, seq: int) -> int:
    """The compact key of case ``seq`` of ``Replication.matters[matter_index]``: the
    engine's case ids and buyers in the register and the accounts."""
    return (matter_index << _SEQ_BITS) | seq


def key_case(matters: list[str], key: int) -> str:
    """The case id of a :func:`case_key`."""
    return case_id(matters[key >> _SEQ_BITS], key & ((1 << _SEQ_BITS) - 1))


class _MatterRun:
    """One matter in the run: its walk, its cases' arrivals and what became of them."""

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
        self.walk = walk = MatterWalk(scenario, matter, seed)
        n = len(arrivals)
        walk.prepare(arrivals.segment)
        self.external = walk.graph.external
        self.certain = walk.certain_at_service
        self.calendar_ids = [
            calendar_index.setdefault(id(c), len(calendar_index)) for c in walk.calendars
        ]
        self.county = arrivals.county.tolist()
        self.segment = arrivals.segment.tolist()
        self.units: list[int] | None = None
        if walk.graph.has_effects:
            self.units = arrivals.unit.tolist() if arrivals.unit is not None else list(range(n))
        self.pools: list[list[ClerkPool]] = []  # per step, per county (filled by the engine)
        self.completed = np.full(n, math.nan)
        self.rejected_at = np.full(n, -1)

    def subject(self, seq: int) -> Subject | None:
        """The case's identity for the register and the accounts (matters with effects),
        in compact keys (:func:`case_key`; the unit's number; the buyer is the case)."""
        if self.units is None:
            return None
        key = (self.index << _SEQ_BITS) | seq
        return _new(Subject, (key, self.units[seq], key))


class _Booking:
    """Stands in for an event when a completion is booked at once
    (:attr:`~services.core.walk.MatterWalk.certain_at_service`)."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value: Any = None


def run_replication(
    catalog: Catalog, scenario: Scenario, seed: int, counties: Collection[str] | None = None
) -> Replication:
    """Simulate the scenario once with ``seed``; runs until every case has finished.

    ``counties``: simulate only the cases of these counties (None: all).  Counties share
    nothing — a case, its pools, its units and its seizures stay in its county — and every
    draw of a case is keyed by the case, so each county's cases fare exactly as in the
    run of all counties (the planner re-simulates only the counties it changed)."""
    # The engine allocates millions of short-lived tuples and keeps few cycles: the
    # cyclic collector would rescan the growing live set over and over (a third of the
    # run), so it is paused for the replication and collects once at the end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run(catalog, scenario, seed, counties)
    finally:
        if collecting:
            gc.enable()


# One closure per kind of SimPy callback, sharing the run's state through the enclosing
# scope: a function call and an attribute lookup less per event than methods would cost,
# on the path every step attempt takes.  Hence one long function.
def _run(  # noqa: C901, PLR0915
    catalog: Catalog, scenario: Scenario, seed: int, only: Collection[str] | None
) -> Replication:
    wall = wallclock.perf_counter()
    env = simpy.Environment()
    t0 = midnight(scenario.horizon.start)
    demand = generate_demand(scenario, seed)
    counties = list(scenario.counties)
    runs: list[_MatterRun] = []
    calendar_index: dict[int, int] = {}
    for matter_id, arrivals in demand.items():
        if len(arrivals) == 0:
            continue
        matter = scenario.matter(catalog, matter_id)
        runs.append(_MatterRun(scenario, matter, len(runs), arrivals, seed, calendar_index))
    pool_calendars: dict[tuple[str, int], int] = {}
    county_of = {c: i for i, c in enumerate(counties)}
    for run in runs:
        for name, calendar in run.walk.pool_calendars.items():
            dept, county = name.split("/", 1)
            index = calendar_index.setdefault(id(calendar), len(calendar_index))
            pool_calendars[(dept, county_of[county])] = index
    calendars_by_id = {
        id(c): c for r in runs for c in (*r.walk.calendars, *r.walk.pool_calendars.values())
    }
    by_index = sorted(calendar_index, key=lambda i: calendar_index[i])
    calendars = [calendars_by_id[i] for i in by_index]
    pools: dict[tuple[str, int], ClerkPool] = {}
    keepers = Keepers()
    records = StepRecords()
    add_ints, add_floats = records.add_ints, records.add_floats
    timeout = env.timeout
    DONE, REJECT = Outcome.DONE, Outcome.REJECT

    def schedule(at: float, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` at POSIX time ``at`` (for the rarer events)."""
        delay = at - t0 - env.now
        event = timeout(delay if delay > 0 else 0.0)
        event.callbacks.append(lambda ev: fn(*args))

    def at_time(at: float, callback: Callable[[Any], None], value: Any) -> None:
        """Call ``callback(event)`` at ``at`` with ``value`` on the event — the hot path:
        no wrapper call per event (a third of SimPy's per-event cost here)."""
        delay = at - t0 - env.now
        _Due(env, delay if delay > 0 else 0.0, value, callback)

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
            [] if external else [pool_for(department, c) for c in range(len(counties))]
            for external, department in zip(
                run.walk.graph.external, run.walk.graph.departments, strict=True
            )
        ]

    def enable(
        run: _MatterRun, seq: int, state: CaseState, si: int, attempt: int, at: float
    ) -> None:
        arrived = run.walk.begin(state, seq, si, attempt, at)
        if arrived is None:
            return
        if run.external[si]:  # no clerk: done when the walk says
            at_time(arrived, complete, (run, seq, state, si, attempt, at, at, 0, arrived, -1))
        elif arrived > at:
            schedule(arrived, serve, run, seq, state, si, attempt, at, arrived)
        else:
            serve(run, seq, state, si, attempt, at, at)

    def serve(
        run: _MatterRun,
        seq: int,
        state: CaseState,
        si: int,
        attempt: int,
        enabled: float,
        arrival: float,
    ) -> None:
        pool = run.pools[si][run.county[seq]]
        served = run.walk.serve(state, pool, seq, run.segment[seq], si, attempt, arrival)
        if served is None:
            return
        clerk, start_w, done = served
        args = (run, seq, state, si, attempt, enabled, arrival, start_w, done, clerk)
        if run.certain[si]:
            booking._value = args
            complete(booking)
        else:
            at_time(done, complete, args)

    def complete(event: Any) -> None:
        """A step attempt is done (``event.value`` holds what ``serve`` worked out)."""
        run: _MatterRun
        state: CaseState
        run, seq, state, si, attempt, enabled, arrival, start_w, done, clerk = event._value
        finished = run.walk.finish(state, seq, si, attempt, done, keepers)
        if finished is None:  # the case was rejected meanwhile
            return
        outcome = finished[0]
        add_ints((run.index, seq, si, attempt, clerk, start_w, outcome))
        add_floats((enabled, arrival, done))
        if outcome is DONE:
            for nxt, at in finished.ready:
                enable(run, seq, state, nxt, 0, at)
            if finished.completed is not None:
                run.completed[seq] = finished.completed
        elif outcome is REJECT:
            run.rejected_at[seq] = si
        else:  # retried or corrected: the next attempt when the walk says
            again = finished.again
            assert again is not None
            schedule(again, enable, run, seq, state, si, attempt + 1, again)

    def start_case(run: _MatterRun, seq: int, at: float) -> None:
        graph = run.walk.graph_of(run.segment[seq])
        state = CaseState(subject=run.subject(seq), graph=graph)
        for si in graph.entry:
            enable(run, seq, state, si, 0, at)

    # One arrival stream over all matters, in time order.  Arrivals are known in
    # advance, so they need no SimPy event: a case is started as soon as every event
    # before its submission has been processed (at a tie, the arrival comes first).
    times = np.concatenate([r.arrivals.submitted for r in runs]) if runs else np.empty(0)
    owners = np.concatenate([np.full(len(r.arrivals), r.index) for r in runs]) if runs else times
    seqs = np.concatenate([np.arange(len(r.arrivals)) for r in runs]) if runs else times
    order = np.argsort(times, kind="stable")
    simulated = counties if only is None else [c for c in counties if c in set(only)]
    if only is not None:
        if unknown := set(only) - set(counties):
            raise ValueError(f"counties not in the scenario: {sorted(unknown)}")
        chosen = np.isin(np.arange(len(counties)), [county_of[c] for c in simulated])
        of_case = np.concatenate([r.arrivals.county for r in runs]) if runs else times
        order = order[chosen[of_case[order].astype(np.int64)]]
    step, peek = env.step, env.peek
    for at, owner, seq in zip(
        times[order].tolist(), owners[order].tolist(), seqs[order].tolist(), strict=True
    ):
        due = at - t0
        while peek() < due:
            step()
        start_case(runs[owner], seq, at)
    env.run()

    outcomes = {
        r.matter.id: MatterOutcome(r.matter, r.arrivals, r.completed, r.rejected_at) for r in runs
    }
    pool_stats = [
        PoolStats(dept, counties[c], p.clerks, p.busy_us, p.assigned)
        for (dept, c), p in sorted(pools.items())
        if counties[c] in simulated
    ]
    linked = {u for r in runs if "account" in r.walk.graph.effects and r.units for u in r.units}
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
        pool_calendars=pool_calendars,
        horizon_start=t0,
        horizon_end=horizon_end,
        measured_from=midnight(scenario.measured_from()),
        wall_seconds=wallclock.perf_counter() - wall,
        counties=counties,
        simulated_counties=None if only is None else simulated,
        register=dict(keepers.register.units),
        accounts=keepers.holders(),
        cleared=keepers.cleared(),
        linked_units=linked,
        segments=segment_names(scenario),
    )


def segment_names(scenario: Scenario) -> dict[str, tuple[str, ...]]:
    """Each matter's demand segments by name, for :attr:`Replication.segments`."""
    return {m: tuple(s.name for s in d.segments) for m, d in scenario.demand.items() if d.segments}
