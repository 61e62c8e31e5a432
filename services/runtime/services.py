"""A department as a Faust stream processor: a thin adapter around DepartmentRules.

* ``inputs`` agent — every event on the department's input topics (submissions and the
  topics of departments whose steps precede its own): decoded strictly (malformed →
  dead-letter topic with the reason, the source topic/offset and the original bytes),
  handed to :meth:`DepartmentRules.on_event`, the planned actions kept in the
  ``pending`` table (changelog-backed: a crash loses nothing).
* a timer — the clock: executes every county's due actions in time order (clerk
  assignments update the county's ``pools`` entry; completions are published on the
  department's topic).  The tables are keyed by county (:class:`CountyTable`), so the
  timer may write them and a county's state stays in its partition.

The run (scenario, seed, sim clock) is announced by the replay on the control topic,
which every worker reads in full, outside any consumer group.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from typing import Any

import faust

from services.core.calendar import WorkingCalendar
from services.core.catalog import Catalog, Matter, default_catalog
from services.core.department import Action, CaseRecord, DepartmentRules, instant
from services.core.events import (
    CaseCompleted,
    CaseRejected,
    Event,
    EventValidationError,
    decode_event,
)
from services.core.saga import UnitRegister, UnitState, UtilityAccounts
from services.core.scenario import Scenario, load_scenario
from services.core.topics import Topics
from services.core.tracking import CaseProgress
from services.runtime.app import PARTITIONS, CountyTable, make_app
from services.runtime.broker import bootstrap_of
from services.runtime.clock import RunAnnounced, SimClock
from services.runtime.deadletter import DeadLetter
from services.runtime.metrics import DepartmentMetrics, ServiceMetrics, TrackerMetrics
from services.runtime.settings import Settings, load_settings

log = logging.getLogger(__name__)

TICK_INTERVAL = 0.05  # wall seconds between checks for due work
METRICS_INTERVAL = 1.0  # wall seconds between gauge refreshes
LINKED_MATTERS = frozenset({"linked_transfer"})


RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}


class Service:
    """What every govflow service shares: the app, the run, strict input, dead letters."""

    def __init__(
        self, name: str, settings: Settings, broker_url: str, catalog: Catalog | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self.catalog = catalog or default_catalog()
        self.broker_url = broker_url
        self.topics = Topics(settings.topic_prefix)
        self.app = make_app(name, settings, broker_url)
        self.dead_letter_topic = self.app.topic(self.topics.dead_letters, **RAW)
        self.run: RunAnnounced | None = None
        self.clock: SimClock | None = None
        self.dead_letters = 0
        self.metrics = self.make_metrics()
        self.metrics_port: int | None = None
        self._gauge_error_logged = False
        self.app.task(self.follow_control)
        self.app.task(self.serve_metrics)
        self.app.task(self.report_ready)
        self.app.timer(interval=METRICS_INTERVAL)(self.observe)

    def make_metrics(self) -> ServiceMetrics:
        return ServiceMetrics(self.name)

    async def serve_metrics(self) -> None:
        """Serve /metrics on GOVFLOW_METRICS_PORT (``govflow up`` gives each worker its own)."""
        try:
            self.metrics_port = self.metrics.serve(self.settings.metrics_port)
        except OSError as exc:  # a taken port must not stop the service
            log.error("metrics port %s: %s", self.settings.metrics_port, exc)

    async def observe(self) -> None:
        """The metrics timer: refresh the gauges. Never lets an error stop the worker (a
        run announced with a clock outside the calendar, a table mid-recovery …)."""
        try:
            self.refresh_gauges()
        except Exception as exc:
            if not self._gauge_error_logged:
                log.warning("gauges not refreshed: %r (logged once)", exc)
                self._gauge_error_logged = True

    def refresh_gauges(self) -> None:
        """Consumer lag per assigned partition (override for more)."""
        consumer = self.app.consumer
        read = getattr(consumer, "_read_offset", {})
        for tp in consumer.assignment():
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # not fetched yet
                continue
            if highwater is None:
                continue
            position = read.get(tp)
            lag = highwater - (position + 1 if position is not None else 0)
            self.metrics.consumer_lag.labels(self.name, tp.topic, str(tp.partition)).set(
                max(lag, 0)
            )

    async def report_ready(self) -> None:
        """Write ``<data_dir>/ready/<name>`` once this worker has partitions assigned
        (``govflow up`` waits for every service's file)."""
        import json
        import os

        while not self.app.consumer.assignment():
            await asyncio.sleep(0.2)
        ready = self.settings.data_dir / "ready"
        ready.mkdir(parents=True, exist_ok=True)
        partitions = sorted(f"{tp.topic}:{tp.partition}" for tp in self.app.consumer.assignment())
        (ready / self.name).write_text(
            json.dumps(
                {"pid": os.getpid(), "partitions": partitions, "metrics_port": self.metrics_port}
            )
        )

    def on_run(self, run: RunAnnounced, scenario: Scenario) -> None:
        """A new run was announced (override to build the run's rules)."""

    def announce(self, run: RunAnnounced) -> None:
        if self.run is not None and run.run_id == self.run.run_id:
            return
        scenario = load_scenario(run.scenario, self.catalog)
        self.on_run(run, scenario)
        self.run, self.clock = run, SimClock(run)
        log.info("run %s: %s seed %s at %gx", run.run_id, run.scenario, run.seed, run.speed)

    async def follow_control(self) -> None:
        """Read every run announcement (no consumer group: each worker needs them all)."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            self.topics.control,
            bootstrap_servers=bootstrap_of(self.broker_url),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            async for message in consumer:
                try:
                    self.announce(RunAnnounced.model_validate_json(message.value))
                except Exception as exc:  # a bad control message must not stop the service
                    log.warning("ignored control message at offset %s: %s", message.offset, exc)
        finally:
            await consumer.stop()

    async def until_run(self) -> RunAnnounced:
        while self.run is None:  # input waits until the run is known
            await asyncio.sleep(0.05)
        return self.run

    async def events_of(self, stream: faust.Stream) -> AsyncIterator[tuple[Any, Event | None]]:
        """A stream's messages with their events once the run is known (None: the message
        was dead-lettered)."""
        events_in = self.metrics.events_in
        async for message in stream.events():
            run = await self.until_run()
            events_in.labels(self.name, message.message.topic).inc()
            event = await self.decode(message)
            if (
                event is not None
                and run.case_prefix
                and not event.case_id.startswith(run.case_prefix)
            ):
                reason = f"event for an unknown case (not of run {run.run_id})"
                await self.park(message, reason, "case_id", "invalid_event")
                event = None
            yield message, event

    async def decode(self, message: Any) -> Event | None:
        """The event in a Faust message, or None after dead-lettering it."""
        meta, raw = message.message, message.value
        source = f"{meta.topic}@{meta.partition}:{meta.offset}"
        try:
            return decode_event(raw, source=source, catalog=self.catalog)
        except EventValidationError as exc:
            await self.park(message, exc.reason, exc.field, "invalid_event")
            return None

    async def park(
        self, message: Any, reason: str, field: str, kind: str = "handler_error"
    ) -> None:
        """Send a message to the dead-letter topic with the reason and its origin."""
        meta = message.message
        self.dead_letters += 1
        self.metrics.dead_letters.labels(self.name, kind).inc()
        letter = DeadLetter.of(
            self.name, reason, field, meta.topic, meta.partition, meta.offset, message.value
        )
        await self.dead_letter_topic.send(key=self.name.encode(), value=letter.to_bytes())


class DepartmentService(Service):
    def __init__(
        self,
        department: str,
        settings: Settings,
        broker_url: str,
        catalog: Catalog | None = None,
    ) -> None:
        super().__init__(department, settings, broker_url, catalog)
        self.department = department
        app = self.app
        self.input_topic = app.topic(*self.topics.inputs_of(self.catalog, department), **RAW)
        self.output_topic = app.topic(self.topics.department(department), **RAW)
        # county-keyed tables: the timer may write them (see CountyTable)
        self.cases = self._county_table("cases")
        self.pools = self._county_table("pools")
        self.pending = self._county_table("pending")
        self.units = self._county_table("units")  # property: the register, per unit code
        self.holders = self._county_table("holders")  # a utility: account holder per unit
        self.rules: DepartmentRules | None = None
        self.heaps: dict[str, list[tuple[float, str]]] = {}
        self.heaped: set[str] = set()  # the pending keys that have an entry in the heaps
        self.inputs_agent = app.agent(self.input_topic, name=f"{department}-inputs")(
            self.process_inputs
        )
        assert isinstance(self.metrics, DepartmentMetrics)
        self.processing = self.metrics.processing.labels(department, "input")
        self.executing = self.metrics.processing.labels(department, "action")
        app.timer(interval=TICK_INTERVAL)(self.run_due)

    def make_metrics(self) -> DepartmentMetrics:
        return DepartmentMetrics(self.name)

    def refresh_gauges(self) -> None:
        """Consumer lag, and per county: pending work, clerks, clerks busy now."""
        super().refresh_gauges()
        metrics = self.metrics
        assert isinstance(metrics, DepartmentMetrics)
        for county, heap in self.heaps.items():
            metrics.pending.labels(self.department, county).set(len(heap))
        if self.rules is None or self.clock is None or self.run is None:
            return
        now_w = self.rules.calendar.clock_at(self.clock.now())
        for county in self.rules.scenario.counties:
            state = self.pools.get(f"{county}|{self.run.run_id}")
            pool = self.rules.pool(county, state)
            metrics.clerks.labels(self.department, county).set(pool.clerks)
            busy = sum(1 for free_at in pool.free_at() if free_at > now_w)
            metrics.clerks_busy.labels(self.department, county).set(busy)

    def _county_table(self, name: str) -> CountyTable:
        table = CountyTable(
            self.app,
            name=name,
            default=None,
            beacon=self.app.tables.beacon,
            partitions=PARTITIONS,
        )
        return self.app.tables.add(table)

    def on_run(self, run: RunAnnounced, scenario: Scenario) -> None:
        self.rules = DepartmentRules(
            self.catalog,
            scenario,
            self.department,
            run.seed,
            self.settings.backfill_working_days,
        )

    # -- inputs -----------------------------------------------------------------------------

    async def process_inputs(self, stream: faust.Stream) -> Any:
        async for message, event in self.events_of(stream):
            if event is None:
                yield None  # dead-lettered; yielding acknowledges it like any other
                continue
            assert self.rules is not None
            started = time.perf_counter()
            try:
                case_key = f"{event.county}|{event.case_id}"
                record = CaseRecord.from_dict(self.cases.get(case_key))
                actions = self.rules.on_event(event, record)
            except Exception as exc:  # no input may stop the service
                log.exception("event %s could not be handled", event.event_id)
                await self.park(message, f"could not be handled: {exc!r}", "")
                yield None
                continue
            # the planned work first, then the record that says it is planned: a crash
            # in between replans the same keys when the event is redelivered
            for action in actions:
                self.plan(action)
            self.cases[case_key] = record.to_dict()
            self.processing.observe(time.perf_counter() - started)
            yield event.event_id

    def plan(self, action: Action) -> None:
        key = f"{action.county}|{action.key}"
        self.pending[key] = action.to_dict()
        if key not in self.heaped:  # a replanned action (a redelivered event) is one entry
            self.heaped.add(key)
            heapq.heappush(self.heaps.setdefault(action.county, []), (action.at, key))

    # -- the clock --------------------------------------------------------------------------

    def due_counties(self, now: float) -> list[str]:
        margin = self.settings.watermark * (self.clock.run.speed if self.clock else 0.0)
        return [c for c, heap in self.heaps.items() if heap and heap[0][0] <= now - margin]

    async def run_due(self) -> None:
        """The clock: execute every county's due work and publish the completions."""
        if self.clock is None or self.rules is None:
            return
        self.resync()
        now = self.clock.now()
        horizon = now - self.settings.watermark * self.clock.run.speed
        for county in self.due_counties(now):
            try:
                due, commit = self.execute_due(county, horizon)
            except Exception:  # keep serving the other counties and cases
                log.exception("executing due work of %s failed", county)
                self.forget_county(county)
                continue
            # Publish first, and only once the broker has the completions record the
            # work as done: a crash in between re-executes the actions after the restart,
            # which republishes the same event ids (dropped by every reader) — nothing
            # is lost, nothing counted twice.
            events_out = self.metrics.events_out
            deliveries = []
            for event in due:
                deliveries.append(
                    await self.output_topic.send(key=county.encode(), value=event.to_bytes())
                )
                events_out.labels(self.name, event.type).inc()
            try:
                await asyncio.gather(*deliveries)
            except Exception:
                log.exception("publishing %s's completions failed; they will be redone", county)
                self.forget_county(county)
                continue
            try:
                commit()
            except Exception:  # the events are out; redoing the work republishes the same ids
                log.exception("recording %s's completed work failed; it will be redone", county)
                self.forget_county(county)

    def resync(self) -> None:
        """Rebuild the in-memory schedule when the pending table holds work it lacks
        (after a restart the table is restored from its changelog; the heaps are not).
        Counted by key, so a redelivered event's replanned action cannot mask a
        recovered one."""
        if len(self.heaped) >= len(self.pending):
            return
        self.heaps, self.heaped = {}, set()
        for key, data in list(self.pending.items()):
            if data is not None:
                self.heaped.add(key)
                heapq.heappush(self.heaps.setdefault(data["county"], []), (data["at"], key))

    def forget_county(self, county: str) -> None:
        """Drop a county's in-memory schedule (rebuilt from the pending table next tick)."""
        self.heaps.pop(county, None)
        self.heaped = {k for k in self.heaped if not k.startswith(f"{county}|")}

    def execute_due(self, county: str, horizon: float) -> tuple[list[Any], Callable[[], None]]:
        """Execute every action of a county due by ``horizon``, in time order.

        Table writes are kept to what the state needs: a follow-up that falls due in the
        same tick is executed at once instead of being stored and deleted again, each
        case record is written once (and only if it changed), the pool once.
        """
        assert self.rules is not None
        heap = self.heaps.get(county, [])
        events: list[Any] = []
        pool_key = f"{county}|{self.run.run_id if self.run else '-'}"  # a run's own clerks
        pool = self.rules.pool(county, self.pools.get(pool_key))
        run_key = self.run.run_id if self.run else "-"
        units = TableStates(self.units, f"{county}|{run_key}|", UnitState.from_dict)
        holders = TableStates(self.holders, f"{county}|{run_key}|", str)
        register, accounts = UnitRegister(units), UtilityAccounts(holders)  # type: ignore[arg-type]
        records: dict[str, tuple[CaseRecord, dict[str, Any]]] = {}  # case -> (now, as read)
        in_memory: list[tuple[float, int, Action]] = []  # follow-ups due in this tick
        taken: list[str] = []  # pending entries executed in this tick
        later: list[Action] = []  # follow-ups for later ticks
        touched = False
        order = 0
        while True:
            stored_due = bool(heap) and heap[0][0] <= horizon
            memory_due = bool(in_memory)
            if not stored_due and not memory_due:
                break
            if memory_due and (not stored_due or in_memory[0][0] <= heap[0][0]):
                _, _, action = heapq.heappop(in_memory)
            else:
                _, key = heapq.heappop(heap)
                self.heaped.discard(key)
                data = self.pending.get(key)
                if data is None or key in taken:  # executed already (a duplicate entry)
                    continue
                taken.append(key)
                action = Action.from_dict(data)
            case_key = f"{county}|{action.case_id}"
            if case_key not in records:
                read = self.cases.get(case_key)
                records[case_key] = (CaseRecord.from_dict(read), read or {})
            record = records[case_key][0]
            started = time.perf_counter()
            follow, event = self.rules.execute(action, pool, record, register, accounts)
            self.executing.observe(time.perf_counter() - started)
            touched = True
            for nxt in follow:
                if nxt.at <= horizon:
                    order += 1
                    heapq.heappush(in_memory, (nxt.at, order, nxt))
                else:
                    later.append(nxt)
            if event is not None:
                events.append(event)

        def commit() -> None:
            """Record the tick's work in the tables (after its events are delivered)."""
            for nxt in later:
                self.plan(nxt)
            for case_key, (record, read) in records.items():
                now = record.to_dict()
                if now == read:
                    continue
                current = self.cases.get(case_key) or {}
                if current != read:  # the inputs agent changed it while we published
                    now = CaseRecord.from_dict(current).merged(record).to_dict()
                self.cases[case_key] = now
            if touched:
                self.pools[pool_key] = pool.snapshot()
            units.write_back(lambda state: state.to_dict())
            holders.write_back(str)
            for key in taken:
                self.pending.pop(key, None)

        return events, commit


