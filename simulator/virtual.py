"""The live twin without a broker: every department's state machine, one router.

A third driver of the walk (:mod:`services.core.walk`), beside the capacity engine and
the Faust services: it runs the same :class:`~services.core.department.DepartmentRules`
the services run, delivering each event to the departments whose input topics carry it
and executing each department's actions when the (virtual) sim clock reaches them.

It schedules as the engine does — an attempt that reaches the clerks at once is served
at once, an event is delivered as it is published — so that, case by case, the
departments schedule exactly what the engine simulates, fault paths included
(``tests/simulation/test_virtual_twin.py``).  It is the reference the Kafka replay is
held to.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from services.core.catalog import Catalog
from services.core.clerks import ClerkPool
from services.core.department import Action, CaseRecord, DepartmentRules, instant
from services.core.events import CaseSubmitted, Event
from services.core.routes import MatterRoutes
from services.core.scenario import Scenario
from services.core.topics import Topics
from services.core.units import buyer, unit_code
from services.core.walk import Effects
from services.tracker.progress import CaseProgress
from simulator.demand import case_id, generate_demand
from simulator.effects import keeper_for


@dataclass
class VirtualRun:
    events: list[Event] = field(default_factory=list)  # step events, in time order
    verdicts: list[Event] = field(default_factory=list)  # the tracker's case.* events
    keepers: dict[str, Effects] = field(default_factory=dict)  # each department's state


def submissions(scenario: Scenario, seed: int) -> list[Event]:
    """The case.submitted events of a scenario's demand (what the replay publishes)."""
    counties = list(scenario.counties)
    out = []
    for matter_id, arrivals in generate_demand(scenario, seed).items():
        for seq in range(len(arrivals)):
            county = counties[int(arrivals.county[seq])]
            unit = arrivals.unit[seq] if arrivals.unit is not None else seq
            case = case_id(matter_id, seq)
            out.append(
                Event(
                    type="case.submitted",
                    case_id=case,
                    matter=matter_id,
                    county=county,
                    occurred_at=instant(float(arrivals.submitted[seq])),
                    correlation_id=uuid4(),
                    payload=CaseSubmitted(
                        applicant=f"申请人-{seq}",
                        unit_code=unit_code(int(arrivals.county[seq]), int(unit)),
                        attributes={
                            "seq": seq,
                            "segment": int(arrivals.segment[seq]),
                            "owner": buyer(case),
                        },
                    ),
                )
            )
    out.sort(key=lambda e: e.occurred_at)
    return out


class _Router:
    """Every department of a run, their mailboxes (by topic) and the sim clock."""

    def __init__(
        self,
        catalog: Catalog,
        scenario: Scenario,
        seed: int,
        backfill_working_days: float,
        delivery_delay: Callable[[], float] | None,
    ) -> None:
        self.scenario = scenario
        self.topics = topics = Topics()
        self.departments = sorted(
            {
                s.department
                for m, d in scenario.demand.items()
                if d.per_year > 0
                for s in scenario.matter(catalog, m).steps
            }
        )
        self.rules = {
            d: DepartmentRules(catalog, scenario, d, seed, backfill_working_days)
            for d in self.departments
        }
        self.inputs = {d: set(topics.inputs_of(catalog, d)) for d in self.departments}
        self.run = VirtualRun(keepers={d: keeper_for(d) for d in self.departments})
        self.pools: dict[tuple[str, str], ClerkPool] = {}
        self.cases: dict[tuple[str, str], CaseRecord] = {}
        self.tracked: dict[str, CaseProgress] = {}
        self.matters = {m: scenario.matter(catalog, m) for m in scenario.demand}
        self.routes = {m: MatterRoutes.of(matter, scenario) for m, matter in self.matters.items()}
        self.delivery_delay = delivery_delay
        self.order = itertools.count()
        self.queue: list[tuple[float, int, str, Any]] = []

    def push(self, at: float, kind: str, item: Any) -> None:
        heapq.heappush(self.queue, (at, next(self.order), kind, item))

    def track(self, event: Event) -> None:
        progress = self.tracked.setdefault(event.case_id, CaseProgress())
        if progress.observe(event):
            matter = self.matters[event.matter]
            verdict = progress.verdict_event(
                matter, event, self.scenario.office_calendar, self.routes[event.matter]
            )
            if verdict is not None:
                self.run.verdicts.append(verdict)

    def deliver(self, now: float, topic: str, event: Event) -> None:
        for dept in self.departments:
            if topic in self.inputs[dept]:
                record = self.cases.setdefault((dept, event.case_id), CaseRecord())
                for action in self.rules[dept].on_event(event, record):
                    self.plan(now, dept, action)

    def publish(self, now: float, dept: str, event: Event) -> None:
        self.run.events.append(event)
        self.track(event)
        topics = self.topics
        topic = topics.rejections if event.type.endswith(".rejected") else topics.department(dept)
        if self.delivery_delay is None:
            self.deliver(now, topic, event)
        else:
            self.push(now + self.delivery_delay(), "delivery", (topic, event))

    def plan(self, now: float, dept: str, action: Action) -> None:
        # as the engine does: work reaching the clerks now is served now, a lock is
        # released when the rejection is heard; anything else waits for its time
        if action.kind in ("arrive", "release") and action.at <= now:
            self.execute(now, dept, action)
        else:
            at = action.at if action.at > now else now  # a late event is acted on now
            self.push(at, "action", (dept, action))

    def execute(self, now: float, dept: str, action: Action) -> None:
        key = (dept, action.county)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = self.rules[dept].pool(action.county, None)
        record = self.cases[(dept, action.case_id)]
        follow, event = self.rules[dept].execute(action, pool, record, self.run.keepers[dept])
        if event is not None:
            self.publish(now, dept, event)
        for nxt in follow:
            self.plan(now, dept, nxt)

    def run_until_done(self, seed: int) -> VirtualRun:
        for event in submissions(self.scenario, seed):
            self.push(event.occurred_at.timestamp(), "delivery", (self.topics.submissions, event))
        while self.queue:
            now, _, kind, item = heapq.heappop(self.queue)
            if kind == "delivery":
                topic, event = item
                if topic == self.topics.submissions:
                    self.track(event)
                self.deliver(now, topic, event)
            else:
                self.execute(now, *item)
        return self.run


def run_virtual(
    catalog: Catalog,
    scenario: Scenario,
    seed: int,
    *,
    backfill_working_days: float = 0.0,
    delivery_delay: Callable[[], float] | None = None,
) -> VirtualRun:
    """Route events between the department rules in sim-time order, without a broker.

    ``delivery_delay`` (sim seconds per delivery) models transit and consumer delay: a
    department then receives an event late, and acts on it at the receipt time (its
    arrival time is still the event's), as a live department does when the clock has
    passed. ``backfill_working_days`` is passed to the departments' clerk pools.
    """
    router = _Router(catalog, scenario, seed, backfill_working_days, delivery_delay)
    return router.run_until_done(seed)
