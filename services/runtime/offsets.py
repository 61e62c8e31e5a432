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

:class:`ContiguousConsumer` is the thin Faust adapter; :func:`install` puts it into an app.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    DELIVER = "deliver"  # the record follows the last one read (or nothing to compare)
    REWIND = "rewind"  # a jump: seek back to ``ContiguousOffsets.rewind_to`` first
    DROP = "drop"  # fetched before the rewind, beyond its target: it will come again


def checked(topic: str) -> bool:
    """Topics whose offsets are contiguous: not a compacted changelog, not the assignor's."""
    return not topic.endswith("-changelog") and "__assignor" not in topic


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

    def verdict(self, topic: str, partition: int, offset: int, last_read: int | None) -> Verdict:
        """What to do with the record at ``offset``, ``last_read`` being the offset the
        consumer read last on the partition (or sought to; None: nothing read yet)."""
        if not checked(topic) or last_read is None:
            return Verdict.DELIVER
        key = (topic, partition)
        target = self.rewinding.get(key)
        if target is not None:
            if self.rewound_in_batch.get(key) == self.batch and offset > target:
                return Verdict.DROP  # the rest of the batch fetched before the seek
            del self.rewinding[key]
            if offset > target:
                # fetched after the seek and still ahead: the records are not in the log
                self.accepted_gaps += 1
                log.error(
                    "%s[%d]: offsets %d..%d are not in the log (retention?); going on at %d",
                    topic,
                    partition,
                    target,
                    offset - 1,
                    offset,
                )
            return Verdict.DELIVER
        # ``last_read`` is the offset read last, or after a seek the next one to read:
        # either way the next record is at most one past it
        if offset <= last_read + 1:
            return Verdict.DELIVER
        self.rewinding[key] = last_read + 1
        self.rewound_in_batch[key] = self.batch
        self.rewinds += 1
        log.warning(
            "%s[%d]: the consumer jumped from %d to %d; seeking back to %d",
            topic,
            partition,
            last_read,
            offset,
            last_read + 1,
        )
        return Verdict.REWIND

    def rewind_to(self, topic: str, partition: int) -> int:
        return self.rewinding[(topic, partition)]


def consumer_class(base: type) -> type:
    """``base`` (Faust's aiokafka consumer) whose fetches go through the offsets rule."""

    class ContiguousConsumer(base):
        offsets = ContiguousOffsets()

        async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
            rule = self.offsets
            rule.new_batch()
            async for tp, message in super().getmany(timeout):
                verdict = rule.verdict(
                    tp.topic, tp.partition, message.offset, self._read_offset.get(tp)
                )
                if verdict is Verdict.DELIVER:
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
