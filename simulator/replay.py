"""Replay: a scenario's demand, in real time, into the live department services.

1. announce the run on the control topic (scenario, seed, sim clock, speed);
2. a SimPy realtime environment (``simpy.rt``) publishes each ``case.submitted`` when the
   sim clock reaches it — ``sim = sim_epoch + (wall - wall_epoch) × speed``;
3. collect every step event and the tracker's verdicts until every case is terminal
   (or the timeout: then the unfinished case ids are listed);
4. rebuild the run as the capacity engine's :class:`~simulator.engine.Replication` and
   write the same ``summary.json`` / ``events.csv`` (or ``events.xes``; ``ocel.json``) /
   ``report.html`` as a simulation, plus system figures (events per second, wall-clock
   processing latency).

The seed is the one ``govflow simulate --replications 1 --seed S`` uses, so a replay and
that simulation draw the same cases and the same durations.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import simpy.rt

from services.core.catalog import Catalog
from services.core.events import (
    CaseSubmitted,
    Event,
    EventValidationError,
    StepCompleted,
    decode_event,
)
from services.core.scenario import Scenario, read_scenario_data, scenario_from_dict
from services.core.topics import Topics
from services.core.walk import Outcome
from services.runtime.broker import bootstrap_of
from services.runtime.control import RunAnnounced
from services.runtime.health import ReplayMetrics
from simulator.demand import MatterArrivals, midnight
from simulator.engine import MatterOutcome, PoolStats, Replication, StepRecords, segment_names
from simulator.ledger import replay_facts, write_ledger
from simulator.montecarlo import measure_replication, replication_seeds, summarise
from simulator.outputs import EventLogs, LogFormat
from simulator.report import write_report
from simulator.summary import Quantiles, Summary, SystemFigures
from simulator.virtual import submissions

#: A step event's outcome as the engine records it.
OUTCOMES = {
    "done": Outcome.DONE,
    "rework": Outcome.REWORK,
    "rejected": Outcome.REJECT,
    "retry": Outcome.RETRY,
}


@dataclass
class ReplayResult:
    summary: Summary
    submitted: int
    terminal: int
    unfinished: list[str] = field(default_factory=list)
    out: Path | None = None
    logs: tuple[Path, ...] = ()  # the event logs written


def effective_scenario(
    path: Path, catalog: Catalog, days: int | None
) -> tuple[dict[str, Any], Scenario]:
    """The scenario document the run announces (its ``base`` chain merged; cut to the
    first ``days`` days when given) and the scenario it describes."""
    document = read_scenario_data(path)
    scenario = scenario_from_dict(document, catalog, source=str(path))
    if days is not None:
        end = min(scenario.horizon.end, scenario.horizon.start + timedelta(days=days - 1))
        horizon = {"start": scenario.horizon.start.isoformat(), "end": end.isoformat()}
        document = {**document, "horizon": horizon, "warmup_days": 0}
        scenario = scenario_from_dict(document, catalog, source=str(path))
    return document, scenario


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay, how fast, and how long to wait for it."""

    speed: float  # sim seconds per wall second
    days: int | None = None  # the first D days of the horizon only
    cases: int | None = None  # the first N cases only
    seed: int | None = None  # default: the scenario's
    timeout: float | None = None  # wall seconds to wait for every case
    topic_prefix: str = "govflow"
    log_format: LogFormat = "csv"  # events.csv or events.xes
    ocel: bool | None = None  # ocel.json: always, never, or None: with linked transfers


def replay(
    catalog: Catalog,
    scenario_path: Path,
    broker_url: str,
    options: ReplayOptions,
    *,
    out: Path,
    progress: Callable[[int, int], None] | None = None,
    metrics: ReplayMetrics | None = None,
) -> ReplayResult:
    document, scenario = effective_scenario(scenario_path, catalog, options.days)
    base_seed = scenario.seed if options.seed is None else options.seed
    run_seed = replication_seeds(base_seed, 1)[0]
    run_id = uuid4().hex[:8]
    demand = submissions(scenario, run_seed)
    if options.cases is not None:
        demand = demand[: options.cases]
    if not demand:
        raise ValueError("the scenario produces no case for this horizon")
    demand = [e.model_copy(update={"case_id": f"{run_id}.{e.case_id}"}) for e in demand]
    sim_first = demand[0].occurred_at.timestamp()
    sim_last = demand[-1].occurred_at.timestamp()
    lead = 2.0  # wall seconds for the services to read the announcement
    speed = options.speed
    run = RunAnnounced.of(
        document,
        run_id=run_id,
        seed=run_seed,
        speed=speed,
        sim_epoch=sim_first,
        wall_epoch=time.time() + lead,
        case_prefix=f"{run_id}.",
    )
    budget = options.timeout
    if budget is None:
        budget = (sim_last - sim_first) / speed * 4 + 120.0
    topics = Topics(options.topic_prefix)
    sources = [topics.rejections, *(topics.department(d.id) for d in catalog.departments)]
    collected = asyncio.run(
        _run(run, demand, broker_url, topics, sources, budget, progress, metrics, catalog)
    )
    logs = EventLogs(out, options.log_format, options.ocel)
    return _finish(catalog, scenario, base_seed, run_seed, run, demand, collected, out, logs)


