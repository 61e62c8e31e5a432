"""A department as a pure state machine: what a live department service decides.

A department service reads events (submissions, other departments' completions), and
for each step of its own that becomes enabled it plans *actions* on the sim clock:

* ``arrive`` — the case reaches the clerks (at once, or after a block delay, or when a
  reworked attempt comes back); executing it assigns a clerk from the county's pool;
* ``complete`` — the step attempt is done; executing it emits the completion event
  (``done``, ``rework`` or ``rejected``) and, after rework, plans the next attempt.

Actions run in time order when the sim clock reaches them — exactly the order in which
the capacity engine's SimPy events fire — and both use :mod:`services.core.stepping`
and the same seeded draws, so a replay and a simulation of one scenario and seed agree.

State is plain JSON-able data so that the service can keep it in changelog-backed
tables: per case (``CaseRecord``: events seen, joins, rejection) and per county (the
clerk pool).  Every input is deduplicated by event id; every action by its key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid5

from services.core import stepping
from services.core.calendar import SHANGHAI
from services.core.catalog import Catalog, Matter, Step
from services.core.clerks import ClerkPool
from services.core.events import (
    CaseSubmitted,
    Event,
    PropertyTransferred,
    StepCompleted,
    UtilityTransferred,
)
from services.core.saga import UnitRegister, UtilityAccounts
from services.core.scenario import Scenario
from services.core.steps import StepModel

ActionKind = Literal["arrive", "complete", "release"]
#: Namespace of completion event ids (uuid5 of case, step and attempt).
COMPLETIONS = UUID("6b7c3f0e-7a53-5f0a-9d55-0c1f4c2e6a11")


def instant(posix: float) -> datetime:
    return datetime.fromtimestamp(posix, tz=SHANGHAI)


@dataclass
class CaseRecord:
    """What a department remembers about one case."""

    seen: list[str] = field(default_factory=list)  # input event ids already handled
    joins: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> pred -> done
    enabled: list[str] = field(default_factory=list)  # "step/attempt" already planned
    rejected: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CaseRecord:
        return cls(**data) if data else cls()

    def merged(self, other: CaseRecord) -> CaseRecord:
        """Both records' knowledge (a grow-only merge: ids seen, joins, attempts planned,
        rejection) — for two writers that changed the same case concurrently."""
        joins = {step: dict(preds) for step, preds in self.joins.items()}
        for step, preds in other.joins.items():
            joins.setdefault(step, {}).update(preds)
        return CaseRecord(
            seen=self.seen + [i for i in other.seen if i not in self.seen],
            joins=joins,
            enabled=self.enabled + [m for m in other.enabled if m not in self.enabled],
            rejected=self.rejected or other.rejected,
        )


@dataclass
class Action:
    """A planned step of work on the sim clock (JSON-able for a table)."""

    at: float  # POSIX sim time
    kind: ActionKind
    case_id: str
    matter: str
    county: str
    step: str
    attempt: int  # 0-based
    seq: int
    segment: int
    enabled: float
    arrived: float = 0.0
    start_w: int | None = None
    clerk: int = -1
    correlation_id: str = ""
    causation_id: str = ""
    unit_code: str | None = None
    owner: str | None = None

    @property
    def key(self) -> str:
        return f"{self.case_id}/{self.step}/{self.attempt}/{self.kind}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        return cls(**data)


def case_seq(case_id: str) -> int:
    """The sequence number at the end of a case id (``matter-0000123``)."""
    tail = case_id.rsplit("-", 1)[-1]
    if not tail.isdigit():
        raise ValueError(f"case id {case_id!r} does not end with its sequence number")
    return int(tail)


class DepartmentRules:
    """The steps one department performs, and how it reacts to events about them."""

    def __init__(
        self,
        catalog: Catalog,
        scenario: Scenario,
        department: str,
        seed: int,
        backfill_working_days: float = 0.0,
    ) -> None:
        """``backfill_working_days``: how long the clerk pools keep idle gaps for late
        arrivals (see :class:`~services.core.clerks.ClerkPool`); 0 = strict FIFO."""
        self.catalog = catalog
        self.scenario = scenario
        self.department = department
        self.seed = seed
        self.calendar = scenario.calendar(department)
        self.office = scenario.office_calendar
        self.matters: dict[str, Matter] = {
            m: scenario.matter(catalog, m) for m, d in scenario.demand.items() if d.per_year > 0
        }
        self._models: dict[tuple[str, str], StepModel] = {}
        self.backfill_us = round(backfill_working_days * self.calendar.day_us)
        self.faults = stepping.DepartmentFaults.of(scenario, department)

    # -- what this department does ------------------------------------------------------

    def performs(self, matter_id: str, step_id: str) -> bool:
        matter = self.matters.get(matter_id)
        return matter is not None and any(
            s.id == step_id and s.department == self.department for s in matter.steps
        )

    def model(self, matter_id: str, step: Step) -> StepModel:
        key = (matter_id, step.id)
        if key not in self._models:
            calendar = self.office if step.kind == "external" else self.calendar
            self._models[key] = StepModel(self.scenario, matter_id, step, self.seed, calendar)
        return self._models[key]

    def _scale(self, matter_id: str, segment: int) -> float:
        segments = self.scenario.demand[matter_id].segments
        return segments[segment].time_scale if 0 <= segment < len(segments) else 1.0

    def pool(self, county: str, state: dict[str, Any] | None) -> ClerkPool:
        """The county's clerk pool, restored from its table state or new."""
        name = f"{self.department}/{county}"
        if state:
            return ClerkPool.restore(state, name)
        return ClerkPool(self.scenario.clerks(self.department, county), name, self.backfill_us)

    # -- input --------------------------------------------------------------------------

    def on_event(self, event: Event, case: CaseRecord) -> list[Action]:
        """React to an input event; mutates ``case``; returns the actions to plan.

        Idempotent: an event id seen before changes nothing.
        """
        event_id = str(event.event_id)
        if event_id in case.seen:
            return []
        case.seen.append(event_id)
        matter = self.matters.get(event.matter)
        if matter is None or case.rejected:
            return []
        payload = event.payload
        at = event.occurred_at.timestamp()
        ids = (str(event.correlation_id), event_id)
        if isinstance(payload, CaseSubmitted):
            seq = int(payload.attributes.get("seq", case_seq(event.case_id)))
            segment = int(payload.attributes.get("segment", -1))
            owner = payload.attributes.get("owner")
            return [
                self._enable(
                    event,
                    matter,
                    step,
                    0,
                    at,
                    seq,
                    segment,
                    ids,
                    payload.unit_code,
                    str(owner) if owner is not None else None,
                    case,
                )
                for step in matter.entry_steps
                if step.department == self.department
            ]
        if not isinstance(payload, StepCompleted):
            return []
        if payload.outcome == "rejected":
            case.rejected = True
            return self._release_lock(event, matter, case)
        if payload.outcome != "done":
            return []
        seq = payload.seq if payload.seq is not None else case_seq(event.case_id)
        unit_code, owner = payload.unit_code, payload.owner
        actions = []
        for successor in matter.successors(payload.step):
            if successor.department != self.department:
                continue
            joined = case.joins.setdefault(successor.id, {})
            joined[payload.step] = at
            if f"{successor.id}/0" in case.enabled:  # planned already (a repeated event)
                continue
            if set(successor.depends_on) <= set(joined):
                actions.append(
                    self._enable(
                        event,
                        matter,
                        successor,
                        0,
                        max(joined.values()),
                        seq,
                        payload.segment,
                        ids,
                        unit_code,
                        owner,
                        case,
                    )
                )
        return [a for a in actions if a is not None]

    def _enable(
        self,
        event: Event,
        matter: Matter,
        step: Step,
        attempt: int,
        at: float,
        seq: int,
        segment: int,
        ids: tuple[str, str],
        unit_code: str | None,
        owner: str | None,
        case: CaseRecord,
    ) -> Action:
        mark = f"{step.id}/{attempt}"
        if mark not in case.enabled:
            case.enabled.append(mark)
        draw = self.model(matter.id, step).draw(seq, attempt, self._scale(matter.id, segment))
        base = dict(
            case_id=event.case_id,
            matter=matter.id,
            county=event.county,
            step=step.id,
            attempt=attempt,
            seq=seq,
            segment=segment,
            enabled=at,
            correlation_id=ids[0],
            causation_id=ids[1],
            unit_code=unit_code,
            owner=owner,
        )
        if step.kind == "external":
            done = stepping.external_done(draw, at, self.office)
            return Action(at=done, kind="complete", arrived=at, **base)  # type: ignore[arg-type]
        arrived = stepping.arrival(draw, at, self.calendar, self.faults)
        return Action(at=arrived, kind="arrive", arrived=arrived, **base)  # type: ignore[arg-type]

    def _release_lock(self, event: Event, matter: Matter, case: CaseRecord) -> list[Action]:
        """The saga's pivot refused the case: if this department locked its unit, plan
        the release (published as ``property.released``)."""
        locks = [s for s in matter.steps if s.effect == "lock" and s.department == self.department]
        payload = event.payload
        if (
            not locks
            or f"{locks[0].id}/0" not in case.enabled
            or f"{locks[0].id}/release" in case.enabled
        ):
            return []
        case.enabled.append(f"{locks[0].id}/release")
        assert isinstance(payload, StepCompleted)
        at = event.occurred_at.timestamp()
        return [
            Action(
                at=at,
                kind="release",
                case_id=event.case_id,
                matter=matter.id,
                county=event.county,
                step=locks[0].id,
                attempt=0,
                seq=payload.seq if payload.seq is not None else case_seq(event.case_id),
                segment=payload.segment,
                enabled=at,
                arrived=at,
                correlation_id=str(event.correlation_id),
                causation_id=str(event.event_id),
                unit_code=payload.unit_code,
                owner=payload.owner,
            )
        ]

    # -- the clock ------------------------------------------------------------------------

    def execute(
        self,
        action: Action,
        pool: ClerkPool,
        case: CaseRecord,
        register: UnitRegister | None = None,
        accounts: UtilityAccounts | None = None,
    ) -> tuple[list[Action], Event | None]:
        """Carry out a due action: assign a clerk, or emit the completion (and plan a
        reworked or retried attempt), or release a unit's lock.  ``register`` (property)
        and ``accounts`` (a utility) are the saga state a step's ``effect`` changes.
        Returns follow-up actions and the event to publish."""
        matter = self.matters[action.matter]
        step = matter.step(action.step)
        if action.kind == "release":
            if register is None or action.unit_code is None:
                return [], None
            if not register.release(action.unit_code, action.case_id):
                return [], None
            return [], self._completion_event(
                action, matter, step, stepping.Outcome.DONE, "released", "税务审核未通过: 解除锁定"
            )
        if case.rejected:
            return [], None
        draw = self.model(matter.id, step).draw(
            action.seq, action.attempt, self._scale(matter.id, action.segment)
        )
        if action.kind == "arrive":
            served = stepping.serve(pool, self.calendar, action.arrived, draw)
            follow = Action(
                **{
                    **action.to_dict(),
                    "at": served.done,
                    "kind": "complete",
                    "start_w": served.start_w,
                    "clerk": served.clerk,
                }
            )
            return [follow], None
        result = stepping.outcome(draw, action.at, self.faults)
        reason = ""
        if result is stepping.Outcome.DONE and step.effect and action.unit_code:
            if step.effect == "account":
                if accounts is not None:
                    accounts.transfer(action.unit_code, action.owner or "")
            elif register is not None:
                decision = register.apply(
                    step.effect, action.unit_code, action.case_id, action.owner
                )
                if not decision.ok:
                    result, reason = stepping.Outcome.REJECT, decision.reason
        event = self._completion_event(action, matter, step, result, reason=reason)
        if result is stepping.Outcome.REJECT:
            case.rejected = True
            return [], event
        if result is stepping.Outcome.RETRY:
            again = stepping.retry_at(action.at, action.attempt, self.faults)
            retry = Action(
                **{
                    **action.to_dict(),
                    "at": again,
                    "kind": "arrive",
                    "attempt": action.attempt + 1,
                    "enabled": again,
                    "arrived": stepping.arrival(
                        draw._replace(block_delay=None), again, self.calendar, self.faults
                    ),
                    "start_w": None,
                    "clerk": -1,
                }
            )
            retry.at = retry.arrived
            case.enabled.append(f"{step.id}/{action.attempt + 1}")
            return [retry], event
        if result is stepping.Outcome.REWORK:
            again = stepping.rework_at(draw, action.at, self.calendar)
            retry = Action(
                **{
                    **action.to_dict(),
                    "at": again,
                    "kind": "arrive",
                    "attempt": action.attempt + 1,
                    "enabled": again,
                    "arrived": again,
                    "start_w": None,
                    "clerk": -1,
                }
            )
            case.enabled.append(f"{step.id}/{action.attempt + 1}")
            return [retry], event
        return [], event

    def _work_seconds(self, matter: Matter, step: Step, action: Action) -> float | None:
        if step.kind == "external":
            return None
        draw = self.model(matter.id, step).draw(
            action.seq, action.attempt, self._scale(matter.id, action.segment)
        )
        return draw.service.us / 1e6 if draw.service is not None else None

    def _completion_event(
        self,
        action: Action,
        matter: Matter,
        step: Step,
        result: stepping.Outcome,
        special: str | None = None,
        reason: str = "",
    ) -> Event:
        if action.start_w is None:  # external step: no clerk
            started = action.arrived
        else:
            started = self.calendar.posix_at(action.start_w, at_start=True)
        common: dict[str, Any] = dict(
            step=step.id,
            department=step.department,
            clerk=f"{step.department}/{action.county}/{action.clerk + 1}"
            if action.clerk >= 0
            else None,
            enabled_at=instant(action.enabled),
            arrived_at=instant(action.arrived),
            started_at=instant(max(started, action.arrived)),
            attempt=action.attempt + 1,
            seq=action.seq,
            segment=action.segment,
            unit_code=action.unit_code,
            owner=action.owner,
            work_seconds=self._work_seconds(matter, step, action),
        )
        event_type = step.emits
        payload: StepCompleted
        if special == "released":
            event_type = "property.released"
            payload = StepCompleted(outcome="released", reason=reason, **common)
        elif result is stepping.Outcome.REJECT:
            event_type = f"{step.department}.rejected"
            payload = StepCompleted(
                outcome="rejected", reason=reason or f"{step.name}: 不予办理", **common
            )
        elif result is stepping.Outcome.RETRY:
            event_type = "step.retried"
            payload = StepCompleted(outcome="retry", reason="故障或停运: 稍后重试", **common)
        elif result is stepping.Outcome.REWORK:
            event_type = "step.reworked"
            payload = StepCompleted(outcome="rework", reason="容缺: 补正材料", **common)
        elif event_type == "property.transferred":
            payload = PropertyTransferred(**common)
        elif event_type == "utility.transferred":
            payload = UtilityTransferred(utility=step.department, holder=action.owner, **common)
        else:
            payload = StepCompleted(**common)
        return Event(
            # the same attempt always gets the same id: a re-executed action (after a
            # crash, a repeated tick) publishes a duplicate that every reader drops
            event_id=uuid5(
                COMPLETIONS,
                f"{action.case_id}/{step.id}/{action.attempt}"
                + ("/released" if special == "released" else ""),
            ),
            type=event_type,
            case_id=action.case_id,
            matter=matter.id,
            county=action.county,
            occurred_at=instant(action.at),
            causation_id=UUID(action.causation_id),
            correlation_id=UUID(action.correlation_id),
            payload=payload,
        )
