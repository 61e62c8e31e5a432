"""A step's draws (services.core.steps.StepModel): units, scales, branches, attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from services.core.calendar import SHANGHAI
from services.core.steps import BLOCK, FAULT, REJECT, REWORK, StepModel, advance
from services.core.timing import Duration
from simulator.queueing import one_matter_catalog, round_the_clock_scenario

DAY_US = 7 * 3600 * 10**6  # the default office day: 08:30–12:00 and 14:00–17:30


def model(timing: dict[str, Any], *, office: bool = True) -> StepModel:
    catalog = one_matter_catalog(
        "m", "事项", ["desk"], [{"id": "s", "name": "办", "department": "desk"}]
    )
    scenario = round_the_clock_scenario(
        catalog,
        "m",
        arrivals_per_hour=1,
        departments={"desk": 1},
        timing={"s": timing},
        days=10,
        warmup_days=0,
    )
    if office:  # the department on office hours instead of 24/7
        desk = scenario.departments["desk"].model_copy(update={"calendar": "office"})
        scenario = scenario.model_copy(update={"departments": {"desk": desk}})
    step = scenario.matter(catalog, "m").steps[0]
    return StepModel(scenario, "m", step, 3, scenario.calendar("desk"))


def fixed(value: float, unit: str) -> dict[str, Any]:
    return {"kind": "fixed", "value": value, "unit": unit}


def test_units_become_microseconds_on_the_right_clock():
    m = model(
        {
            "service": fixed(90, "minutes"),
            "lag": fixed(1.5, "working_days"),
            "rework": {"probability": 0.5, "delay": fixed(2, "calendar_days")},
        }
    )
    assert m.service_us(0, 0) == 90 * 60 * 10**6
    assert m.lag(0, 0) == Duration("working", round(1.5 * DAY_US))
    reworked = next(s for s in range(100) if m.branches(s, 0) & REWORK)
    assert m.rework_delay(reworked, 0) == Duration("clock", 2 * 86_400 * 10**6)


def test_on_a_24_7_calendar_every_unit_is_clock_time():
    m = model({"service": fixed(1, "working_days"), "lag": fixed(2, "hours")}, office=False)
    assert m.service_us(0, 0) == 86_400 * 10**6
    assert m.lag(0, 0) == Duration("clock", 2 * 3600 * 10**6)


def test_a_segment_scale_speeds_up_clerk_time_and_lag_only():
    m = model({"service": fixed(60, "minutes"), "lag": fixed(4, "hours")})
    assert m.service_us(5, 0, 0.5) == 30 * 60 * 10**6
    assert m.lag_us(5, 0, 0.5) == 2 * 3600 * 10**6


@pytest.mark.parametrize(
    ("branch", "flag"), [("reject", REJECT), ("fault", FAULT), ("rework", REWORK)]
)
def test_branches_are_taken_at_their_probability(branch, flag):
    spec: dict[str, Any] = {"probability": 0.2}
    if branch == "rework":
        spec["delay"] = fixed(1, "hours")
    m = model({"service": fixed(10, "minutes"), branch: spec})
    share = np.mean([bool(m.branches(s, 0) & flag) for s in range(20_000)])
    assert share == pytest.approx(0.2, abs=0.015)
    both = np.mean([bool(m.branches(s, 0) & m.branches(s, 1) & flag) for s in range(20_000)])
    if branch == "rework":  # 补正 is one round (一次性告知): never twice for a case
        assert both == 0
        second = [bool(m.branches(s, 1) & flag) for s in range(20_000) if not m.branches(s, 0)]
        assert np.mean(second) == pytest.approx(0.2, abs=0.015)  # unless the first had none
    else:  # another attempt draws anew: independent of the first
        assert both == pytest.approx(0.04, abs=0.01)


def test_a_correction_round_is_spent_once_whatever_attempt_draws_it():
    """With 补正 at 0.5 and faults forcing further attempts, no case is sent back for
    materials twice: at most one attempt of each case draws REWORK (before the change,
    a quarter of the cases drew it on both of their first two attempts)."""
    m = model(
        {
            "service": fixed(10, "minutes"),
            "rework": {"probability": 0.5, "delay": fixed(1, "hours")},
            "fault": {"probability": 0.5},
        }
    )
    rounds = [sum(bool(m.branches(s, a) & REWORK) for a in range(6)) for s in range(5_000)]
    assert max(rounds) == 1
    assert np.mean(rounds) == pytest.approx(1 - 0.5**6, abs=0.02)  # nearly every case once


def test_only_a_first_attempt_can_be_blocked():
    m = model(
        {
            "service": fixed(10, "minutes"),
            "block": {"probability": 0.5, "delay": fixed(1, "working_days")},
        }
    )
    assert any(m.branches(s, 0) & BLOCK for s in range(50))
    assert not any(m.branches(s, a) & BLOCK for s in range(50) for a in (1, 2, 3))


def test_bulk_and_lazy_draws_agree_and_seeds_differ():
    spec = {"service": {"kind": "lognormal", "mean": 20, "cv": 0.5}, "reject": {"probability": 0.3}}
    bulk, lazy = model(spec), model(spec)
    bulk.prepare(np.full(100, 0.5))
    for seq in (0, 1, 50, 99):
        assert bulk.draw(seq, 0, 0.5) == lazy.draw(seq, 0, 0.5)
    assert bulk.draw(150, 0, 0.5) == lazy.draw(150, 0, 0.5)  # past the bulk: its stream
    assert len({m.service_us(s, 0) for s in range(20) for m in (lazy,)}) == 20


def test_advance_counts_working_time_on_the_calendar():
    m = model({"service": fixed(10, "minutes")})
    calendar = m.calendar
    friday_five = datetime(2021, 3, 5, 17, 0, tzinfo=SHANGHAI).timestamp()
    monday = advance(friday_five, Duration("working", 3600 * 10**6), calendar)
    # half an hour on Friday, half an hour from Monday 08:30
    assert monday == datetime(2021, 3, 8, 9, 0, tzinfo=SHANGHAI).timestamp()
    assert advance(friday_five, Duration("clock", 3600 * 10**6), calendar) == friday_five + 3600
    assert advance(friday_five, None, calendar) == friday_five
