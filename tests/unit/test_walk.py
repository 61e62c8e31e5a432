"""The walk of one case (services.core.walk), directly: joins, blocks and outages, clerk
service and lags, every outcome, effects and their refusals, rejection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from services.core.calendar import SHANGHAI
from services.core.clerks import ClerkPool
from services.core.steps import BLOCK, FAULT, REJECT, REWORK
from services.core.walk import (
    ACCEPTED,
    CaseState,
    Decision,
    MatterGraph,
    MatterWalk,
    Outcome,
    Subject,
)
from simulator.queueing import fork_join_catalog, one_matter_catalog, round_the_clock_scenario

HOUR = 3600.0
T0 = datetime(2021, 3, 1, 9, 0, tzinfo=SHANGHAI).timestamp()  # a Monday, office open


def fixed(minutes: float, unit: str = "minutes") -> dict[str, Any]:
    return {"kind": "fixed", "value": minutes, "unit": unit}


def fork_join(timing: dict[str, Any] | None = None, **extra: Any) -> MatterWalk:
    catalog = fork_join_catalog()
    steps = {s: {"service": fixed(60)} for s in "abcd"}
    steps.update(timing or {})
    scenario = round_the_clock_scenario(
        catalog,
        "fork_join",
        arrivals_per_hour=1,
        departments={f"desk_{s}": 1 for s in "abcd"},
        timing=steps,
        days=30,
        warmup_days=0,
        extra=extra,
    )
    return MatterWalk(scenario, scenario.matter(catalog, "fork_join"), seed=1)


def first_seq_with(walk: MatterWalk, si: int, flag: int, attempt: int = 0) -> int:
    """The first case whose draw at step ``si`` takes the branch ``flag``."""
    return next(s for s in range(10_000) if walk.models[si].branches(s, attempt) & flag)


def first_seq_without(walk: MatterWalk, si: int, attempt: int = 0) -> int:
    return next(s for s in range(10_000) if not walk.models[si].branches(s, attempt))


# -- the graph -----------------------------------------------------------------------------


def test_the_graph_by_index():
    graph = MatterGraph(fork_join_catalog().matter("fork_join"))
    assert graph.entry == (0,) and graph.finals == (3,)
    assert graph.successors[0] == (1, 2) and graph.predecessors[3] == (1, 2)


def test_a_join_waits_for_every_predecessor_and_starts_at_the_latest():
    walk = fork_join()
    for order in ((1, 2), (2, 1)):
        state = CaseState()
        assert walk.done(state, 0, T0).ready == ((1, T0), (2, T0))
        first, second = order
        assert walk.done(state, first, T0 + first * HOUR).ready == ()
        assert walk.done(state, second, T0 + second * HOUR).ready == ((3, T0 + 2 * HOUR),)
        finished = walk.done(state, 3, T0 + 5 * HOUR)
        assert finished.completed == T0 + 5 * HOUR and finished.ready == ()


def test_a_completion_heard_twice_enables_nothing_twice():
    walk = fork_join()
    state = CaseState()
    assert walk.done(state, 0, T0).ready
    assert walk.done(state, 0, T0).ready == ()
    assert walk.done(state, 0, T0 + HOUR).ready == ()  # nor later
    assert state.done == {0: T0}


# -- begin: blocks, holds, external steps ----------------------------------------------


def test_a_block_delays_only_the_first_attempt():
    walk = fork_join(
        {"a": {"service": fixed(60), "block": {"probability": 0.5, "delay": fixed(120)}}}
    )
    blocked = first_seq_with(walk, 0, BLOCK)
    assert walk.begin(CaseState(), blocked, 0, 0, T0) == T0 + 2 * HOUR
    assert walk.begin(CaseState(), blocked, 0, 1, T0) == T0  # a later attempt: no arrears
    free = next(s for s in range(10_000) if not walk.models[0].branches(s, 0) & BLOCK)
    assert walk.begin(CaseState(), free, 0, 0, T0) == T0


def test_work_reaching_a_department_in_a_hold_outage_waits_for_its_end():
    start, end = "2021-03-01T08:00:00", "2021-03-01T12:00:00"
    outage = {"department": "desk_a", "start": start, "end": end, "mode": "hold"}
    walk = fork_join(faults={"outages": [outage]})
    reopened = datetime(2021, 3, 1, 12, 0, tzinfo=SHANGHAI).timestamp()
    assert walk.begin(CaseState(), 0, 0, 0, T0) == reopened
    assert walk.begin(CaseState(), 0, 0, 0, reopened + 1) == reopened + 1
    assert walk.begin(CaseState(), 0, 1, 0, T0) == T0  # another department is open


def external_walk(**timing: Any) -> MatterWalk:
    steps = [
        {"id": "accept", "name": "受理", "department": "desk"},
        {
            "id": "works",
            "name": "施工",
            "department": "desk",
            "depends_on": ["accept"],
            "kind": "external",
        },
    ]
    catalog = one_matter_catalog("works", "施工", ["desk"], steps)
    scenario = round_the_clock_scenario(
        catalog,
        "works",
        arrivals_per_hour=1,
        departments={"desk": 1},
        timing={
            "accept": {"service": fixed(30)},
            "works": {"duration": fixed(2, "calendar_days"), **timing},
        },
        days=30,
        warmup_days=0,
    )
    return MatterWalk(scenario, scenario.matter(catalog, "works"), seed=1)


def test_an_external_step_needs_no_clerk_and_ends_after_its_duration():
    walk = external_walk()
    assert walk.graph.external == (False, True)
    assert walk.begin(CaseState(), 0, 1, 0, T0) == T0 + 48 * HOUR
    assert walk.begin(CaseState(), 0, 1, 3, T0) == T0 + 48 * HOUR  # a retried attempt too


def test_a_corrected_or_failed_external_step_is_attempted_again():
    walk = external_walk(
        rework={"probability": 0.3, "delay": fixed(60)}, fault={"probability": 0.3}
    )
    reworked = next(s for s in range(1000) if walk.models[1].branches(s, 0) == REWORK)
    faulted = next(s for s in range(1000) if walk.models[1].branches(s, 0) & FAULT)
    done = T0 + 48 * HOUR
    again = walk.finish(CaseState(), reworked, 1, 0, done)
    assert again is not None and again.outcome is Outcome.REWORK and again.again == done + HOUR
    retried = walk.finish(CaseState(), faulted, 1, 0, done)
    assert retried is not None and retried.outcome is Outcome.RETRY
    assert retried.again == done + 30 * 60  # the default backoff's first wait


# -- serve: clerks and lags ------------------------------------------------------------


def test_serve_assigns_the_earliest_free_clerk_and_adds_the_lag():
    walk = fork_join({"a": {"service": fixed(60), "lag": fixed(2, "hours")}})
    pool = ClerkPool(1)
    first = walk.serve(CaseState(), pool, 0, -1, 0, 0, T0)
    second = walk.serve(CaseState(), pool, 1, -1, 0, 0, T0)
    assert first is not None and second is not None
    assert first.done == T0 + 3 * HOUR  # an hour of work, two of lag (round the clock)
    assert second.done == T0 + 4 * HOUR  # queued behind the first
    assert first.clerk == second.clerk == 0


# -- finish: every outcome -----------------------------------------------------------------


def test_the_backoff_grows_and_is_capped():
    walk = fork_join(
        {"a": {"service": fixed(60), "fault": {"probability": 0.99}}},
        faults={"retry": {"first_minutes": 10, "factor": 3, "cap_hours": 1}},
    )
    seq = first_seq_with(walk, 0, FAULT)
    waits = []
    for attempt in range(4):
        if not walk.models[0].branches(seq, attempt) & FAULT:
            continue
        finished = walk.finish(CaseState(), seq, 0, attempt, T0)
        assert finished is not None and finished.outcome is Outcome.RETRY
        waits.append((attempt, finished.again - T0))
    assert waits and all(w == min(600 * 3**k, 3600) for k, w in waits)


def test_an_attempt_completing_in_a_retry_outage_fails():
    outage = {
        "department": "desk_a",
        "start": "2021-03-01T08:00:00",
        "end": "2021-03-01T12:00:00",
        "mode": "retry",
    }
    walk = fork_join(faults={"outages": [outage]})
    inside = walk.finish(CaseState(), 0, 0, 0, T0)
    after = walk.finish(CaseState(), 0, 0, 0, T0 + 4 * HOUR)
    assert inside is not None and inside.outcome is Outcome.RETRY
    assert after is not None and after.outcome is Outcome.DONE
    assert walk.certain_at_service[3] and not walk.certain_at_service[0]


def test_a_rejection_ends_the_case():
    walk = fork_join({"b": {"service": fixed(60), "reject": {"probability": 0.5}}})
    seq = first_seq_with(walk, 1, REJECT)
    state = CaseState()
    walk.done(state, 0, T0)
    finished = walk.finish(state, seq, 1, 0, T0 + HOUR)
    assert (
        finished is not None
        and finished.outcome is Outcome.REJECT
        and "不予办理" in finished.reason
    )
    assert state.rejected
    # the parallel branch, and anything after, leave no trace
    assert walk.begin(state, seq, 2, 0, T0) is None
    assert walk.serve(state, ClerkPool(1), seq, -1, 2, 0, T0) is None
    assert walk.finish(state, seq, 2, 0, T0 + HOUR) is None
    assert walk.done(state, 2, T0 + HOUR).ready == ()
    assert not walk.certain_at_service[3]  # the matter can reject: finals wait for their time


class Recording:
    """Effects that record what the walk asked, refusing what they are told to."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.applied: list[tuple[str, str, Subject]] = []
        self.released: list[tuple[str, Subject]] = []

    def apply(self, effect: Any, department: str, subject: Subject) -> Decision:
        self.applied.append((effect, department, subject))
        return Decision(False, "refused") if effect == self.refuse else ACCEPTED

    def release(self, department: str, subject: Subject) -> bool:
        self.released.append((department, subject))
        return True


