"""The embedded broker: starts on a free port, carries messages, stops without a trace."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.core.errors import InputError
from services.runtime.broker import EmbeddedBroker, ensure_topics, free_port, require_broker
from services.runtime.processes import process_alive

pytestmark = pytest.mark.integration


def test_round_trip_and_partitions(broker):
    async def scenario() -> list[tuple[int, bytes]]:
        created = await ensure_topics(broker.bootstrap, {"t.roundtrip": 12})
        assert created == ["t.roundtrip"]
        assert await ensure_topics(broker.bootstrap, {"t.roundtrip": 12}) == []
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for county in ("xinzhou", "dexing", "poyang"):
                await producer.send_and_wait("t.roundtrip", county.encode(), key=county.encode())
            partitions = await producer.partitions_for("t.roundtrip")
        finally:
            await producer.stop()
        assert len(partitions) == 12
        consumer = AIOKafkaConsumer(
            "t.roundtrip",
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            group_id="t",
        )
        await consumer.start()
        got = []
        try:
            while len(got) < 3:
                batch = await consumer.getmany(timeout_ms=2000)
                for records in batch.values():
                    got.extend((r.partition, r.value) for r in records)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(scenario())
    assert sorted(v for _, v in got) == [b"dexing", b"poyang", b"xinzhou"]


def test_start_and_stop_leave_no_process(tmp_path):
    embedded = EmbeddedBroker(log_path=tmp_path / "t.log")
    embedded.start()
    pid = embedded.pid
    assert pid is not None and process_alive(pid)
    embedded.stop()
    assert not process_alive(pid)


def test_a_broker_that_is_down_is_named():
    url = f"kafka://127.0.0.1:{free_port()}"
    with pytest.raises(InputError) as info:
        require_broker(url, timeout=1.0)
    assert info.value.source == url
    assert "broker is down" in info.value.reason
