"""The planner simulates only the counties whose staffing changed: a run of some counties
must give them exactly what the run of all counties gives — on the fault paths too
(seizures of transfers in flight, 补正, 不予办理, outages, arrears blocks) — and the
plan pieced together from the counties' runs must meet its goals when simulated whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.core.catalog import load_catalog
from services.core.scenario import Scenario, load_scenario
from simulator.engine import Replication, run_replication
from simulator.executors import LOCAL
from simulator.montecarlo import measure_replication, run_replications
from simulator.planner import (
    PLAN_YEAR,
    Goal,
    _CountySimulations,
    _pool_waits,
    county_values,
    expected_load,
    goals,
    misses,
    plan,
    restrict,
)

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog()
SOME = ("poyang", "hengfeng")


def _scenario(name: str) -> Scenario:
    return load_scenario(ROOT / "scenarios" / f"{name}.yaml", CATALOG)


def _rows(rep: Replication, counties: tuple[str, ...]) -> list[tuple[float, ...]]:
    """Every step attempt of these counties' cases, as sorted tuples."""
    cols = rep.columns()
    chosen = np.isin(cols["county"], [rep.counties.index(c) for c in counties])
    names = ("matter", "seq", "step", "attempt", "clerk", "start_w", "outcome")
    names += ("enabled", "arrival", "done")
    table = np.column_stack([cols[n][chosen].astype(float) for n in names])
    return sorted(map(tuple, table.tolist()))


@pytest.mark.parametrize("name", ["demo", "fault-paths", "linked-faults"])
def test_a_run_of_some_counties_is_their_part_of_the_whole_run(name):
    scenario = _scenario(name)
    whole = run_replication(CATALOG, scenario, 17)
    part = run_replication(CATALOG, scenario, 17, counties=SOME)
    assert part.simulated_counties == [c for c in scenario.counties if c in SOME]
    some_rows = _rows(part, SOME)
    assert some_rows, "the counties had cases"
    assert some_rows == _rows(whole, SOME)
    assert _rows(part, tuple(c for c in scenario.counties if c not in SOME)) == []
    assert part.cases < whole.cases

    whole_stats = measure_replication(CATALOG, scenario, whole)
    part_stats = measure_replication(CATALOG, scenario, part)
    assert part_stats.cases == part.cases
    expected = {k: v[1] for k, v in county_values(CATALOG, scenario, [whole_stats]).items()}
    measured = {k: v[1] for k, v in county_values(CATALOG, scenario, [part_stats]).items()}
    assert measured == {k: v for k, v in expected.items() if k[2] in SOME}
    pools = {(p.department, p.county): p for p in whole_stats.pools if p.county in SOME}
    assert {(p.department, p.county): p for p in part_stats.pools} == pools


def test_unknown_county_is_refused():
    with pytest.raises(ValueError, match="atlantis"):
        run_replication(CATALOG, _scenario("demo"), 1, counties=("poyang", "atlantis"))


def test_a_staffing_change_resimulates_only_its_county():
    scenario = _scenario("fault-paths")
    clerks = {(d, c): scenario.clerks(d, c) for d in scenario.departments for c in SOME}
    no_queue = county_values(
        CATALOG, scenario, run_replications(CATALOG, scenario, replications=2, seed=3)
    )
    targets = goals(no_queue, 0.95)
    simulations = _CountySimulations(
        CATALOG, scenario, targets, replications=2, seed=3, executor=LOCAL
    )
    first, simulated, cases = simulations.measure(clerks)
    assert simulated == list(scenario.counties) and cases > 0
    again, simulated, cases = simulations.measure(clerks)
    assert (simulated, cases) == ([], 0)
    assert [m.county for m in again.found] == [m.county for m in first.found]

    clerks[("property", "hengfeng")] += 3
    clerks[("tax", "hengfeng")] = 1
    changed, simulated, cases = simulations.measure(clerks)
    assert simulated == ["hengfeng"] and cases > 0
    # the same staffing measured whole, from nothing
    fresh = _CountySimulations(CATALOG, scenario, targets, replications=2, seed=3, executor=LOCAL)
    whole, simulated, _ = fresh.measure(clerks)
    assert simulated == list(scenario.counties)
    assert changed.waits == whole.waits and changed.utils == whole.utils
    assert [(m.matter, m.county, m.measured) for m in changed.found] == [
        (m.matter, m.county, m.measured) for m in whole.found
    ]
    assert changed.utils[("tax", "hengfeng")] != first.utils[("tax", "hengfeng")]


def test_the_plan_pieced_from_counties_meets_its_goals_simulated_whole():
    scenario = restrict(_scenario("fault-paths"), "water_connection")
    result = plan(CATALOG, scenario, seed=5)
    assert result.misses == []
    no_queue, start, *later = result.rounds
    assert (no_queue.phase, start.phase) == ("no-queue", "start")
    assert no_queue.misses == len(result.unfixable)
    assert later, "the plan had to grow or trim"
    assert any(len(r.counties) < len(scenario.counties) for r in later)
    assert sum(r.cases for r in later) < len(later) * start.cases
    staffed = scenario.with_clerks(result.clerks)
    reps = run_replications(CATALOG, staffed, replications=2, seed=5)
    unlimited = scenario.with_clerks(dict.fromkeys(result.clerks, 10_000))
    targets = goals(
        county_values(
            CATALOG, unlimited, run_replications(CATALOG, unlimited, replications=2, seed=5)
        ),
        0.95,
    )
    assert misses(county_values(CATALOG, staffed, reps), targets) == []
    # the utilisations reported are those of the final staffing simulated whole
    assert _pool_waits(reps)[1] == result.utilisation


def test_a_trial_is_decided_by_its_first_replication_only_beyond_chance():
    each = next(
        t
        for m in CATALOG.matters
        for t in m.targets
        if t.statistic == "each" and t.year == PLAN_YEAR
    )
    goal = Goal(True, 0.95, each.value)
    # 400 cases: two standard errors of 95 % are 2.2 points
    assert goal.missed_beyond_chance(each, 0.92, 400)
    assert not goal.missed_beyond_chance(each, 0.935, 400)  # missed, but maybe by chance
    assert not goal.missed_beyond_chance(each, 0.96, 400)
    assert goal.missed_beyond_chance(each, 0.935, 40_000)
    mean = next(t for m in CATALOG.matters for t in m.targets if t.statistic == "mean")
    assert not Goal(True, 0.95, mean.value).missed_beyond_chance(mean, 1e9, 10)


def test_no_pool_is_trimmed_below_the_utilisation_cap():
    scenario = restrict(_scenario("fault-paths"), "water_connection")
    capped = plan(CATALOG, scenario, seed=5, max_utilisation=0.5)
    assert all(capped.clerks[p] >= n for p, n in capped.start.items())
    load = expected_load(CATALOG, scenario)
    assert all(n >= load[p] / 0.5 for p, n in capped.start.items())
    assert capped.misses == []
