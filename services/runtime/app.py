"""The Faust app factory: every service is configured the same way, from the settings."""

from __future__ import annotations

import functools
import logging
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.tables.table import Table

from services.runtime import flush, offsets
from services.runtime.settings import Settings
from services.runtime.topology import PARTITIONS, app_id

_PARTITIONER = DefaultPartitioner()


@functools.lru_cache(maxsize=4096)
def county_partition(county: str) -> int:
    """The partition the producer gives an event keyed by ``county`` (cached: aiokafka's
    murmur2 is pure Python, and every table write and every sweep asks again for one of
    a few dozen counties)."""
    partitions = list(range(PARTITIONS))
    return int(_PARTITIONER(county.encode(), partitions, partitions))


class CountyTable(Table):
    """A table whose keys start with ``"<county>|"`` and live in that county's partition.

    Faust puts a table write in the partition of the event being processed, so a timer
    may not write tables.  Keyed by county explicitly, the state of a county stays in the
    partition its events arrive on (and in the worker that owns it) whoever writes it.
    """

    def partition_for_key(self, key: Any) -> int | None:
        county, sep, _ = str(key).partition("|")
        if not sep:
            return super().partition_for_key(key)
        return county_partition(county)


def make_app(service: str, settings: Settings, broker_url: str) -> faust.App:
    """A Faust app for one service (``govflow-<service>``), at-least-once by default.

    ``producer_max_batch_size=1``: the embedded broker (Tansu) answers ListOffsets with
    the start of the last *batch*, so a changelog written in multi-record batches is
    recovered short; one record per batch makes recovery exact.  Apache Kafka does not
    need it, but it costs little at the twin's rates.  Its consumer never skips an input
    record (:mod:`services.runtime.offsets`), and it commits no offset before the table
    writes it covers are with the broker (:mod:`services.runtime.flush`).
    """
    datadir = settings.data_dir / "faust" / service
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id(service),
        broker=broker_url,
        store="memory://",
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        broker_session_timeout=10,
        broker_heartbeat_interval=2,
        consumer_auto_offset_reset="earliest",
        producer_max_batch_size=1 if settings.embedded_broker_quirks else 16384,
        web_enabled=False,
        autodiscover=False,
        datadir=str(datadir),
        table_cleanup_interval=60.0,
        consumer_group_instance_id=settings.group_instance_id,
    )
    if settings.processing_guarantee == "at_least_once":
        offsets.install(app)  # a jump of the consumer's position is rewound, not committed
    flush.install(app)  # no offset committed before the table writes it covers are sent
    return app


async def restore_log_level() -> None:
    """Give the root logger back the worker's level (``-l warn``).  Faust's worker sets it
    to DEBUG for its start-up spinner and never restores it, so every debug line of
    aiokafka and Faust — several per message — is built (caller lookup and all) and then
    dropped by the handlers: 8 % of a department's CPU in ``bench/pipeline.py``.  Every
    service runs it as a task (and so does the bench's forwarder, to compare fairly)."""
    root = logging.getLogger()
    levels = [h.level for h in root.handlers if type(h).__name__ != "SpinnerHandler"]
    if levels and root.level < min(levels):
        root.setLevel(min(levels))
