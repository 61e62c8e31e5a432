"""Staffing planner: the fewest clerks per department and county that meet the targets.

Counties are independent (a case stays in its county), so the planner judges every
(matter, target, county) on its own and adjusts every pool at once each round:

1. start each pool at the fewest clerks that keep its expected utilisation at or below
   ``max_utilisation`` (85 %, a staffing policy's maximum occupancy; never below one,
   always more than the offered load);
2. simulate once with unlimited clerks: a (matter, target, county) that misses even
   then is *not fixable by staffing* (rework, lags or external time cause it); for it
   the goal becomes "no worse than without queueing" (1 point of attainment, 2 % of a
   mean), and it is reported;
3. *grow*: simulate; for every (matter, target, county) that misses its goal, add a
   clerk to the pool with the longest mean wait among the pools that serve the
   target's steps in that county; repeat until nothing misses;
4. *trim*: in every county, try removing a clerk from the least utilised pool the grow
   phase gave clerks to (no pool goes below its start); simulate — the trial's first
   replication alone when it already misses a goal beyond chance; give the clerk back
   (for good) in every county where a target now misses — that county is then as it was
   the round before; repeat until no pool can lose a clerk.

A round simulates only the counties whose staffing changed since they were last
simulated with that staffing: counties share nothing and every draw belongs to a case, so
a run of some counties gives them exactly the figures a run of all would give, and the
final staffing's figures are those of each county's own run.

Targets the staffing cannot change — structural step counts, quantities the engine
does not simulate — and targets for years other than 2021 are not planned for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.core.catalog import Catalog, Matter, Target
from services.core.measure import SHARE_METRICS
from services.core.scenario import Scenario
from services.core.steps import expected_attempts
from services.core.timing import to_duration
from simulator.executors import LOCAL, ExecutorSpec
from simulator.montecarlo import RepStats, run_parts, run_replications

Pool = tuple[str, str]  # (department, county)

#: The plan's targets are for 2021; later years' targets (e.g. 2022's) are not planned for.
PLAN_YEAR = 2021
#: No pool is planned above this expected utilisation (a staffing policy's maximum
#: occupancy): every pool starts there, and trims go no lower.
MAX_UTILISATION = 0.85


@dataclass
class Miss:
    matter: str
    target: Target
    county: str
    measured: float  # attainment (each) or the county's mean / share
    pools: list[Pool]


@dataclass
class Round:
    """One simulation of the planner: the run with unlimited clerks ("no-queue", its
    misses are the not-fixable ones), then the rounds ("start", "grow", "trim")."""

    phase: str
    clerks: int
    misses: int
    #: the counties simulated for the round (only those whose staffing changed)
    counties: list[str] = field(default_factory=list)
    cases: int = 0  # cases simulated, over all replications
    seconds: float = 0.0  # wall time of the round


@dataclass
class Plan:
    clerks: dict[Pool, int]
    start: dict[Pool, int]
    rounds: list[Round] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)  # still missing when the planner stopped
    unfixable: list[Miss] = field(default_factory=list)  # missed although nobody queues
    utilisation: dict[Pool, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.clerks.values())


def restrict(scenario: Scenario, matter_id: str) -> Scenario:
    """The scenario with demand for one matter only."""
    if matter_id not in scenario.demand:
        raise KeyError(f"the scenario has no demand for {matter_id!r}")
    return scenario.model_copy(update={"demand": {matter_id: scenario.demand[matter_id]}})


def expected_load(catalog: Catalog, scenario: Scenario) -> dict[Pool, float]:
    """Offered load per pool: expected clerk time per year / working time per clerk-year."""
    load: dict[Pool, float] = {}
    year_days = 365
    horizon_share = scenario.horizon.days / year_days
    for matter_id, demand in scenario.demand.items():
        if demand.per_year == 0:
            continue
        matter = scenario.matter(catalog, matter_id)
        # each share of the cases, its time scale and the steps its route runs
        rest = 1 - sum(s.share for s in demand.segments)
        runs = [(rest, 1.0, matter.on_route(None))] + [
            (s.share, s.time_scale, matter.on_route(s.route)) for s in demand.segments
        ]
        for si, step in enumerate(matter.steps):
            scale = sum(share * time for share, time, on in runs if on[si])
            if step.kind == "external" or scale <= 0:
                continue
            timing = scenario.timing[matter_id][step.id]
            assert timing.service is not None
            for county, share in scenario.counties.items():
                calendar = scenario.pool_calendar(step.department, county)
                continuous = calendar.day_us == 86_400_000_000
                work = to_duration(
                    timing.service.mean_value(), timing.service.unit, calendar.day_us, continuous
                ).us
                available = _available_us(scenario, step.department, county)
                cases = demand.per_year * horizon_share * share
                pool = (step.department, county)
                load[pool] = (
                    load.get(pool, 0.0)
                    + cases * work * expected_attempts(timing) * scale / available
                )
    return load


def _available_us(scenario: Scenario, department: str, county: str) -> float:
    from simulator.demand import midnight

    calendar = scenario.pool_calendar(department, county)
    start = midnight(scenario.horizon.start)
    end = midnight(scenario.horizon.end) + 86400.0
    return float(calendar.clock_at(end) - calendar.clock_at(start))


def _pools_of(matter: Matter, target: Target, county: str) -> list[Pool]:
    ids = set(target.scope_steps()) or {s.id for s in matter.steps}
    return [(s.department, county) for s in matter.steps if s.id in ids and s.kind != "external"]


Key = tuple[str, int, str]  # (matter, target index, county)

#: With unlimited clerks (nobody queues) this many clerks per pool stand in for "infinite".
UNLIMITED = 10_000
#: A trim's first replication decides it when a target misses by more than this many
#: standard errors: the others would then have to beat the goal by as much (≈ 2 %).
SCREEN_Z = 2.0
#: Tolerances when a target misses even without queueing: staffing must not make it
#: worse than the no-queue result by more than this.
ATTAINMENT_SLACK = 0.01
VALUE_SLACK = 0.02


def county_values(
    catalog: Catalog, scenario: Scenario, reps: list[RepStats]
) -> dict[Key, tuple[Target, float, list[Pool]]]:
    """Per (matter, target, county): the attainment (``each`` targets) or the county's
    mean / share (other targets), pooled over replications."""
    return {
        key: (target, value, pools)
        for key, target, _, value, pools in _county_rows(catalog, scenario, reps)
    }


def _county_rows(
    catalog: Catalog, scenario: Scenario, reps: list[RepStats]
) -> Iterator[tuple[Key, Target, int, float, list[Pool]]]:
    counties = list(scenario.counties)
    for matter_id in reps[0].matters:
        matter = scenario.matter(catalog, matter_id)
        for i, target in enumerate(matter.targets):
            if target.year != PLAN_YEAR:
                continue
            per_rep = [r.matters[matter_id].targets[i] for r in reps if matter_id in r.matters]
            stacks = [s.by_county for s in per_rep if s.by_county is not None]
            if not stacks:
                continue
            total = np.sum(stacks, axis=0)
            for c, county in enumerate(counties):
                n = total[0, c]
                if n == 0:
                    continue
                if target.statistic == "each":
                    value = total[1, c] / n
                elif target.statistic == "share" or target.metric in SHARE_METRICS:
                    value = 100 * total[1, c] / n
                else:
                    value = total[2, c] / n
                key = (matter_id, i, county)
                yield key, target, int(n), float(value), _pools_of(matter, target, county)


@dataclass(frozen=True)
class Goal:
    """What a (matter, target, county) must reach: the plan's own bound, or — where even
    unlimited clerks miss it — no worse than the no-queue result."""

    fixable: bool
    attainment: float  # for ``each`` targets
    bound: float  # for mean / share targets

    def missed_beyond_chance(self, target: Target, value: float, n: int) -> bool:
        """Missed by more than :data:`SCREEN_Z` standard errors of a share of ``n`` cases
        at the goal — so far that further replications would almost surely not make up
        for it (``each`` and share targets; a mean's spread is not known here)."""
        if target.statistic == "each":
            goal, measured = self.attainment, value
        elif target.statistic == "share" or target.metric in SHARE_METRICS:
            goal, measured = self.bound / 100, value / 100
        else:
            return False
        if not 0 < goal < 1:
            return not self.met(target, value)
        spread = SCREEN_Z * math.sqrt(goal * (1 - goal) / n)
        if target.statistic != "each" and target.bound == "at_most":
            return measured > goal + spread
        return measured < goal - spread

    def met(self, target: Target, value: float) -> bool:
        if target.statistic == "each":
            return value >= self.attainment - 1e-12
        if target.bound == "at_most":
            return value <= self.bound + 1e-9
        return value >= self.bound - 1e-9


def goals(
    no_queue: dict[Key, tuple[Target, float, list[Pool]]],
    attainment: float,
    slack: float = ATTAINMENT_SLACK,
) -> dict[Key, Goal]:
    """The goal of every (matter, target, county), from a run with unlimited clerks."""
    out: dict[Key, Goal] = {}
    for key, (target, value, _) in no_queue.items():
        plan_goal = Goal(True, attainment, target.value)
        if plan_goal.met(target, value):
            out[key] = plan_goal
        elif target.statistic == "each":
            out[key] = Goal(False, value - slack, target.value)
        else:
            slack = abs(value) * VALUE_SLACK + (1.0 if target.statistic == "share" else 0.0)
            relaxed = value + slack if target.bound == "at_most" else value - slack
            out[key] = Goal(False, attainment, relaxed)
    return out


def misses(
    values: dict[Key, tuple[Target, float, list[Pool]]], goals_by_key: dict[Key, Goal]
) -> list[Miss]:
    """Every (matter, target, county) that misses its goal."""
    out = []
    for key, (target, value, pools) in values.items():
        goal = goals_by_key.get(key)
        if goal is not None and not goal.met(target, value):
            out.append(Miss(key[0], target, key[2], value, pools))
    return out


def _pool_waits(reps: list[RepStats]) -> tuple[dict[Pool, float], dict[Pool, float]]:
    waits: dict[Pool, list[float]] = {}
    utils: dict[Pool, list[float]] = {}
    for r in reps:
        for p in r.pools:
            waits.setdefault((p.department, p.county), []).append(p.mean_wait)
            utils.setdefault((p.department, p.county), []).append(p.utilization)
    return (
        {k: float(np.mean(v)) for k, v in waits.items()},
        {k: float(np.mean(v)) for k, v in utils.items()},
    )


def _to_grow(found: list[Miss], waits: dict[Pool, float], clerks: dict[Pool, int]) -> set[Pool]:
    """For every miss, the pool serving its target with the longest wait."""
    grown = set()
    for miss in found:
        candidates = [p for p in miss.pools if p in clerks]
        if candidates:
            grown.add(max(candidates, key=lambda p: (waits.get(p, 0.0), p)))
    return grown


def _to_trim(
    utils: dict[Pool, float], clerks: dict[Pool, int], frozen: set[Pool], floor: dict[Pool, int]
) -> set[Pool]:
    """One pool per county (counties are independent): the least utilised that may lose a
    clerk and stay above ``floor`` (its start: stable, under the utilisation cap)."""
    per_county: dict[str, Pool] = {}
    for pool, n in clerks.items():
        if pool in frozen or n <= floor[pool]:
            continue
        best = per_county.get(pool[1])
        if best is None or utils.get(pool, 0.0) < utils.get(best, 0.0):
            per_county[pool[1]] = pool
    return set(per_county.values())


@dataclass
class _CountyFigures:
    """What the simulation of one county's staffing measured."""

    values: dict[Key, tuple[Target, float, list[Pool]]]
    waits: dict[Pool, float]
    utils: dict[Pool, float]


@dataclass
class _Figures:
    """The whole staffing's figures, pieced together from its counties'."""

    found: list[Miss]
    waits: dict[Pool, float]
    utils: dict[Pool, float]


class _CountySimulations:
    """Simulates a staffing county by county, each county's staffing once.

    Counties share nothing and a case's draws are its own, so a run of some counties
    gives them exactly the figures a run of all would (:func:`run_replication`).  A
    staffing is measured by simulating only the counties whose own staffing has not been
    simulated yet, and taking the others' figures from before.

    ``screen``: for trims, a county's trial runs its first replication alone, and the
    others unless that one already misses a goal beyond chance
    (:meth:`Goal.missed_beyond_chance`); a trim is accepted on all replications."""

    def __init__(
        self,
        catalog: Catalog,
        scenario: Scenario,
        targets: dict[Key, Goal],
        *,
        replications: int,
        seed: int,
        executor: ExecutorSpec,
    ) -> None:
        self.catalog, self.scenario, self.targets = catalog, scenario, targets
        self.replications, self.seed, self.executor = replications, seed, executor
        self.counties = list(scenario.counties)
        #: figures over every replication, per (county, its staffing)
        self.done: dict[tuple[str, tuple[tuple[str, int], ...]], _CountyFigures] = {}
        #: figures of trials that missed in their first replication (not pursued)
        self.screened: dict[tuple[str, tuple[tuple[str, int], ...]], _CountyFigures] = {}

    def _staffing(self, clerks: dict[Pool, int], county: str) -> tuple[tuple[str, int], ...]:
        return tuple(sorted((dept, n) for (dept, c), n in clerks.items() if c == county))

    def stale(self, clerks: dict[Pool, int]) -> list[str]:
        """The counties whose staffing in ``clerks`` has not been simulated."""
        return [c for c in self.counties if (c, self._staffing(clerks, c)) not in self.done]

    def _split(
        self, staffed: Scenario, reps: list[RepStats], counties: list[str]
    ) -> dict[str, tuple[_CountyFigures, dict[Key, int]]]:
        """Per county: the figures the replications measured, and each key's cases."""
        rows = list(_county_rows(self.catalog, staffed, reps))
        waits, utils = _pool_waits(reps)
        return {
            county: (
                _CountyFigures(
                    {k: (t, v, pools) for k, t, _, v, pools in rows if k[2] == county},
                    {p: w for p, w in waits.items() if p[1] == county},
                    {p: u for p, u in utils.items() if p[1] == county},
                ),
                {k: n for k, _, n, _, _ in rows if k[2] == county},
            )
            for county in counties
        }

    def _simulate(self, clerks: dict[Pool, int], stale: list[str], screen: bool) -> int:
        """Simulate the stale counties' staffing; the cases simulated."""
        staffed = self.scenario.with_clerks(clerks)
        if not screen or self.replications == 1:
            reps = run_replications(
                self.catalog,
                staffed,
                replications=self.replications,
                seed=self.seed,
                executor=self.executor,
                counties=None if len(stale) == len(self.counties) else tuple(stale),
            )
            for county, (figures, _) in self._split(staffed, reps, stale).items():
                self.done[(county, self._staffing(clerks, county))] = figures
            return sum(r.cases for r in reps)
        first = self._replications(staffed, [0], stale)
        measured: dict[str, tuple[_CountyFigures, dict[Key, int]]] = {}
        for rep in {id(r): r for r in first.values()}.values():
            measured |= self._split(staffed, [rep], [c for c in stale if first[(0, c)] is rep])
        pursued = []
        for county in stale:
            figures, cases = measured[county]
            if any(
                self.targets[key].missed_beyond_chance(target, value, cases[key])
                for key, (target, value, _) in figures.values.items()
                if key in self.targets
            ):
                self.screened[(county, self._staffing(clerks, county))] = figures
            else:
                pursued.append(county)
        later = list(range(1, self.replications))
        rest = self._replications(staffed, later, pursued)
        together: dict[tuple[int, ...], list[str]] = {}  # counties simulated in the same runs
        for county in pursued:
            runs = [first[(0, county)], *(rest[(r, county)] for r in later)]
            together.setdefault(tuple(map(id, runs)), []).append(county)
        for counties in together.values():
            runs = [first[(0, counties[0])], *(rest[(r, counties[0])] for r in later)]
            for county, (figures, _) in self._split(staffed, runs, counties).items():
                self.done[(county, self._staffing(clerks, county))] = figures
        return sum(r.cases for r in {id(r): r for r in (*first.values(), *rest.values())}.values())

    def _replications(
        self, staffed: Scenario, replications: list[int], counties: list[str]
    ) -> dict[tuple[int, str], RepStats]:
        """Replications of some counties, the counties of each split into as many parts
        as there are local processes (balanced by demand share, the largest first), one
        county a part on a cluster; per (replication, county) the run that simulated it."""
        if not counties or not replications:
            return {}
        share = self.scenario.counties
        bins: list[list[str]] = [[] for _ in range(min(self._slots(), len(counties)))]
        for county in sorted(counties, key=lambda c: -share[c]):
            min(bins, key=lambda b: sum(share[c] for c in b)).append(county)
        parts = [(r, tuple(b)) for r in replications for b in bins]
        reps = run_parts(self.catalog, staffed, parts, seed=self.seed, executor=self.executor)
        return {(r, c): rep for (r, b), rep in zip(parts, reps, strict=True) for c in b}

    def _slots(self) -> int:
        if self.executor.kind == "local":
            return max(1, self.executor.workers)
        return len(self.counties)

    def measure(
        self, clerks: dict[Pool, int], *, screen: bool = False
    ) -> tuple[_Figures, list[str], int]:
        """The staffing's figures; the counties simulated for them and their cases."""
        stale = self.stale(clerks)
        cases = self._simulate(clerks, stale, screen) if stale else 0
        figures = _Figures([], {}, {})
        for county in self.counties:
            key = (county, self._staffing(clerks, county))
            part = self.done.get(key) or self.screened[key]
            figures.found += misses(part.values, self.targets)
            figures.waits.update(part.waits)
            figures.utils.update(part.utils)
        return figures, stale, cases


def _goals_and_unfixable(
    no_queue: dict[Key, tuple[Target, float, list[Pool]]], attainment: float, slack: float
) -> tuple[dict[Key, Goal], list[Miss]]:
    """The goals from the run with unlimited clerks, and what misses even then."""
    targets = goals(no_queue, attainment, slack)
    unfixable = [
        Miss(key[0], target, key[2], value, pools)
        for key, (target, value, pools) in no_queue.items()
        if not targets[key].fixable
    ]
    return targets, unfixable


def plan(
    catalog: Catalog,
    scenario: Scenario,
    *,
    attainment: float = 0.95,
    replications: int = 2,
    seed: int | None = None,
    executor: ExecutorSpec = LOCAL,
    max_rounds: int = 30,
    slack: float = ATTAINMENT_SLACK,
    max_utilisation: float = MAX_UTILISATION,
    on_round: Callable[[Round], None] | None = None,
) -> Plan:
    """Find the fewest clerks per pool that meet every plannable target (see module doc)."""
    if not 0 < attainment <= 1:
        raise ValueError("attainment must be in (0, 1]")
    if not 0 < max_utilisation <= 1:
        raise ValueError("max_utilisation must be in (0, 1]")
    seed = scenario.seed if seed is None else seed
    load = expected_load(catalog, scenario)
    # the fewest clerks below the utilisation cap, and more than the load (stable)
    start = {
        pool: max(1, math.ceil(offered / max_utilisation), math.floor(offered) + 1)
        for pool, offered in load.items()
    }
    clerks = dict(start)
    result = Plan(clerks=clerks, start=dict(start))

    no_queue_scenario = scenario.with_clerks(dict.fromkeys(clerks, UNLIMITED))
    clock = time.perf_counter()
    no_queue_reps = run_replications(
        catalog, no_queue_scenario, replications=replications, seed=seed, executor=executor
    )
    targets, result.unfixable = _goals_and_unfixable(
        county_values(catalog, no_queue_scenario, no_queue_reps), attainment, slack
    )
    result.rounds.append(
        Round(
            "no-queue",
            UNLIMITED * len(clerks),
            len(result.unfixable),
            list(scenario.counties),
            sum(r.cases for r in no_queue_reps),
            round(time.perf_counter() - clock, 2),
        )
    )
    simulations = _CountySimulations(
        catalog, scenario, targets, replications=replications, seed=seed, executor=executor
    )

    def evaluate(phase: str) -> _Figures:
        clock = time.perf_counter()
        figures, simulated, cases = simulations.measure(clerks, screen=phase == "trim")
        seconds = round(time.perf_counter() - clock, 2)
        record = Round(phase, sum(clerks.values()), len(figures.found), simulated, cases, seconds)
        result.rounds.append(record)
        if on_round:
            on_round(record)
        return figures

    figures = evaluate("start")
    frozen: set[Pool] = set()
    while len(result.rounds) <= max_rounds:  # the no-queue run is not a round
        if figures.found:  # grow: the longest-waiting pool behind every miss gets a clerk
            grown = _to_grow(figures.found, figures.waits, clerks)
            if not grown:
                break
            for pool in grown:
                clerks[pool] += 1
            figures = evaluate("grow")
            continue
        trial = _to_trim(figures.utils, clerks, frozen, start)
        if not trial:
            break
        for pool in trial:
            clerks[pool] -= 1
        figures = _settle_trim(trial, evaluate("trim"), clerks, frozen, simulations)
    result.misses = figures.found
    result.utilisation = figures.utils
    return result


def _settle_trim(
    trial: set[Pool],
    figures: _Figures,
    clerks: dict[Pool, int],
    frozen: set[Pool],
    simulations: _CountySimulations,
) -> _Figures:
    """After a trim round: a county whose trim failed goes back to the staffing it had
    (simulated before, so nothing is simulated again) and that pool keeps its clerks."""
    failed = {miss.county for miss in figures.found}
    for pool in trial:
        if pool[1] in failed:
            clerks[pool] += 1
            frozen.add(pool)
    if not failed:
        return figures
    settled, simulated, _ = simulations.measure(clerks)
    if simulated or settled.found:
        raise RuntimeError(f"a trim was undone but {simulated or settled.found} changed")
    return settled


def plan_document(result: Plan, attainment: float, scenario: Scenario) -> dict[str, Any]:
    """``plan.json``: the staffing table, its history and anything still missing."""
    by_department: dict[str, dict[str, dict[str, Any]]] = {}
    for (dept, county), n in sorted(result.clerks.items()):
        by_department.setdefault(dept, {})[county] = {
            "clerks": n,
            "scenario_clerks": scenario.clerks(dept, county),
            "utilization": result.utilisation.get((dept, county)),
        }
    return {
        "scenario": scenario.name,
        "attainment": attainment,
        "total_clerks": result.total,
        "scenario_total_clerks": sum(scenario.clerks(d, c) for d, c in result.clerks),
        "departments": by_department,
        "rounds": [vars(r) for r in result.rounds],
        "still_missing": [_miss_row(m) for m in result.misses],
        "not_fixable_by_staffing": [_miss_row(m) for m in result.unfixable],
    }


def _miss_row(m: Miss) -> dict[str, Any]:
    return {
        "matter": m.matter,
        "metric": m.target.metric,
        "scope": m.target.scope,
        "target": m.target.value,
        "unit": m.target.unit,
        "statistic": m.target.statistic,
        "county": m.county,
        "measured": m.measured,
    }
