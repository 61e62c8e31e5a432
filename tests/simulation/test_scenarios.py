"""Scenario files: the defaults load, bad ones fail naming file, field and reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml

from services.core.catalog import default_catalog
from services.core.errors import InputError
from services.core.scenario import load_scenario
from services.core.steps import StepModel

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def catalog():
    return default_catalog()


@pytest.mark.parametrize("name", ["shangrao-2021.yaml", "shangrao-2020-baseline.yaml"])
def test_default_scenarios_cover_every_workflow_matter(catalog, name):
    scenario = load_scenario(SCENARIOS / name, catalog)
    demanded = {m for m, d in scenario.demand.items() if d.per_year > 0}
    assert demanded == {m.id for m in catalog.workflows}
    assert len(scenario.counties) == 12


def test_baseline_changes_processes_not_demand(catalog):
    reform = load_scenario(SCENARIOS / "shangrao-2021.yaml", catalog)
    baseline = load_scenario(SCENARIOS / "shangrao-2020-baseline.yaml", catalog)
    # the same cases (volumes, profiles); no shortcut of the plan's (no segment takes a
    # route) — the same shares of 特殊及复杂 connections
    assert {m: (d.per_year, d.profile) for m, d in baseline.demand.items()} == {
        m: (d.per_year, d.profile) for m, d in reform.demand.items()
    }
    assert not any(s.route for d in baseline.demand.values() for s in d.segments)
    assert any(s.route for d in reform.demand.values() for s in d.segments)
    complex_share = {
        name: sum(s.share for s in scenario.demand["water_connection"].segments if s.time_scale > 1)
        for name, scenario in (("2020", baseline), ("2021", reform))
    }
    assert complex_share["2020"] == complex_share["2021"] == 0.15
    assert baseline.departments == reform.departments
    serial = baseline.matter(catalog, "enterprise_establishment")
    assert (
        serial.stage_count == 5
        and reform.matter(catalog, "enterprise_establishment").stage_count == 2
    )
    assert baseline.matter(catalog, "water_connection").service_step_count == 6


def write(tmp_path: Path, data: dict, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def base(tmp_path: Path) -> dict:
    return {"base": str(SCENARIOS / "shangrao-2021.yaml")}


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"demand": {"moon_landing": {"per_year": 3}}}, "moon_landing", "unknown matter"),
        (
            {"demand": {"tax_handling": {"per_year": -5}}},
            "demand.tax_handling.per_year",
            "greater than or equal to 0",
        ),
        ({"horizon": {"start": "2021-06-01", "end": "2021-05-01"}}, "horizon", "empty horizon"),
        (
            {"horizon": {"start": "2030-01-01", "end": "2030-02-01"}},
            "horizon",
            "no public-holiday data for 2027",
        ),
        ({"counties": {"atlantis": 0.5}}, "counties", "add up to"),
        (
            {"departments": {"power": {"clerks": {"default": 0}}}},
            "departments.power.clerks.yanshan",
            "no clerk",
        ),
        (
            {"timing": {"mortgage_registration": {"register": {"service": None}}}},
            "timing.mortgage_registration.register.service",
            "needs it",
        ),
        (
            {"timing": {"tax_handling": {"handle": {"rework": {"probability": 1.0}}}}},
            "timing.tax_handling.handle",
            "must be below 1",
        ),
        (
            {"demand": {"tax_handling": {"profile": "lunar"}}},
            "demand.tax_handling.profile",
            "unknown profile",
        ),
        (
            {"timing": {"tax_handling": {"handle": {"service": {"kind": "cauchy", "mean": 1}}}}},
            "timing.tax_handling.handle.service",
            "does not match any of the expected tags",
        ),
    ],
)
def test_bad_scenarios_name_field_and_reason(tmp_path, catalog, change, field, reason):
    path = write(tmp_path, {**base(tmp_path), **change})
    with pytest.raises(InputError) as info:
        load_scenario(path, catalog)
    assert info.value.source == str(path)
    assert field in info.value.field, (info.value.field, info.value.reason)
    assert reason in info.value.reason


def test_base_cycles_and_missing_files_are_named(tmp_path, catalog):
    a = write(tmp_path, {"base": "b.yaml"}, "a.yaml")
    write(tmp_path, {"base": "a.yaml"}, "b.yaml")
    with pytest.raises(InputError, match="include each other"):
        load_scenario(a, catalog)
    c = write(tmp_path, {"base": "nowhere.yaml"}, "c.yaml")
    with pytest.raises(InputError, match="not found") as info:
        load_scenario(c, catalog)
    assert info.value.field == "base"


def test_prepared_draws_equal_lazy_draws(catalog):
    """The engine's bulk fast path and a live service's lazily extended streams draw the
    same values for the same case, step and attempt."""
    scenario = load_scenario(SCENARIOS / "shangrao-2021.yaml", catalog)
    for matter_id in ("linked_transfer", "enterprise_establishment", "export_tax_rebate"):
        matter = scenario.matter(catalog, matter_id)
        for step in matter.steps:
            calendar = scenario.calendar(step.department)
            bulk = StepModel(scenario, matter_id, step, 99, calendar)
            bulk.prepare(np.full(300, 0.5))  # every case at time scale 0.5
            lazy = StepModel(scenario, matter_id, step, 99, calendar)
            for seq in (0, 1, 17, 299, 450):
                for attempt in (0, 1, 2):
                    assert bulk.draw(seq, attempt, 0.5) == lazy.draw(seq, attempt, 0.5)
            other = StepModel(scenario, matter_id, step, 100, calendar)
            assert [other.draw(s, 0) for s in range(20)] != [lazy.draw(s, 0) for s in range(20)]


def test_a_derived_scenario_replaces_a_distribution_of_another_kind(tmp_path, catalog):
    """Overriding a lognormal service time with a fixed one replaces it (the two kinds'
    parameters do not mix); the same kind is merged parameter by parameter."""
    import yaml

    derived = tmp_path / "derived.yaml"
    derived.write_text(
        yaml.safe_dump(
            {
                "base": str(SCENARIOS / "shangrao-2021.yaml"),
                "timing": {
                    "tax_handling": {"handle": {"service": {"kind": "fixed", "value": 10}}},
                    "mortgage_registration": {"accept": {"service": {"mean": 99}}},
                },
            }
        ),
        encoding="utf-8",
    )
    scenario = load_scenario(derived, catalog)
    handle = scenario.timing["tax_handling"]["handle"]
    assert handle.service is not None and handle.service.kind == "fixed"
    assert handle.rework is not None  # the rest of the step's timing is kept
    accept = scenario.timing["mortgage_registration"]["accept"].service
    assert accept is not None and accept.kind == "lognormal" and accept.mean == 99


def test_a_2027_horizon_needs_holiday_data_and_runs_with_the_documented_file(tmp_path, catalog):
    """Without 2027's holidays the scenario fails in one line naming the year and the
    remedy; the shipped scenario names the unofficial file and gets 2027's calendar."""
    bare = write(
        tmp_path,
        {**base(tmp_path), "horizon": {"start": "2027-01-04", "end": "2027-03-31"}},
        "y2027.yaml",
    )
    with pytest.raises(InputError) as info:
        load_scenario(bare, catalog)
    message = str(info.value)
    assert info.value.field == "horizon" and "\n" not in message
    assert "no public-holiday data for 2027" in message
    assert "holiday_file" in message and "2027-unofficial.yaml" in message
    shipped = load_scenario(SCENARIOS / "shangrao-2027.yaml", catalog)
    assert [y.year for y in shipped.holiday_years] == [2027]
    assert not shipped.holiday_years[0].official  # until the State Council's notice
    office = shipped.office_calendar
    assert not office.is_working_day(date(2027, 2, 8))  # projected 春节 break, a Monday
    assert office.is_working_day(date(2027, 2, 20))  # a projected 调休 Saturday
    # 2027 has 261 weekdays; the projection keeps the 248 working days of 2025 and 2026
    assert office.working_days_in(date(2027, 1, 1), date(2027, 12, 31)) == 248


