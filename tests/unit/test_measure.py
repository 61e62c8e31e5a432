"""Measuring cases against targets (services.core.measure) in each target's own unit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from services.core.calendar import SHANGHAI, OfficeCalendar
from services.core.catalog import Target, default_catalog
from services.core.measure import VISITED, StepTimes, elapsed, measure_target, same_working_day

OFFICE = OfficeCalendar()
HOUR = 3600.0


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2021, 3, day, hour, minute, tzinfo=SHANGHAI).timestamp()


def target(**fields: Any) -> Target:
    base = {"metric": "m", "value": 1, "unit": "working_days", "scope": "case", "source": "test"}
    return Target.model_construct(
        **{"statistic": "each", "bound": "at_most", "year": 2021, **base, **fields}
    )


def test_elapsed_in_every_unit():
    a, b = np.array([at(5, 17)]), np.array([at(8, 9, 30)])  # Friday 17:00 → Monday 09:30
    assert elapsed("working_days", a, b, OFFICE)[0] == pytest.approx(1.5 / 7)
    assert elapsed("working_hours", a, b, OFFICE)[0] == pytest.approx(1.5)
    assert elapsed("hours", a, b, OFFICE)[0] == pytest.approx(64.5)
    assert elapsed("calendar_days", a, b, OFFICE)[0] == pytest.approx(64.5 / 24)
    with pytest.raises(ValueError, match="not a time unit"):
        elapsed("count", a, b, OFFICE)


def test_same_working_day_is_immediate():
    morning, evening, next_day = at(1, 9), at(1, 19), at(2, 9)
    flags = same_working_day(np.array([morning, morning]), np.array([evening, next_day]), OFFICE)
    assert flags.tolist() == [True, False]


@pytest.fixture
def transfer():
    return default_catalog().matter("property_transfer")


def times(matter, **steps: tuple[float, float]) -> StepTimes:
    return StepTimes(
        {s.id: np.array([steps.get(s.id, (np.nan, np.nan))[0]]) for s in matter.steps},
        {s.id: np.array([steps.get(s.id, (np.nan, np.nan))[1]]) for s in matter.steps},
        {s.id: np.array([1.0]) for s in matter.steps},
    )


def test_scopes_case_step_span_and_sum(transfer):
    steps = times(
        transfer,
        accept=(at(1, 9), at(1, 10)),
        review=(at(1, 10), at(2, 10)),
        tax_assessment=(at(1, 10), at(1, 11)),
        register=(at(2, 10), at(3, 10)),
    )
    submitted, completed = np.array([at(1, 9)]), np.array([at(3, 10)])

    def value(**t: Any) -> float:
        m = measure_target(
            transfer,
            target(**t),
            submitted=submitted,
            completed=completed,
            steps=steps,
            office=OFFICE,
        )
        assert m.values is not None
        return float(m.values[0])

    day = 1.0  # a working day from 10:00 to 10:00 the next day
    assert value(scope="case") == pytest.approx(2 + 1 / 7)
    assert value(scope="step:review") == pytest.approx(day)
    assert value(scope="span:review,register") == pytest.approx(2 * day)
    assert value(scope="sum:accept,tax_assessment", unit="working_hours") == pytest.approx(2.0)


def test_rejected_cases_leave_time_targets_and_count_for_closure(transfer):
    steps = times(transfer)
    submitted = np.array([at(1, 9), at(1, 9)])
    completed = np.array([at(2, 9), np.nan])  # the second was rejected
    doubled = StepTimes(
        {k: np.repeat(v, 2) for k, v in steps.enabled.items()},
        {k: np.repeat(v, 2) for k, v in steps.done.items()},
        {k: np.repeat(v, 2) for k, v in steps.attempts.items()},
    )
    case = measure_target(
        transfer, target(), submitted=submitted, completed=completed, steps=doubled, office=OFFICE
    )
    assert case.values is not None and len(case.values) == 1
    closure = measure_target(
        transfer,
        target(
            metric="closure_rate", unit="percent", value=100, bound="at_least", statistic="share"
        ),
        submitted=submitted,
        completed=completed,
        steps=doubled,
        office=OFFICE,
    )
    assert closure.attained is not None and closure.attained.tolist() == [True, False]


def test_structural_and_unsimulated_targets(transfer):
    steps = times(transfer)
    args = dict(
        submitted=np.array([at(1, 9)]), completed=np.array([at(2, 9)]), steps=steps, office=OFFICE
    )
    counted = measure_target(transfer, target(scope="service_steps", unit="count", value=4), **args)
    assert counted.structural == transfer.service_step_count
    annual = measure_target(transfer, target(scope="annual", unit="hours"), **args)
    assert annual.not_simulated is not None and annual.values is None


def test_visits_count_attempts_at_offline_service_and_window_steps(transfer):
    steps = times(transfer, intake=(at(1, 9), at(1, 10)))
    steps.attempts["intake"][0] = 2.0  # the applicant came back to the window once (补正)
    steps.attempts["accept"][0] = 2.0  # the registry's own acceptance: no visit
    m = measure_target(
        transfer,
        target(metric="visits", unit="count", value=1),
        submitted=np.array([at(1, 9)]),
        completed=np.array([at(2, 9)]),
        steps=steps,
        office=OFFICE,
    )
    visited = [s.id for s in transfer.steps if s.kind in VISITED and s.channel == "offline"]
    assert visited == ["intake"]
    assert m.values is not None and m.values[0] == 2
    assert m.attained is not None and not m.attained[0]


def test_a_case_not_completed_is_not_on_time_and_breaks_nothing():
    """A replay's unfinished case has no completion: the on-time rate counts it as late
    (and the working-day arithmetic never sees a NaN)."""
    complaint = default_catalog().matter("water_complaint")
    on_time = next(t for t in complaint.targets if t.metric == "on_time_rate")
    steps = times(complaint)
    doubled = StepTimes(
        {k: np.repeat(v, 2) for k, v in steps.enabled.items()},
        {k: np.repeat(v, 2) for k, v in steps.done.items()},
        {k: np.repeat(v, 2) for k, v in steps.attempts.items()},
    )
    m = measure_target(
        complaint,
        on_time,
        submitted=np.array([at(1, 9), at(1, 9)]),
        completed=np.array([at(1, 11), np.nan]),
        steps=doubled,
        office=OFFICE,
    )
    assert m.attained is not None and m.attained.tolist() == [True, False]
