"""Department and tracker agents under Faust's test_context (no broker)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from unittest.mock import AsyncMock, patch

import pytest

from services.core.calendar import CalendarRangeError
from services.core.scenario import load_scenario
from services.runtime.clock import RunAnnounced
from services.runtime.services import DepartmentService, Service
from services.runtime.settings import Settings
from simulator.virtual import submissions

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


@pytest.fixture
def property_service(tmp_path):
    service = DepartmentService("property", Settings(data_dir=tmp_path), "kafka://127.0.0.1:9")
    service.announce(
        RunAnnounced(
            run_id="t1",
            scenario=SCENARIO,
            seed=5,
            speed=8640.0,
            sim_epoch=time.time(),
            wall_epoch=time.time(),
        )
    )
    return service


def linked_submission():
    from services.core.catalog import default_catalog

    scenario = load_scenario(SCENARIO, default_catalog())
    return next(e for e in submissions(scenario, 5) if e.matter == "linked_transfer")


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
    event = linked_submission()
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
    assert len(sent) == 1 and sent[0]["case_id"] == event.case_id
    assert len(service.pending) == 0


async def test_submission_plans_the_entry_step_once(property_service):
    service = property_service
    event = linked_submission()
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


async def test_due_work_assigns_a_clerk_then_completes(property_service):
    service = property_service  # its sim clock is far past the 2021 case: all work is due
    event = linked_submission()
    with patch.object(
        service.output_topic, "send", new=AsyncMock(side_effect=delivered)
    ) as published:
        async with service.inputs_agent.test_context() as inputs:
            await inputs.put(event.to_bytes(), key=event.county.encode())
            await service.run_due()  # the clock: assign the clerk, emit the completion
            await service.run_due()  # nothing left: nothing more
    sent = [json.loads(c.kwargs["value"]) for c in published.call_args_list]
    assert [e["type"] for e in sent] in (["property.locked"], ["step.reworked"])
    assert sent[0]["payload"]["clerk"] == f"property/{event.county}/1"
    assert sent[0]["case_id"] == event.case_id
    pool_keys = list(service.pools.keys())
    assert pool_keys == [f"{event.county}|t1"]  # the county's clerks, kept in its partition


async def test_a_clock_outside_the_calendar_does_not_stop_the_metrics_timer(tmp_path):
    """bench/pipeline.py announces a run ten years ahead (all work due at once): the
    gauges cannot be computed there, and the worker must carry on regardless."""
    service = DepartmentService("tax", Settings(data_dir=tmp_path), "kafka://127.0.0.1:9")
    far = time.time() + 10 * 365 * 86400
    service.announce(
        RunAnnounced(
            run_id="t2", scenario=SCENARIO, seed=5, speed=1.0, sim_epoch=far, wall_epoch=time.time()
        )
    )
    with patch.object(Service, "refresh_gauges", lambda self: None):  # no consumer here
        with pytest.raises(CalendarRangeError, match="outside this calendar"):
            service.refresh_gauges()  # what the timer runs …
        await service.observe()  # … and the timer survives it
        await service.observe()