def locking_walk(timing: dict[str, Any] | None = None) -> MatterWalk:
    steps = [
        {"id": "accept", "name": "受理", "department": "property", "effect": "lock"},
        {"id": "assess", "name": "核税", "department": "tax", "depends_on": ["accept"]},
        {
            "id": "register",
            "name": "登簿",
            "department": "property",
            "depends_on": ["assess"],
            "effect": "transfer",
        },
    ]
    catalog = one_matter_catalog("transfer", "转移", ["property", "tax"], steps)
    base = {s["id"]: {"service": fixed(30)} for s in steps}
    base.update(timing or {})
    scenario = round_the_clock_scenario(
        catalog,
        "transfer",
        arrivals_per_hour=1,
        departments={"property": 1, "tax": 1},
        timing=base,
        days=30,
        warmup_days=0,
    )
    return MatterWalk(scenario, scenario.matter(catalog, "transfer"), seed=1)


def test_a_done_step_applies_its_effect_for_the_case():
    walk = locking_walk()
    effects = Recording()
    subject = Subject("c1", "U1", "buyer")
    state = CaseState(subject=subject)
    finished = walk.finish(state, 0, 0, 0, T0, effects)
    assert finished is not None and finished.outcome is Outcome.DONE
    assert effects.applied == [("lock", "property", subject)]
    assert walk.finish(state, 0, 1, 0, T0, effects) is not None  # assess has no effect
    assert len(effects.applied) == 1


