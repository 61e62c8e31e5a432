"""Monte Carlo: replications over processes, measured against the catalog's targets.

Each replication runs in a worker (``--workers``), is measured there (so only compact
statistics travel back), and replication 0 may write the step log.  The summary pools
cases across replications for latency quantiles and uses the spread *between*
replications for 95% confidence intervals (Student's t), which is the honest interval
for a simulation whose cases within a run are correlated through shared queues.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from services.core.catalog import Catalog, Matter, Target
from services.core.measure import SHARE_METRICS, StepTimes, elapsed, measure_target
from services.core.routes import MatterRoutes
from services.core.scenario import Scenario
from services.core.timing import stream_seed
from services.core.walk import Outcome
from simulator.engine import Replication, run_replication
from simulator.executors import LOCAL, ExecutorSpec, run_all
from simulator.intervals import wilson
from simulator.outputs import EventLogs
from simulator.summary import (
    Bottleneck,
    Histogram,
    Horizon,
    Latency,
    MatterResult,
    PoolResult,
    Summary,
    TargetResult,
)


def replication_seeds(seed: int, replications: int) -> list[int]:
    """Independent, reproducible seeds for replications 0..R-1 of a base seed."""
    return [
        int(stream_seed(seed, "replication", r).generate_state(1, np.uint64)[0] % 2**63)
        for r in range(replications)
    ]


# --- one replication -----------------------------------------------------------------


@dataclass
class TargetStats:
    """One target in one replication."""

    n: int = 0  # cases measured
    attained: int = 0
    mean: float = math.nan  # mean measured value
    structural: float | None = None
    note: str | None = None
    # the same per county (index into the scenario's counties): cases, attained, value sum
    by_county: np.ndarray | None = None  # shape (3, counties)


@dataclass
class MatterStats:
    cases: int
    rejected: int
    latency_unit: str
    latency: np.ndarray  # completed, measured cases, in latency_unit
    targets: list[TargetStats]


@dataclass
class PoolRepStats:
    department: str
    county: str
    clerks: int
    utilization: float
    mean_wait: float  # working hours
    max_queue: int


@dataclass
class RepStats:
    seed: int
    cases: int
    wall_seconds: float
    matters: dict[str, MatterStats] = field(default_factory=dict)
    pools: list[PoolRepStats] = field(default_factory=list)
    #: the event logs the replication wrote (replication 0, when asked)
    logs: tuple[Path, ...] = ()


def latency_unit(matter: Matter) -> str:
    """The unit a matter's case latency is reported in: its first case-level time target's."""
    for t in matter.targets:
        if t.is_time and t.scope != "annual":
            return t.unit
    return "working_days"


def step_times(rep: Replication, matter_index: int, matter: Matter, n: int) -> StepTimes:
    """First enabling, last completion and attempts of each step, per case of a matter."""
    cols = rep.columns()
    enabled: dict[str, np.ndarray] = {}
    done: dict[str, np.ndarray] = {}
    attempts: dict[str, np.ndarray] = {}
    corrected_from: dict[str, np.ndarray] = {}
    corrected_to: dict[str, np.ndarray] = {}
    for si, step in enumerate(matter.steps):
        sub = rep.rows_of(matter_index, si)
        seq, att = cols["seq"][sub], cols["attempt"][sub]
        e = np.full(n, math.nan)
        d = np.full(n, math.nan)
        a = np.zeros(n)
        first = att == 0
        e[seq[first]] = cols["enabled"][sub][first]
        order = np.lexsort((att, seq))  # last attempt of each case comes last
        d[seq[order]] = cols["done"][sub][order]
        np.maximum.at(a, seq, att + 1)
        enabled[step.id], done[step.id], attempts[step.id] = e, d, a
        corrected_from[step.id], corrected_to[step.id] = _corrections(cols, sub, n)
    return StepTimes(enabled, done, attempts, corrected_from, corrected_to)


def _corrections(
    cols: dict[str, np.ndarray], rows: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per case: when a step's attempt sent the applicant away to correct (补正, one
    round at most) and when the next attempt was enabled (NaN: no correction).
    ``rows``: the step's records (row indices)."""
    start, end = np.full(n, math.nan), np.full(n, math.nan)
    reworked = rows[cols["outcome"][rows] == Outcome.REWORK]
    if not len(reworked):
        return start, end
    seq, att = cols["seq"][reworked], cols["attempt"][reworked]
    start[seq] = cols["done"][reworked]
    keys = cols["seq"][rows].astype(np.int64) * 4096 + cols["attempt"][rows]
    order = np.argsort(keys)
    wanted = seq.astype(np.int64) * 4096 + att + 1
    at = np.searchsorted(keys[order], wanted)
    found = at < len(keys)
    found[found] = keys[order][at[found]] == wanted[found]
    end[seq[found]] = cols["enabled"][rows][order][at[found]]
    return start, end


