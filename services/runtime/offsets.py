"""No input record skipped: a consumer that rewinds when its position jumps ahead.

Faust's at-least-once is only as good as the consumer's position.  It commits the end of
the first consecutive run of acknowledged offsets, and when a fetched record's offset
jumps past the one read last it records the offsets in between as a *gap* that counts as
acknowledged (meant for compacted topics and transaction markers).  So if the position
ever jumps ahead, the records in between are never handled and the commit moves past
them: lost for good.  That happened in one of ten chaos runs on Apache Kafka
(``bench/chaos.py --broker kafka``): after property's worker was killed and restarted,
its first records on three submissions partitions were 30–59 offsets past the committed
ones; 127 cases were never accepted, and nothing in any log said so.

The services' input topics are plain topics written without transactions, so their
offsets are contiguous.  :class:`ContiguousOffsets` decides, record by record, whether a
record follows the one read last on its partition; one that does not makes the consumer
seek back to the first missing offset and drop what it had fetched beyond it (it is
fetched again, in order).  A jump still there after the rewind is in the log itself —
retention deleted the records — and is accepted, with an error in the log.  Changelogs
(compacted) and the assignor's topic are left to Faust.

Which offset comes next is exact: after a seek (Faust seeks to the committed offsets once
a rebalance's recovery is done) the next record is the one sought; after a delivered
record, the one after it.  Faust's own ``_read_offset`` holds both "sought to" and
"read last", so the adapter keeps which partitions were sought since their last record.
That closes the hole of the first version of this rule: a skip of exactly the record
sought (Faust drops fetched records when the flow stops or the generation changes
mid-batch, and the position stays past them).

Where nothing is committed (Faust's None: the coordinator answered no offset, or 0),
aiokafka's ``seek_to_committed`` does not seek at all: the client fetches on from
wherever it stood — past any records Faust fetched and dropped.  So the adapter seeks
such a partition to its log start itself (what ``auto_offset_reset="earliest"`` means
for a group with no commit), and expects that offset.  Two earlier rules failed here:
"None is not known, deliver unchecked" (48e17ac; Tansu run 6 of 10, 47 lost) and
"expect the client's position read after the seek" (07c0ddc; Apache Kafka runs 7 and 8
of 10 on 7c5c191, 70 and 8 lost: after property's restart with nothing committed on
``dept.tax``, contiguous blocks of tax clearances on six partitions were never handled —
the position read was already past them).  Starting at the log start re-reads what was
handled but not yet committed; the handlers drop those redeliveries (at-least-once).

Faust can also leave records behind *without* any later record showing a jump: it drops
the rest of a fetched batch when the flow stops or the generation changes mid-batch, it
skips fetched records of a partition that is no longer active, it sets the read offset
of a record whose delivery a suspended flow cancelled, and a commit that fails after
``_new_offset`` trimmed the acknowledged offsets leaves the commit stuck.  When such
records are the last of their partition (the tax clearances at the tail of a
``dept.tax`` partition in Kafka runs 3 and 6 of 10 on 924a5c7: the property group's
commit stuck at 1, 85 and 74 cases locked) nothing comes after them to trip the rule
above.  :class:`StrandedRecords` closes that: every few seconds, at the start of a fetch
(no batch in flight), each active partition's client position is compared with its first
offset neither acknowledged nor in flight; records below the position that are neither,
seen so twice in a row, are *stranded* and read again from the first of them.  And the
commit never passes an unacknowledged record: Faust's ``_new_offset`` commits past the
record at the committed offset when only the ones after it are acknowledged (its test is
off by one, and skipped when 0 is committed) — a crash then loses that record.

:class:`ContiguousConsumer` is the thin Faust adapter; :func:`install` puts it into an app.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: What the log says when the guard fires (``bench/chaos.py`` counts these lines)
JUMPED = "the consumer jumped to"
NOT_IN_LOG = "are not in the log"
STRANDED = "were fetched and never handled"

#: How often (seconds) the consumer looks for stranded records
STRANDED_CHECK_INTERVAL = 2.0
#: Reads of one stranded offset before the consumer gives up on it (with an error)
MAX_REREADS = 3


class Verdict(enum.Enum):
    DELIVER = "deliver"  # the record expected next (or one read again: Faust drops it)
    REWIND = "rewind"  # a jump: seek back to ``ContiguousOffsets.rewind_to`` first
    DROP = "drop"  # fetched before the rewind, beyond its target: it will come again


def checked(topic: str) -> bool:
    """Topics whose offsets are contiguous: not a compacted changelog, not the assignor's."""
    return not topic.endswith("-changelog") and "__assignor" not in topic