class TableStates(MutableMapping[str, Any]):
    """A county's slice of a table as the dict a pure rules object expects (the property
    register's units, a utility's holders): reads on demand, writes back once a tick."""

    def __init__(self, table: Any, prefix: str, decode: Callable[[Any], Any]) -> None:
        self.table, self.prefix, self.decode = table, prefix, decode
        self.read: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self.read:
            stored = self.table.get(self.prefix + key)
            if stored is None:
                raise KeyError(key)
            self.read[key] = self.decode(stored)
        return self.read[key]

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __setitem__(self, key: str, value: Any) -> None:
        self.read[key] = value

    def __delitem__(self, key: str) -> None:
        self.read.pop(key, None)
        self.table.pop(self.prefix + key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.read)

    def __len__(self) -> int:
        return len(self.read)

    def write_back(self, encode: Callable[[Any], Any]) -> None:
        for key, value in self.read.items():
            data = encode(value)
            if self.table.get(self.prefix + key) != data:
                self.table[self.prefix + key] = data


class TrackerService(Service):
    """Observes every event, judges each case once against its targets (case.* events)."""

    def __init__(self, settings: Settings, broker_url: str, catalog: Catalog | None = None) -> None:
        super().__init__("tracker", settings, broker_url, catalog)
        app = self.app
        sources = [self.topics.submissions] + [
            self.topics.department(d.id) for d in self.catalog.departments
        ]
        self.input_topic = app.topic(*sources, **RAW)
        self.output_topic = app.topic(self.topics.cases, **RAW)
        self.cases = app.Table("cases", default=None, partitions=PARTITIONS)
        self.matters: dict[str, Matter] = {}
        self.office: WorkingCalendar | None = None
        self.judged = 0
        self.open_linked: dict[str, float] = {}  # linked transfers in flight: submitted at
        self.inputs_agent = app.agent(self.input_topic, name="tracker-inputs")(self.process_inputs)

    def make_metrics(self) -> TrackerMetrics:
        return TrackerMetrics()

    def on_run(self, run: RunAnnounced, scenario: Scenario) -> None:
        self.matters = {m: scenario.matter(self.catalog, m) for m in scenario.demand}
        self.office = scenario.office_calendar
        self.open_linked = {}
        assert isinstance(self.metrics, TrackerMetrics)
        for matter in self.matters.values():
            for target in matter.time_targets():
                self.metrics.target_value.labels(matter.id, target.metric, target.unit).set(
                    target.value
                )

    def refresh_gauges(self) -> None:
        """Consumer lag, and the linked transfers in flight (the oldest one's age)."""
        super().refresh_gauges()
        metrics = self.metrics
        assert isinstance(metrics, TrackerMetrics)
        metrics.linked_in_flight.set(len(self.open_linked))
        if self.open_linked and self.clock is not None and self.office is not None:
            oldest = min(self.open_linked.values())
            age = self.office.working_days_between(instant(oldest), instant(self.clock.now()))
            metrics.linked_oldest.set(max(age, 0.0))
        else:
            metrics.linked_oldest.set(0)

    def count(self, event: Event) -> None:
        """Metrics of a case event: linked transfers opened, verdicts judged."""
        metrics = self.metrics
        assert isinstance(metrics, TrackerMetrics)
        if event.type == "case.submitted" and event.matter in LINKED_MATTERS:
            self.open_linked.setdefault(event.case_id, event.occurred_at.timestamp())
            return
        payload = event.payload
        if isinstance(payload, CaseCompleted):
            metrics.cases.labels(event.matter, "completed").inc()
            for unit, value in payload.latency.items():
                if unit in metrics.latency:
                    metrics.latency[unit].labels(event.matter).observe(value)
            for verdict in payload.verdicts:
                metrics.verdicts.labels(
                    event.matter, verdict.metric, "met" if verdict.attained else "missed"
                ).inc()
        elif isinstance(payload, CaseRejected):
            metrics.cases.labels(event.matter, "rejected").inc()
        else:
            return
        self.open_linked.pop(event.case_id, None)
        metrics.events_out.labels(self.name, event.type).inc()

    async def process_inputs(self, stream: faust.Stream) -> Any:
        async for _message, event in self.events_of(stream):
            if event is None:
                yield None  # dead-lettered; yielding acknowledges it like any other
                continue
            matter = self.matters.get(event.matter)
            progress = CaseProgress.from_dict(self.cases.get(event.case_id))
            if matter is not None and self.office is not None and progress.observe(event):
                verdict = progress.verdict_event(matter, event, self.office)
                self.cases[event.case_id] = progress.to_dict()
                if progress.submitted is not None and event.type == "case.submitted":
                    self.count(event)
                if verdict is not None:
                    self.judged += 1
                    self.count(verdict)
                    await self.output_topic.send(
                        key=event.county.encode(), value=verdict.to_bytes()
                    )
            yield event.event_id


def tracker_app() -> faust.App:
    settings = load_settings()
    if settings.broker_url is None:
        raise RuntimeError("GOVFLOW_BROKER_URL is not set (govflow up sets it)")
    return TrackerService(settings, settings.broker_url).app


def department_app(department: str) -> faust.App:
    """The Faust app of a department, configured from the environment."""
    settings = load_settings()
    if settings.broker_url is None:
        raise RuntimeError("GOVFLOW_BROKER_URL is not set (govflow up sets it)")
    return DepartmentService(department, settings, settings.broker_url).app
