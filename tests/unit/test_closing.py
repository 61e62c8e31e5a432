"""Bounded state: a case a service is done with is closed (a marker that still drops its
late duplicates) and forgotten after the horizon (services/core/closing and its drivers)."""

from __future__ import annotations

import json
from unittest.mock import AsyncMock, patch

import pytest
from faust.types import TP

from services.core.catalog import default_catalog
from services.core.closing import closed_at, closed_marker, expired, serving_since
from services.core.department import CaseRecord, DepartmentRules
from services.core.events import verdict_id
from services.core.scenario import load_scenario
from services.property.service import REGISTER
from services.runtime.app import county_partition
from services.runtime.department import DepartmentService
from services.runtime.settings import Settings
from services.tracker.progress import CaseProgress
from simulator.virtual import submissions

from .test_agents import SCENARIO, announcement, delivered, started


def test_a_marker_expires_after_the_horizon_counted_from_the_last_recovery():
    marker = closed_marker(1000.0)
    assert closed_at(marker) == 1000.0 and closed_at({"seen": []}) is None
    assert not expired(marker, 1000.0 + 300, 300)
    assert expired(marker, 1000.0 + 301, 300)
    # recovered at 1200: a marker closed before the outage waits a whole horizon more
    assert not expired(marker, 1000.0 + 450, 300, since=1200.0)
    assert expired(marker, 1200.0 + 301, 300, since=1200.0)
    assert not expired({"seen": ["e"]}, 10**9, 1)  # an open case never expires


def test_a_rebalance_pauses_the_markers_ageing_and_does_not_restart_it():
    # the first recovery of a worker (a start, maybe after a crash): from now
    assert serving_since(None, None, 5000.0) == 5000.0
    assert serving_since(None, 4990.0, 5000.0) == 5000.0
    # a rebalance 4 s long in a live worker recovered at 1000: ageing resumes 4 s later
    since = serving_since(1000.0, 5000.0, 5004.0)
    assert since == 1004.0
    marker = closed_marker(900.0)
    assert expired(marker, 1004.0 + 301, 300, since=since)  # forgotten: not held forever
    assert not expired(marker, 1004.0 + 299, 300, since=since)
    assert serving_since(1000.0, 5000.0, 4999.0) == 1000.0  # a clock step back: no shift


@pytest.fixture(scope="module")
def rules():
    catalog = default_catalog()
    return DepartmentRules(catalog, load_scenario(SCENARIO, catalog), "property", 5)


def _submission(matter: str, segment: int | None = None):
    scenario = load_scenario(SCENARIO, default_catalog())
    return next(
        e
        for e in submissions(scenario, 5)
        if e.matter == matter and (segment is None or e.payload.attributes["segment"] == segment)  # type: ignore[union-attr]
    )


#: the demo's mortgages filed at a bank's window (segment 0): property's steps alone
BANK_WINDOW = 0


def test_a_closed_record_drops_every_event_and_action(rules):
    event = _submission("mortgage_registration", BANK_WINDOW)
    record = CaseRecord()
    assert rules.on_event(event, record)  # the bank window's filing is planned
    assert not rules.finished("mortgage_registration", record)
    record.done = {"bank_intake": 0.5, "accept": 1.0}
    assert not rules.finished("mortgage_registration", record)
    record.done = {"bank_intake": 0.5, "accept": 1.0, "register": 2.0}
    assert rules.finished("mortgage_registration", record)
    record.close(123.0)
    assert record.to_dict() == {"closed": 123.0}
    again = CaseRecord.from_dict(record.to_dict())
    assert again.closed == 123.0 and again.seen == []
    assert rules.on_event(event, again) == []  # a late duplicate


def test_a_rejected_case_is_finished_and_another_departments_matter_too(rules):
    assert rules.finished("mortgage_registration", CaseRecord(rejected=True))
    assert rules.finished("water_complaint", CaseRecord())  # property has no step in it
    assert not rules.finished("linked_transfer", CaseRecord(done={"accept_lock": 1.0}))


def test_the_tracker_forgets_a_judged_case_and_its_verdict_id_is_fixed():
    progress = CaseProgress(submitted=1.0, verdict="completed", seen=["a", "b"])
    progress.close(50.0)
    assert progress.to_dict() == {"closed": 50.0}
    restored = CaseProgress.from_dict(progress.to_dict())
    assert not restored.observe(_submission("mortgage_registration"))
    assert verdict_id("c-1") == verdict_id("c-1") != verdict_id("c-2")