def expected_offset(read_offset: int | None, sought: bool) -> int | None:
    """The offset the next record of a partition must have: ``read_offset`` itself right
    after a seek to it, the one after it once it was read; None when it is not known —
    Faust keeps None for "nothing read", for a seek to 0, and when the committed offset
    could not be fetched (the Kafka soak of 2026-12-02: a rebalance of every group at
    once, committed offsets None, and a rule that took None for 0 rewound whole topics)."""
    if read_offset is None:
        return None
    return read_offset if sought else read_offset + 1


def expected_after(read_offset: int | None, sought: bool, sought_to: int | None) -> int | None:
    """:func:`expected_offset`, with the offset the adapter itself sought to standing in
    for the None Faust keeps after a seek to 0 (or to a log start it does not know)."""
    if read_offset is None and sought:
        read_offset = sought_to
    return expected_offset(read_offset, sought)


def uncommitted(read_offset: dict[Any, int | None]) -> list[Any]:
    """The checked partitions Faust has no offset for after ``perform_seek``: nothing
    committed (or 0), so aiokafka did not seek them and the client's position is stale."""
    return [tp for tp, offset in read_offset.items() if offset is None and checked(tp.topic)]


async def log_starts(consumer: Any, partitions: list[Any]) -> dict[Any, int]:
    """Each partition's first offset in the log; 0 where the broker did not answer (a seek
    out of range lands on the log start, and the rule accepts that gap as retention's)."""
    found: dict[Any, int] = dict.fromkeys(partitions, 0)
    with contextlib.suppress(Exception):
        answered = await consumer.earliest_offsets(*partitions)
        found.update({tp: int(o) for tp, o in answered.items() if tp in found and o is not None})
    return found


async def seek_to_log_start(consumer: Any, partitions: list[Any]) -> dict[Any, int]:
    """Seek ``partitions`` (nothing committed) to where their logs begin; those offsets."""
    starts = await log_starts(consumer, partitions) if partitions else {}
    for tp in partitions:
        await consumer.seek(tp, starts[tp])
    return starts


@dataclass
class ContiguousOffsets:
    """Per partition: the rewind in progress (its target), and the jumps accepted."""

    rewinding: dict[tuple[str, int], int] = field(default_factory=dict)
    rewinds: int = 0
    accepted_gaps: int = 0
    batch: int = 0
    rewound_in_batch: dict[tuple[str, int], int] = field(default_factory=dict)

    def new_batch(self) -> None:
        """A new fetch: records from now on were fetched after any earlier rewind."""
        self.batch += 1

    def verdict(self, topic: str, partition: int, offset: int, expected: int | None) -> Verdict:
        """What to do with the record at ``offset`` when the partition's next record must
        be at ``expected`` (:func:`expected_offset`; None: not known, delivered)."""
        if not checked(topic) or expected is None:
            return Verdict.DELIVER
        key = (topic, partition)
        target = self.rewinding.get(key)
        if target is not None:
            if self.rewound_in_batch.get(key) == self.batch and offset > target:
                return Verdict.DROP  # the rest of the batch fetched before the seek
            del self.rewinding[key]
            if offset > target:
                # fetched after the seek and still ahead: the records are not in the log
                # (a seek out of range lands on the log start: retention moved it)
                self.accepted_gaps += 1
                report = log.info if target == 0 else log.error
                report(
                    f"%s[%d]: offsets %d..%d {NOT_IN_LOG} (retention?); going on at %d",
                    topic,
                    partition,
                    target,
                    offset - 1,
                    offset,
                )
            return Verdict.DELIVER
        if offset <= expected:
            return Verdict.DELIVER
        self.rewinding[key] = expected
        self.rewound_in_batch[key] = self.batch
        self.rewinds += 1
        log.warning(
            f"%s[%d]: {JUMPED} %d, expected %d; seeking back",
            topic,
            partition,
            offset,
            expected,
        )
        return Verdict.REWIND

    def rewind_to(self, topic: str, partition: int) -> int:
        return self.rewinding[(topic, partition)]


def first_unacked(
    committed: int, acked: Collection[int], gaps: Iterable[tuple[int, int]] = ()
) -> int:
    """The first offset at or after ``committed`` (the next offset the group would read)
    that is neither acknowledged nor inside an accepted gap ``[begin, end)``."""
    spans = sorted(gaps)
    offset = committed
    while True:
        if offset in acked:
            offset += 1
            continue
        inside = next((end for begin, end in spans if begin <= offset < end), None)
        if inside is None:
            return offset
        offset = inside


