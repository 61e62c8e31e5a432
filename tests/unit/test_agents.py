"""Department and tracker agents under Faust's test_context (no broker)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from unittest.mock import AsyncMock, patch

import pytest

from services.core.calendar import CalendarRangeError
from services.core.catalog import default_catalog
from services.core.department import Action
from services.core.scenario import read_scenario_data, scenario_from_dict
from services.core.steps import REWORK
from services.property.service import REGISTER
from services.runtime.control import RunAnnounced
from services.runtime.department import DepartmentService
from services.runtime.service import Service
from services.runtime.settings import Settings
from simulator.virtual import submissions

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


def scenario_data() -> dict:
    """The demo, its linked transfers filed online (no window intake): the property
    department takes them first, and its acceptance may send the applicant to correct."""
    data = read_scenario_data(SCENARIO)
    online = [{"name": "网上申请", "share": 1.0, "route": "online"}]
    data["demand"]["linked_transfer"] = {**data["demand"]["linked_transfer"], "segments": online}
    rework = {
        "probability": 0.05,
        "delay": {"kind": "exponential", "mean": 2, "unit": "working_days"},
    }
    accept = data["timing"]["linked_transfer"]["accept_lock"]
    data["timing"]["linked_transfer"]["accept_lock"] = {**accept, "rework": rework}
    return data


def announcement(run_id: str = "t1", *, sim_epoch: float | None = None, speed: float = 8640.0):
    return RunAnnounced.of(
        scenario_data(),
        run_id=run_id,
        seed=5,
        speed=speed,
        sim_epoch=time.time() if sim_epoch is None else sim_epoch,
        wall_epoch=time.time(),
    )


def started(service: Service, run: RunAnnounced) -> Service:
    assert service.announce(run, run.load(service.catalog))
    if isinstance(service, DepartmentService):
        service.schedule.rebuild()  # as after the tables' recovery (no broker here)
    return service


@pytest.fixture
def property_service(tmp_path):
    service = DepartmentService(
        "property", Settings(data_dir=tmp_path), "kafka://127.0.0.1:9", default_catalog(), REGISTER
    )
    return started(service, announcement())


def linked_submissions():
    """The demo's linked transfers, each with whether its first acceptance is corrected."""
    scenario = scenario_from_dict(scenario_data(), default_catalog())
    from services.core.department import DepartmentRules

    rules = DepartmentRules(default_catalog(), scenario, "property", 5)
    walk = rules.walks["linked_transfer"]
    accept = walk.models[walk.graph.index["accept_lock"]]
    for event in submissions(scenario, 5):
        if event.matter == "linked_transfer":
            seq = int(event.payload.attributes["seq"])  # type: ignore[union-attr]
            yield event, bool(accept.branches(seq, 0) & REWORK)


def delivered(*args: object, **kwargs: object) -> asyncio.Future[None]:
    """What the topic's send returns: a future resolved once the broker has the message."""
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def undelivered(*args: object, **kwargs: object) -> asyncio.Future[None]:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(ConnectionError("broker gone"))
    return future


async def test_completions_not_delivered_are_redone_with_the_same_ids(property_service):
    service = property_service
    event, _ = next(linked_submissions())
    with patch.object(service.output_topic, "send", new=AsyncMock(side_effect=undelivered)):
        async with service.inputs_agent.test_context() as inputs:
            await inputs.put(event.to_bytes(), key=event.county.encode())
            await service.run_due()  # assigns and completes, but the broker never acks
    assert len(service.pending) == 1  # the work is still planned: nothing recorded as done
    with patch.object(
        service.output_topic, "send", new=AsyncMock(side_effect=delivered)
    ) as published:
        await service.run_due()
        await service.run_due()
    sent = [json.loads(c.kwargs["value"]) for c in published.call_args_list]
    # the acceptance, redone, then property's own review (parallel to tax and 交易)
    assert [(e["case_id"], e["payload"]["step"]) for e in sent] == [
        (event.case_id, "accept_lock"),
        (event.case_id, "review"),
    ]
    assert len(service.pending) == 0


