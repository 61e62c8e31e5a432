"""The tracker's rule (services.tracker.progress.CaseProgress): terminal once, by the
walk's completion rule, measured as the engine measures."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from services.core.catalog import default_catalog
from services.core.events import CaseCompleted, CaseRejected, CaseSubmitted, Event, StepCompleted
from services.core.measure import StepTimes, measure_target
from services.core.routes import MatterRoutes
from services.core.scenario import load_scenario
from services.tracker.progress import CaseProgress
from simulator.virtual import submissions
from tests.unit.test_measure import OFFICE

ONLINE = 0  # the demo's 企业开办 segment 一网通办: route online, no window intake


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("scenarios/demo.yaml", default_catalog())


@pytest.fixture(scope="module")
def submitted(scenario) -> Event:
    return next(
        e
        for e in submissions(scenario, 5)
        if e.matter == "enterprise_establishment" and e.payload.attributes["segment"] == ONLINE  # type: ignore[union-attr]
    )


@pytest.fixture(scope="module")
def routes(scenario) -> MatterRoutes:
    """The case's route (online: registration, four steps in parallel, the window's issue)."""
    matter = default_catalog().matter("enterprise_establishment")
    segments = scenario.demand["enterprise_establishment"].segments
    assert segments[ONLINE].route == "online"
    return MatterRoutes(matter, segments)


def step(submitted: Event, step_id: str, department: str, hours: float, **extra) -> Event:
    t0 = submitted.occurred_at
    payload = StepCompleted(
        step=step_id, department=department, enabled_at=t0, started_at=t0, **extra
    )
    return submitted.caused("step.completed", payload, t0 + timedelta(hours=hours))


PARALLEL = [
    ("seal", "police"),
    ("invoice", "tax"),
    ("social_security", "hrss"),
    ("housing_fund", "housingfund"),
]
FINALS = [*PARALLEL, ("issue", "window")]  # the four, then the window's one-time issue


def test_terminal_only_when_every_final_step_is_done(submitted, routes):
    matter = default_catalog().matter("enterprise_establishment")
    progress = CaseProgress()
    assert progress.observe(submitted)
    assert progress.observe(step(submitted, "registration", "registry", 2))
    verdict = None
    for i, (s, d) in enumerate(FINALS):
        assert progress.terminal(matter, routes) is None
        event = step(submitted, s, d, 3 + i)
        assert progress.observe(event)
        verdict = progress.verdict_event(matter, event, OFFICE, routes)
    assert progress.terminal(matter, routes) == "completed"
    assert verdict is not None and isinstance(verdict.payload, CaseCompleted)
    assert verdict.occurred_at == submitted.occurred_at + timedelta(hours=7)  # the issue
    # the verdict is the engine's measurement of the same case
    on_route = {s.id for s in matter.route_steps("online")}
    assert {v.scope for v in verdict.payload.verdicts} >= {"case", "step:registration"}
    for v in verdict.payload.verdicts:
        t = next(t for t in matter.targets if t.metric == v.metric and t.scope == v.scope)
        assert routes.applies(t, ONLINE) and t.applies_to != "分时办理"
        enabled = {
            s.id: np.array([submitted.occurred_at.timestamp() if s.id in on_route else np.nan])
            for s in matter.steps
        }
        done = {
            s.id: np.array([progress.step(s.id).done if s.id in on_route else np.nan])
            for s in matter.steps
        }
        attempts = {s.id: np.array([1.0]) for s in matter.steps}
        m = measure_target(
            matter,
            t,
            submitted=np.array([submitted.occurred_at.timestamp()]),
            completed=np.array([verdict.occurred_at.timestamp()]),
            steps=StepTimes(enabled, done, attempts),
            office=OFFICE,
        )
        assert m.values is not None and v.measured == pytest.approx(float(m.values[0]))
    # judged once: nothing more after the verdict, an event seen twice is ignored
    assert progress.verdict_event(matter, verdict, OFFICE, routes) is None
    assert not progress.observe(event)


def test_finals_heard_before_an_earlier_step_wait_for_it(submitted, routes):
    """Topics are not ordered with each other: every final step's completion may come
    before the registration's.  The case is not judged then (a verdict would measure a
    step it has no times for); it is, once the registration is heard of."""
    matter = default_catalog().matter("enterprise_establishment")
    progress = CaseProgress()
    progress.observe(submitted)
    for i, (s, d) in enumerate(FINALS):
        event = step(submitted, s, d, 3 + i)
        progress.observe(event)
        assert progress.verdict_event(matter, event, OFFICE, routes) is None
    assert progress.terminal(matter, routes) is None
    registration = step(submitted, "registration", "registry", 2)
    progress.observe(registration)
    verdict = progress.verdict_event(matter, registration, OFFICE, routes)
    assert verdict is not None and isinstance(verdict.payload, CaseCompleted)
    assert verdict.occurred_at == submitted.occurred_at + timedelta(hours=7)
    by_scope = {v.scope: v.measured for v in verdict.payload.verdicts}
    assert "step:registration" in by_scope  # measured, not left out
    assert all(np.isfinite(v) for v in by_scope.values())


def test_a_rework_is_not_a_completion_and_a_rejection_is_terminal(submitted):
    matter = default_catalog().matter("enterprise_establishment")
    progress = CaseProgress()
    progress.observe(submitted)
    progress.observe(
        step(submitted, "registration", "registry", 1, outcome="rework", reason="补正")
    )
    assert progress.terminal(matter) is None and not progress.step("registration").finished
    rejected = step(
        submitted, "registration", "registry", 30, outcome="rejected", reason="不予登记", attempt=2
    )
    progress.observe(rejected)
    assert progress.terminal(matter) == "rejected"
    verdict = progress.verdict_event(matter, rejected, OFFICE)
    assert verdict is not None and isinstance(verdict.payload, CaseRejected)
    assert verdict.payload.reason == "不予登记" and verdict.payload.step == "registration"


def test_nothing_is_terminal_before_the_submission_is_seen(submitted, routes):
    matter = default_catalog().matter("enterprise_establishment")
    progress = CaseProgress()
    for s, d in [("registration", "registry"), *FINALS]:
        progress.observe(step(submitted, s, d, 2))
    assert progress.terminal(matter, routes) is None
    assert isinstance(submitted.payload, CaseSubmitted)
    progress.observe(submitted)
    assert progress.terminal(matter, routes) == "completed"
    # on the default path the window's intake is a step of the case too: not complete
    assert progress.terminal(matter) is None
    assert CaseProgress.from_dict(progress.to_dict()) == progress


def test_the_stored_record_is_every_field_and_a_copy(submitted):
    """to_dict is written by hand (asdict's recursive walk was a hot spot): it holds every
    field but ``closed`` as asdict would, and later changes to the record leave it alone."""
    from dataclasses import asdict

    progress = CaseProgress()
    progress.observe(submitted)
    progress.observe(step(submitted, "registration", "registry", 2))
    stored = progress.to_dict()
    expected = asdict(progress)
    del expected["closed"]
    assert stored == expected
    progress.observe(step(submitted, "seal", "police", 3))
    progress.steps["registration"]["attempts"] = 9
    assert stored == expected  # not aliased
    assert CaseProgress.from_dict(stored).to_dict() == stored
