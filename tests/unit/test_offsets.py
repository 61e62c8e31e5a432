"""The consumer never skips an input record: a jump of its position is rewound."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import pytest

from services.runtime import offsets
from services.runtime.offsets import (
    ContiguousOffsets,
    StrandedRecords,
    Verdict,
    commit_would_skip,
    consumer_class,
    expected_offset,
    first_unacked,
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
    dropped: bool = False  # fetched (the client's position passes it), never yielded


class FakePartitionState:
    """aiokafka's TopicPartitionState: the client's next fetch offset."""

    def __init__(self) -> None:
        self.position: int | None = None

    @property
    def has_valid_position(self) -> bool:
        return self.position is not None


class FakeAssignment:
    def __init__(self) -> None:
        self.states: dict[TP, FakePartitionState] = defaultdict(FakePartitionState)

    def state_value(self, tp: TP) -> FakePartitionState:
        return self.states[tp]


class FakeClientThread:
    """Faust's consumer thread around the aiokafka client, reduced to what is read."""

    def __init__(self) -> None:
        self.assignment = FakeAssignment()
        self._subscription = self  # aiokafka: client._subscription.subscription.assignment
        self.subscription = self

    def _ensure_consumer(self) -> FakeClientThread:
        return self

    async def call_thread(self, method: Any, *args: Any) -> Any:
        return await method(*args)


class FakeMessage(NamedTuple):
    tp: TP
    offset: int
    acked: bool = False


class FakeQueue:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def qsize(self) -> int:
        return len(self.events)


class FakeChannel:
    """A topic a stream iterates: its queue holds events the stream has not taken yet."""

    def __init__(self) -> None:
        self._queue = FakeQueue()


class FakeConductor:
    def __init__(self, partitions: Any) -> None:
        channel = FakeChannel()
        self.channel = channel
        self._tp_index: dict[TP, set[FakeChannel]] = {tp: {channel} for tp in partitions}


class FakeApp:
    def __init__(self, partitions: Any) -> None:
        self.topics = FakeConductor(partitions)


class FakeFaustConsumer:
    """What the adapter needs of Faust's consumer: getmany, seek, perform_seek, the read,
    committed and acknowledged offsets, the messages in flight, and the client thread."""

    def __init__(
        self, batches: list[list[tuple[TP, Record]]], committed: dict[TP, int | None]
    ) -> None:
        self.batches = batches
        self.committed = committed
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._acked: dict[TP, list[int]] = defaultdict(list)
        self._acked_index: dict[TP, set[int]] = defaultdict(set)
        self._gap: dict[TP, list[Any]] = {}
        self._unacked_messages: set[FakeMessage] = set()
        self._paused_partitions: set[TP] = set()
        self._buffered_partitions: set[TP] = set()
        self.app = FakeApp(committed)
        self._commit_fut: Any = None
        self.flow_active = True
        self._thread = FakeClientThread()
        self.sought: list[tuple[TP, int]] = []
        self.log_starts: dict[TP, int] = {}  # first offset in each partition's log
        self.log_starts_answer = True  # False: the broker does not answer ListOffsets

    def position(self, tp: TP) -> FakePartitionState:
        return self._thread.assignment.state_value(tp)

    def assignment(self) -> set[TP]:
        return set(self.committed)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Record]]:
        for tp, record in self.batches.pop(0) if self.batches else []:
            self.position(tp).position = record.offset + 1  # fetched: the client moves on
            if record.dropped:
                continue
            yield tp, record
            self._read_offset[tp] = record.offset  # as Faust's drain loop does

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))
        self.position(tp).position = offset
        self._read_offset[tp] = offset if offset else None  # as Faust's Consumer.seek

    async def perform_seek(self) -> None:  # as Faust's: the read offsets := committed
        self._read_offset.update(self.committed)
        self._committed_offset.update({tp: o for tp, o in self.committed.items() if o})
        for tp, offset in self.committed.items():
            if offset is not None:  # aiokafka does not seek a partition with no commit
                self.position(tp).position = offset

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        if not self.log_starts_answer:
            raise ConnectionError("ListOffsets timed out")
        return {tp: self.log_starts.get(tp, 0) for tp in partitions}

    def _new_offset(self, tp: TP) -> int | None:  # Faust's, without its off-by-one test
        acked = sorted(self._acked[tp])
        if not acked:
            return None
        end = acked[0]
        while end + 1 in self._acked_index[tp]:
            end += 1
        return end + 1

    def ack(self, tp: TP, offset: int) -> None:
        self._acked[tp].append(offset)
        self._acked_index[tp].add(offset)