async def test_the_clock_waits_for_the_tables_and_rebuilds_only_owned_counties(
    property_service,
):
    """After a rebalance starts the clock does not act (the tables may be half
    restored); once they are recovered, the heaps hold every planned action of the
    counties this worker owns — also those restored after the first look — and no other."""
    from faust.types import TP

    from services.runtime.app import county_partition

    service = property_service
    event, _ = next(linked_submissions())
    await service.on_partitions_revoked(service.app, set())
    with patch.object(
        service.output_topic, "send", new=AsyncMock(side_effect=delivered)
    ) as published:
        async with service.inputs_agent.test_context() as inputs:
            await inputs.put(event.to_bytes(), key=event.county.encode())
            await service.run_due()
        assert published.call_count == 0  # not synced: nothing executed
        assert len(service.pending) == 1
        # a planned action of a county another worker owns (restored from a changelog)
        foreign = next(
            c
            for c in service.rules.scenario.counties  # type: ignore[union-attr]
            if county_partition(c) != county_partition(event.county)
        )
        data = dict(next(iter(service.pending.values())), county=foreign)
        service.pending[f"{foreign}|elsewhere"] = data
        changelog = service.pending.changelog_topic.get_topic_name()
        owned = {TP(changelog, county_partition(event.county))}
        with patch.object(service.app.assignor, "assigned_actives", return_value=owned):
            await service.on_tables_recovered()
        assert service.schedule.synced
        assert set(service.schedule.heaps) == {event.county}
        await service.run_due()
        await service.run_due()
    sent = [json.loads(c.kwargs["value"]) for c in published.call_args_list]
    assert {e["case_id"] for e in sent} == {event.case_id}  # nothing of the foreign county
    assert sent[0]["payload"]["step"] == "accept_lock"


async def test_an_event_waits_while_its_countys_tick_is_publishing(property_service):
    """The lost join: a tick that completes review here while tax's clearance arrives
    must not let both read the case before either records it.  The inputs agent takes
    the county's lock, which a tick holds from reading its cases to recording them."""
    service = property_service
    event, _ = next(linked_submissions())
    case_key = f"{event.county}|{event.case_id}"
    async with service.inputs_agent.test_context() as inputs:
        async with service.county_lock(event.county):  # a tick publishing
            put = asyncio.ensure_future(inputs.put(event.to_bytes(), key=event.county.encode()))
            await asyncio.sleep(0.2)
            assert service.cases.get(case_key) is None  # the event waits
            assert len(service.pending) == 0
        await asyncio.wait_for(put, 5)
    assert service.cases.get(case_key) is not None
    assert len(service.pending) == 1


async def test_submission_plans_the_entry_step_once(property_service):
    service = property_service
    event, _ = next(linked_submissions())
    with patch.object(service.dead_letter_topic, "send", new=AsyncMock()) as dead:
        async with service.inputs_agent.test_context() as agent:
            await agent.put(event.to_bytes(), key=event.county.encode())
            await agent.put(event.to_bytes(), key=event.county.encode())  # redelivered
    planned = [json.loads(json.dumps(v)) for v in service.pending.values()]
    assert [p["step"] for p in planned] == ["accept_lock"]
    assert planned[0]["kind"] == "arrive" and planned[0]["case_id"] == event.case_id
    assert dead.call_count == 0


async def test_malformed_input_goes_to_the_dead_letter_topic(property_service):
    service = property_service
    with patch.object(service.dead_letter_topic, "send", new=AsyncMock()) as dead:
        async with service.inputs_agent.test_context() as agent:
            await agent.put(b"{not json", key=b"xinzhou")
            await agent.put(b'{"type": "case.submitted"}', key=b"xinzhou")
    assert dead.call_count == 2
    letters = [json.loads(c.kwargs["value"]) for c in dead.call_args_list]
    assert "invalid JSON" in letters[0]["reason"]
    assert letters[1]["field"] == "event_id" and letters[1]["source_topic"]
    assert len(service.pending) == 0