def measure_replication(catalog: Catalog, scenario: Scenario, rep: Replication) -> RepStats:
    """Reduce a replication to per-target and per-pool statistics."""
    office = scenario.office_calendar
    out = RepStats(seed=rep.seed, cases=rep.cases, wall_seconds=rep.wall_seconds)
    for index, matter_id in enumerate(rep.matters):
        outcome = rep.outcomes[matter_id]
        matter = outcome.matter
        n = len(outcome.arrivals)
        times = step_times(rep, index, matter, n)
        measured = (outcome.arrivals.submitted >= rep.measured_from) & rep.simulated(
            outcome.arrivals.county
        )
        submitted = outcome.arrivals.submitted[measured]
        completed = outcome.completed[measured]
        times = times.subset(measured)
        segment = outcome.arrivals.segment[measured]
        routes = MatterRoutes.of(matter, scenario)
        unit = latency_unit(matter)
        finished = np.isfinite(completed)
        latency = elapsed(unit, submitted[finished], completed[finished], office)
        targets = []
        for target in matter.targets:
            mask = routes.mask(target, segment)
            county = outcome.arrivals.county[measured]
            if mask is not None:
                county = county[mask]
                sub = times.subset(mask)
                m = measure_target(
                    matter,
                    target,
                    submitted=submitted[mask],
                    completed=completed[mask],
                    steps=sub,
                    office=office,
                )
            else:
                m = measure_target(
                    matter,
                    target,
                    submitted=submitted,
                    completed=completed,
                    steps=times,
                    office=office,
                )
            if m.not_simulated is not None:
                targets.append(TargetStats(note=f"not simulated: {m.not_simulated}"))
            elif m.structural is not None:
                targets.append(TargetStats(structural=m.structural))
            else:
                assert m.values is not None and m.attained is not None
                values = m.values[np.isfinite(m.values)]
                targets.append(
                    TargetStats(
                        n=len(m.attained),
                        attained=int(m.attained.sum()),
                        mean=float(values.mean()) if len(values) else math.nan,
                        by_county=_by_county(
                            county,
                            completed[mask] if mask is not None else completed,
                            target.metric,
                            m.values,
                            m.attained,
                            len(rep.counties),
                        ),
                    )
                )
        out.matters[matter_id] = MatterStats(
            cases=int(measured.sum()),
            rejected=int((outcome.rejected_at_step[measured] >= 0).sum()),
            latency_unit=unit,
            latency=latency.astype(np.float32),
            targets=targets,
        )
    out.pools = _pool_stats(scenario, rep)
    return out


def _by_county(
    county: np.ndarray,
    completed: np.ndarray,
    metric: str,
    values: np.ndarray,
    attained: np.ndarray,
    counties: int,
) -> np.ndarray:
    """Cases, attained and value sums per county (measurements cover finished cases only,
    except share metrics, which cover all)."""
    if metric not in SHARE_METRICS:
        county = county[np.isfinite(completed)]
    finite = np.isfinite(values)
    return np.vstack(
        [
            np.bincount(county, minlength=counties),
            np.bincount(county, weights=attained.astype(float), minlength=counties),
            np.bincount(county[finite], weights=values[finite], minlength=counties),
        ]
    )


def _pool_stats(scenario: Scenario, rep: Replication) -> list[PoolRepStats]:
    cols = rep.columns()
    served = cols["clerk"] >= 0
    departments = rep.departments()
    county_index = {c: i for i, c in enumerate(rep.counties)}
    # rows grouped by pool: sort once by (department, county)
    key = cols["department"][served] * len(rep.counties) + cols["county"][served]
    order = np.argsort(key, kind="stable")
    key = key[order]
    arrival = cols["arrival"][served][order]
    start_w = cols["start_w"][served][order]
    start = cols["start"][served][order]
    bounds = np.searchsorted(key, np.arange(len(departments) * len(rep.counties) + 1))
    out = []
    for pool in rep.pools:
        calendar = scenario.pool_calendar(pool.department, pool.county)
        k = departments.index(pool.department) * len(rep.counties) + county_index[pool.county]
        lo, hi = bounds[k], bounds[k + 1]
        waits_us = start_w[lo:hi] - calendar.clock_at_many(arrival[lo:hi])
        available = calendar.clock_at(rep.horizon_end) - calendar.clock_at(rep.horizon_start)
        out.append(
            PoolRepStats(
                department=pool.department,
                county=pool.county,
                clerks=pool.clerks,
                utilization=pool.busy_us / (pool.clerks * available) if available else math.nan,
                mean_wait=float(waits_us.mean() / 3.6e9) if hi > lo else 0.0,
                max_queue=_max_queue(arrival[lo:hi], start[lo:hi]),
            )
        )
    return out


