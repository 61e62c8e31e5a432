"""Malformed input for the reliability tests: families of bad messages for every
service input topic, interleaved with a replay's valid traffic.

Every family must end in the dead-letter topic with a reason, once per service that
reads the topic. Each message carries a ``tag`` so a test can tell its own letters from
others. (Exact duplicates of valid events are *not* malformed: at least once, a
redelivery is indistinguishable from a duplicate, so readers drop them by event id —
:func:`duplicates` re-sends valid traffic to show nothing is counted twice.)
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from services.core.catalog import Catalog
from services.core.events import MAX_EVENT_BYTES, Event
from services.core.topics import Topics
from services.runtime.topology import tracker_inputs


def _mutate(
    template: Event, tag: str, index: int, change: Callable[[dict[str, Any]], None]
) -> bytes:
    data = json.loads(template.to_bytes())
    data["case_id"] = f"{tag}.{data['case_id'].split('.')[-1]}"
    data["payload"].setdefault("attributes", {})
    change(data)
    data.setdefault("x_flood", f"{tag}/{index}")
    return json.dumps(data, ensure_ascii=False).encode()


def _unset(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.pop(key, None)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


def _oversized(d: dict[str, Any]) -> None:
    d["payload"]["attributes"]["padding"] = "x" * (MAX_EVENT_BYTES + 1024)


#: family name -> (template, tag, index, run prefix) -> message bytes
FAMILIES: dict[str, Callable[[Event, str, int, str], bytes]] = {
    "invalid_json": lambda t, tag, i, p: f'{{"not json" {tag}/{i}'.encode(),
    "not_an_object": lambda t, tag, i, p: json.dumps([tag, i]).encode(),
    "binary": lambda t, tag, i, p: b"\xff\xfe" + f"{tag}/{i}".encode() + b"\x00",
    "wrong_types": lambda t, tag, i, p: _mutate(t, tag, i, _set("occurred_at", [1, 2])),
    "unknown_type": lambda t, tag, i, p: _mutate(t, tag, i, _set("type", "dragon.tamed")),
    "unknown_matter": lambda t, tag, i, p: _mutate(t, tag, i, _set("matter", "dragon_taming")),
    "unknown_county": lambda t, tag, i, p: _mutate(t, tag, i, _set("county", "atlantis")),
    "missing_fields": lambda t, tag, i, p: _mutate(t, tag, i, _unset("event_id")),
    "far_past": lambda t, tag, i, p: _mutate(
        t, tag, i, _set("occurred_at", "1900-01-01T09:00:00+08:00")
    ),
    "far_future": lambda t, tag, i, p: _mutate(
        t, tag, i, _set("occurred_at", "2200-01-01T09:00:00+08:00")
    ),
    "oversized": lambda t, tag, i, p: _mutate(t, tag, i, _oversized),
    # a well-formed event for a case that is not the run's (no such case)
    "unknown_case": lambda t, tag, i, p: _mutate(t, tag, i, lambda d: None),
}


def consumers(catalog: Catalog, services: list[str], topics: Topics) -> dict[str, list[str]]:
    """Which services read each input topic (the tracker reads them all)."""
    readers: dict[str, list[str]] = {}
    for service in services:
        inputs = (
            list(tracker_inputs(catalog, topics))
            if service == "tracker"
            else list(topics.inputs_of(catalog, service))
        )
        for topic in inputs:
            readers.setdefault(topic, []).append(service)
    return readers


def messages(template: Event, tag: str, per_family: int, prefix: str) -> list[tuple[str, bytes]]:
    """``per_family`` messages of every family, interleaved (family, bytes)."""
    out = []
    for i in range(per_family):
        for family, make in FAMILIES.items():
            out.append((family, make(template, tag, i, prefix)))
    return out


async def flood(
    bootstrap: str,
    readers: dict[str, list[str]],
    template: Event,
    tag: str,
    per_family: int,
    prefix: str,
    rate: float = 2000.0,
) -> Counter[tuple[str, str]]:
    """Send ``per_family`` messages of every family to every input topic at about
    ``rate`` messages a second; returns the letters expected per (service, topic)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    expected: Counter[tuple[str, str]] = Counter()
    batch = messages(template, tag, per_family, prefix)
    try:
        sent = 0
        for topic, services in readers.items():
            for _, raw in batch:
                await producer.send(topic, raw, key=template.county.encode())
                sent += 1
                if sent % 200 == 0:
                    await asyncio.sleep(200 / rate)
                for service in services:
                    expected[(service, topic)] += 1
        await producer.flush()
    finally:
        await producer.stop()
    return expected


