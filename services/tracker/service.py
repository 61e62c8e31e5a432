"""The tracker as a Faust stream processor: it follows every case (submissions, every
department's events, the rejections), judges each case once against its targets with
:class:`~services.tracker.progress.CaseProgress`, publishes ``case.completed`` /
``case.rejected`` on the cases topic and exports the business metrics (latency in each
target's unit, verdicts, linked transfers in flight)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.types import StreamT

from services.core.calendar import OfficeCalendar
from services.core.catalog import Catalog, Matter, load_catalog
from services.core.department import instant
from services.core.events import CaseCompleted, CaseRejected, Event
from services.core.routes import MatterRoutes
from services.core.scenario import Scenario
from services.runtime.app import CountyTable
from services.runtime.control import RunAnnounced
from services.runtime.health import TrackerMetrics
from services.runtime.service import RAW, Service
from services.runtime.settings import Settings, load_settings
from services.runtime.topology import PARTITIONS, TRACKER_TABLES, tracker_inputs
from services.tracker.progress import CaseProgress

log = logging.getLogger(__name__)

LINKED_MATTERS = frozenset({"linked_transfer"})


class TrackerService(Service):
    """Observes every event, judges each case once against its targets (case.* events)."""

    def __init__(self, settings: Settings, broker_url: str, catalog: Catalog) -> None:
        super().__init__("tracker", settings, broker_url, catalog)
        app = self.app
        self.input_topic = app.topic(*tracker_inputs(catalog, self.topics), **RAW)
        self.output_topic = app.topic(self.topics.cases, **RAW)
        # keyed "<county>|<case>" in the county's partition: the sweep may delete outside
        # an event (services.runtime.service.Service.sweep_closed)
        self.cases = cast(
            CountyTable,
            app.tables.add(
                CountyTable(
                    app,
                    name=TRACKER_TABLES[0],
                    default=None,
                    beacon=app.tables.beacon,
                    partitions=PARTITIONS,
                )
            ),
        )
        self.cases.on_recover(self.on_tables_recovered)
        self.matters: dict[str, Matter] = {}
        self.routes: dict[str, MatterRoutes] = {}
        self.office: OfficeCalendar | None = None
        self.judged = 0
        self.open_linked: dict[str, float] = {}  # linked transfers in flight: submitted at
        self.synced = False  # the cases table is recovered
        self.inputs_agent = app.agent(self.input_topic, name="tracker-inputs")(self.process_inputs)

    async def on_tables_recovered(self) -> None:
        self.note_recovered()
        self.synced = True

    def case_state(self) -> tuple[Any, Any] | None:
        return (self.cases, self.cases) if self.synced else None

    def make_metrics(self) -> TrackerMetrics:
        return TrackerMetrics()

    def on_run(self, run: RunAnnounced, scenario: Scenario) -> None:
        self.matters = {m: scenario.matter(self.catalog, m) for m in scenario.demand}
        self.routes = {m: MatterRoutes.of(matter, scenario) for m, matter in self.matters.items()}
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
        clock = self.control.clock
        if self.open_linked and clock is not None and self.office is not None:
            oldest = min(self.open_linked.values())
            age = self.office.working_days_between(instant(oldest), instant(clock.now()))
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

    async def process_inputs(self, stream: StreamT[Any]) -> AsyncIterator[Any]:
        async for message, event in self.events_of(stream):
            if event is None:
                yield None  # dead-lettered; yielding acknowledges it like any other
                continue
            matter = self.matters.get(event.matter)
            case_key = f"{event.county}|{event.case_id}"
            progress = CaseProgress.from_dict(self.cases.get(case_key))
            if matter is not None and self.office is not None and progress.observe(event):
                try:
                    verdict = progress.verdict_event(
                        matter, event, self.office, self.routes[event.matter]
                    )
                except Exception as exc:  # no input may stop the service: park it
                    log.exception("the verdict on %s could not be given", event.case_id)
                    await self.park(message, f"verdict not given: {exc!r}", "occurred_at")
                    yield None
                    continue
                if progress.submitted is not None and event.type == "case.submitted":
                    self.count(event)
                if verdict is not None:
                    # the verdict first, then the record that says it is given: a crash
                    # in between sends it again under the same id (a duplicate readers drop)
                    delivery = await self.output_topic.send(
                        key=event.county.encode(), value=verdict.to_bytes()
                    )
                    await delivery
                    self.judged += 1
                    self.count(verdict)
                    progress.close(time.time())  # judged: only the marker is kept
                self.cases[case_key] = progress.to_dict()
            yield event.event_id


def tracker_app() -> faust.App:
    settings = load_settings()
    if settings.broker_url is None:
        raise RuntimeError("GOVFLOW_BROKER_URL is not set (govflow up sets it)")
    return TrackerService(settings, settings.broker_url, load_catalog(settings.catalog_path)).app
