"""One walk, three drivers: the live department logic, without a broker, against the
capacity engine — step attempt by step attempt, fault paths included."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest

from services.core.catalog import default_catalog
from services.core.department import CaseRecord, DepartmentRules, case_seq
from services.core.events import Event, StepCompleted, completion_id, decode_event
from services.core.scenario import Scenario, load_scenario
from services.core.steps import BLOCK, FAULT
from services.core.walk import MatterWalk, Outcome
from services.property.register import UnitRegister
from services.tax.pivot import DeedTax
from simulator.engine import Replication, run_replication
from simulator.ledger import _state_facts, simulation_facts
from simulator.virtual import VirtualRun, run_virtual, submissions

ROOT = Path(__file__).resolve().parents[2]
CATALOG = default_catalog()
OUTCOME_NAMES = {
    Outcome.DONE: "done",
    Outcome.REWORK: "rework",
    Outcome.REJECT: "rejected",
    Outcome.RETRY: "retry",
}


def week_of(path: str) -> Scenario:
    scenario = load_scenario(ROOT / path, default_catalog())
    return scenario.model_copy(
        update={
            "horizon": scenario.horizon.model_copy(
                update={"start": date(2021, 3, 1), "end": date(2021, 3, 5)}
            )
        }
    )


@pytest.fixture(scope="module")
def week():
    return default_catalog(), week_of("scenarios/shangrao-2021.yaml")


def engine_attempts(rep: Replication) -> dict[tuple[str, str, int], tuple]:
    """Every step attempt the engine recorded: (case, step, attempt) → (instant, clerk,
    outcome, event id)."""
    cols = rep.columns()
    out = {}
    for i in range(len(cols["seq"])):
        matter = rep.matters[cols["matter"][i]]
        step = rep.outcomes[matter].matter.steps[cols["step"][i]].id
        case, attempt = f"{matter}-{cols['seq'][i]:07d}", int(cols["attempt"][i])
        out[(case, step, attempt)] = (
            float(cols["done"][i]),
            int(cols["clerk"][i]),
            OUTCOME_NAMES[Outcome(int(cols["outcome"][i]))],
            completion_id(case, step, attempt),
        )
    return out


def virtual_attempts(run: VirtualRun) -> dict[tuple[str, str, int], tuple]:
    """The same from the departments' published events (lock releases are no attempt)."""
    out = {}
    for event in run.events:
        p = event.payload
        assert isinstance(p, StepCompleted)
        if p.outcome == "released":
            continue
        clerk = -1 if p.clerk is None else int(p.clerk.rsplit("/", 1)[1]) - 1
        key = (event.case_id, p.step, p.attempt - 1)
        assert key not in out, f"{key} published twice"
        out[key] = (event.occurred_at.timestamp(), clerk, p.outcome, event.event_id)
    return out


def branches_taken(scenario: Scenario, rep: Replication, seed: int) -> Counter:
    """(step kind, branch) of every attempt of the run: rework, reject, block, fault,
    outage hold, outage retry — read from the engine's rows and the walk's draws."""
    walks = {m: MatterWalk(scenario, rep.outcomes[m].matter, seed) for m in rep.matters}
    cols = rep.columns()
    seen: Counter = Counter()
    for i in range(len(cols["seq"])):
        walk = walks[rep.matters[cols["matter"][i]]]
        si, seq, attempt = int(cols["step"][i]), int(cols["seq"][i]), int(cols["attempt"][i])
        kind = walk.matter.steps[si].kind
        outcome = Outcome(int(cols["outcome"][i]))
        flags = walk.models[si].branches(seq, attempt)
        if outcome is Outcome.REWORK:
            seen[kind, "rework"] += 1
        elif outcome is Outcome.REJECT:
            seen[kind, "reject"] += 1
        elif outcome is Outcome.RETRY:
            seen[kind, "fault" if flags & FAULT else "outage retry"] += 1
        arrival, enabled = cols["arrival"][i], cols["enabled"][i]
        if arrival > enabled:
            if any(arrival == end for _, end in walk.faults[si].holds):
                seen[kind, "outage hold"] += 1
            elif flags & BLOCK:
                seen[kind, "block"] += 1
    return seen


