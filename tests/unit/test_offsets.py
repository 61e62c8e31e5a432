"""The consumer never skips an input record: a jump of its position is rewound."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from services.runtime.offsets import (
    ContiguousOffsets,
    Verdict,
    consumer_class,
    expected_offset,
    install,
)
from services.runtime.settings import Settings

SUBMISSIONS = "govflow.submissions"


def test_the_expected_offset_after_a_seek_after_a_record_and_with_nothing_read():
    assert expected_offset(20, sought=True) == 20  # sought to the committed offset 20
    assert expected_offset(20, sought=False) == 21  # record 20 was read
    assert expected_offset(None, sought=True) is None  # no offset known: not checked
    assert expected_offset(None, sought=False) is None


def test_contiguous_records_are_delivered():
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 4, 20, 20) is Verdict.DELIVER
    assert rule.verdict(SUBMISSIONS, 4, 21, 21) is Verdict.DELIVER
    assert rule.verdict(SUBMISSIONS, 4, 0, 0) is Verdict.DELIVER
    assert rule.verdict(SUBMISSIONS, 4, 19, 21) is Verdict.DELIVER  # read again: Faust drops it
    assert rule.rewinds == 0


def test_a_jump_rewinds_once_and_drops_the_rest_of_its_batch():
    """The run-4 case: committed 21, then the consumer's first record is 61."""
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 4, 61, 21) is Verdict.REWIND
    assert rule.rewind_to(SUBMISSIONS, 4) == 21
    assert rule.verdict(SUBMISSIONS, 4, 62, 21) is Verdict.DROP  # fetched before the seek
    assert rule.verdict(SUBMISSIONS, 6, 47, 47) is Verdict.DELIVER  # other partitions go on
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 4, 21, 21) is Verdict.DELIVER  # fetched again, in order
    assert rule.verdict(SUBMISSIONS, 4, 22, 22) is Verdict.DELIVER
    assert (rule.rewinds, rule.accepted_gaps) == (1, 0)


def test_skipping_exactly_the_record_sought_is_a_jump():
    """Committed 20: the first record 21 means record 20 was skipped."""
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 4, 21, expected_offset(20, sought=True)) is Verdict.REWIND
    assert rule.rewind_to(SUBMISSIONS, 4) == 20


def test_an_unknown_offset_is_not_checked():
    """Faust's None (nothing committed, or a committed offset it could not fetch in a
    rebalance storm): the record is delivered, not rewound to 0."""
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 10, 170, expected_offset(None, sought=True)) is (
        Verdict.DELIVER
    )
    assert rule.rewinds == 0


def test_a_gap_still_there_after_the_rewind_is_in_the_log_and_accepted():
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict(SUBMISSIONS, 0, 500, 11) is Verdict.REWIND
    rule.new_batch()
    # retention deleted 11..499: the seek lands on the log start again
    assert rule.verdict(SUBMISSIONS, 0, 500, 11) is Verdict.DELIVER
    assert rule.verdict(SUBMISSIONS, 0, 501, 501) is Verdict.DELIVER
    assert (rule.rewinds, rule.accepted_gaps) == (1, 1)


def test_changelogs_and_the_assignor_topic_are_left_to_faust():
    rule = ContiguousOffsets()
    rule.new_batch()
    assert rule.verdict("govflow-property-cases-changelog", 4, 90, 11) is Verdict.DELIVER
    assert rule.verdict("govflow-property-__assignor-__leader", 0, 90, 11) is Verdict.DELIVER
    assert rule.rewinds == 0


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    offset: int


class FakeFaustConsumer:
    """What the adapter needs of Faust's consumer: getmany, _read_offset, seek."""

    def __init__(
        self, batches: list[list[tuple[TP, Record]]], committed: dict[TP, int | None]
    ) -> None:
        self.batches = batches
        self.committed = committed
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self.sought: list[tuple[TP, int]] = []
        self.log_starts: dict[TP, int] = {}  # first offset in each partition's log
        self.log_starts_answer = True  # False: the broker does not answer ListOffsets

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Record]]:
        for tp, record in self.batches.pop(0):
            yield tp, record
            self._read_offset[tp] = record.offset  # as Faust's drain loop does

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))
        self._read_offset[tp] = offset if offset else None  # as Faust's Consumer.seek

    async def perform_seek(self) -> None:  # as Faust's: the read offsets := committed
        self._read_offset.update(self.committed)

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        if not self.log_starts_answer:
            raise ConnectionError("ListOffsets timed out")
        return {tp: self.log_starts.get(tp, 0) for tp in partitions}


def drain(consumer: Any, fetches: int) -> list[int]:
    async def run() -> list[int]:
        await consumer.perform_seek()  # the end of a rebalance's recovery
        delivered = []
        for _ in range(fetches):
            async for _tp, record in consumer.getmany(1.0):
                delivered.append(record.offset)
        return delivered

    return asyncio.run(run())


