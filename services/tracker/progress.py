"""The tracker's rule: follow each case's steps and judge it against its targets.

Fed every event of a case (submission, each step attempt), a :class:`CaseProgress`
knows when the case is terminal — complete by the walk's rule (all final steps done,
:meth:`~services.core.walk.MatterGraph.completed`), or a step rejected it — and then
measures every target with :mod:`services.core.measure` (the capacity engine's own
measurement, on arrays of one case).  Idempotent: an event id seen before is ignored;
the verdict is given once.  Pure: the tracker service and the virtual twin run it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from services.core.calendar import SHANGHAI, WorkingCalendar
from services.core.catalog import Matter
from services.core.closing import closed_marker
from services.core.events import (
    CaseCompleted,
    CaseRejected,
    CaseSubmitted,
    Event,
    StepCompleted,
    Verdict,
    verdict_id,
)
from services.core.measure import StepTimes, elapsed, measure_target
from services.core.routes import MatterRoutes


@dataclass
class StepProgress:
    enabled: float = math.inf  # first enabling
    done: float = -math.inf  # last completion
    attempts: int = 0
    finished: bool = False
    # 补正: the attempt (1-based) that sent the applicant away, when, and when the next
    # attempt was enabled (the pause of an agency clock)
    corrected_attempt: int = 0
    corrected_from: float = math.nan
    corrected_to: float = math.nan


@dataclass
class CaseProgress:
    submitted: float | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    verdict: str | None = None  # "completed" / "rejected" once judged
    rejected_step: str | None = None
    reason: str | None = None
    closed: float | None = None  # wall time the verdict was given and the case forgotten
    segment: int = -1  # the case's segment: its route and the targets that apply

    def to_dict(self) -> dict[str, Any]:
        if self.closed is not None:
            return closed_marker(self.closed)
        return {  # copies, not asdict's recursive walk: the stored value must not change
            "segment": self.segment,
            "submitted": self.submitted,
            "steps": {step: dict(progress) for step, progress in self.steps.items()},
            "seen": list(self.seen),
            "verdict": self.verdict,
            "rejected_step": self.rejected_step,
            "reason": self.reason,
        }

    def close(self, wall: float) -> None:
        """Forget the judged case but that it is closed (:mod:`services.core.closing`)."""
        closed = CaseProgress(closed=wall)
        self.__dict__.update(closed.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CaseProgress:
        return cls(**data) if data else cls()

    def step(self, step_id: str) -> StepProgress:
        return StepProgress(**self.steps.get(step_id, {}))

    def observe(self, event: Event) -> bool:
        """Take an event into account; False if it was seen before or the case is
        closed (judged and forgotten: what still comes is a late duplicate)."""
        event_id = str(event.event_id)
        if self.closed is not None or event_id in self.seen:
            return False
        self.seen.append(event_id)
        payload = event.payload
        if isinstance(payload, CaseSubmitted):
            self.submitted = event.occurred_at.timestamp()
            self.segment = int(payload.attributes.get("segment", self.segment))
        elif isinstance(payload, StepCompleted):
            if payload.segment >= 0:  # every step event carries the case's segment
                self.segment = payload.segment
            progress = self.step(payload.step)
            progress.enabled = min(progress.enabled, payload.enabled_at.timestamp())
            progress.done = max(progress.done, event.occurred_at.timestamp())
            progress.attempts = max(progress.attempts, payload.attempt)
            if payload.outcome == "rework":
                progress.corrected_attempt = payload.attempt
                progress.corrected_from = event.occurred_at.timestamp()
            elif progress.corrected_attempt and payload.attempt == progress.corrected_attempt + 1:
                progress.corrected_to = payload.enabled_at.timestamp()
            if payload.outcome == "done":
                progress.finished = True
            elif payload.outcome == "rejected":
                self.rejected_step, self.reason = payload.step, payload.reason
            self.steps[payload.step] = dict(progress.__dict__)  # scalars only
        return True

    def completed_at(self, matter: Matter, routes: MatterRoutes | None = None) -> float | None:
        """When the case completed (the walk's rule), or None while a step of the case
        has not been heard of.  The completions come on each department's own topic, and
        topics are not ordered with each other: the final steps' events may arrive before
        an earlier step's (soak on Kafka: 清税 after both closures of a deregistration),
        and a verdict measured then would miss that step.  Every step of a matter runs in
        every completed case (the graph has no choices), so the case is complete once
        every step of the case's route is finished, at the time the walk's rule gives."""
        graph = _routes(matter, routes).graph_of(self.segment)
        done = {
            graph.index[s]: p["done"]
            for s, p in self.steps.items()
            if p.get("finished") and s in graph.index and graph.present[graph.index[s]]
        }
        if len(done) < graph.size:
            return None
        return graph.completed(done)

    def terminal(self, matter: Matter, routes: MatterRoutes | None = None) -> str | None:
        """``completed``, ``rejected`` or None (still running, or submission not seen)."""
        if self.submitted is None:
            return None
        if self.rejected_step is not None:
            return "rejected"
        if self.completed_at(matter, routes) is not None:
            return "completed"
        return None

    def verdict_event(
        self,
        matter: Matter,
        trigger: Event,
        office: WorkingCalendar,
        routes: MatterRoutes | None = None,
    ) -> Event | None:
        """The case.completed / case.rejected event, once, when the case is terminal;
        ``routes`` (the scenario's segments of the matter) says which targets apply."""
        routes = _routes(matter, routes)
        state = self.terminal(matter, routes)
        if state is None or self.verdict is not None:
            return None
        self.verdict = state
        assert self.submitted is not None
        submitted_at = _instant(self.submitted)
        if state == "rejected":
            return trigger.caused(
                "case.rejected",
                CaseRejected(
                    submitted_at=submitted_at,
                    step=self.rejected_step or "?",
                    reason=self.reason or "rejected",
                ),
                trigger.occurred_at,
                verdict_id(trigger.case_id),
            )
        completed = self.completed_at(matter, routes)
        assert completed is not None
        heard = {s.id: self.step(s.id) for s in matter.steps}
        times = StepTimes(  # a step the case's route leaves out has no times (NaN)
            {s: np.array([p.enabled if p.finished else np.nan]) for s, p in heard.items()},
            {s: np.array([p.done if p.finished else np.nan]) for s, p in heard.items()},
            {s: np.array([float(p.attempts)]) for s, p in heard.items()},
            {s: np.array([p.corrected_from]) for s, p in heard.items()},
            {s: np.array([p.corrected_to]) for s, p in heard.items()},
        )
        submitted, done = np.array([self.submitted]), np.array([completed])
        verdicts: list[Verdict] = []
        latency: dict[str, float] = {}
        for target in matter.targets:
            if not routes.applies(target, self.segment):
                continue
            m = measure_target(
                matter, target, submitted=submitted, completed=done, steps=times, office=office
            )
            if m.values is None or m.attained is None or not np.isfinite(m.values[0]):
                continue
            verdicts.append(
                Verdict(
                    metric=target.metric,
                    scope=target.scope,
                    target=target.value,
                    unit=target.unit,
                    measured=float(m.values[0]),
                    attained=bool(m.attained[0]),
                )
            )
            if target.is_time and target.scope == "case":
                latency[target.unit] = float(m.values[0])
        latency.setdefault(
            "working_days", float(elapsed("working_days", submitted, done, office)[0])
        )
        return trigger.caused(
            "case.completed",
            CaseCompleted(submitted_at=submitted_at, latency=latency, verdicts=verdicts),
            _instant(completed),
            verdict_id(trigger.case_id),
        )


_DEFAULT_ROUTES: dict[int, MatterRoutes] = {}


def _routes(matter: Matter, routes: MatterRoutes | None) -> MatterRoutes:
    """The given routes, or the matter's default path alone (no segments)."""
    if routes is not None:
        return routes
    found = _DEFAULT_ROUTES.get(id(matter))
    if found is None or found.matter is not matter:
        found = _DEFAULT_ROUTES[id(matter)] = MatterRoutes(matter)
    return found


def _instant(posix: float) -> datetime:
    return datetime.fromtimestamp(posix, tz=SHANGHAI)