def drain(consumer: Any, fetches: int, handled: Any = lambda tp, offset: "acked") -> list[int]:
    """Fetch ``fetches`` times; each record delivered is then, by ``handled(tp, offset)``:
    "acked", "in flight" (tracked, not acknowledged), or "lost" (neither: Faust dropped
    it after setting its read offset)."""

    async def run() -> list[int]:
        await consumer.perform_seek()  # the end of a rebalance's recovery
        delivered = []
        for _ in range(fetches):
            async for tp, record in consumer.getmany(1.0):
                delivered.append(record.offset)
                outcome = handled(tp, record.offset)
                if outcome == "acked":
                    consumer.ack(tp, record.offset)
                elif outcome == "in flight":
                    consumer._unacked_messages.add(FakeMessage(tp, record.offset))
        return delivered

    return asyncio.run(run())


def contiguous_consumer(
    batches: list[list[tuple[TP, Record]]], committed: dict[TP, int | None]
) -> Any:
    consumer_type: Any = consumer_class(FakeFaustConsumer)
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


# -- stranded records: fetched, never handled, nothing after them to show a jump ---------


@pytest.fixture
def check_every_fetch(monkeypatch):
    monkeypatch.setattr(offsets, "STRANDED_CHECK_INTERVAL", 0.0)


def test_the_first_unacknowledged_offset_skips_acknowledged_ones_and_accepted_gaps():
    assert first_unacked(1, set()) == 1
    assert first_unacked(1, {1, 2, 3, 5}) == 4
    assert first_unacked(1, {1, 2}, gaps=[(3, 7)]) == 7  # 3..6: retention's gap
    assert first_unacked(1, {1, 2, 8}, gaps=[(3, 7)]) == 7


def test_records_below_the_position_neither_acked_nor_in_flight_seen_twice_are_reread():
    watch = StrandedRecords()
    tax = "govflow.dept.tax"
    assert watch.observe(tax, 2, position=6, unacked=1, in_flight=False) is None  # once
    assert watch.observe(tax, 2, position=6, unacked=1, in_flight=False) == 1  # twice
    assert watch.rereads == 1
    # handling under way, or caught up, or moving: not stranded
    assert watch.observe(tax, 2, position=6, unacked=1, in_flight=True) is None
    assert watch.observe(tax, 2, position=6, unacked=1, in_flight=False) is None
    assert watch.observe(tax, 2, position=7, unacked=2, in_flight=False) is None  # moved
    assert watch.observe(tax, 3, position=6, unacked=6, in_flight=False) is None
    assert watch.observe(tax, 3, position=6, unacked=6, in_flight=False) is None
    assert watch.observe(tax, 4, position=None, unacked=1, in_flight=False) is None
    assert watch.observe(tax, 4, position=None, unacked=1, in_flight=False) is None
    changelog = "govflow-property-state-changelog"
    assert watch.observe(changelog, 0, position=9, unacked=1, in_flight=False) is None
    assert watch.observe(changelog, 0, position=9, unacked=1, in_flight=False) is None
    assert watch.rereads == 1


def test_tail_records_faust_fetched_and_dropped_are_read_again(check_every_fetch):
    """Kafka runs 3 and 6 of 10 on 924a5c7: property's commit on a dept.tax partition
    stuck at 1, the tax clearances 1..5 at its tail never handled, no later record to
    show a jump.  Here Faust fetches 1..5 and drops them (the client's position is 6);
    the next two checks see 1..5 neither acknowledged nor in flight: seek back to 1."""
    p2 = TP("govflow.dept.tax", 2)
    consumer = contiguous_consumer(
        [
            [(p2, Record(o, dropped=True)) for o in range(1, 6)],
            [],  # nothing more is written to the partition
            [],
            [(p2, Record(o)) for o in range(1, 6)],  # fetched again after the seek
            [],
            [],
        ],
        {p2: 1},
    )
    assert drain(consumer, 6) == list(range(1, 6))
    assert consumer.sought == [(p2, 1)]
    assert consumer.stranded.rereads == 1


def test_a_record_whose_delivery_was_cancelled_is_read_again(check_every_fetch):
    """Faust's drain loop sets the read offset of a record whose delivery a suspended
    flow cancelled: read offset and position agree, but nothing acknowledges it."""
    p2 = TP("govflow.dept.tax", 2)
    consumer = contiguous_consumer(
        [[(p2, Record(o)) for o in range(1, 4)], [], [], [(p2, Record(3))], []],
        {p2: 1},
    )
    first = {(p2, 3)}  # record 3's first delivery is cancelled

    def handled(tp: TP, offset: int) -> str:
        if (tp, offset) in first:
            first.discard((tp, offset))
            return "lost"
        return "acked"

    assert drain(consumer, 5, handled) == [1, 2, 3, 3]
    assert consumer.sought == [(p2, 3)]
    assert first_unacked(1, consumer._acked_index[p2]) == 4  # all handled now