def contiguous_consumer(
    batches: list[list[tuple[TP, Record]]], committed: dict[TP, int | None]
) -> Any:
    consumer_type: Any = consumer_class(FakeFaustConsumer)
    consumer_type.offsets = ContiguousOffsets()
    return consumer_type(batches, committed)


def test_the_consumer_seeks_back_and_delivers_every_offset_in_order():
    p4 = TP(SUBMISSIONS, 4)
    consumer = contiguous_consumer(
        [
            [(p4, Record(61)), (p4, Record(62))],  # the position jumped past 21..60
            [(p4, Record(o)) for o in range(21, 64)],  # fetched again after the seek
        ],
        {p4: 21},
    )
    assert drain(consumer, 2) == list(range(21, 64))
    assert consumer.sought == [(p4, 21)]


def test_the_consumer_catches_a_skip_of_exactly_the_record_sought():
    """The 2026-12-02 Kafka run 6 case: committed 1 on dept.tax[10], and the restarted
    worker's first record was 2 (record 1, a tax clearance, was never handled)."""
    p10 = TP("govflow.dept.tax", 10)
    consumer = contiguous_consumer(
        [
            [(p10, Record(2)), (p10, Record(3))],
            [(p10, Record(o)) for o in range(1, 6)],
        ],
        {p10: 1},
    )
    assert drain(consumer, 2) == list(range(1, 6))
    assert consumer.sought == [(p10, 1)]


def test_the_consumer_does_not_rewind_records_in_order():
    p4 = TP(SUBMISSIONS, 4)
    consumer = contiguous_consumer(
        [[(p4, Record(o)) for o in range(21, 30)], [(p4, Record(30))]], {p4: 21}
    )
    assert drain(consumer, 2) == list(range(21, 31))
    assert consumer.sought == []


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


def test_a_rewind_and_an_accepted_gap_log_the_lines_the_chaos_bench_counts(caplog):
    from services.runtime import offsets

    rule = ContiguousOffsets()
    rule.new_batch()
    with caplog.at_level("INFO", logger="services.runtime.offsets"):
        assert rule.verdict(SUBMISSIONS, 0, 500, 11) is Verdict.REWIND
        rule.new_batch()
        assert rule.verdict(SUBMISSIONS, 0, 500, 11) is Verdict.DELIVER
    text = caplog.text
    assert text.count(offsets.JUMPED) == 1 and text.count(offsets.NOT_IN_LOG) == 1


def test_with_nothing_committed_the_consumer_starts_at_the_log_start():
    """Apache Kafka, 7c5c191, run 8 (8 lost): property restarted with nothing committed on
    dept.tax[4]; aiokafka did not seek, the client stood past 2..13 that Faust had fetched
    and dropped, and the first record seen was 14.  The adapter seeks to the log start
    itself, so the stale fetch is rewound and 0..16 are all delivered in order."""
    p4 = TP("govflow.dept.tax", 4)
    consumer = contiguous_consumer(
        [[(p4, Record(14)), (p4, Record(15))], [(p4, Record(o)) for o in range(0, 17)]],
        {p4: None},
    )
    assert drain(consumer, 2) == list(range(0, 17))
    assert consumer.sought[0] == (p4, 0)  # perform_seek's own seek to the log start


def test_with_nothing_committed_a_log_start_moved_by_retention_is_expected():
    p2 = TP(SUBMISSIONS, 2)
    consumer = contiguous_consumer([[(p2, Record(o)) for o in range(40, 45)]], {p2: None})
    consumer.log_starts = {p2: 40}
    assert drain(consumer, 1) == list(range(40, 45))
    assert consumer.sought == [(p2, 40)]  # no rewind: 40 is where the log begins


def test_with_nothing_committed_and_no_log_start_answer_offset_zero_is_expected():
    """The broker does not answer ListOffsets: expect 0; a record past it is rewound to 0
    once, and what the seek brings back (the log start) is accepted as retention's gap."""
    p2 = TP(SUBMISSIONS, 2)
    consumer = contiguous_consumer(
        [[(p2, Record(50))], [(p2, Record(o)) for o in range(40, 43)]], {p2: None}
    )
    consumer.log_starts_answer = False
    assert drain(consumer, 2) == list(range(40, 43))
    assert consumer.sought == [(p2, 0), (p2, 0)]


def test_a_committed_offset_is_not_replaced_by_the_log_start():
    p2 = TP(SUBMISSIONS, 2)
    consumer = contiguous_consumer([[(p2, Record(o)) for o in range(170, 175)]], {p2: 170})
    assert drain(consumer, 1) == list(range(170, 175))
    assert consumer.sought == []  # aiokafka sought it; the adapter adds no seek