@pytest.mark.parametrize("corrected", [False, True], ids=["done", "corrected (补正)"])
async def test_due_work_assigns_a_clerk_then_completes(property_service, corrected):
    """The sim clock is far past the 2021 case, so all its work is due: the clerk is
    assigned and the acceptance finishes — done (the unit locked), or sent back for
    correction (补正), as the walk's draw for this case says; a follow-up already due
    (the applicant's return) is executed in the same tick."""
    service = property_service
    event = next(e for e, reworked in linked_submissions() if reworked == corrected)
    with patch.object(
        service.output_topic, "send", new=AsyncMock(side_effect=delivered)
    ) as published:
        async with service.inputs_agent.test_context() as inputs:
            await inputs.put(event.to_bytes(), key=event.county.encode())
            await service.run_due()
    sent = [json.loads(c.kwargs["value"]) for c in published.call_args_list]
    review = [e for e in sent if e["payload"]["step"] == "review"]
    assert len(review) == 1 and review[0]["type"] == "property.reviewed"  # its own successor
    sent = [e for e in sent if e["payload"]["step"] == "accept_lock"]
    assert sent[0]["type"] == ("step.reworked" if corrected else "property.locked")
    assert sent[0]["payload"]["clerk"].startswith(f"property/{event.county}/")
    assert sent[0]["case_id"] == event.case_id
    assert list(service.tables.pools.keys()) == [f"{event.county}|t1"]  # in its partition
    attempts = [e["payload"]["attempt"] for e in sent]
    if corrected:  # the applicant's return is due as well: attempt 2 ran in the same tick
        assert attempts[:2] == [1, 2]
    else:
        assert attempts == [1]
    assert len(service.pending) == 0
    if sent[-1]["type"] == "property.locked":  # the register knows the case's lock
        units = list(service.tables.kept.values())
        assert [u["locked_by"] for u in units] == [event.case_id]


async def test_an_action_that_raises_is_dead_lettered_and_its_county_goes_on(property_service):
    service = property_service
    good, _ = next(linked_submissions())
    with patch.object(service.output_topic, "send", new=AsyncMock(side_effect=delivered)):
        async with service.inputs_agent.test_context() as inputs:
            await inputs.put(good.to_bytes(), key=good.county.encode())
    broken = Action.from_dict(next(iter(service.pending.values())))
    broken.case_id, broken.step = broken.case_id + "x", "no_such_step"  # cannot be executed
    service.schedule.plan(broken)
    with (
        patch.object(
            service.output_topic, "send", new=AsyncMock(side_effect=delivered)
        ) as published,
        patch.object(
            service.dead_letter_topic, "send", new=AsyncMock(side_effect=delivered)
        ) as dead,
    ):
        await service.run_due()
        await service.run_due()  # the broken action is gone: not retried every tick
    letters = [json.loads(c.kwargs["value"]) for c in dead.call_args_list]
    assert len(letters) == 1
    assert "no_such_step" in letters[0]["reason"] and letters[0]["field"].startswith("pending[")
    published_steps = [
        (e["case_id"], e["payload"]["step"])
        for e in (json.loads(c.kwargs["value"]) for c in published.call_args_list)
    ]
    assert published_steps == [(good.case_id, "accept_lock"), (good.case_id, "review")]
    assert len(service.pending) == 0