SCENARIOS = {
    "shangrao-2021 (a week)": lambda: week_of("scenarios/shangrao-2021.yaml"),
    "linked-faults": lambda: load_scenario(ROOT / "scenarios/linked-faults.yaml", CATALOG),
    "fault-paths": lambda: load_scenario(ROOT / "scenarios/fault-paths.yaml", CATALOG),
}


_RUNS: dict[str, tuple[str, Scenario, Replication, VirtualRun]] = {}


def drivers(name: str) -> tuple[str, Scenario, Replication, VirtualRun]:
    """The engine's and the departments' run of a scenario with seed 5 (computed once)."""
    if name not in _RUNS:
        catalog, scenario = default_catalog(), SCENARIOS[name]()
        rep, virtual = run_replication(catalog, scenario, 5), run_virtual(catalog, scenario, 5)
        _RUNS[name] = (name, scenario, rep, virtual)
    return _RUNS[name]


@pytest.fixture(params=list(SCENARIOS))
def both_drivers(request):
    return drivers(request.param)


def test_departments_schedule_exactly_what_the_engine_simulates(both_drivers):
    """Instant, clerk, outcome and event id of every step attempt, case by case."""
    name, _, rep, virtual = both_drivers
    simulated, live = engine_attempts(rep), virtual_attempts(virtual)
    assert len(simulated) > 2000, name
    assert live.keys() == simulated.keys()
    differing = [
        k
        for k, (at, *rest) in live.items()
        if abs(at - simulated[k][0]) > 1e-3 or rest != list(simulated[k][1:])
    ]
    assert differing == [], [(k, live[k], simulated[k]) for k in differing[:5]]


def test_the_tracker_judges_every_case_as_the_engine_measures_it(both_drivers):
    _, _, rep, virtual = both_drivers
    completed = {e.case_id: e for e in virtual.verdicts if e.type == "case.completed"}
    rejected = {e.case_id for e in virtual.verdicts if e.type == "case.rejected"}
    assert len(completed) + len(rejected) == len(virtual.verdicts) == rep.cases
    for matter_id, outcome in rep.outcomes.items():
        for seq in range(len(outcome.arrivals)):
            case = f"{matter_id}-{seq:07d}"
            if outcome.rejected_at_step[seq] >= 0:
                assert case in rejected
            else:
                assert completed[case].occurred_at.timestamp() == pytest.approx(
                    outcome.completed[seq], abs=1e-3
                )


def test_the_register_and_the_accounts_end_alike(both_drivers):
    """The saga's end state: what the engine kept (compact keys) and what the property
    and utility departments kept (unit codes), as the ledger writes them."""
    _, _, rep, virtual = both_drivers
    engine = [f for f in simulation_facts(rep) if f["fact"] in ("unit", "holder", "cleared")]
    register = virtual.keepers.get("property")
    holders = {
        d: {u: str(h) for u, h in k.holders.items()}  # type: ignore[attr-defined]
        for d, k in virtual.keepers.items()
        if hasattr(k, "holders") and k.holders  # type: ignore[attr-defined]
    }
    linked = {f["unit"] for f in engine if f["fact"] == "unit" and f["linked"]}
    assert isinstance(register, UnitRegister)
    tax = virtual.keepers.get("tax")
    cleared = dict(tax.cleared) if isinstance(tax, DeedTax) else {}
    live = list(_state_facts(register, holders, cleared, linked))
    for kind in ("cleared",):
        assert [f for f in live if f["fact"] == kind] == [f for f in engine if f["fact"] == kind]
    assert [f for f in live if f["fact"] == "holder"] == [
        f for f in engine if f["fact"] == "holder"
    ]
    live_units = {f["unit"]: f for f in live if f["fact"] == "unit"}
    engine_units = {f["unit"]: f for f in engine if f["fact"] == "unit"}
    assert live_units.keys() == engine_units.keys()
    assert [u for u in live_units if live_units[u] != engine_units[u]] == []


