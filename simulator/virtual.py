"""The live twin without a broker: every department's state machine, one router.

Runs the same :class:`~services.core.department.DepartmentRules` the Faust services
run, delivering each event to the departments whose input topics carry it and
executing each department's actions when the (virtual) sim clock reaches them.  It is
the reference the Kafka replay is held to, and it shows — case by case — that the
department logic schedules exactly what the capacity engine simulates.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from services.core import saga
from services.core.catalog import Catalog
from services.core.clerks import ClerkPool
from services.core.department import Action, CaseRecord, DepartmentRules, instant
from services.core.events import CaseSubmitted, Event
from services.core.scenario import Scenario
from services.core.topics import Topics
from services.core.tracking import CaseProgress
from simulator.demand import case_id, generate_demand


@dataclass
class VirtualRun:
    events: list[Event] = field(default_factory=list)  # step events, in time order
    verdicts: list[Event] = field(default_factory=list)  # the tracker's case.* events


def submissions(scenario: Scenario, seed: int) -> list[Event]:
    """The case.submitted events of a scenario's demand (what the replay publishes)."""
    counties = list(scenario.counties)
    out = []
    for matter_id, arrivals in generate_demand(scenario, seed).items():
        for seq in range(len(arrivals)):
            county = counties[int(arrivals.county[seq])]
            unit = arrivals.unit[seq] if arrivals.unit is not None else seq
            unit_code = saga.unit_code(int(arrivals.county[seq]), int(unit))
            out.append(
                Event(
                    type="case.submitted",
                    case_id=case_id(matter_id, seq),
                    matter=matter_id,
                    county=county,
                    occurred_at=instant(float(arrivals.submitted[seq])),
                    correlation_id=uuid4(),
                    payload=CaseSubmitted(
                        applicant=f"申请人-{seq}",
                        unit_code=unit_code,
                        attributes={
                            "seq": seq,
                            "segment": int(arrivals.segment[seq]),
                            "owner": f"买受人-{case_id(matter_id, seq)}",
                        },
                    ),
                )
            )
    out.sort(key=lambda e: e.occurred_at)
    return out


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
    topics = Topics()
    departments = sorted(
        {
            s.department
            for m, d in scenario.demand.items()
            if d.per_year > 0
            for s in scenario.matter(catalog, m).steps
        }
    )
    rules = {
        d: DepartmentRules(catalog, scenario, d, seed, backfill_working_days) for d in departments
    }
    inputs = {d: set(topics.inputs_of(catalog, d)) for d in departments}
    pools: dict[tuple[str, str], ClerkPool] = {}
    cases: dict[tuple[str, str], CaseRecord] = {}
    order = itertools.count()
    queue: list[tuple[float, int, str, Any]] = []
    for event in submissions(scenario, seed):
        heapq.heappush(
            queue,
            (event.occurred_at.timestamp(), next(order), "event", (topics.submissions, event)),
        )

    def deliver(now: float, topic: str, event: Any) -> None:
        for dept in departments:
            if topic not in inputs[dept]:
                continue
            record = cases.setdefault((dept, event.case_id), CaseRecord())
            for action in rules[dept].on_event(event, record):
                at = action.at if action.at > now else now  # a late event is acted on now
                heapq.heappush(queue, (at, next(order), "action", (dept, action)))

    run = VirtualRun()
    tracked: dict[str, CaseProgress] = {}
    matters = {m: scenario.matter(catalog, m) for m in scenario.demand}
    while queue:
        now, _, kind, item = heapq.heappop(queue)
        if kind == "event":
            topic, event = item
            if topic != topics.submissions:
                run.events.append(event)
            progress = tracked.setdefault(event.case_id, CaseProgress())
            if progress.observe(event):
                verdict = progress.verdict_event(
                    matters[event.matter], event, scenario.office_calendar
                )
                if verdict is not None:
                    run.verdicts.append(verdict)
            if delivery_delay is None:
                deliver(now, topic, event)
            else:
                heapq.heappush(queue, (now + delivery_delay(), next(order), "delivery", item))
            continue
        if kind == "delivery":
            deliver(now, *item)
            continue
        dept, action = item
        assert isinstance(action, Action)
        key = (dept, action.county)
        pool = pools.get(key)
        if pool is None:
            pool = pools[key] = rules[dept].pool(action.county, None)
        follow, event = rules[dept].execute(action, pool, cases[(dept, action.case_id)])
        for nxt in follow:
            at = nxt.at if nxt.at > now else now
            heapq.heappush(queue, (at, next(order), "action", (dept, nxt)))
        if event is not None:
            heapq.heappush(
                queue,
                (
                    max(event.occurred_at.timestamp(), now),  # emitted once it is due
                    next(order),
                    "event",
                    (topics.department(dept), event),
                ),
            )
    return run
