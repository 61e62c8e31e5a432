"""The consumer never skips an input record: a jump of its position is rewound."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from services.runtime.offsets import ContiguousOffsets, Verdict, consumer_class, install
from services.runtime.settings import Settings

SUBMISSIONS = "govflow.submissions"


def test_contiguous_records_are_delivered():
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 4, 20, 20) is Verdict.DELIVER  # after a seek to 20
    assert rule.verdict(SUBMISSIONS, 4, 21, 20) is Verdict.DELIVER
    assert rule.verdict(SUBMISSIONS, 4, 0, None) is Verdict.DELIVER  # nothing read yet
    assert rule.rewinds == 0


def test_a_jump_rewinds_once_and_drops_the_rest_of_its_batch():
    """The run-4 case: committed 20, then the consumer's first record is 61."""
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 4, 61, 20) is Verdict.REWIND
    assert rule.rewind_to(SUBMISSIONS, 4) == 21
    assert rule.verdict(SUBMISSIONS, 4, 62, 21) is Verdict.DROP  # fetched before the seek
    assert rule.verdict(SUBMISSIONS, 6, 47, 46) is Verdict.DELIVER  # other partitions go on
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 4, 21, 21) is Verdict.DELIVER  # fetched again, in order
    assert rule.verdict(SUBMISSIONS, 4, 22, 21) is Verdict.DELIVER
    assert (rule.rewinds, rule.accepted_gaps) == (1, 0)


def test_a_gap_still_there_after_the_rewind_is_in_the_log_and_accepted():
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 0, 500, 10) is Verdict.REWIND
    rule.new_batch()
    # retention deleted 11..499: the seek lands on the log start again
    assert rule.verdict(SUBMISSIONS, 0, 500, 11) is Verdict.DELIVER
    assert rule.verdict(SUBMISSIONS, 0, 501, 500) is Verdict.DELIVER
    assert (rule.rewinds, rule.accepted_gaps) == (1, 1)


def test_changelogs_and_the_assignor_topic_are_left_to_faust():
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict("govflow-property-cases-changelog", 4, 90, 10) is Verdict.DELIVER
    assert rule.verdict("govflow-property-__assignor-__leader", 0, 90, 10) is Verdict.DELIVER
    assert rule.rewinds == 0


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    offset: int


class FakeFaustConsumer:
    """What the adapter needs of Faust's consumer: getmany, _read_offset, seek."""

    def __init__(self, batches: list[list[tuple[TP, Record]]]) -> None:
        self.batches = batches
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self.sought: list[tuple[TP, int]] = []

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Record]]:
        for tp, record in self.batches.pop(0):
            yield tp, record
            self._read_offset[tp] = record.offset  # as Faust's drain loop does

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))
        self._read_offset[tp] = offset


def test_the_consumer_seeks_back_and_delivers_every_offset_in_order():
    p4 = TP(SUBMISSIONS, 4)
    consumer_type: Any = consumer_class(FakeFaustConsumer)
    consumer_type.offsets = ContiguousOffsets()
    consumer = consumer_type(
        [
            [(p4, Record(61)), (p4, Record(62))],  # the position jumped past 21..60
            [(p4, Record(o)) for o in range(21, 64)],  # fetched again after the seek
        ]
    )
    consumer._read_offset[p4] = 20  # sought to the committed offset

    async def drain() -> list[int]:
        delivered = []
        for _ in range(2):
            async for _tp, record in consumer.getmany(1.0):
                delivered.append(record.offset)
        return delivered

    assert asyncio.run(drain()) == list(range(21, 64))
    assert consumer.sought == [(p4, 21)]


def test_make_app_installs_the_consumer_under_at_least_once_only(tmp_path):
    from services.runtime.app import make_app

    app = make_app("tax", Settings(data_dir=tmp_path), "kafka://127.0.0.1:9")
    assert hasattr(app.transport.Consumer, "offsets")
    other = make_app(
        "tax",
        Settings(data_dir=tmp_path, processing_guarantee="exactly_once"),
        "kafka://127.0.0.1:9",
    )
    assert not hasattr(other.transport.Consumer, "offsets")


def test_install_keeps_one_rule_state_per_app():
    class Transport:
        Consumer = FakeFaustConsumer

    class App:
        transport = Transport()

    first, second = App(), App()
    first.transport = Transport()
    second.transport = Transport()
    install(first)
    install(second)
    assert first.transport.Consumer.offsets is not second.transport.Consumer.offsets
