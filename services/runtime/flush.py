"""No offset committed before the table writes it covers: a producer flush that finishes.

Faust commits a consumer's offsets after ``producer.flush()`` — meant to wait until
every message the worker produced so far, its table changelog writes included, is with
the broker.  Table writes do not go to the Kafka client at once: a synchronous
``table[key] = value`` puts the changelog record into Faust's ``ProducerBuffer``, which a
background task hands to the client one by one.  ``ProducerBuffer.flush`` (faust-streaming
0.11) gives up after 0.1 s without a message handed over, and never counts the message
the task is handing over at that moment.  The client's flush then waits only for what it
has.  So when the buffer drains slowly — on the embedded broker, one record per batch,
with the buffer full at the kill — the offsets of handled events are committed while
their changelog writes are still in the buffer, and a SIGKILL then loses those events'
effects for good: the events are not redelivered, and their state never reached the
broker.  ``bench/chaos.py --broker embedded`` lost 19 cases in one of ten runs that way
(commit after the redo journal of :mod:`services.runtime.state`): every one a case whose
tax clearance property had handled before its kill, with nothing of it in the changelog.

:func:`install` makes the buffer's flush wait until every message put into the buffer
has been handed to the client (``handed == put``), however long the broker takes; the
client's own flush then waits for their acknowledgements.  If the producer stops, the
flush raises instead of returning as if it had flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

POLL_SECONDS = 0.1


class CompleteFlush:
    """Counts the messages put into a Faust ``ProducerBuffer`` and handed to the client."""

    def __init__(self, buffer: Any) -> None:
        self.buffer = buffer
        self.put = 0
        self.handed = 0
        self._put = buffer.put
        self._send = buffer._send_pending
        self._flush = buffer.flush

    def on_put(self, fut: Any) -> None:
        self.put += 1
        self._put(fut)

    async def on_send(self, fut: Any) -> None:
        try:
            await self._send(fut)
        finally:
            self.handed += 1

    @property
    def outstanding(self) -> int:
        return self.put - self.handed

    async def flush(self) -> None:
        """Return once every message put so far is with the client."""
        target = self.put
        buffer = self.buffer
        while self.handed < target:
            if buffer.should_stop:  # stopping: nothing more is handed over
                with contextlib.suppress(RuntimeError):  # "Producer not Running"
                    await self._flush()
                if self.handed < target:
                    raise RuntimeError(
                        f"producer stopped with {target - self.handed} messages not sent"
                    )
                break
            buffer.message_sent.clear()
            if self.handed >= target:
                break
            try:
                await asyncio.wait_for(buffer.message_sent.wait(), timeout=POLL_SECONDS)
            except TimeoutError:
                continue


def install(app: Any) -> CompleteFlush:
    """Give ``app``'s producer buffer a flush that finishes (before its task starts)."""
    buffer = app.producer.buffer
    counter = CompleteFlush(buffer)
    buffer.put = counter.on_put
    buffer._send_pending = counter.on_send
    buffer.flush = counter.flush
    return counter