@dataclass
class StrandedRecords:
    """Per partition: records below the client's position that are neither acknowledged
    nor in flight.  Seen with the same bounds on two checks in a row (nothing moved in
    between), they were fetched and dropped: read them again."""

    suspects: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    rereads: int = 0
    #: per partition: the offset read again last, and how often in a row
    repeated: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    given_up: int = 0

    def observe(
        self,
        topic: str,
        partition: int,
        position: int | None,
        unacked: int | None,
        in_flight: bool,
    ) -> int | None:
        """The offset to read again from, or None.  ``position``: the client's next fetch
        offset; ``unacked``: :func:`first_unacked`; ``in_flight``: a record of the
        partition is being handled (delivered, not yet acknowledged)."""
        key = (topic, partition)
        if (
            not checked(topic)
            or in_flight
            or position is None
            or unacked is None
            or unacked >= position
        ):
            self.suspects.pop(key, None)
            return None
        seen = (unacked, position)
        if self.suspects.get(key) != seen:
            self.suspects[key] = seen
            return None
        del self.suspects[key]
        last, times = self.repeated.get(key, (None, 0))
        times = times + 1 if last == unacked else 1
        self.repeated[key] = (unacked, times)
        if times > MAX_REREADS:
            if times == MAX_REREADS + 1:
                self.given_up += 1
                log.error(
                    f"%s[%d]: offset %d {STRANDED} after %d reads; not reading it again",
                    topic,
                    partition,
                    unacked,
                    MAX_REREADS,
                )
            return None
        self.rereads += 1
        log.warning(
            f"%s[%d]: offsets %d..%d {STRANDED}; reading them again",
            topic,
            partition,
            unacked,
            position - 1,
        )
        return unacked


def commit_would_skip(head: int | None, acked: Collection[int]) -> bool:
    """A commit now would pass the unacknowledged record at ``head`` (the committed
    offset, or the log start sought to when nothing is committed): the first acknowledged
    offset is after it."""
    return head is not None and bool(acked) and min(acked) > head


async def client_positions(consumer: Any, partitions: list[Any]) -> dict[Any, int]:
    """The aiokafka client's next fetch offset of each partition that has one, read in
    the consumer's thread ({} when it cannot be read: nothing is reread then)."""

    async def read() -> dict[Any, int]:
        subscription = consumer._thread._ensure_consumer()._subscription.subscription
        found: dict[Any, int] = {}
        if subscription is None:
            return found
        for tp in partitions:
            with contextlib.suppress(Exception):
                state = subscription.assignment.state_value(tp)
                if state is not None and state.has_valid_position:
                    found[tp] = state.position
        return found

    with contextlib.suppress(Exception):
        positions: dict[Any, int] = await consumer._thread.call_thread(read)
        return positions
    return {}


def in_flight(consumer: Any, partitions: list[Any]) -> set[Any]:
    """Partitions with a record Faust is still handling: taken by a stream and not yet
    acknowledged, or waiting in a stream's queue (Faust tracks a message only when the
    stream takes it; a queue holds a topic's events, so all its partitions count), or
    with no stream at all (nothing would handle a record read again)."""
    busy = {m.tp for m in list(consumer._unacked_messages) if not m.acked}
    channels_of = consumer.app.topics._tp_index
    for tp in partitions:
        channels = channels_of.get(tp)
        queued = channels and any(
            getattr(chan, "_queue", None) and chan._queue.qsize() for chan in channels
        )
        if not channels or queued:
            busy.add(tp)
    return busy


def stranded_partitions(
    consumer: Any, partitions: list[Any], positions: dict[Any, int]
) -> list[tuple[Any, int]]:
    """Partitions with stranded records (:class:`StrandedRecords`) and where to read them
    again from, out of Faust's bookkeeping: committed offsets, acknowledged offsets,
    accepted gaps, and the records it is still handling (:func:`in_flight`)."""
    busy = in_flight(consumer, partitions)
    found = []
    for tp in partitions:
        head = consumer._committed_head(tp)
        gaps = [(span.begin, span.end) for span in consumer._gap.get(tp, ())]
        unacked = (
            None if head is None else first_unacked(head, consumer._acked_index.get(tp, ()), gaps)
        )
        offset = consumer.stranded.observe(
            tp.topic, tp.partition, positions.get(tp), unacked, tp in busy
        )
        if offset is not None:
            found.append((tp, offset))
    return found


