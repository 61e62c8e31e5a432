"""The live department logic, without a broker, against the capacity engine."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

import numpy as np
import pytest

from services.core.catalog import default_catalog
from services.core.department import CaseRecord, DepartmentRules, case_seq
from services.core.events import Event, StepCompleted, decode_event
from services.core.scenario import load_scenario
from simulator.engine import run_replication
from simulator.virtual import run_virtual, submissions


@pytest.fixture(scope="module")
def week():
    catalog = default_catalog()
    scenario = load_scenario("scenarios/shangrao-2021.yaml", catalog)
    scenario = scenario.model_copy(
        update={
            "horizon": scenario.horizon.model_copy(
                update={"start": date(2021, 3, 1), "end": date(2021, 3, 5)}
            )
        }
    )
    return catalog, scenario


def test_departments_schedule_exactly_what_the_engine_simulates(week):
    catalog, scenario = week
    virtual = run_virtual(catalog, scenario, 5)
    rep = run_replication(catalog, scenario, 5)
    cols = rep.columns()
    simulated = {}
    for i in range(len(cols["seq"])):
        matter = rep.matters[cols["matter"][i]]
        step = rep.outcomes[matter].matter.steps[cols["step"][i]].id
        simulated[(f"{matter}-{cols['seq'][i]:07d}", step, int(cols["attempt"][i]))] = (
            cols["done"][i],
            int(cols["clerk"][i]),
        )
    live = {}
    for event in virtual.events:
        p = event.payload
        assert isinstance(p, StepCompleted)
        clerk = -1 if p.clerk is None else int(p.clerk.rsplit("/", 1)[1]) - 1
        live[(event.case_id, p.step, p.attempt - 1)] = (event.occurred_at.timestamp(), clerk)
    assert len(live) > 10_000
    assert live.keys() == simulated.keys()
    for key, (done, clerk) in live.items():
        assert done == pytest.approx(simulated[key][0], abs=1e-3), key
        assert clerk == simulated[key][1], key
    # the tracker judges every case once, with the engine's completion time
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
    # every event the departments publish is a valid event on the wire
    for event in virtual.events[:2000]:
        assert decode_event(event.to_bytes()) == event


@pytest.fixture(scope="module")
def rules(week):
    catalog, scenario = week
    return {d: DepartmentRules(catalog, scenario, d, 5) for d in ("property", "tax", "power")}


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
        **extra,
    )
    return submitted.caused(event_type, payload, t0 + timedelta(hours=hours))


def test_duplicates_change_nothing(week, rules):
    submitted = first_submission(week, "linked_transfer")
    record = CaseRecord()
    first = rules["property"].on_event(submitted, record)
    assert [a.step for a in first] == ["accept_lock"]
    assert rules["property"].on_event(submitted, record) == []
    assert rules["tax"].on_event(submitted, CaseRecord()) == []  # not its entry step


def test_join_waits_for_every_predecessor_in_any_order(week, rules):
    submitted = first_submission(week, "property_transfer")
    review = completion(submitted, "property.reviewed", "review", "property", hours=5)
    tax = completion(submitted, "tax.cleared", "tax_assessment", "tax", hours=9)
    for order in ((review, tax), (tax, review)):
        record = CaseRecord()
        assert rules["property"].on_event(order[0], record) == []
        actions = rules["property"].on_event(order[1], record)
        assert [a.step for a in actions] == ["register"]
        # enabled when the later predecessor finished
        later = submitted.occurred_at + timedelta(hours=9)
        assert actions[0].enabled == pytest.approx(later.timestamp())


def test_a_rejected_case_goes_no_further(week, rules):
    submitted = first_submission(week, "linked_transfer")
    record = CaseRecord()
    rejected = completion(
        submitted, "tax.rejected", "tax_clearance", "tax", outcome="rejected", reason="契税未缴"
    )
    assert rules["property"].on_event(rejected, record) == []
    assert record.rejected
    cleared = completion(submitted, "tax.cleared", "tax_clearance", "tax")
    assert rules["property"].on_event(cleared, record) == []


def test_a_repeated_completion_plans_nothing_twice(week, rules):
    submitted = first_submission(week, "linked_transfer")
    cleared = completion(submitted, "tax.cleared", "tax_clearance", "tax")
    record = CaseRecord()
    assert [a.step for a in rules["property"].on_event(cleared, record)] == ["register"]
    again = cleared.model_copy(update={"event_id": uuid4()})  # same completion, new id
    assert rules["property"].on_event(again, record) == []


def test_completion_ids_are_stable(week):
    catalog, scenario = week
    first = [e.event_id for e in run_virtual(catalog, scenario, 5).events[:200]]
    second = [e.event_id for e in run_virtual(catalog, scenario, 5).events[:200]]
    assert first == second and len(set(first)) == len(first)


def test_case_record_round_trips_as_json(week, rules):
    import json

    submitted = first_submission(week, "linked_transfer")
    record = CaseRecord()
    actions = rules["property"].on_event(submitted, record)
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
    the in-order run, served strictly by receipt they do not."""
    catalog = default_catalog()
    scenario = load_scenario("scenarios/demo.yaml", catalog)
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
    assert len(_differing(in_order, runs[0.0], 40)) >= 3


def test_backfilling_changes_nothing_when_events_arrive_in_order(week):
    catalog, scenario = week
    strict = run_virtual(catalog, scenario, 5)
    backfilling = run_virtual(catalog, scenario, 5, backfill_working_days=10)
    assert [(e.case_id, e.type, e.occurred_at) for e in backfilling.events] == [
        (e.case_id, e.type, e.occurred_at) for e in strict.events
    ]