def test_every_fault_path_occurs_in_the_run_compared():
    """The fault-path scenario (one of those compared above, the same run) exercises
    every kind of step on every branch that applies to it: an external step has no
    clerks, so neither a block nor a ``hold`` outage (which holds work at the clerks)
    can touch it."""
    _, scenario, rep, _ = drivers("fault-paths")
    seen = branches_taken(scenario, rep, 5)
    every = ("rework", "reject", "block", "fault", "outage hold", "outage retry")
    expected = [
        (kind, branch)
        for kind in ("service", "approval", "external")
        for branch in every
        if not (kind == "external" and branch in ("block", "outage hold"))
    ]
    missing = [k for k in expected if seen[k] < 3]
    assert missing == [], seen
    assert seen["external", "block"] == seen["external", "outage hold"] == 0
    # the 容缺 supplement past its deadline (gas, missed: reject) rejects cases, and
    # the window's morning hold delays linked transfers' intake
    gas = rep.outcomes["gas_connection"]
    supplement = [s.id for s in gas.matter.steps].index("supplement")
    assert (gas.rejected_at_step == supplement).sum() >= 3
    cols = rep.columns()
    window = rep.departments().index("window")
    held = (cols["department"] == window) & (cols["arrival"] > cols["enabled"])
    assert held.sum() >= 3


def test_every_event_the_departments_publish_is_valid_on_the_wire(both_drivers):
    _, _, _, virtual = both_drivers
    catalog = default_catalog()
    for event in virtual.events[:2000]:
        assert decode_event(event.to_bytes(), catalog=catalog) == event


@pytest.fixture(scope="module")
def rules(week):
    catalog, scenario = week
    return {
        d: DepartmentRules(catalog, scenario, d, 5)
        for d in ("window", "property", "tax", "power", "housing")
    }


def first_submission(week, matter: str) -> Event:
    _, scenario = week
    return next(e for e in submissions(scenario, 5) if e.matter == matter)


def completion(
    submitted: Event, event_type: str, step: str, department: str, hours: float = 0, **extra: object
) -> Event:
    """A department's completion of a step of the submitted case, ``hours`` after it."""
    t0 = submitted.occurred_at
    payload = StepCompleted(
        step=step,
        department=department,
        enabled_at=t0,
        started_at=t0,
        seq=case_seq(submitted.case_id),
        unit_code=submitted.payload.unit_code,  # type: ignore[union-attr]
        **extra,
    )
    return submitted.caused(event_type, payload, t0 + timedelta(hours=hours))


def test_duplicates_change_nothing(week, rules):
    submitted = first_submission(week, "linked_transfer")
    record = CaseRecord()
    first = rules["window"].on_event(submitted, record)
    assert [a.step for a in first] == ["intake"]  # the one window takes it in
    assert rules["window"].on_event(submitted, record) == []
    assert rules["property"].on_event(submitted, CaseRecord()) == []  # not its entry step
    assert rules["tax"].on_event(submitted, CaseRecord()) == []


def test_join_waits_for_every_predecessor_in_any_order(week, rules):
    submitted = first_submission(week, "property_transfer")
    review = completion(submitted, "property.reviewed", "review", "property", hours=5)
    checked = completion(submitted, "housing.checked", "transaction", "housing", hours=7)
    tax = completion(submitted, "tax.cleared", "tax_assessment", "tax", hours=9)
    for order in itertools.permutations((review, checked, tax)):
        record = CaseRecord()
        assert rules["property"].on_event(order[0], record) == []
        assert rules["property"].on_event(order[1], record) == []
        actions = rules["property"].on_event(order[2], record)
        assert [a.step for a in actions] == ["register"]
        # enabled when the later predecessor finished
        later = submitted.occurred_at + timedelta(hours=9)
        assert actions[0].enabled == pytest.approx(later.timestamp())


def test_a_rejected_case_goes_no_further_and_its_lock_is_released(week, rules):
    submitted = first_submission(week, "linked_transfer")
    record = CaseRecord()
    rejected = completion(
        submitted, "tax.rejected", "tax_clearance", "tax", outcome="rejected", reason="契税未缴"
    )
    actions = rules["property"].on_event(rejected, record)
    assert [(a.kind, a.step) for a in actions] == [("release", "accept_lock")]
    assert record.rejected
    cleared = completion(submitted, "tax.cleared", "tax_clearance", "tax")
    assert rules["property"].on_event(cleared, record) == []
    assert rules["property"].on_event(rejected, record) == []  # heard twice: once