def _max_queue(arrival: np.ndarray, start: np.ndarray) -> int:
    """Largest number of cases waiting (arrived, not started) at any instant."""
    waiting = start > arrival + 1e-6
    if not waiting.any():
        return 0
    times = np.concatenate([arrival[waiting], start[waiting]])
    delta = np.concatenate([np.ones(waiting.sum()), -np.ones(waiting.sum())])
    order = np.lexsort((delta, times))  # at equal times, leave before joining
    return int(np.cumsum(delta[order]).max())


def _run_one(
    catalog: Catalog,
    scenario: Scenario,
    seed: int,
    logs: EventLogs | None,
    counties: tuple[str, ...] | None = None,
) -> RepStats:
    rep = run_replication(catalog, scenario, seed, counties)
    written: tuple[Path, ...] = ()
    if logs is not None:
        from simulator.ledger import simulation_facts, write_ledger

        written = logs.write(rep)
        write_ledger(simulation_facts(rep), logs.folder / "ledger.jsonl")
    stats = measure_replication(catalog, scenario, rep)
    stats.logs = written
    return stats


# --- many replications ---------------------------------------------------------------


def run_replications(
    catalog: Catalog,
    scenario: Scenario,
    *,
    replications: int,
    seed: int,
    logs: EventLogs | None = None,
    progress: Callable[[int], None] | None = None,
    executor: ExecutorSpec = LOCAL,
    counties: tuple[str, ...] | None = None,
) -> list[RepStats]:
    """Run the replications and return their statistics in replication order:
    locally in ``executor.workers`` processes, or on a Dask cluster (see
    :mod:`simulator.executors`).  Replication 0 writes ``logs`` (and ``ledger.jsonl``
    beside them) when given — on a cluster it runs here, where the files go, while the
    cluster runs the others.  ``counties``: simulate only these counties' cases (see
    :func:`~simulator.engine.run_replication`; not with ``logs``)."""
    spec = executor
    seeds = replication_seeds(seed, replications)
    shared = (catalog, scenario)
    if counties is not None:
        if logs is not None:
            raise ValueError("a run of some counties writes no event logs")
        parts = [(r, counties) for r in range(replications)]
        return run_parts(catalog, scenario, parts, seed=seed, executor=spec, progress=progress)
    if spec.kind == "local" or logs is None:
        jobs = [(s, logs if r == 0 else None) for r, s in enumerate(seeds)]
        return run_all(spec, _run_one, jobs, shared=shared, progress=progress)
    with ThreadPoolExecutor(1) as remote:
        others = remote.submit(
            run_all,
            spec,
            _run_one,
            [(s, None) for s in seeds[1:]],
            shared=shared,
            progress=progress,
        )
        first = _run_one(catalog, scenario, seeds[0], logs)
        if progress:
            progress(1)
        return [first, *others.result()]


def run_parts(
    catalog: Catalog,
    scenario: Scenario,
    parts: Sequence[tuple[int, tuple[str, ...]]],
    *,
    seed: int,
    executor: ExecutorSpec = LOCAL,
    progress: Callable[[int], None] | None = None,
) -> list[RepStats]:
    """For each ``(r, counties)`` part: replication ``r`` of ``seed`` (as in
    :func:`run_replications`), simulating only those counties' cases; in part order.
    Parts run in parallel like replications (the planner runs one county a part)."""
    if not parts:
        return []
    seeds = replication_seeds(seed, max(r for r, _ in parts) + 1)
    jobs: list[tuple[Any, ...]] = [(seeds[r], None, counties) for r, counties in parts]
    return run_all(executor, _run_one, jobs, shared=(catalog, scenario), progress=progress)


def t_interval(samples: list[float]) -> list[float] | None:
    """95% Student-t interval of the mean of per-replication values (None if < 2)."""
    values = np.asarray([v for v in samples if math.isfinite(v)], dtype=float)
    if len(values) < 2:
        return None
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return [float(values.mean() - half), float(values.mean() + half)]


def _clip01(interval: list[float] | None) -> list[float] | None:
    return None if interval is None else [max(0.0, interval[0]), min(1.0, interval[1])]


