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

:class:`ContiguousConsumer` is the thin Faust adapter; :func:`install` puts it into an app.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: What the log says when the guard fires (``bench/chaos.py`` counts these lines)
JUMPED = "the consumer jumped to"
NOT_IN_LOG = "are not in the log"


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


async def seek_to_log_start(consumer: Any, partitions: list[Any]) -> None:
    """Seek ``partitions`` (nothing committed) to where their logs begin."""
    if partitions:
        starts = await log_starts(consumer, partitions)
        for tp in partitions:
            await consumer.seek(tp, starts[tp])


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


def consumer_class(base: type) -> type:
    """``base`` (Faust's aiokafka consumer) whose fetches go through the offsets rule."""

    class ContiguousConsumer(base):
        offsets = ContiguousOffsets()

        def _sought(self) -> set[Any]:
            """The partitions sought since their last delivered record."""
            found: set[Any] | None = self.__dict__.get("_govflow_sought")
            if found is None:
                found = self.__dict__["_govflow_sought"] = set()
            return found

        def _sought_to(self) -> dict[Any, int]:
            """Where each sought partition was sought to (Faust keeps None for 0)."""
            found: dict[Any, int] | None = self.__dict__.get("_govflow_sought_to")
            if found is None:
                found = self.__dict__["_govflow_sought_to"] = {}
            return found

        async def seek(self, partition: Any, offset: int) -> None:
            await super().seek(partition, offset)
            self._sought().add(partition)
            self._sought_to()[partition] = offset

        async def perform_seek(self) -> None:
            await super().perform_seek()
            self._sought().update(self._read_offset.keys())
            await seek_to_log_start(self, uncommitted(self._read_offset))

        async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
            rule, sought, sought_to = self.offsets, self._sought(), self._sought_to()
            rule.new_batch()
            async for tp, message in super().getmany(timeout):
                expected = expected_after(
                    self._read_offset.get(tp), tp in sought, sought_to.get(tp)
                )
                verdict = rule.verdict(tp.topic, tp.partition, message.offset, expected)
                if verdict is Verdict.DELIVER:
                    sought.discard(tp)
                    sought_to.pop(tp, None)
                    yield tp, message
                elif verdict is Verdict.REWIND:
                    await self.seek(tp, rule.rewind_to(tp.topic, tp.partition))

    return ContiguousConsumer


def install(app: Any) -> None:
    """Make ``app``'s consumer a :func:`consumer_class` of its transport's consumer."""
    transport = app.transport
    cls: Any = consumer_class(transport.Consumer)
    cls.offsets = ContiguousOffsets()  # one rule state per app
    transport.Consumer = cls