async def test_a_batch_with_an_event_that_raises_keeps_the_others_of_its_county(
    property_service,
):
    """One county's events of a batch are one unit of work; the one that raises is
    dead-lettered and leaves nothing behind, the others are handled."""
    service = property_service
    assert service.rules is not None
    events = []
    for event, _ in linked_submissions():
        if not events or event.county == events[0].county:
            events.append(event)
        if len(events) == 3:
            break
    county, bad = events[0].county, events[1]
    on_event = service.rules.on_event

    def failing(event, record):
        if event.case_id == bad.case_id:
            for action in on_event(event, record):  # it plans, then fails:
                service.schedule.plan(action)  # nothing of it may stay
            raise ValueError("broken rule")
        return on_event(event, record)

    with (
        patch.object(service.rules, "on_event", new=failing),
        patch.object(
            service.dead_letter_topic, "send", new=AsyncMock(side_effect=delivered)
        ) as dead,
    ):
        async with service.inputs_agent.test_context() as inputs:
            for event in events[:-1]:
                await inputs.put(event.to_bytes(), key=county.encode(), wait=False)
            await inputs.put(events[-1].to_bytes(), key=county.encode())
            for _ in range(50):  # every put may not have made the same batch
                if dead.call_count and len(service.pending) == 2:
                    break
                await asyncio.sleep(0.05)
    letters = [json.loads(c.kwargs["value"]) for c in dead.call_args_list]
    assert len(letters) == 1 and "broken rule" in letters[0]["reason"]
    planned = sorted(json.loads(json.dumps(v))["case_id"] for v in service.pending.values())
    assert planned == sorted([events[0].case_id, events[2].case_id])
    assert service.cases.get(f"{county}|{bad.case_id}") is None
    assert sorted(k for _, k in service.schedule.heaps[county]) == sorted(service.pending)


async def test_an_announcement_that_does_not_match_its_hash_is_refused(tmp_path):
    service = DepartmentService(
        "tax", Settings(data_dir=tmp_path), "kafka://127.0.0.1:9", default_catalog()
    )
    run = announcement("t3")
    tampered = run.model_copy(update={"scenario": {**run.scenario, "seed": 99}})
    with patch.object(service.dead_letter_topic, "send", new=AsyncMock()) as dead:
        assert not await service.take_announcement(tampered.to_bytes(), 0, 7)
        assert not await service.take_announcement(b"x" * (2 * 1024 * 1024), 0, 8)
        assert not await service.take_announcement(b'{"type": "run.started"}', 0, 9)
        assert service.control.run is None and service.rules is None
        assert await service.take_announcement(run.to_bytes(), 0, 10)
    letters = [json.loads(c.kwargs["value"]) for c in dead.call_args_list]
    assert [d["offset"] for d in letters] == [7, 8, 9]
    assert "does not match" in letters[0]["reason"] and letters[0]["field"] == "scenario_sha256"
    assert "exceeds" in letters[1]["reason"]
    assert service.control.run is not None and service.control.run.run_id == "t3"


async def test_input_waits_for_the_run_without_polling(tmp_path):
    service = DepartmentService(
        "tax", Settings(data_dir=tmp_path), "kafka://127.0.0.1:9", default_catalog()
    )
    waiting = asyncio.create_task(service.control.wait())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    run = announcement("t4")
    service.announce(run, run.load(service.catalog))
    assert (await asyncio.wait_for(waiting, 1.0)).run_id == "t4"


async def test_a_clock_outside_the_calendar_does_not_stop_the_metrics_timer(tmp_path, caplog):
    """bench/pipeline.py announces a run ten years ahead (all work due at once): the
    gauges cannot be computed there; the timer logs it once and carries on."""
    service = DepartmentService(
        "tax", Settings(data_dir=tmp_path), "kafka://127.0.0.1:9", default_catalog()
    )
    started(service, announcement("t2", sim_epoch=time.time() + 10 * 365 * 86400, speed=1.0))
    with patch.object(Service, "refresh_gauges", lambda self: None):  # no consumer here
        with pytest.raises(CalendarRangeError, match="outside this calendar"):
            service.refresh_gauges()  # what the timer runs …
        with caplog.at_level(logging.WARNING):
            await service.observe()  # … survives, and says so once
            await service.observe()
    warnings = [r for r in caplog.records if "gauges not refreshed" in r.getMessage()]
    assert len(warnings) == 1 and "CalendarRangeError" in warnings[0].getMessage()