def test_records_in_flight_or_all_acknowledged_are_never_reread(check_every_fetch):
    p2, p3 = TP("govflow.dept.tax", 2), TP("govflow.dept.tax", 3)
    consumer = contiguous_consumer(
        [[(p2, Record(1)), (p3, Record(7)), (p3, Record(8))]] + [[] for _ in range(5)],
        {p2: 1, p3: 7},
    )
    in_flight = {(p2, 1)}  # a slow handler: delivered, still being handled

    def handled(tp: TP, offset: int) -> str:
        return "in flight" if (tp, offset) in in_flight else "acked"

    assert drain(consumer, 6, handled) == [1, 7, 8]
    assert consumer.sought == []
    assert consumer.stranded.rereads == 0


def test_nothing_is_reread_while_the_flow_is_stopped_or_a_commit_is_under_way(
    check_every_fetch,
):
    p2 = TP("govflow.dept.tax", 2)
    for stop in ("flow", "commit"):
        consumer = contiguous_consumer(
            [[(p2, Record(o, dropped=True)) for o in range(1, 6)], [], [], []], {p2: 1}
        )
        if stop == "flow":
            consumer.flow_active = False
        else:
            consumer._commit_fut = object()
        assert drain(consumer, 4) == []
        assert consumer.sought == [], stop


def test_the_commit_never_passes_an_unacknowledged_record():
    """Faust's _new_offset commits 4 with committed 1 and 2, 3 acknowledged: its test is
    min(acked) - committed > 1.  Record 1 is still being handled; a crash now loses it."""
    assert commit_would_skip(1, [2, 3])
    assert not commit_would_skip(1, [1, 2, 3])
    assert not commit_would_skip(None, [2, 3])  # nothing known: Faust's own rule
    assert not commit_would_skip(1, [])
    p2 = TP("govflow.dept.tax", 2)
    consumer = contiguous_consumer([], {p2: 1})
    asyncio.run(consumer.perform_seek())
    consumer.ack(p2, 2)
    consumer.ack(p2, 3)
    assert consumer._new_offset(p2) is None
    consumer.ack(p2, 1)
    assert consumer._new_offset(p2) == 4
    nothing = TP("govflow.dept.tax", 5)  # nothing committed: the log start (40) is the head
    consumer = contiguous_consumer([], {nothing: None})
    consumer.log_starts = {nothing: 40}
    asyncio.run(consumer.perform_seek())
    consumer.ack(nothing, 41)
    assert consumer._new_offset(nothing) is None
    consumer.ack(nothing, 40)
    assert consumer._new_offset(nothing) == 42


def test_the_stranded_reread_logs_the_line_the_chaos_bench_counts(check_every_fetch, caplog):
    p2 = TP("govflow.dept.tax", 2)
    consumer = contiguous_consumer(
        [[(p2, Record(o, dropped=True)) for o in range(1, 3)], [], []], {p2: 1}
    )
    with caplog.at_level("WARNING", logger="services.runtime.offsets"):
        drain(consumer, 3)
    assert caplog.text.count(offsets.STRANDED) == 1


def test_records_waiting_in_a_stream_queue_or_of_no_stream_are_not_reread(check_every_fetch):
    """Faust tracks a message only when a stream takes it from its queue: a backed-up
    stream's queued records are in flight, not stranded; and a partition no stream reads
    would never handle a record read again."""
    p2 = TP("govflow.dept.tax", 2)
    for case in ("queued", "no stream"):
        consumer = contiguous_consumer([[(p2, Record(1)), (p2, Record(2))], [], [], []], {p2: 1})
        if case == "queued":
            consumer.app.topics.channel._queue.events = ["event 1", "event 2"]
        else:
            consumer.app.topics._tp_index = {}
        assert drain(consumer, 4, lambda tp, offset: "lost") == [1, 2]
        assert consumer.sought == [], case


def test_an_offset_stranded_again_and_again_is_given_up_with_an_error(check_every_fetch, caplog):
    """A record that is never handled however often it is read (say a Faust path that
    drops it every time) is read again MAX_REREADS times, then left with an error — the
    consumer does not loop on it."""
    p2 = TP("govflow.dept.tax", 2)
    batches: list[list[tuple[TP, Record]]] = [[(p2, Record(1))]]
    for _ in range(offsets.MAX_REREADS + 2):
        batches += [[], [], [(p2, Record(1))]]
    consumer = contiguous_consumer(batches, {p2: 1})
    with caplog.at_level("WARNING", logger="services.runtime.offsets"):
        delivered = drain(consumer, len(batches), lambda tp, offset: "lost")
    assert consumer.sought == [(p2, 1)] * offsets.MAX_REREADS
    assert consumer.stranded.given_up == 1
    assert delivered.count(1) >= offsets.MAX_REREADS + 1
    assert "not reading it again" in caplog.text