#: Faust's consumer class, to mypy: the mixin below calls into it through ``super()``
_FaustConsumer: Any = object


class ContiguousConsumer(_FaustConsumer):
    """The offsets rules around Faust's consumer: mixed in before it by
    :func:`consumer_class` (its ``super()`` is Faust's)."""

    #: one state per class: :func:`consumer_class` makes a class per app
    offsets: ContiguousOffsets
    stranded: StrandedRecords

    def _kept(self, name: str, factory: Any) -> Any:
        """Adapter state kept on the instance (Faust builds the consumer itself)."""
        found = self.__dict__.get(name)
        if found is None:
            found = self.__dict__[name] = factory()
        return found

    def _sought(self) -> set[Any]:
        """The partitions sought since their last delivered record."""
        found: set[Any] = self._kept("_govflow_sought", set)
        return found

    def _sought_to(self) -> dict[Any, int]:
        """Where each sought partition was sought to (Faust keeps None for 0)."""
        found: dict[Any, int] = self._kept("_govflow_sought_to", dict)
        return found

    def _log_start(self) -> dict[Any, int]:
        """Where the partitions with nothing committed were sought to: their log start,
        standing in for the committed offset Faust keeps as None."""
        found: dict[Any, int] = self._kept("_govflow_log_start", dict)
        return found

    async def seek(self, partition: Any, offset: int) -> None:
        await super().seek(partition, offset)
        self._sought().add(partition)
        self._sought_to()[partition] = offset

    async def perform_seek(self) -> None:
        await super().perform_seek()
        self._sought().update(self._read_offset.keys())
        starts = await seek_to_log_start(self, uncommitted(self._read_offset))
        self._log_start().update(starts)

    def _committed_head(self, tp: Any) -> int | None:
        committed: int | None = self._committed_offset.get(tp)
        return committed if committed is not None else self._log_start().get(tp)

    def _new_offset(self, tp: Any) -> int | None:
        head, acked = self._committed_head(tp), self._acked.get(tp, ())
        if checked(tp.topic) and not self._gap.get(tp) and commit_would_skip(head, acked):
            return None  # the record at the committed offset is not handled yet
        found: int | None = super()._new_offset(tp)
        return found

    async def reread_stranded(self) -> None:
        """Seek back over records fetched and never handled (:class:`StrandedRecords`),
        every :data:`STRANDED_CHECK_INTERVAL` seconds, between fetches, while the flow
        runs and no commit is under way."""
        now = time.monotonic()
        if now < self.__dict__.get("_govflow_next_check", 0.0):
            return
        self.__dict__["_govflow_next_check"] = now + STRANDED_CHECK_INTERVAL
        if not self.flow_active or self._commit_fut is not None:
            return
        paused, full = self._paused_partitions, self._buffered_partitions
        partitions = [
            tp
            for tp in self.assignment()
            if checked(tp.topic) and tp not in paused and tp not in full
        ]
        if not partitions:
            return
        positions = await client_positions(self, partitions)
        if not self.flow_active or self._commit_fut is not None:
            return  # a rebalance or a commit began while the positions were read
        for tp, offset in stranded_partitions(self, partitions, positions):
            await self.seek(tp, offset)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        await self.reread_stranded()
        rule, sought, sought_to = self.offsets, self._sought(), self._sought_to()
        rule.new_batch()
        async for tp, message in super().getmany(timeout):
            expected = expected_after(self._read_offset.get(tp), tp in sought, sought_to.get(tp))
            verdict = rule.verdict(tp.topic, tp.partition, message.offset, expected)
            if verdict is Verdict.DELIVER:
                sought.discard(tp)
                sought_to.pop(tp, None)
                yield tp, message
            elif verdict is Verdict.REWIND:
                await self.seek(tp, rule.rewind_to(tp.topic, tp.partition))


def consumer_class(base: type) -> type:
    """``base`` (Faust's aiokafka consumer) whose fetches go through the offsets rules."""
    namespace = {"offsets": ContiguousOffsets(), "stranded": StrandedRecords()}
    return type("ContiguousConsumer", (ContiguousConsumer, base), namespace)


def install(app: Any) -> None:
    """Make ``app``'s consumer a :func:`consumer_class` of its transport's consumer."""
    transport = app.transport
    transport.Consumer = consumer_class(transport.Consumer)  # its own rule state
