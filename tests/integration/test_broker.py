"""The brokers: the embedded one and Apache Kafka start on free ports, carry messages,
and stop without a trace; Apache Kafka comes back from a crash with its log."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.core.errors import InputError
from services.runtime.broker import (
    EmbeddedBroker,
    KafkaBroker,
    ensure_topics,
    free_port,
    require_broker,
)
from services.runtime.processes import process_alive
from tests.integration.conftest import kafka_missing

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


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    reason = kafka_missing()
    if reason:
        pytest.skip(reason)
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka") / "kafka")
    broker.start()
    yield broker
    broker.stop()


async def _send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=value)
    finally:
        await producer.stop()


async def _read(bootstrap: str, topic: str, count: int, group: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=group
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                got.extend(r.value for r in records if r.value is not None)
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def test_apache_kafka_runs_from_the_data_dir_and_keeps_its_log_across_a_crash(kafka):
    assert (kafka.log_dirs / "meta.properties").exists()  # formatted in its home
    asyncio.run(ensure_topics(kafka.bootstrap, {"t.kept": 12}))
    asyncio.run(_send(kafka.bootstrap, "t.kept", [b"a", b"b", b"c"]))
    assert sorted(asyncio.run(_read(kafka.bootstrap, "t.kept", 3, "g1"))) == [b"a", b"b", b"c"]
    pid = kafka.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # a crash: no clean shutdown
    kafka.process.wait(30)  # type: ignore[union-attr]
    again = KafkaBroker(kafka.home)  # what a restart after the crash sees: the same ports
    assert again.port == kafka.port
    again.start()
    kafka.process = again.process  # the fixture stops the running one
    try:
        asyncio.run(_send(kafka.bootstrap, "t.kept", [b"d"]))
        # the committed offset of g1 survived: it reads only the new record
        assert asyncio.run(_read(kafka.bootstrap, "t.kept", 1, "g1")) == [b"d"]
        everything = asyncio.run(_read(kafka.bootstrap, "t.kept", 4, "g2"))
        assert sorted(everything) == [b"a", b"b", b"c", b"d"]
    finally:
        again.stop()
    assert not process_alive(int(again.pid or 0))
    assert "Kafka Server started" in kafka.log_path.read_text(encoding="utf-8")


def test_a_missing_kafka_install_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GOVFLOW_KAFKA_HOME", str(tmp_path / "nothing"))
    with pytest.raises(InputError) as info:
        KafkaBroker(tmp_path / "home").start()
    assert "make kafka" in info.value.reason
    assert info.value.field == "GOVFLOW_KAFKA_HOME"