def aggregate_target(target: Target, per_rep: list[TargetStats]) -> TargetResult:
    """Attainment of one target over replications (see module doc for the statistics)."""
    out = TargetResult(
        metric=target.metric,
        value=target.value,
        unit=target.unit,
        scope=target.scope,
        statistic=target.statistic,
        bound=target.bound,
        year=target.year,
        applies_to=target.applies_to,
        catalog_scope=target.catalog_scope,
    )
    first = per_rep[0]
    if first.note is not None:
        out.note = first.note
        return out
    if first.structural is not None:
        ok = bool(target.meets(first.structural))
        out.attainment = 1.0 if ok else 0.0
        out.ci95 = [out.attainment] * 2
        out.measured = first.structural
        out.note = "structural: counted on the step graph"
        return out
    total = sum(s.n for s in per_rep)
    if total == 0:
        out.note = "no case measured"
        return out
    means = [s.mean for s in per_rep]
    if target.statistic == "each":
        fractions = [s.attained / s.n for s in per_rep if s.n]
        out.attainment = sum(s.attained for s in per_rep) / total
        out.ci95 = _clip01(t_interval(fractions)) or wilson(sum(s.attained for s in per_rep), total)
        out.measured = float(np.nansum([s.mean * s.n for s in per_rep]) / total)
        return out
    # mean and share statistics: one verdict per replication
    values = [m * 100 if target.statistic == "share" else m for m in means]
    verdicts = [bool(target.meets(v)) for v in values if math.isfinite(v)]
    out.attainment = sum(verdicts) / len(verdicts) if verdicts else None
    out.ci95 = wilson(sum(verdicts), len(verdicts))
    out.measured = float(np.nanmean(values))
    out.measured_ci95 = t_interval(values)
    out.note = (
        f"{'share' if target.statistic == 'share' else 'mean'} per replication vs target; "
        "attainment = share of replications that meet it"
    )
    return out


def _no_cases(matter: Matter) -> MatterResult:
    empty = TargetStats(note="no case arrived in this run")
    return MatterResult(
        name=matter.name,
        attachment=matter.attachment,
        cases=0,
        cases_per_replication=0.0,
        rejected=0,
        latency=Latency(unit=latency_unit(matter)),
        targets=[aggregate_target(t, [empty]) for t in matter.targets],
    )


def summarise(catalog: Catalog, scenario: Scenario, reps: list[RepStats], *, seed: int) -> Summary:
    """The ``summary.json`` document."""
    matters: dict[str, MatterResult] = {}
    for matter_id, demand in scenario.demand.items():
        if demand.per_year == 0:
            continue
        matter = scenario.matter(catalog, matter_id)
        per = [r.matters[matter_id] for r in reps if matter_id in r.matters]
        if not per:  # no case arrived in any replication (a rare matter, a short horizon)
            matters[matter_id] = _no_cases(matter)
            continue
        pooled = np.concatenate([m.latency for m in per]).astype(float)
        latency = Latency(unit=per[0].latency_unit)
        if len(pooled):
            q = np.percentile(pooled, [50, 90, 95, 99])
            upper = float(np.percentile(pooled, 99.5)) or 1.0
            counts, edges = np.histogram(pooled, bins=40, range=(0.0, upper))
            latency = Latency(
                unit=per[0].latency_unit,
                mean=float(pooled.mean()),
                p50=float(q[0]),
                p90=float(q[1]),
                p95=float(q[2]),
                p99=float(q[3]),
                ci95_mean=t_interval([float(m.latency.mean()) for m in per if len(m.latency)]),
                histogram=Histogram(edges=edges.tolist(), counts=counts.tolist()),
            )
        matters[matter_id] = MatterResult(
            name=matter.name,
            attachment=matter.attachment,
            cases=int(sum(m.cases for m in per)),
            cases_per_replication=float(np.mean([m.cases for m in per])),
            rejected=int(sum(m.rejected for m in per)),
            latency=latency,
            targets=[
                aggregate_target(t, [m.targets[i] for m in per])
                for i, t in enumerate(matter.targets)
            ],
        )
    departments: dict[str, dict[str, PoolResult]] = {}
    pools: dict[tuple[str, str], list[PoolRepStats]] = {}
    for r in reps:
        for p in r.pools:
            pools.setdefault((p.department, p.county), []).append(p)
    for (dept, county), ps in sorted(pools.items()):
        departments.setdefault(dept, {})[county] = PoolResult(
            clerks=ps[0].clerks,
            utilization=float(np.mean([p.utilization for p in ps])),
            mean_wait=float(np.mean([p.mean_wait for p in ps])),
            max_queue=int(max(p.max_queue for p in ps)),
        )
    ranked = sorted(
        (
            Bottleneck(department=d, county=c, **v.model_dump())
            for d, cs in departments.items()
            for c, v in cs.items()
        ),
        key=lambda row: (-row.utilization, -row.mean_wait),
    )
    return Summary(
        scenario=scenario.name,
        description=scenario.description,
        replications=len(reps),
        seed=seed,
        horizon=Horizon(
            start=scenario.horizon.start.isoformat(), end=scenario.horizon.end.isoformat()
        ),
        warmup_days=scenario.warmup_days,
        wall_seconds=float(sum(r.wall_seconds for r in reps)),
        matters=matters,
        departments=departments,
        bottlenecks=ranked[:15],
    )