@dataclass
class _Collected:
    steps: list[tuple[Event, float]] = field(default_factory=list)  # with wall receive time
    verdicts: dict[str, Event] = field(default_factory=dict)
    verdict_received: dict[str, float] = field(default_factory=dict)  # wall receive time
    all_verdicts: list[Event] = field(default_factory=list)  # duplicates included
    letters: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    wall_seconds: float = 0.0


async def _run(
    run: RunAnnounced,
    demand: list[Event],
    broker_url: str,
    topics: Topics,
    sources: list[str],
    budget: float,
    progress: Callable[[int, int], None] | None,
    metrics: ReplayMetrics | None,
    catalog: Catalog,
) -> _Collected:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    bootstrap = bootstrap_of(broker_url)
    consumer = AIOKafkaConsumer(
        topics.cases,
        topics.dead_letters,
        *sources,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    collected = _Collected()
    loop = asyncio.get_running_loop()
    started = time.time()
    try:
        await consumer.seek_to_end()
        await producer.send_and_wait(topics.control, run.to_bytes())
        publisher = threading.Thread(
            target=_publish_in_real_time,
            args=(run, demand, producer, topics, loop, metrics),
            daemon=True,
        )
        publisher.start()
        prefix = f"{run.run_id}."
        wanted = {e.case_id for e in demand}
        deadline = run.wall_epoch + budget
        while time.time() < deadline and not wanted <= collected.verdicts.keys():
            batches = await consumer.getmany(timeout_ms=200)
            received = time.time()
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == topics.dead_letters:
                        collected.dead_letters += 1
                        collected.letters.append(_letter(record.value, record.offset))
                        continue
                    try:
                        event = decode_event(record.value, source=tp.topic, catalog=catalog)
                    except EventValidationError:
                        continue
                    if not event.case_id.startswith(prefix):
                        continue  # another run's event
                    if tp.topic == topics.cases:
                        collected.all_verdicts.append(event)
                        if event.case_id not in collected.verdicts:
                            collected.verdicts[event.case_id] = event
                            collected.verdict_received[event.case_id] = received
                            if metrics is not None and event.case_id in wanted:
                                outcome = event.type.removeprefix("case.")
                                metrics.terminal.labels(outcome).inc()
                                metrics.in_flight.dec()
                    else:
                        collected.steps.append((event, received))
            if progress:
                progress(len(collected.verdicts), len(wanted))
        publisher.join(timeout=1.0)
    finally:
        collected.wall_seconds = time.time() - started
        await producer.stop()
        await consumer.stop()
    return collected


def _letter(value: bytes, offset: int) -> dict[str, Any]:
    """What the ledger keeps of a dead letter (its reason and where it came from)."""
    try:
        data = json.loads(value)
    except ValueError:
        return {"reason": "unreadable dead letter", "dead_letter_offset": offset}
    keep = ("service", "reason", "field", "source_topic", "partition", "offset")
    return {k: data.get(k) for k in keep if k in data} | {"dead_letter_offset": offset}


def _publish_in_real_time(
    run: RunAnnounced,
    demand: list[Event],
    producer: Any,
    topics: Topics,
    loop: asyncio.AbstractEventLoop,
    metrics: ReplayMetrics | None = None,
) -> None:
    """The demand model: a SimPy realtime environment on the run's sim clock."""
    time.sleep(max(0.0, run.wall_epoch - time.time()))
    env = simpy.rt.RealtimeEnvironment(
        initial_time=run.sim_epoch, factor=1 / run.speed, strict=False
    )

    def submit() -> Any:
        for event in demand:
            at = event.occurred_at.timestamp()
            if at > env.now:
                yield env.timeout(at - env.now)
            asyncio.run_coroutine_threadsafe(
                producer.send(topics.submissions, event.to_bytes(), key=event.county.encode()),
                loop,
            )
            if metrics is not None:
                metrics.submitted.inc()
                metrics.in_flight.inc()

    env.process(submit())
    env.run()


def _finish(
    catalog: Catalog,
    scenario: Scenario,
    base_seed: int,
    run_seed: int,
    run: RunAnnounced,
    demand: list[Event],
    collected: _Collected,
    out: Path,
    logs: EventLogs,
) -> ReplayResult:
    rep = rebuild(catalog, scenario, run_seed, demand, collected)
    measured = measure_replication(catalog, scenario, rep)
    summary = summarise(catalog, scenario, [measured], seed=base_seed)
    wanted = [e.case_id for e in demand]
    unfinished = [c for c in wanted if c not in collected.verdicts]

    def due_wall(event: Event) -> float:
        return run.wall_epoch + (event.occurred_at.timestamp() - run.sim_epoch) / run.speed

    lags = [received - due_wall(e) for e, received in collected.steps]
    # where the lag arises: in the department (emitted after it was due) or in transit
    in_department = [e.emitted_at.timestamp() - due_wall(e) for e, _ in collected.steps]
    in_transit = [received - e.emitted_at.timestamp() for e, received in collected.steps]
    # a case's wall-clock overhead: its verdict arrived this long after the sim clock
    # reached the case's end (the twin's own processing, summed along the case's chain)
    overhead = [collected.verdict_received[c] - due_wall(v) for c, v in collected.verdicts.items()]
    summary.system = SystemFigures(
        run_id=run.run_id,
        speed=run.speed,
        cases_submitted=len(wanted),
        cases_terminal=len(wanted) - len(unfinished),
        step_events=len(collected.steps),
        events_per_second=(len(collected.steps) + len(collected.verdicts))
        / max(collected.wall_seconds, 1e-9),
        wall_seconds=collected.wall_seconds,
        cases_per_second=(len(wanted) - len(unfinished)) / max(collected.wall_seconds, 1e-9),
        case_overhead_seconds=_quantiles(overhead),
        processing_latency_seconds=_quantiles(lags),
        latency_in_department_seconds=_quantiles(in_department),
        latency_in_transit_seconds=_quantiles(in_transit),
        dead_letters=collected.dead_letters,
    )
    out.mkdir(parents=True, exist_ok=True)
    summary.write(out / "summary.json")
    written = logs.write(rep)
    write_ledger(
        replay_facts(
            catalog,
            demand,
            [e for e, _ in collected.steps],
            collected.all_verdicts,
            collected.letters,
        ),
        out / "ledger.jsonl",
    )
    write_report(summary, out / "report.html", title=f"govflow live replay — {scenario.name}")
    terminal = len(wanted) - len(unfinished)
    return ReplayResult(summary, len(wanted), terminal, unfinished, out, written)


def _quantiles(values: list[float]) -> Quantiles:
    if not values:
        return Quantiles()
    return Quantiles(p50=float(np.percentile(values, 50)), p99=float(np.percentile(values, 99)))


def _segment(event: Event) -> int:
    """A submitted case's segment (-1: none)."""
    payload = event.payload
    if not isinstance(payload, CaseSubmitted):
        return -1
    return int(payload.attributes.get("segment", -1))


def _outcomes(
    catalog: Catalog, scenario: Scenario, demand: list[Event], collected: _Collected
) -> tuple[dict[str, MatterOutcome], dict[str, tuple[str, int]]]:
    """Per matter (sorted): its cases' arrivals and verdicts; and each case's (matter,
    sequence within the matter)."""
    county_index = {c: i for i, c in enumerate(scenario.counties)}
    by_matter: dict[str, list[Event]] = {}
    for event in demand:
        by_matter.setdefault(event.matter, []).append(event)
    outcomes: dict[str, MatterOutcome] = {}
    seq_of: dict[str, tuple[str, int]] = {}
    for matter_id in sorted(by_matter):
        events = by_matter[matter_id]
        arrivals = MatterArrivals(
            matter_id,
            np.array([e.occurred_at.timestamp() for e in events]),
            np.array([county_index[e.county] for e in events]),
            np.array([_segment(e) for e in events]),
        )
        completed = np.full(len(events), math.nan)
        rejected = np.full(len(events), -1)
        matter = scenario.matter(catalog, matter_id)
        index = {s.id: i for i, s in enumerate(matter.steps)}
        for local, event in enumerate(events):
            seq_of[event.case_id] = (matter_id, local)
            verdict = collected.verdicts.get(event.case_id)
            if verdict is None:
                continue
            if verdict.type == "case.completed":
                completed[local] = verdict.occurred_at.timestamp()
            else:
                rejected[local] = index.get(getattr(verdict.payload, "step", ""), 0)
        outcomes[matter_id] = MatterOutcome(matter, arrivals, completed, rejected)
    return outcomes, seq_of


def rebuild(
    catalog: Catalog, scenario: Scenario, seed: int, demand: list[Event], collected: _Collected
) -> Replication:
    """The live run as the capacity engine's Replication (same measurement downstream)."""
    counties = list(scenario.counties)
    outcomes, seq_of = _outcomes(catalog, scenario, demand, collected)
    matters = list(outcomes)
    matter_index = {m: i for i, m in enumerate(matters)}
    calendars: list[Any] = []
    step_calendars: list[list[int]] = []
    for matter_id in matters:
        row = []
        for step in outcomes[matter_id].matter.steps:
            calendar = scenario.calendar(step.department)
            if calendar not in calendars:
                calendars.append(calendar)
            row.append(calendars.index(calendar))
        step_calendars.append(row)
    records = StepRecords()
    busy: dict[tuple[str, str], list[float]] = {}
    seen: set[tuple[str, str, int]] = set()
    for event, _ in sorted(collected.steps, key=lambda pair: pair[0].occurred_at):
        payload = event.payload
        if not isinstance(payload, StepCompleted) or event.case_id not in seq_of:
            continue
        if payload.outcome == "released":  # a lock released: no step attempt
            continue
        key = (event.case_id, payload.step, payload.attempt)
        if key in seen:  # at-least-once delivery: a duplicate
            continue
        seen.add(key)
        matter_id, local = seq_of[event.case_id]
        matter = outcomes[matter_id].matter
        si = next(i for i, s in enumerate(matter.steps) if s.id == payload.step)
        clerk = int(payload.clerk.rsplit("/", 1)[1]) - 1 if payload.clerk else -1
        calendar = calendars[step_calendars[matter_index[matter_id]][si]]
        if clerk >= 0:  # served by the county's pool, on its calendar (its own hours)
            calendar = scenario.pool_calendar(matter.steps[si].department, event.county)
        records.add(
            matter_index[matter_id],
            local,
            si,
            payload.attempt - 1,
            clerk,
            payload.enabled_at.timestamp(),
            (payload.arrived_at or payload.enabled_at).timestamp(),
            calendar.clock_at(payload.started_at.timestamp()),
            event.occurred_at.timestamp(),
            OUTCOMES[payload.outcome],
        )
        if clerk >= 0:
            pool = busy.setdefault((payload.department, event.county), [0.0, 0.0])
            pool[0] += (payload.work_seconds or 0.0) * 1e6
            pool[1] += 1
    pools = [
        PoolStats(dept, county, scenario.clerks(dept, county), int(b), int(n))
        for (dept, county), (b, n) in sorted(busy.items())
    ]
    return Replication(
        scenario=scenario.name,
        seed=seed,
        matters=matters,
        outcomes=outcomes,
        steps=records,
        pools=pools,
        calendars=calendars,
        step_calendars=step_calendars,
        pool_calendars=_pool_calendars(scenario, counties, calendars),
        horizon_start=midnight(scenario.horizon.start),
        horizon_end=midnight(scenario.horizon.end) + 86400.0,
        measured_from=midnight(scenario.measured_from()),
        wall_seconds=collected.wall_seconds,
        counties=counties,
        segments=segment_names(scenario),
    )


def _pool_calendars(
    scenario: Scenario, counties: list[str], calendars: list[Any]
) -> dict[tuple[str, int], int]:
    """The pools with hours of their own, their calendars appended to ``calendars``."""
    out: dict[tuple[str, int], int] = {}
    for department, staffing in scenario.departments.items():
        for county in staffing.county_hours:
            calendars.append(scenario.pool_calendar(department, county))
            out[(department, counties.index(county))] = len(calendars) - 1
    return out
