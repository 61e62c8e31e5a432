"""The capacity engine against queueing theory and its own invariants."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from scipy import stats

from services.core.catalog import default_catalog
from services.core.routes import MatterRoutes
from services.core.scenario import load_scenario
from simulator.engine import run_replication
from simulator.montecarlo import replication_seeds
from simulator.queueing import erlang_c_wait, mmc_scenario, single_step_catalog

ROOT_SCENARIO = "scenarios/shangrao-2021.yaml"


def mean_waits(servers: int, arrivals_per_hour: float, replications: int) -> np.ndarray:
    catalog = single_step_catalog()
    scenario = mmc_scenario(
        catalog, arrivals_per_hour=arrivals_per_hour, mean_service_minutes=60, clerks=servers
    )
    waits = []
    for seed in replication_seeds(7, replications):
        rep = run_replication(catalog, scenario, seed)
        cols = rep.columns()
        measured = cols["enabled"] >= rep.measured_from
        waits.append(((cols["start"] - cols["arrival"])[measured] / 3600).mean())
    return np.asarray(waits)


def t_interval(values: np.ndarray) -> tuple[float, float]:
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean() - half, values.mean() + half


@pytest.mark.parametrize(("servers", "arrivals_per_hour"), [(3, 2.1), (1, 0.7)])
def test_mean_wait_matches_erlang_c(servers, arrivals_per_hour):
    """M/M/3 and M/M/1 at 70 % load, 24/7: Wq inside the 95 % CI of 30 replications, ≤ 2 %."""
    analytic = erlang_c_wait(servers, arrivals_per_hour, 1.0)
    waits = mean_waits(servers, arrivals_per_hour, 30)
    lo, hi = t_interval(waits)
    assert lo <= analytic <= hi, (analytic, lo, hi)
    assert abs(waits.mean() - analytic) / analytic <= 0.02


def test_erlang_c_reference_values():
    # the formula the test relies on, against textbook values
    assert erlang_c_wait(1, 0.5, 1.0) == pytest.approx(1.0)  # M/M/1: ρ/(μ-λ)
    assert erlang_c_wait(2, 1.0, 1.0) == pytest.approx(1 / 3)


def test_mean_visits_with_rework():
    """补正 probability p gives 1 + p visits on average: one correction round at most
    (一次性告知), where repeated rounds would give 1 / (1 - p) = 1.43 at p = 0.3."""
    catalog = single_step_catalog()
    p = 0.3
    scenario = mmc_scenario(
        catalog,
        arrivals_per_hour=2.0,
        mean_service_minutes=10,
        clerks=5,
        days=120,
        warmup_days=0,
        rework=p,
    )
    visits = []
    for seed in replication_seeds(3, 10):
        rep = run_replication(catalog, scenario, seed)
        cols = rep.columns()
        attempts = np.zeros(len(rep.outcomes["mmc"].arrivals))
        np.maximum.at(attempts, cols["seq"], cols["attempt"] + 1)
        visits.append(attempts.mean())
    lo, hi = t_interval(np.asarray(visits))
    expected = 1 + p
    assert lo <= expected <= hi
    assert max(visits) < 1 / (1 - p)
    assert abs(np.mean(visits) - expected) / expected <= 0.02


@pytest.fixture(scope="module")
def spring_run():
    """The default scenario over March–April 2021 (all matters, one replication)."""
    catalog = default_catalog()
    scenario = load_scenario(ROOT_SCENARIO, catalog)
    scenario = scenario.model_copy(
        update={
            "horizon": scenario.horizon.model_copy(
                update={"start": date(2021, 3, 1), "end": date(2021, 4, 30)}
            )
        }
    )
    return catalog, scenario, run_replication(catalog, scenario, 11)


def test_littles_law_on_the_default_scenario(spring_run):
    """Time-average cases in the system (sampled) equals arrival rate × mean time in it."""
    _, _, rep = spring_run
    outcome = rep.outcomes["property_transfer"]
    submitted, completed = outcome.arrivals.submitted, outcome.completed
    assert np.isfinite(completed).all()
    t1 = rep.horizon_start + 10 * 86400
    t2 = rep.horizon_end - 10 * 86400
    grid = np.arange(t1, t2, 600.0)  # every 10 minutes
    in_system = np.searchsorted(np.sort(submitted), grid, side="right") - np.searchsorted(
        np.sort(completed), grid, side="right"
    )
    # cases present in [t1, t2): arrival rate × mean time spent inside the window
    inside = np.clip(np.minimum(completed, t2) - np.maximum(submitted, t1), 0, None)
    little = inside.sum() / (t2 - t1)
    assert in_system.mean() == pytest.approx(little, rel=0.02)
    # and the textbook form λW for cases arriving in the window, within edge effects
    window = (submitted >= t1) & (submitted < t2)
    lam = window.sum() / (t2 - t1)
    w = (completed[window] - submitted[window]).mean()
    assert in_system.mean() == pytest.approx(lam * w, rel=0.05)


def test_no_service_outside_office_hours(spring_run):
    _, scenario, rep = spring_run
    cols = rep.columns()
    departments = rep.departments()
    office = scenario.office_calendar
    served = cols["clerk"] >= 0
    on_office = np.array(
        [scenario.departments[departments[d]].calendar == "office" for d in cols["department"]]
    )
    # a lag in calendar days (a contract period, say) may end at any hour: its clerk work
    # does not, but the record's completion includes the lag
    clock_lag = np.zeros(len(served), dtype=bool)
    for mi, matter_id in enumerate(rep.matters):
        for si, step in enumerate(rep.outcomes[matter_id].matter.steps):
            lag = scenario.timing[matter_id][step.id].lag
            if lag is not None and lag.unit == "calendar_days":
                clock_lag |= (cols["matter"] == mi) & (cols["step"] == si)
    rows = served & on_office
    assert rows.sum() > 10_000
    shifts = [(s.hour * 60 + s.minute, e.hour * 60 + e.minute) for s, e in office.shifts]
    for column, closed_ok in (("start", False), ("done", True)):
        if column == "done":
            rows = rows & ~clock_lag
        local = (cols[column][rows] + 8 * 3600) % 86400 / 60  # minutes after midnight
        inside = np.zeros(len(local), dtype=bool)
        for s, e in shifts:
            inside |= (local > s) & (local <= e) if closed_ok else (local >= s) & (local < e)
        assert inside.all(), f"{(~inside).sum()} {column} times outside office hours"
        days = np.floor((cols[column][rows] + 8 * 3600) / 86400).astype(np.int64)
        for day in np.unique(days)[:400]:
            assert office.is_working_day(date.fromordinal(day + 719163))


def test_engine_invariants(spring_run):
    _, scenario, rep = spring_run
    cols = rep.columns()
    assert (cols["arrival"] >= cols["enabled"] - 1e-6).all()
    assert (cols["start"] >= cols["arrival"] - 1e-6).all()
    assert (cols["done"] >= cols["start"] - 1e-6).all()
    for mi, matter_id in enumerate(rep.matters):
        outcome = rep.outcomes[matter_id]
        matter = outcome.matter
        rows = cols["matter"] == mi
        # each case on its segment's route: the route's final steps and predecessors
        routes = MatterRoutes(matter, scenario.demand[matter_id].segments)
        case_segment = outcome.arrivals.segment
        row_segment = np.full(len(cols["seq"]), -2)
        row_segment[rows] = case_segment[cols["seq"][rows]]
        last_done = {}
        for si in range(len(matter.steps)):
            sub = rows & (cols["step"] == si)
            d = np.full(len(outcome.arrivals), np.nan)
            order = np.lexsort((cols["attempt"][sub], cols["seq"][sub]))
            d[cols["seq"][sub][order]] = cols["done"][sub][order]
            last_done[si] = d
        for segment in np.unique(case_segment):
            graph = routes.graph_of(int(segment))
            cases = case_segment == segment
            for si in range(len(matter.steps)):  # a step off the route never runs
                assert graph.present[si] or np.isnan(last_done[si][cases]).all()
            done = np.fmax.reduce([last_done[f] for f in graph.finals])
            finished = np.isfinite(outcome.completed) & cases
            # a case completes exactly when its last final step does
            assert np.allclose(outcome.completed[finished], done[finished])
            # every step starts only after all its predecessors on the route are done
            for si, preds in enumerate(graph.predecessors):
                sub = rows & (cols["step"] == si) & (cols["attempt"] == 0)
                sub &= row_segment == segment
                for dep in preds:
                    before = last_done[dep][cols["seq"][sub]]
                    assert (cols["enabled"][sub] >= before - 1e-6).all(), (matter_id, si, dep)


def test_same_seed_same_result_and_other_seed_differs():
    catalog = single_step_catalog()
    scenario = mmc_scenario(
        catalog, arrivals_per_hour=2.0, mean_service_minutes=60, clerks=3, days=30
    )
    a = run_replication(catalog, scenario, 5).columns()
    b = run_replication(catalog, scenario, 5).columns()
    c = run_replication(catalog, scenario, 6).columns()
    assert np.array_equal(a["done"], b["done"]) and np.array_equal(a["clerk"], b["clerk"])
    assert len(a["done"]) != len(c["done"]) or not np.array_equal(a["done"], c["done"])