def is_ours(letter: dict[str, Any], tag: str) -> bool:
    original = base64.b64decode(letter.get("original_base64", ""))
    return tag.encode() in original


async def duplicates(
    bootstrap: str, topics: list[str], marker: str, every: int, seconds: float, exclude: str
) -> int:
    """Re-send every ``every``-th message containing ``marker`` (and not ``exclude``:
    the flood's own) seen on ``topics`` for ``seconds`` — exact duplicates, as an
    at-least-once redelivery would be; returns how many."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    resent, seen = 0, 0
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    if marker.encode() not in record.value or exclude.encode() in record.value:
                        continue
                    seen += 1
                    if seen % every == 0:
                        await producer.send(tp.topic, record.value, key=record.key)
                        resent += 1
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return resent


async def collect_letters(
    bootstrap: str, topic: str, tag: str, expected: int, timeout: float, start: dict[int, int]
) -> list[dict[str, Any]]:
    """The dead letters carrying ``tag``, read from the ``start`` offsets (partition →
    offset), until ``expected`` have arrived or ``timeout`` seconds have passed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    letters: list[dict[str, Any]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(start)]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start[tp.partition])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(letters) < expected and loop.time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    letter = json.loads(record.value)
                    if is_ours(letter, tag):
                        letters.append(letter)
    finally:
        await consumer.stop()
    return letters


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def flood_during_replay(
    broker_url: str,
    catalog: Catalog,
    services: list[str],
    scenario_path: Any,
    speed: float,
    out: Any,
    per_family: int,
    tag: str,
    letters_timeout: float = 300.0,
) -> dict[str, Any]:
    """Replay a scenario and, while it runs, flood every input topic with malformed
    messages and re-send some valid ones; then audit: letters per (service, topic)
    against what each reader must park, and the run's ledger."""
    import threading
    import time

    from services.core.scenario import load_scenario
    from services.runtime.broker import bootstrap_of
    from simulator.ledger import audit, read_ledger
    from simulator.replay import ReplayOptions, replay
    from simulator.virtual import submissions

    bootstrap = bootstrap_of(broker_url)
    topics = Topics()
    readers = consumers(catalog, services, topics)
    scenario = load_scenario(scenario_path, catalog)
    template = submissions(scenario, 1)[0]
    start = asyncio.run(end_offsets(bootstrap, topics.dead_letters))
    outcome: dict[str, Any] = {}

    def run_replay() -> None:
        try:
            options = ReplayOptions(speed=speed, timeout=letters_timeout)
            outcome["result"] = replay(catalog, scenario_path, broker_url, options, out=out)
        except Exception as exc:  # reported, not raised in the thread
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=run_replay, daemon=True)
    started = time.time()
    thread.start()

    async def traffic() -> tuple[Counter[tuple[str, str]], int]:
        await asyncio.sleep(3.0)  # the run is announced and under way
        sent, resent = await asyncio.gather(
            flood(bootstrap, readers, template, tag, per_family, ""),
            duplicates(
                bootstrap, list(readers), ".linked_transfer-", every=5, seconds=10.0, exclude=tag
            ),
        )
        return sent, resent

    expected, resent = asyncio.run(traffic())
    thread.join()
    total = sum(expected.values())
    letters = asyncio.run(
        collect_letters(bootstrap, topics.dead_letters, tag, total, letters_timeout, start)
    )
    got = Counter((letter["service"], letter["source_topic"]) for letter in letters)
    report = audit(read_ledger(out / "ledger.jsonl")) if "result" in outcome else None
    return {
        "replay_error": outcome.get("error"),
        "terminal": outcome["result"].terminal if "result" in outcome else 0,
        "submitted": outcome["result"].submitted if "result" in outcome else 0,
        "malformed_sent": sum(per_family * len(FAMILIES) for _ in readers),
        "per_topic": per_family * len(FAMILIES),
        "topics": len(readers),
        "letters_expected": total,
        "letters": len(letters),
        "letters_without_reason": sum(1 for letter in letters if not letter.get("reason")),
        "mismatched_readers": sorted(
            f"{k}: expected {expected[k]}, got {got[k]}"
            for k in set(expected) | set(got)
            if expected[k] != got[k]
        ),
        "duplicates_resent": resent,
        "families": sorted(FAMILIES),
        "wall_seconds": round(time.time() - started, 1),
        "verify": report.counts() if report else None,
    }