def test_up_creates_the_changelog_of_every_table_each_service_keeps(tmp_path):
    """`govflow up` pre-creates the changelogs and the leader-assignor topics: the lists
    must be exactly the topics the services' Faust apps create (a missing one is created
    by Faust in a race with its own consumer)."""
    from services.core.topics import Topics
    from services.runtime.topology import (
        assignor_topics,
        changelog_topics,
        keeping_of,
        service_names,
    )
    from services.tracker.service import TrackerService

    catalog = default_catalog()
    made: list[str] = []
    leaders: list[str] = []
    for name in service_names(catalog):
        settings = Settings(data_dir=tmp_path / name)
        if name == "tracker":
            service: Service = TrackerService(settings, "kafka://127.0.0.1:9", catalog)
        else:
            service = DepartmentService(
                name, settings, "kafka://127.0.0.1:9", catalog, keeping_of(name)
            )
        made.extend(t.changelog_topic.get_topic_name() for t in service.app.tables.values())
        leaders.append(service.app._leader_assignor._leader_topic_name)  # type: ignore[attr-defined]
    assert sorted(made) == sorted(changelog_topics(catalog, Topics()))
    assert sorted(leaders) == sorted(assignor_topics(catalog))
    # one changelog per department: all its kinds of state share it (units land whole)
    assert "govflow-property-state-changelog" in made
    assert not any(t.endswith(("-units-changelog", "-pending-changelog")) for t in made)


async def test_recovery_finishes_an_interrupted_unit_of_work_before_the_clock_ticks(
    property_service,
):
    """A crash between a unit's journal and its writes: recovery applies the journal of
    each county this worker owns, so the planned action is there when the heaps are
    rebuilt (the embedded broker's lost cases: "seen" durable, the action not)."""
    from faust.types import TP

    from services.runtime.app import county_partition

    service = property_service
    event, _ = next(linked_submissions())
    async with service.inputs_agent.test_context() as inputs:
        await inputs.put(event.to_bytes(), key=event.county.encode())
    table = service.state.table
    unit = [[k, table[k]] for k in list(table.keys())]
    assert len(unit) == 2  # the case record and its planned action
    for key, _ in unit:
        del table[key]  # as recovered from a changelog that kept only the journal
    table[f"{event.county}|~journal|"] = unit
    await service.on_partitions_revoked(service.app, set())
    changelog = service.state.table.changelog_topic.get_topic_name()
    owned = {TP(changelog, county_partition(event.county))}
    with patch.object(service.app.assignor, "assigned_actives", return_value=owned):
        await service.on_tables_recovered()
    assert service.state.journals_replayed == 1
    assert sorted(table.keys()) == sorted(k for k, _ in unit)
    assert service.schedule.synced and len(service.schedule.heaped) == 1


async def test_a_tick_straddling_a_rebalance_records_nothing(property_service):
    """The timer is not drained before a rebalance: a tick whose publish await spans
    one must not write the state that is being recovered; its work stays planned and is
    redone after the recovery (same event ids)."""
    service = property_service
    event, _ = next(linked_submissions())

    async def publish_during_a_rebalance(*args: object, **kwargs: object):
        await service.on_partitions_revoked(service.app, set())
        return delivered()

    async with service.inputs_agent.test_context() as inputs:
        await inputs.put(event.to_bytes(), key=event.county.encode())
    before = dict(service.state.table.items())
    with patch.object(
        service.output_topic, "send", new=AsyncMock(side_effect=publish_during_a_rebalance)
    ) as published:
        await service.run_due()
    assert published.call_count >= 1  # the work was done and published ...
    assert dict(service.state.table.items()) == before  # ... but not recorded
    assert service.ticks_discarded == 1
    service.schedule.rebuild()  # as after the recovery: the action is there to redo
    assert len(service.schedule.heaped) == 1