@pytest.fixture
def property_service(tmp_path):
    service = DepartmentService(
        "property",
        Settings(data_dir=tmp_path, closed_case_horizon_s=60),
        "kafka://127.0.0.1:9",
        default_catalog(),
        REGISTER,
    )
    return started(service, announcement())


async def test_a_case_done_here_is_closed_and_forgotten_after_the_horizon(property_service):
    """A mortgage registration filed at a bank (the bank's filing, accept, register —
    all property's) runs to the end in one tick; its record becomes a marker, a
    redelivered submission plans nothing, and the sweep forgets the marker only once it
    is older than the horizon."""
    service = property_service
    event = _submission("mortgage_registration", BANK_WINDOW)
    case_key = f"{event.county}|{event.case_id}"
    with patch.object(service.output_topic, "send", new=AsyncMock(side_effect=delivered)) as out:
        async with service.inputs_agent.test_context() as inputs:
            await inputs.put(event.to_bytes(), key=event.county.encode())
            await service.run_due()
            sent = [json.loads(c.kwargs["value"])["type"] for c in out.call_args_list]
            assert sent == ["bank.filed", "property.accepted", "mortgage.registered"]
            marker = service.cases.get(case_key)
            assert closed_at(marker) is not None, marker
            assert len(service.pending) == 0
            await inputs.put(event.to_bytes(), key=event.county.encode())  # redelivered
            assert len(service.pending) == 0 and service.cases.get(case_key) == marker
    changelog = service.state.table.changelog_topic.get_topic_name()
    owned = {TP(changelog, county_partition(event.county))}
    with patch.object(service.app.assignor, "assigned_actives", return_value=owned):
        service.recovered_at = 0.0
        assert await service.sweep_closed() == 0  # younger than the horizon: kept
        service.cases[case_key] = closed_marker(closed_at(marker) - 61)
        with patch.object(service.app.assignor, "assigned_actives", return_value=set()):
            assert await service.sweep_closed() == 0  # not this worker's county
        assert await service.sweep_closed() == 1
    assert service.cases.get(case_key) is None


def test_the_schedule_knows_which_cases_still_have_work_planned():
    """A case is closed only once none of its work is planned: the schedule's index by
    case, read through the table (an entry deleted elsewhere does not count)."""
    from services.core.department import Action
    from services.runtime.scheduler import Schedule

    pending: dict[str, object] = {}
    schedule = Schedule(pending)
    fields = dict(matter="m", county="xinzhou", attempt=0, seq=1, segment=0, enabled=0.0)
    arrive = Action(at=1.0, kind="arrive", case_id="m-0000001", step="a", **fields)
    release = Action(at=2.0, kind="release", case_id="m-0000001", step="a", **fields)
    other = Action(at=1.0, kind="arrive", case_id="m-0000002", step="a", **fields)
    for action in (arrive, release, other):
        schedule.plan(action)
    assert schedule.has_pending("xinzhou|m-0000001")
    schedule.drop(f"xinzhou|{arrive.key}")
    assert schedule.has_pending("xinzhou|m-0000001")
    del pending[f"xinzhou|{release.key}"]  # gone from the table (e.g. a recovered delete)
    assert not schedule.has_pending("xinzhou|m-0000001")
    assert "xinzhou|m-0000001" not in schedule.by_case
    assert schedule.has_pending("xinzhou|m-0000002")
    schedule.rebuild()
    assert schedule.by_case == {"xinzhou|m-0000002": {f"xinzhou|{other.key}"}}


async def test_a_rebalance_in_a_live_worker_does_not_restart_the_horizon(property_service):
    """The department's recovery callback: the first recovery counts from now, a later
    one (after a revocation) moves the markers' start on by the pause only."""
    import time

    service = property_service
    with patch.object(service.app.assignor, "assigned_actives", return_value=set()):
        before = time.time()
        service.recoveries = 0
        await service.on_tables_recovered()
        assert service.recovered_at >= before and service.recoveries == 1
        service.recovered_at = 1000.0
        await service.note_revoked(None, set())
        service.revoked_at = time.time() - 2.0  # the rebalance took two seconds
        await service.on_tables_recovered()
    assert 1002.0 <= service.recovered_at < 1003.0
