"""A department as a pure state machine: the live driver of the walk.

A department service reads events (submissions, other departments' completions and
rejections) and runs the walk (:mod:`services.core.walk`) for the steps it performs.
What it cannot do at once — an attempt reaching the clerks later (a block, a hold), a
clerk finishing, a retried or corrected attempt — it plans as an :class:`Action` on the
sim clock:

* ``enable`` — a retried or corrected attempt is enabled (the walk said when);
* ``arrive`` — the attempt reaches the clerks: the county's pool assigns a clerk;
* ``complete`` — the attempt is done: the walk's outcome is published as an event (its
  id is fixed by case, step and attempt) and the successors this department performs
  are enabled at once; other departments hear of the completion from the event;
* ``release`` — a case it had locked a unit for was rejected elsewhere: the lock is
  released (``property.released``).

Actions run in time order when the sim clock reaches them — the order in which the
capacity engine's SimPy events fire — so a replay and a simulation of one scenario and
seed agree case by case (``tests/simulation/test_virtual_twin.py``).

State is plain JSON-able data so that the service can keep it in changelog-backed
tables: per case (:class:`CaseRecord`: events seen, the steps it knows are done,
rejection) and per county (the clerk pool).  Every input is deduplicated by event id,
every action by its key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast
from uuid import UUID

from services.core.calendar import SHANGHAI
from services.core.catalog import Catalog, Matter
from services.core.clerks import ClerkPool
from services.core.closing import closed_marker
from services.core.events import (
    CaseSubmitted,
    Event,
    PropertyTransferred,
    StepCompleted,
    Utility,
    UtilityTransferred,
    completion_id,
)
from services.core.scenario import Scenario
from services.core.walk import (
    NO_EFFECTS,
    CaseState,
    Effects,
    Finished,
    MatterWalk,
    Outcome,
    Subject,
)

ActionKind = Literal["enable", "arrive", "complete", "release"]
RELEASE_REASON = "税务审核未通过: 解除锁定"


def instant(posix: float) -> datetime:
    return datetime.fromtimestamp(posix, tz=SHANGHAI)


@dataclass
class CaseRecord:
    """What a department remembers about one case."""

    seen: list[str] = field(default_factory=list)  # input event ids already handled
    done: dict[str, float] = field(default_factory=dict)  # steps known done -> when
    rejected: bool = False
    closed: float | None = None  # wall time this department was done with the case
    segment: int = -1  # the case's segment: which route it takes

    def to_dict(self) -> dict[str, Any]:
        if self.closed is not None:
            return closed_marker(self.closed)
        # copies (not asdict's recursive walk, a tenth of the cost): the stored value
        # must not change with the record
        return {
            "seen": list(self.seen),
            "done": dict(self.done),
            "rejected": self.rejected,
            "segment": self.segment,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CaseRecord:
        return cls(**data) if data else cls()

    def close(self, wall: float) -> None:
        """Forget the case but that it is closed (:mod:`services.core.closing`)."""
        self.seen, self.done, self.rejected, self.closed = [], {}, False, wall

    def state(self, walk: MatterWalk, subject: Subject | None) -> CaseState:
        """The walk's view of this record."""
        index = walk.graph.index
        return CaseState(
            {index[s]: t for s, t in self.done.items()},
            self.rejected,
            subject,
            walk.graph_of(self.segment),
        )

    def keep(self, walk: MatterWalk, state: CaseState) -> None:
        """Take back what the walk changed."""
        steps = walk.matter.steps
        self.done = {steps[i].id: t for i, t in sorted(state.done.items())}
        self.rejected = state.rejected


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
        return dict(self.__dict__)  # every field a scalar: asdict's deep copy is not needed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        return cls(**data)

    def then(self, kind: ActionKind, at: float, **changes: Any) -> Action:
        """The next action of the same case and step."""
        return Action(**{**self.to_dict(), "kind": kind, "at": at, **changes})

    @property
    def subject(self) -> Subject:
        return Subject(self.case_id, self.unit_code, self.owner)


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
        self.walks: dict[str, MatterWalk] = {}
        for matter_id, demand in scenario.demand.items():
            matter = scenario.matter(catalog, matter_id)
            if demand.per_year > 0 and any(s.department == department for s in matter.steps):
                self.walks[matter_id] = MatterWalk(scenario, matter, seed)
        self.backfill_us = round(backfill_working_days * self.calendar.day_us)

    @property
    def matters(self) -> dict[str, Matter]:
        return {m: w.matter for m, w in self.walks.items()}

    def performs(self, matter_id: str, step_id: str) -> bool:
        walk = self.walks.get(matter_id)
        return walk is not None and any(
            s.id == step_id and s.department == self.department for s in walk.matter.steps
        )

    def pool(self, county: str, state: dict[str, Any] | None) -> ClerkPool:
        """The county's clerk pool, restored from its table state or new."""
        name = f"{self.department}/{county}"
        if state:
            return ClerkPool.restore(state, name)
        return ClerkPool(self.scenario.clerks(self.department, county), name, self.backfill_us)

    def finished(self, matter_id: str, record: CaseRecord) -> bool:
        """This department is done with the case: rejected, or every step it performs
        for the matter is done (what it may close once none of its work is pending)."""
        if record.closed is not None or record.rejected:
            return True
        walk = self.walks.get(matter_id)
        if walk is None:
            return True
        graph = walk.graph_of(record.segment)
        own = [
            s.id
            for s, here in zip(walk.matter.steps, graph.present, strict=True)
            if here and s.department == self.department
        ]
        return all(step in record.done for step in own)

    # -- input --------------------------------------------------------------------------

    def on_event(self, event: Event, record: CaseRecord) -> list[Action]:
        """React to an input event; mutates ``record``; returns the actions to plan.

        Idempotent: an event id seen before changes nothing, nor does any event for a
        case this department has closed (a late duplicate).
        """
        event_id = str(event.event_id)
        if record.closed is not None or event_id in record.seen:
            return []
        record.seen.append(event_id)
        walk = self.walks.get(event.matter)
        if walk is None:
            return []
        payload = event.payload
        at = event.occurred_at.timestamp()
        base = self._base(event, walk)
        if base is None:
            return []
        record.segment = base["segment"]
        state = record.state(walk, Subject(event.case_id, base["unit_code"], base["owner"]))
        actions: list[Action] = []
        if isinstance(payload, CaseSubmitted):
            assert state.graph is not None
            for si in state.graph.entry:
                actions += self._begin(walk, state, base, si, 0, at)
        elif isinstance(payload, StepCompleted) and payload.outcome == "done":
            si = walk.graph.index[payload.step]
            for nxt, enabled in walk.done(state, si, at).ready:
                actions += self._begin(walk, state, base, nxt, 0, enabled)
        elif isinstance(payload, StepCompleted) and payload.outcome == "rejected":
            lock = walk.graph.lock_step
            if walk.reject(state) and lock is not None and self._mine(walk, lock):
                step = walk.matter.steps[lock].id
                fields = {**base, "arrived": at}
                actions.append(Action(at=at, kind="release", step=step, attempt=0, **fields))
        record.keep(walk, state)
        return actions

    def _base(self, event: Event, walk: MatterWalk) -> dict[str, Any] | None:
        """What every action of the case carries (identity, draws, unit, owner)."""
        payload = event.payload
        if isinstance(payload, CaseSubmitted):
            attrs = payload.attributes
            seq = int(attrs.get("seq", case_seq(event.case_id)))
            segment = int(attrs.get("segment", -1))
            owner = attrs.get("owner")
            unit, buyer = payload.unit_code, str(owner) if owner is not None else None
        elif isinstance(payload, StepCompleted):
            seq = payload.seq if payload.seq is not None else case_seq(event.case_id)
            segment, unit, buyer = payload.segment, payload.unit_code, payload.owner
        else:
            return None
        return dict(
            case_id=event.case_id,
            matter=walk.matter.id,
            county=event.county,
            seq=seq,
            segment=segment,
            enabled=event.occurred_at.timestamp(),
            correlation_id=str(event.correlation_id),
            causation_id=str(event.event_id),
            unit_code=unit,
            owner=buyer,
        )

    def _mine(self, walk: MatterWalk, si: int) -> bool:
        return walk.graph.departments[si] == self.department

    def _begin(
        self,
        walk: MatterWalk,
        state: CaseState,
        base: dict[str, Any],
        si: int,
        attempt: int,
        enabled: float,
    ) -> list[Action]:
        """Enable an attempt of one of this department's steps: where the walk says it
        goes next (the clerks, or — external — its completion)."""
        if not self._mine(walk, si):
            return []
        at = walk.begin(state, base["seq"], si, attempt, enabled)
        if at is None:
            return []
        fields = {**base, "step": walk.matter.steps[si].id, "attempt": attempt}
        fields["enabled"] = enabled
        if walk.graph.external[si]:
            return [Action(at=at, kind="complete", arrived=enabled, **fields)]
        return [Action(at=at, kind="arrive", arrived=at, **fields)]

    # -- the clock ------------------------------------------------------------------------

    def execute(
        self,
        action: Action,
        pool: ClerkPool,
        record: CaseRecord,
        effects: Effects = NO_EFFECTS,
    ) -> tuple[list[Action], Event | None]:
        """Carry out a due action: enable an attempt, assign a clerk, finish an attempt
        (publish its completion and enable what follows), or release a unit's lock.
        ``effects`` is the state this department's steps change (property's register, a
        utility's accounts).  Returns follow-up actions and the event to publish."""
        if record.closed is not None:  # a stale action of a closed case: nothing to do
            return [], None
        walk = self.walks[action.matter]
        si = walk.graph.index[action.step]
        state = record.state(walk, action.subject)
        follow: list[Action] = []
        event: Event | None = None
        if action.kind == "release":
            if walk.release(state, effects):
                event = self._event(walk, action, si, "released", RELEASE_REASON)
        elif action.kind == "enable":
            base = self._carried(action)
            follow = self._begin(walk, state, base, si, action.attempt, action.at)
        elif action.kind == "arrive":
            served = walk.serve(
                state, pool, action.seq, action.segment, si, action.attempt, action.arrived
            )
            if served is not None:
                follow = [
                    action.then("complete", served.done, start_w=served.start_w, clerk=served.clerk)
                ]
        else:
            finished = walk.finish(state, action.seq, si, action.attempt, action.at, effects)
            if finished is not None:
                event = self._finished_event(walk, action, si, finished)
                follow = self._after(walk, state, action, si, finished)
        record.keep(walk, state)
        return follow, event

    def _carried(self, action: Action) -> dict[str, Any]:
        keep = (
            "case_id",
            "matter",
            "county",
            "seq",
            "segment",
            "correlation_id",
            "causation_id",
            "unit_code",
            "owner",
        )
        return {k: getattr(action, k) for k in keep}

    def _after(
        self, walk: MatterWalk, state: CaseState, action: Action, si: int, finished: Finished
    ) -> list[Action]:
        """What follows a finished attempt here: the next attempt, or own successors."""
        if finished.again is not None:
            again = finished.again
            return [
                action.then(
                    "enable",
                    again,
                    attempt=action.attempt + 1,
                    enabled=again,
                    arrived=again,
                    start_w=None,
                    clerk=-1,
                )
            ]
        base = self._carried(action)
        out: list[Action] = []
        for nxt, enabled in finished.ready:
            out += self._begin(walk, state, base, nxt, 0, enabled)
        return out

    # -- events ------------------------------------------------------------------------------

    def _finished_event(
        self, walk: MatterWalk, action: Action, si: int, finished: Finished
    ) -> Event:
        outcome = finished.outcome
        if outcome is Outcome.REJECT:
            return self._event(walk, action, si, "rejected", finished.reason)
        if outcome is Outcome.RETRY:
            return self._event(walk, action, si, "retry", finished.reason)
        if outcome is Outcome.REWORK:
            return self._event(walk, action, si, "rework", finished.reason)
        return self._event(walk, action, si, "done")

    def _event(
        self, walk: MatterWalk, action: Action, si: int, outcome: str, reason: str = ""
    ) -> Event:
        step = walk.matter.steps[si]
        if action.start_w is None:  # no clerk: an external step, or a release
            started = action.arrived
        else:
            calendar = walk.calendar_of(si, action.county)
            started = calendar.posix_at(action.start_w, at_start=True)
        work = None
        if not walk.graph.external[si] and action.kind == "complete":
            scale = walk.scale(action.segment)
            work = walk.models[si].service_us(action.seq, action.attempt, scale) / 1e6
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
            work_seconds=work,
        )
        payload: StepCompleted
        event_type = step.emits
        if outcome == "released":
            event_type = "property.released"
            payload = StepCompleted(outcome="released", reason=reason, **common)
        elif outcome == "rejected":
            event_type = f"{step.department}.rejected"
            payload = StepCompleted(outcome="rejected", reason=reason, **common)
        elif outcome == "retry":
            event_type = "step.retried"
            payload = StepCompleted(outcome="retry", reason=reason, **common)
        elif outcome == "rework":
            event_type = "step.reworked"
            payload = StepCompleted(outcome="rework", reason=reason, **common)
        elif event_type == "property.transferred":
            payload = PropertyTransferred(**common)
        elif event_type == "utility.transferred":
            utility = cast(Utility, step.department)  # validated by the payload model
            payload = UtilityTransferred(utility=utility, holder=action.owner or "", **common)
        else:
            payload = StepCompleted(**common)
        return Event(
            # the same attempt always gets the same id: a re-executed action (after a
            # crash, a repeated tick) publishes a duplicate that every reader drops
            event_id=completion_id(
                action.case_id, step.id, action.attempt, released=outcome == "released"
            ),
            type=event_type,
            case_id=action.case_id,
            matter=walk.matter.id,
            county=action.county,
            occurred_at=instant(action.at),
            causation_id=UUID(action.causation_id),
            correlation_id=UUID(action.correlation_id),
            payload=payload,
        )