def test_holiday_years_inline_with_ranges_and_a_file_relative_to_the_scenario(tmp_path, catalog):
    (tmp_path / "cal").mkdir()
    write(
        tmp_path,
        {
            "holiday_years": [
                {
                    "year": 2027,
                    "source": "test",
                    "holidays": ["2027-01-01..2027-01-03", "2027-02-08"],
                    "workdays": ["2027-01-09"],
                }
            ]
        },
        "cal/h.yaml",
    )
    path = write(
        tmp_path,
        {
            **base(tmp_path),
            "holiday_file": "cal/h.yaml",
            "horizon": {"start": "2027-01-04", "end": "2027-02-26"},
        },
        "s.yaml",
    )
    scenario = load_scenario(path, catalog)
    office = scenario.office_calendar
    assert not office.is_working_day(date(2027, 2, 8)) and office.is_working_day(date(2027, 1, 9))
    assert office.is_working_day(date(2027, 2, 9))  # only the listed days are off


@pytest.mark.parametrize(
    ("holiday", "field", "reason"),
    [
        ({"holiday_file": "nowhere.yaml"}, "holiday_file", "not found"),
        (
            {
                "holiday_years": [
                    {
                        "year": 2027,
                        "source": "t",
                        "holidays": ["2027-03-01"],
                        "workdays": ["2027-03-02"],
                    }
                ]
            },
            "holiday_years",
            "Saturdays or Sundays",
        ),
        (
            {
                "holiday_years": [
                    {"year": 2027, "source": "t", "holidays": ["2027-03-05..2027-03-01"]}
                ]
            },
            "holiday_years",
            "ends before it starts",
        ),
        (
            {"holiday_years": [{"year": 2021, "source": "t", "holidays": ["2021-03-01"]}]},
            "holiday_years",
            "already has this year",
        ),
    ],
)
def test_bad_holiday_data_names_field_and_reason(tmp_path, catalog, holiday, field, reason):
    path = write(
        tmp_path,
        {**base(tmp_path), **holiday, "horizon": {"start": "2027-01-04", "end": "2027-02-26"}},
    )
    with pytest.raises(InputError) as info:
        load_scenario(path, catalog)
    assert field in info.value.field, (info.value.field, info.value.reason)
    assert reason in info.value.reason