def test_a_refused_effect_rejects_the_case_and_releases_its_lock():
    walk = locking_walk()
    effects = Recording(refuse="transfer")
    state = CaseState(subject=Subject("c1", "U1", "buyer"))
    finished = walk.finish(state, 0, 2, 0, T0, effects)
    assert finished is not None and finished.outcome is Outcome.REJECT
    assert finished.reason == "refused" and finished.released
    assert effects.released == [("property", state.subject)]  # the lock is property's


def test_a_rejection_heard_elsewhere_asks_for_the_release_once():
    walk = locking_walk({"assess": {"service": fixed(30), "reject": {"probability": 0.5}}})
    state = CaseState(subject=Subject("c1", "U1", "buyer"))
    assert walk.reject(state) is True  # the lock step's department must release it
    assert walk.reject(state) is False
    assert fork_join().reject(CaseState()) is False  # nothing locked


def test_an_effect_without_a_subject_is_a_clear_error():
    walk = locking_walk()
    with pytest.raises(ValueError, match="has the effect 'lock' but the case has no subject"):
        walk.finish(CaseState(), 0, 0, 0, T0, Recording())


def test_prepared_and_one_at_a_time_walks_agree():
    """The engine prepares first attempts in bulk; a live department draws one at a time."""
    bulk, lazy = fork_join({"a": {"service": {"kind": "exponential", "mean": 30}}}), None
    lazy = fork_join({"a": {"service": {"kind": "exponential", "mean": 30}}})
    import numpy as np

    bulk.prepare(np.full(50, -1))
    for seq in (0, 7, 49, 60):
        a = bulk.serve(CaseState(), ClerkPool(1), seq, -1, 0, 0, T0)
        b = lazy.serve(CaseState(), ClerkPool(1), seq, -1, 0, 0, T0)
        assert a == b


def test_department_records_store_every_field_as_copies():
    """Action and CaseRecord serialise by hand (asdict was a hot spot of the live
    departments): the same dict as asdict, not aliased to the object."""
    from dataclasses import asdict

    from services.core.department import Action, CaseRecord

    action = Action(
        at=1.0,
        kind="complete",
        case_id="c-1",
        matter="m",
        county="x",
        step="s",
        attempt=0,
        seq=1,
        segment=0,
        enabled=0.5,
        unit_code="u",
        owner="o",
    )
    assert action.to_dict() == asdict(action)
    assert Action.from_dict(action.to_dict()) == action
    record = CaseRecord(seen=["e1"], done={"s": 1.0})
    stored = record.to_dict()
    expected = asdict(record)
    del expected["closed"]
    assert stored == expected
    record.seen.append("e2")
    record.done["t"] = 2.0
    assert stored == expected  # not aliased