async def test_a_verdict_that_raises_is_dead_lettered_and_the_tracker_goes_on(tmp_path):
    """The 2026-12-02 Kafka soak: a CalendarRangeError in a verdict crashed the
    tracker's agent (Faust restarted it, and the lag grew). Now the event is parked."""
    from services.tracker.progress import CaseProgress
    from services.tracker.service import TrackerService

    service = TrackerService(Settings(data_dir=tmp_path), "kafka://127.0.0.1:9", default_catalog())
    started(service, announcement())
    events = [e for e, _ in linked_submissions()][:2]
    real = CaseProgress.verdict_event

    def verdict_event(self, matter, trigger, office, routes=None):
        if trigger.case_id == events[0].case_id:
            raise CalendarRangeError("timestamps outside this calendar's data")
        return real(self, matter, trigger, office, routes)

    with (
        patch.object(CaseProgress, "verdict_event", verdict_event),
        patch.object(
            service.dead_letter_topic, "send", new=AsyncMock(side_effect=delivered)
        ) as dead,
    ):
        async with service.inputs_agent.test_context() as inputs:
            for event in events:
                await inputs.put(event.to_bytes(), key=event.county.encode())
    letters = [json.loads(c.kwargs["value"]) for c in dead.call_args_list]
    assert len(letters) == 1 and "CalendarRangeError" in letters[0]["reason"]
    assert service.cases.get(f"{events[1].county}|{events[1].case_id}") is not None


def test_consumer_lag_leaves_out_the_changelogs(tmp_path):
    """A changelog is read only while recovering: its 'lag' grows with every table write
    and is no backlog (the 2026-12-02 Kafka soak reported 33,068 from it)."""
    from types import SimpleNamespace

    from services.runtime.health import ServiceMetrics

    class TP(SimpleNamespace):
        def __hash__(self) -> int:
            return hash((self.topic, self.partition))

    inputs, changelog = (
        TP(topic="govflow.dept.tax", partition=4),
        TP(topic="govflow-property-state-changelog", partition=4),
    )
    consumer = SimpleNamespace(
        _read_offset={inputs: 9, changelog: 0},
        assignment=lambda: [inputs, changelog],
        highwater=lambda tp: 12 if tp is inputs else 5000,
    )
    metrics = ServiceMetrics("property-lag-test")
    fake = SimpleNamespace(app=SimpleNamespace(consumer=consumer), metrics=metrics, name="p")
    Service.refresh_gauges(fake)  # type: ignore[arg-type]
    lag = metrics.consumer_lag
    assert lag.labels("p", inputs.topic, "4")._value.get() == 2
    assert ("p", changelog.topic, "4") not in {tuple(k) for k in lag._metrics}


async def test_the_root_logger_gets_the_workers_level_back():
    """Faust's worker leaves the root logger at DEBUG (its start-up spinner)."""
    from services.runtime.app import restore_log_level

    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    saved_level, saved_handlers = root.level, root.handlers[:]
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)
    try:
        await restore_log_level()
        assert root.level == logging.WARNING
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_lag_of_a_partition_not_fetched_yet_is_left_unset(tmp_path):
    """aiokafka's highwater is None until a partition's first fetch: no lag is computed
    for it (it was a TypeError, and the metrics timer's one warning went to it)."""
    from types import SimpleNamespace

    from faust.types import TP

    service = DepartmentService(
        "tax", Settings(data_dir=tmp_path), "kafka://127.0.0.1:9", default_catalog()
    )
    fetched, unfetched = TP("govflow.submissions", 0), TP("govflow.submissions", 1)
    consumer = SimpleNamespace(
        _read_offset={fetched: 4},
        assignment=lambda: {fetched, unfetched},
        highwater=lambda tp: 10 if tp == fetched else None,
    )
    with patch.object(type(service.app), "consumer", new=consumer):
        Service.refresh_gauges(service)
    gauge = service.metrics.consumer_lag
    assert gauge.labels("tax", "govflow.submissions", "0")._value.get() == 5
    assert ("tax", "govflow.submissions", "1") not in gauge._metrics
