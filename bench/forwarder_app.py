"""The cheapest Faust agent there is — read a message, send it on — for
``bench/pipeline.py``: the ceiling any Faust service reaches on this broker and machine.

``GOVFLOW_BENCH_BROKER`` (kafka://host:port), ``GOVFLOW_BENCH_MODE`` = ``each`` (one
awaited send per message), ``take`` (``stream.take`` batches of up to 500), or ``table``
(one by one, and one write of a changelog-backed table per message before the send: the
cheapest agent that keeps durable state, the least any department does per event).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import faust

from services.runtime.app import restore_log_level

MODE = os.environ.get("GOVFLOW_BENCH_MODE", "each")
# one app id per run (``GOVFLOW_BENCH_APP``): a run that reused the last run's id would
# first recover the last run's ``sizes`` changelog, and in ``table`` mode on Kafka such
# runs crawled at ~8 events/s (2026-12-05, runs 2 and 3 of 3) instead of ~3,000
app = faust.App(
    os.environ.get("GOVFLOW_BENCH_APP", f"bench-forwarder-{MODE}"),
    broker=os.environ.get("GOVFLOW_BENCH_BROKER", "kafka://127.0.0.1:9092"),
    store="memory://",
    processing_guarantee="at_least_once",
    topic_partitions=12,
    web_enabled=False,
    datadir=os.environ.get("GOVFLOW_BENCH_DATADIR", "/tmp/govflow-bench-forwarder"),
)
source = app.topic(os.environ.get("GOVFLOW_BENCH_SOURCE", "bench.fwd.in"), value_serializer="raw")
sink = app.topic(os.environ.get("GOVFLOW_BENCH_SINK", "bench.fwd.out"), value_serializer="raw")
# the ``table`` mode's state: one small record per message (its size), keyed by its offset
sizes = app.Table("sizes", default=None, partitions=12)


# the same log-level restore as the services (Faust leaves the root logger at DEBUG)
app.task(restore_log_level)


@app.agent(source)
async def forward(stream: faust.StreamT) -> AsyncIterator[Any]:
    if MODE == "take":
        async for batch in stream.take(500, within=0.05):
            for value in batch:
                await sink.send(value=value)
            yield None
    elif MODE == "table":
        async for event in stream.events():
            message = event.message
            sizes[f"{message.partition}/{message.offset}"] = len(event.value)
            await sink.send(value=event.value)
            yield None
    else:
        async for value in stream:
            await sink.send(value=value)
            yield None
