"""Fidelity to the plan (issue 13): each mechanism moves the measured figures the way the
plan says, on a small scenario through the engine's one walk."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.core.catalog import default_catalog
from services.core.scenario import deep_merge, read_scenario_data, scenario_from_dict
from simulator.engine import run_replication
from simulator.montecarlo import measure_replication

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def catalog():
    return default_catalog()


def only(catalog, demand: dict[str, float], **changes: object):
    """The 2021 scenario over March–April 2021 with only ``demand``'s matters."""
    data = read_scenario_data(SCENARIOS / "shangrao-2021.yaml")
    zero = {m.id: {"per_year": 0} for m in catalog.workflows}
    data = deep_merge(
        data,
        {
            "horizon": {"start": "2021-03-01", "end": "2021-04-30"},
            "demand": {**zero, **{m: {"per_year": v} for m, v in demand.items()}},
            **changes,
        },
    )
    return scenario_from_dict(data, catalog, "<test>")


def target_mean(stats, matter_id: str, catalog, metric: str) -> tuple[float, float]:
    """(mean measured value, attainment) of a matter's target with ``metric``."""
    matter = catalog.matter(matter_id)
    i = next(k for k, t in enumerate(matter.targets) if t.metric == metric)
    t = stats.matters[matter_id].targets[i]
    return t.mean, t.attained / t.n


def test_high_voltage_targets_are_the_four_stage_ones_and_critical_customers_keep_six(catalog):
    def total(matter_id: str) -> tuple[float, int]:
        matter = catalog.matter(matter_id)
        t = next(t for t in matter.targets if t.metric == "utility_duration")
        return t.value, len(t.scope.removeprefix("sum:").split(","))

    assert total("power_high_voltage_single") == (17, 4)
    assert total("power_high_voltage_dual") == (25, 4)
    assert total("power_high_voltage_single_critical") == (22, 6)
    assert total("power_high_voltage_dual_critical") == (30, 6)
    used = {i.matter: i for i in catalog.inconsistencies}
    assert used["power_high_voltage_single"].used == 17
    assert set(used["power_high_voltage_single"].values.values()) == {17, 22}
    assert used["power_high_voltage_dual"].used == 25
    assert set(used["power_high_voltage_dual"].values.values()) == {25, 30, 32}


def test_critical_customers_take_longer_by_the_two_restored_stages(catalog):
    """设计审查 and 中间检查 add their lags (1.5 + 1 working days in the 2021 scenario) and
    service to the measured sum: the critical variant's mean is about 2.5–4 working days
    above the 4-stage one's, and each variant is measured against its own target."""
    scenario = only(
        catalog, {"power_high_voltage_single": 3000, "power_high_voltage_single_critical": 3000}
    )
    stats = measure_replication(catalog, scenario, run_replication(catalog, scenario, 5))
    plain, plain_attained = target_mean(
        stats, "power_high_voltage_single", catalog, "utility_duration"
    )
    critical, critical_attained = target_mean(
        stats, "power_high_voltage_single_critical", catalog, "utility_duration"
    )
    assert 2.5 <= critical - plain <= 4.5, (plain, critical)
    assert plain < 17 and critical < 22
    assert plain_attained > 0.5 and critical_attained > 0.5


def test_the_water_and_gas_limit_is_measured_on_general_projects_only(catalog):
    """用水用气 ≤ 7 wd applies to 一般项目 (L348): the target counts only that segment's
    cases and those of the segments part of it (200 m 备案, 容缺: 85 % in the 2021
    scenario); measured over every case — the slower 特殊及复杂项目
    included — attainment is lower."""
    for matter_id in ("water_connection", "gas_connection"):
        limit = next(t for t in catalog.matter(matter_id).targets if t.metric == "utility_duration")
        assert (limit.value, limit.applies_to) == (7, "一般项目")
    scenario = only(catalog, {"water_connection": 6000})
    stats = measure_replication(catalog, scenario, run_replication(catalog, scenario, 3))
    matter = catalog.matter("water_connection")
    i = next(k for k, t in enumerate(matter.targets) if t.metric == "utility_duration")
    general = stats.matters["water_connection"].targets[i]
    assert 0.80 <= general.n / stats.matters["water_connection"].cases <= 0.90
    data = scenario.model_dump()
    for segment in data["demand"]["water_connection"]["segments"]:  # the target sees all
        segment["part_of"] = []
        if segment["name"] == "一般项目":
            segment["name"] = "其他"
    everyone_scenario = scenario_from_dict(data, catalog, "<test>")
    everyone = measure_replication(
        catalog, everyone_scenario, run_replication(catalog, everyone_scenario, 3)
    ).matters["water_connection"]
    assert everyone.targets[i].n == everyone.cases
    # the complex sixth drags attainment down by several points (0.81 → 0.74 at seed 3)
    everyone_rate = everyone.targets[i].attained / everyone.targets[i].n
    assert general.attained / general.n - everyone_rate >= 0.03
