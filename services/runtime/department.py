"""A department as a Faust stream processor: a thin adapter around DepartmentRules.

* ``inputs`` agent — every event on the department's input topics
  (:mod:`services.runtime.topology`), decoded strictly (malformed → dead letter), handed
  to :meth:`~services.core.department.DepartmentRules.on_event`; the planned actions go
  into the schedule's ``pending`` state (changelog-backed: a crash loses nothing).
* a timer — the clock (:mod:`services.runtime.scheduler`): every county's due actions in
  time order, their events published on the department's topic (rejections on the
  rejections topic), and only then the work recorded.  The tables are keyed by county
  (:class:`~services.runtime.app.CountyTable`), so the timer may write them and a
  county's state stays in its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.types import StreamT

from services.core.catalog import Catalog, load_catalog
from services.core.department import CaseRecord, DepartmentRules
from services.core.events import Event
from services.core.scenario import Scenario
from services.runtime.app import PARTITIONS, CountyTable, county_partition
from services.runtime.control import RunAnnounced
from services.runtime.health import DepartmentMetrics
from services.runtime.scheduler import CountyTick, Schedule, Tables, UnitOfWork, close_case
from services.runtime.service import RAW, Service
from services.runtime.settings import Settings, load_settings
from services.runtime.state import DepartmentState
from services.runtime.topology import STATE_TABLE, Keeping, department_topology

log = logging.getLogger(__name__)

TICK_INTERVAL = 0.05  # wall seconds between checks for due work
INPUT_BATCH = 500  # input events taken at most at once (stream.take_events)
INPUT_WITHIN = 0.02  # wall seconds a batch waits to fill


class DepartmentService(Service):
    def __init__(
        self,
        department: str,
        settings: Settings,
        broker_url: str,
        catalog: Catalog,
        keeping: Keeping | None = None,
    ) -> None:
        super().__init__(department, settings, broker_url, catalog)
        self.department = department
        self.keeping = keeping
        self.topology = department_topology(catalog, self.topics, department, keeping)
        app = self.app
        self.input_topic = app.topic(*self.topology.inputs, **RAW)
        self.output_topic = app.topic(self.topology.output, **RAW)
        self.rejection_topic = app.topic(self.topology.rejections, **RAW)
        # every kind of state in one table: a county's units of work land whole
        self.state = DepartmentState(self._county_table(STATE_TABLE))
        kinds = {name: self.state.slice(name) for name in self.topology.tables}
        self.cases = kinds["cases"]
        self.schedule = Schedule(kinds["pending"])
        self.tables = Tables(
            self.state,
            kinds["cases"],
            kinds.get("pools"),
            kinds[keeping.table] if keeping else None,
        )
        self.rules: DepartmentRules | None = None
        self.inputs_agent = app.agent(self.input_topic, name=f"{department}-inputs")(
            self.process_inputs
        )
        assert isinstance(self.metrics, DepartmentMetrics)
        self.processing = self.metrics.processing.labels(department, "input")
        self.executing = self.metrics.processing.labels(department, "action")
        self.county_locks: dict[str, asyncio.Lock] = {}
        self.generation = 0  # rebalances seen: a tick records only within its own
        self.ticks_discarded = 0
        app.timer(interval=TICK_INTERVAL)(self.run_due)
        app.on_partitions_revoked.connect(self.on_partitions_revoked)  # type: ignore[arg-type]
        self.state.table.on_recover(self.on_tables_recovered)  # type: ignore[attr-defined]

    def county_lock(self, county: str) -> asyncio.Lock:
        lock = self.county_locks.get(county)
        if lock is None:
            lock = self.county_locks[county] = asyncio.Lock()
        return lock

    # -- rebalances: the clock stops until the tables are whole again ----------------------

    async def on_partitions_revoked(self, sender: Any, revoked: Any, **_: Any) -> None:
        self.schedule.synced = False
        self.generation += 1  # a tick that started before this may not record its work

    async def on_tables_recovered(self) -> None:
        """The state is restored from its changelog: finish the units of work a crash
        interrupted (their journals), rebuild the schedule's heaps for the counties this
        worker now owns, and let the clock tick."""
        changelog = self.state.table.changelog_topic.get_topic_name()  # type: ignore[attr-defined]
        owned = {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == changelog
        }
        replayed = self.state.replay_journals(lambda county: county_partition(county) in owned)
        self.schedule.rebuild(lambda county: county_partition(county) in owned)
        self.note_recovered()
        log.warning(  # once a rebalance: worth a line at the workers' level
            "state recovered: %d interrupted units of work finished, "
            "%d pending actions in %d counties, %d state keys",
            replayed,
            len(self.schedule.heaped),
            len(self.schedule.heaps),
            len(self.state.table),
        )

    def case_state(self) -> tuple[Any, Any] | None:
        return (self.cases, self.state.table) if self.schedule.synced else None

    @property
    def pending(self) -> Any:
        return self.schedule.pending

    def make_metrics(self) -> DepartmentMetrics:
        return DepartmentMetrics(self.name)

    def _county_table(self, name: str) -> CountyTable:
        table = CountyTable(
            self.app, name=name, default=None, beacon=self.app.tables.beacon, partitions=PARTITIONS
        )
        return cast(CountyTable, self.app.tables.add(table))

    def on_run(self, run: RunAnnounced, scenario: Scenario) -> None:
        self.rules = DepartmentRules(
            self.catalog, scenario, self.department, run.seed, self.settings.backfill_working_days
        )

    def refresh_gauges(self) -> None:
        """Consumer lag, and per county: pending work, clerks, clerks busy now."""
        super().refresh_gauges()
        metrics = self.metrics
        assert isinstance(metrics, DepartmentMetrics)
        for county, waiting in self.schedule.backlog().items():
            metrics.pending.labels(self.department, county).set(waiting)
        run, clock = self.control.run, self.control.clock
        if self.rules is None or clock is None or run is None or self.tables.pools is None:
            return
        now = clock.now()
        scenario = self.rules.scenario
        for county in scenario.counties:
            now_w = scenario.pool_calendar(self.department, county).clock_at(now)  # its hours
            pool = self.rules.pool(county, self.tables.pools.get(f"{county}|{run.run_id}"))
            metrics.clerks.labels(self.department, county).set(pool.clerks)
            busy = sum(1 for free_at in pool.free_at() if free_at > now_w)
            metrics.clerks_busy.labels(self.department, county).set(busy)

    # -- inputs -----------------------------------------------------------------------------

    async def process_inputs(self, stream: StreamT[Any]) -> AsyncIterator[Any]:
        """Every input, a batch at a time: per county in arrival order, one unit of work
        for all the batch's events of the county (one redo journal instead of one per
        event).  A batch is acknowledged once all of it is written; dead letters are
        acknowledged like any other message."""
        async for batch in self.event_batches(stream, INPUT_BATCH, INPUT_WITHIN):
            by_county: dict[str, list[tuple[Any, Event]]] = {}
            for message, event in batch:
                if event is not None:
                    by_county.setdefault(event.county, []).append((message, event))
            for county, items in by_county.items():
                # one writer per county at a time: a tick that is publishing holds the
                # lock from reading its cases to recording them, so a join (register
                # needs review here *and* the tax clearance from tax) is decided on both
                async with self.county_lock(county):
                    failed = self.handle_county(county, [event for _, event in items])
                for index, exc in failed:
                    await self.park(items[index][0], f"could not be handled: {exc!r}", "")
            yield len(batch)

    def handle_county(self, county: str, events: list[Event]) -> list[tuple[int, Exception]]:
        """One county's events of a batch as one unit of work: the records that say the
        events are handled and the work they planned land together or not at all (then
        they are redelivered).  An event that raises leaves nothing of itself in the
        unit; it is returned (index, error) to be dead-lettered, and the rest goes on."""
        assert self.rules is not None
        failed: list[tuple[int, Exception]] = []
        with self.state.atomic(county):
            for index, event in enumerate(events):
                started = time.perf_counter()
                self.state.savepoint(county)
                try:
                    case_key = f"{county}|{event.case_id}"
                    record = CaseRecord.from_dict(self.cases.get(case_key))
                    for action in self.rules.on_event(event, record):
                        self.schedule.plan(action)
                    close_case(
                        self.rules, self.schedule, case_key, event.matter, record, time.time()
                    )
                    self.cases[case_key] = record.to_dict()
                except Exception as exc:  # no input may stop the service
                    log.exception("event %s could not be handled", event.event_id)
                    self.state.rollback(county)
                    self.schedule.forget(county)  # its heap again from what is written
                    failed.append((index, exc))
                else:
                    self.processing.observe(time.perf_counter() - started)
        return failed

    # -- the clock --------------------------------------------------------------------------

    async def run_due(self) -> None:
        """The clock: execute every due county's work, publish it all, wait for the
        broker's acknowledgements once for all counties, then record each county's work.
        Each county's lock is held from reading its cases to recording them."""
        run, clock = self.control.run, self.control.clock
        if clock is None or self.rules is None or run is None:
            return
        if not self.schedule.synced or self.app.rebalancing or self.app.in_recovery:
            return  # tables incomplete: acting now would read and overwrite stale state
        horizon = clock.now() - self.settings.watermark * run.speed
        generation = self.generation
        async with contextlib.AsyncExitStack() as held:
            published: list[tuple[str, UnitOfWork, list[Any]]] = []
            for county in self.schedule.due_counties(horizon):
                if self.generation != generation:  # a rebalance began meanwhile
                    break
                await held.enter_async_context(self.county_lock(county))
                work = self.execute(county, run.run_id, horizon)
                if work is not None:
                    published.append((county, work, await self.publish(county, work)))
            await self.commit_published(published, generation)

    def execute(self, county: str, run_id: str, horizon: float) -> UnitOfWork | None:
        """One county's due work, executed (None: it failed, and is redone later)."""
        assert self.rules is not None
        try:
            return CountyTick(
                service=self.name,
                rules=self.rules,
                schedule=self.schedule,
                tables=self.tables,
                keeping=self.keeping,
                county=county,
                run_id=run_id,
                observe=self.executing.observe,
            ).run(horizon)
        except Exception:  # keep serving the other counties
            log.exception("executing due work of %s failed", county)
            self.schedule.forget(county)
            return None

    async def publish(self, county: str, work: UnitOfWork) -> list[Any]:
        """Send a tick's events and letters; their delivery futures."""
        events_out = self.metrics.events_out
        deliveries = []
        for event in work.events:
            topic = self.rejection_topic if _is_rejection(event) else self.output_topic
            deliveries.append(await topic.send(key=county.encode(), value=event.to_bytes()))
            events_out.labels(self.name, event.type).inc()
        for letter in work.letters:
            self.dead_letters += 1
            self.metrics.dead_letters.labels(self.name, "handler_error").inc()
            deliveries.append(
                await self.dead_letter_topic.send(key=self.name.encode(), value=letter.to_bytes())
            )
        return deliveries

    async def commit_published(
        self, published: list[tuple[str, UnitOfWork, list[Any]]], generation: int
    ) -> None:
        """Once the broker has a county's events, record its work — unless a rebalance
        began meanwhile.  The inputs agent is drained before a rebalance; the timer is
        not, so a tick whose publish await straddles one would write its tables while
        they are being recovered from the changelog, and the recovery would then
        overwrite (or be overwritten by) what it wrote.  Its work is redone instead once
        the state is recovered (the same event ids: duplicates every reader drops)."""
        outcomes = await asyncio.gather(
            *(asyncio.gather(*deliveries) for _, _, deliveries in published),
            return_exceptions=True,
        )
        for (county, work, _), outcome in zip(published, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.error("publishing %s's completions failed (%r); redone", county, outcome)
                self.schedule.forget(county)
                continue
            if generation != self.generation or not self.schedule.synced:
                self.ticks_discarded += 1
                log.warning("a rebalance began while %s's tick was publishing: redone", county)
                continue
            try:
                work.commit()
            except Exception:  # the events are out; redoing the work republishes the same ids
                log.exception("recording %s's completed work failed; it will be redone", county)
                self.schedule.forget(county)


def _is_rejection(event: Event) -> bool:
    return event.type.endswith(".rejected")


def department_app(department: str, keeping: Keeping | None = None) -> faust.App:
    """The Faust app of a department, configured from the environment (its catalog:
    ``GOVFLOW_CATALOG_PATH`` or the shipped one)."""
    settings = load_settings()
    if settings.broker_url is None:
        raise RuntimeError("GOVFLOW_BROKER_URL is not set (govflow up sets it)")
    catalog = load_catalog(settings.catalog_path)
    return DepartmentService(department, settings, settings.broker_url, catalog, keeping).app
