"""What every govflow service shares: the app, the run, strict input, dead letters.

* **the run** — a task follows the control topic (every message, outside any consumer
  group: each worker needs every announcement); a valid announcement starts the run
  (:mod:`services.runtime.control`); anything else is dead-lettered and ignored.  Input
  waits until a run is known.
* **strict input** — every message is decoded by :func:`~services.core.events.decode_event`
  under the service's catalog (``GOVFLOW_CATALOG_PATH``); a malformed one, or one for a
  case of another run, goes to the dead-letter topic with the reason, the field, the
  source topic, partition and offset and the original bytes, and the service goes on.
* **health** — metrics on the worker's port, lag per partition, the readiness marker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from faust.types import StreamT

from services.core.catalog import Catalog
from services.core.closing import closed_at, expired, serving_since
from services.core.errors import InputError
from services.core.events import Event, EventValidationError, decode_event
from services.core.scenario import Scenario
from services.core.topics import Topics
from services.runtime.app import county_partition, make_app, restore_log_level
from services.runtime.broker import bootstrap_of
from services.runtime.control import RunAnnounced, RunControl, read_announcement
from services.runtime.deadletter import DeadLetter
from services.runtime.health import ServiceMetrics, report_ready
from services.runtime.offsets import checked
from services.runtime.settings import Settings

log = logging.getLogger(__name__)

METRICS_INTERVAL = 1.0  # wall seconds between gauge refreshes
SWEEP_INTERVAL = 10.0  # wall seconds between sweeps of closed cases past the horizon
RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}


class Service:
    """A Faust app with a run, strict input and dead letters (see the module doc)."""

    def __init__(self, name: str, settings: Settings, broker_url: str, catalog: Catalog) -> None:
        self.name = name
        self.settings = settings
        self.catalog = catalog
        self.broker_url = broker_url
        self.topics = Topics(settings.topic_prefix)
        self.app = make_app(name, settings, broker_url)
        self.dead_letter_topic = self.app.topic(self.topics.dead_letters, **RAW)
        self.control = RunControl()
        self.dead_letters = 0
        self.metrics = self.make_metrics()
        self.metrics_port: int | None = None
        self._gauge_error_logged = False
        self.app.task(self.follow_control)
        self.app.task(restore_log_level)
        self.app.task(self.serve_metrics)
        self.app.task(self.report_ready)
        self.app.timer(interval=METRICS_INTERVAL)(self.observe)
        self.app.timer(interval=SWEEP_INTERVAL)(self.sweep_closed)
        self.recovered_at = time.time()  # markers age from here at the earliest
        self.recoveries = 0  # state recoveries of this worker process
        self.revoked_at: float | None = None  # wall time of the last revocation
        self.app.on_partitions_revoked.connect(self.note_revoked)  # type: ignore[arg-type]

    async def note_revoked(self, sender: Any, revoked: Any, **_: Any) -> None:
        self.revoked_at = time.time()

    def note_recovered(self) -> None:
        """The state is whole again: from when closed markers age (closing.serving_since)."""
        since = self.recovered_at if self.recoveries else None
        self.recovered_at = serving_since(since, self.revoked_at, time.time())
        self.recoveries += 1

    # -- bounded state: closed cases are forgotten after the horizon --------------------------

    def case_state(self) -> tuple[MutableMapping[str, Any], Any] | None:
        """The cases (keys ``"<county>|…"``) and the Faust table whose changelog partitions
        say which counties this worker owns; None while the state is not whole."""
        return None

    def owned_partitions(self, table: Any) -> set[int]:
        changelog = table.changelog_topic.get_topic_name()
        return {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == changelog
        }

    async def sweep_closed(self) -> int:
        """Forget the closed cases of owned counties whose marker outlived the horizon
        (:mod:`services.core.closing`); count open and closed cases.  Returns how many
        were forgotten.  Synchronous inside: no event is handled meanwhile."""
        found = self.case_state()
        if found is None or self.app.rebalancing or self.app.in_recovery:
            return 0
        cases, table = found
        owned = self.owned_partitions(table)
        now, horizon = time.time(), self.settings.closed_case_horizon_s
        forgotten = kept_open = kept_closed = 0
        for key in list(cases):
            data = cases.get(key)
            if closed_at(data) is None:
                kept_open += 1
                continue
            if county_partition(key.partition("|")[0]) in owned and expired(
                data, now, horizon, self.recovered_at
            ):
                cases.pop(key, None)
                forgotten += 1
            else:
                kept_closed += 1
        self.metrics.cases_kept.labels(self.name, "open").set(kept_open)
        self.metrics.cases_kept.labels(self.name, "closed").set(kept_closed)
        self.metrics.closed_forgotten.labels(self.name).inc(forgotten)
        return forgotten

    # -- health ---------------------------------------------------------------------------

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
            if not checked(tp.topic):  # a changelog is read only while recovering
                continue
            try:
                highwater: int | None = consumer.highwater(tp)  # None until fetched
            except Exception:  # not fetched yet
                continue
            if highwater is None:  # not fetched yet (aiokafka's answer until the first fetch)
                continue
            position = read.get(tp)
            lag = highwater - (position + 1 if position is not None else 0)
            self.metrics.consumer_lag.labels(self.name, tp.topic, str(tp.partition)).set(
                max(lag, 0)
            )

    async def report_ready(self) -> None:
        """Write the readiness marker once this worker has partitions assigned."""
        while not self.app.consumer.assignment():
            await asyncio.sleep(0.2)
        partitions = [f"{tp.topic}:{tp.partition}" for tp in self.app.consumer.assignment()]
        report_ready(self.settings.data_dir, self.name, partitions, self.metrics_port)

    # -- the run ------------------------------------------------------------------------------

    @property
    def run(self) -> RunAnnounced | None:
        return self.control.run

    def on_run(self, run: RunAnnounced, scenario: Scenario) -> None:
        """A new run was announced (override to build the run's rules)."""

    def announce(self, run: RunAnnounced, scenario: Scenario) -> bool:
        """Start ``run`` (False: it is the current run already)."""
        current = self.control.run
        if current is not None and current.run_id == run.run_id:
            return False
        self.on_run(run, scenario)
        self.control.start(run, scenario)
        log.info("run %s: %s seed %s at %gx", run.run_id, run.scenario_name, run.seed, run.speed)
        return True

    async def take_announcement(self, raw: bytes, partition: int, offset: int) -> bool:
        """A control message: start its run, or dead-letter it with the reason."""
        try:
            run, scenario = read_announcement(raw, self.catalog)
        except InputError as exc:
            log.warning("refused control message at offset %s: %s", offset, exc)
            await self.send_letter(
                DeadLetter.of(
                    self.name,
                    f"run announcement refused: {exc.reason}",
                    exc.field,
                    self.topics.control,
                    partition,
                    offset,
                    raw,
                ),
                "invalid_announcement",
            )
            return False
        return self.announce(run, scenario)

    async def follow_control(self) -> None:
        """Read every run announcement (no consumer group: each worker needs them all)."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            self.topics.control,
            bootstrap_servers=bootstrap_of(self.broker_url),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            async for message in consumer:
                try:
                    await self.take_announcement(message.value, message.partition, message.offset)
                except Exception:  # nothing on the control topic may stop the service
                    log.exception("control message at offset %s not handled", message.offset)
        finally:
            await consumer.stop()

    # -- input ------------------------------------------------------------------------------

    async def events_of(self, stream: StreamT[Any]) -> AsyncIterator[tuple[Any, Event | None]]:
        """A stream's messages with their events once the run is known (None: the message
        was dead-lettered)."""
        async for message in stream.events():
            run = await self.control.wait()
            yield message, await self.event_of(message, run)

    async def event_batches(
        self, stream: StreamT[Any], size: int, within: float
    ) -> AsyncIterator[list[tuple[Any, Event | None]]]:
        """As :meth:`events_of`, in batches of up to ``size`` messages taken within
        ``within`` seconds (``stream.take_events``: acknowledged once the batch is done)."""
        # take_events is Faust's (StreamT does not declare it)
        async for messages in stream.take_events(size, within=within):  # type: ignore[attr-defined]
            run = await self.control.wait()
            yield [(message, await self.event_of(message, run)) for message in messages]

    async def event_of(self, message: Any, run: RunAnnounced) -> Event | None:
        """The message's event under the run, or None after dead-lettering it."""
        self.metrics.events_in.labels(self.name, message.message.topic).inc()
        event = await self.decode(message)
        if event is not None and run.case_prefix and not event.case_id.startswith(run.case_prefix):
            reason = f"event for an unknown case (not of run {run.run_id})"
            await self.park(message, reason, "case_id", "invalid_event")
            return None
        return event

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
        letter = DeadLetter.of(
            self.name, reason, field, meta.topic, meta.partition, meta.offset, message.value
        )
        await self.send_letter(letter, kind)

    async def send_letter(self, letter: DeadLetter, kind: str) -> None:
        self.dead_letters += 1
        self.metrics.dead_letters.labels(self.name, kind).inc()
        await self.dead_letter_topic.send(key=self.name.encode(), value=letter.to_bytes())