def test_a_repeated_completion_plans_nothing_twice(week, rules):
    submitted = first_submission(week, "linked_transfer")
    reviewed = completion(submitted, "property.reviewed", "review", "property")
    checked = completion(submitted, "housing.checked", "transaction", "housing")
    cleared = completion(submitted, "tax.cleared", "tax_clearance", "tax")
    record = CaseRecord()
    # the registration waits for the review, the transaction check and the tax pivot
    assert rules["property"].on_event(reviewed, record) == []
    assert rules["property"].on_event(checked, record) == []
    assert [a.step for a in rules["property"].on_event(cleared, record)] == ["register"]
    again = cleared.model_copy(update={"event_id": uuid4()})  # same completion, new id
    assert rules["property"].on_event(again, record) == []


def test_completion_ids_are_stable(week):
    catalog, scenario = week
    first = [e.event_id for e in run_virtual(catalog, scenario, 5).events[:200]]
    second = [e.event_id for e in run_virtual(catalog, scenario, 5).events[:200]]
    assert first == second and len(set(first)) == len(first)


def test_case_record_round_trips_as_json(week, rules):
    submitted = first_submission(week, "linked_transfer")
    record = CaseRecord()
    actions = rules["window"].on_event(submitted, record)
    again = CaseRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert type(actions[0]).from_dict(json.loads(json.dumps(actions[0].to_dict()))) == actions[0]


def _latencies(run) -> dict[str, tuple[int, float, float]]:
    """Per matter: completed cases, p50 and p95 latency in the matter's first unit."""
    by_matter: dict[str, list[float]] = {}
    for verdict in run.verdicts:
        if verdict.type == "case.completed":
            latency = verdict.payload.latency
            by_matter.setdefault(verdict.matter, []).append(latency[sorted(latency)[0]])
    return {
        m: (len(x), float(np.percentile(x, 50)), float(np.percentile(x, 95)))
        for m, x in by_matter.items()
    }


def _differing(base, other, min_cases: int) -> list[str]:
    out = []
    for matter, (n, p50, p95) in base.items():
        if n < min_cases:
            continue
        m, q50, q95 = other[matter]
        close = all(abs(b - a) <= max(0.05 * a, 0.05) for a, b in ((p50, q50), (p95, q95)))
        if m != n or not close:
            out.append(matter)
    return out


def test_backfilling_absorbs_late_deliveries():
    """Events reaching departments up to days late (as at high replay speeds) reorder
    arrivals at the clerk pools; with backfilling the busy matters keep the latencies of
    the in-order run, served strictly by receipt those whose steps wait for another
    department's event do not (successors in the same department follow at once)."""
    catalog = default_catalog()
    scenario = load_scenario(ROOT / "scenarios/demo.yaml", catalog)
    in_order = _latencies(run_virtual(catalog, scenario, 7))
    runs = {}
    for backfill in (0.0, 10.0):
        rng = np.random.default_rng(1)
        runs[backfill] = _latencies(
            run_virtual(
                catalog,
                scenario,
                7,
                backfill_working_days=backfill,
                delivery_delay=lambda: rng.exponential(12 * 3600),  # noqa: B023
            )
        )
    busy = [m for m, (n, _, _) in in_order.items() if n >= 40]
    assert len(busy) >= 4
    assert _differing(in_order, runs[10.0], 40) == []
    assert {"property_transfer", "linked_transfer"} <= set(_differing(in_order, runs[0.0], 40))


def test_backfilling_changes_nothing_when_events_arrive_in_order(week):
    catalog, scenario = week
    strict = run_virtual(catalog, scenario, 5)
    backfilling = run_virtual(catalog, scenario, 5, backfill_working_days=10)
    assert [(e.case_id, e.type, e.occurred_at) for e in backfilling.events] == [
        (e.case_id, e.type, e.occurred_at) for e in strict.events
    ]
