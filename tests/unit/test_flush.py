"""The producer flush before an offset commit waits for every table write
(services/runtime/flush), on Faust's real ProducerBuffer with a slow hand-over."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.producer import ProducerBuffer

from services.runtime.flush import CompleteFlush

HAND_OVER_S = 0.25  # slower than Faust's 0.1 s patience: the embedded broker at the kill


async def _buffer(sent: list[Any]) -> ProducerBuffer:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]

    async def slow_send(fut: Any) -> None:
        await asyncio.sleep(HAND_OVER_S)
        sent.append(fut)

    buffer._send_pending = slow_send  # type: ignore[method-assign]
    return buffer


def _counted(buffer: ProducerBuffer) -> CompleteFlush:
    """What ``install`` does to an app's buffer (without the app)."""
    counter = CompleteFlush(buffer)
    buffer.put, buffer._send_pending = counter.on_put, counter.on_send  # type: ignore[method-assign]
    return counter


async def _drained(buffer: ProducerBuffer, sent: list[Any], count: int) -> None:
    for _ in range(100):
        if len(sent) >= count:
            break
        await asyncio.sleep(0.05)
    await buffer.stop()


async def test_fausts_own_flush_returns_with_table_writes_still_buffered():
    """The cause of the lost cases: this is what a commit waited for before."""
    sent: list[Any] = []
    buffer = await _buffer(sent)
    await buffer.start()
    try:
        for n in range(3):
            buffer.put(n)  # type: ignore[arg-type]
        await buffer.flush()
        assert len(sent) < 3  # returned early: an offset commit would now go ahead
    finally:
        await _drained(buffer, sent, 3)


async def test_the_complete_flush_returns_only_once_every_write_is_handed_over():
    sent: list[Any] = []
    buffer = await _buffer(sent)
    counter = _counted(buffer)
    await buffer.start()
    try:
        for n in range(3):
            buffer.put(n)  # type: ignore[arg-type]
        await counter.flush()
        assert sent == [0, 1, 2] and counter.outstanding == 0
        buffer.put(3)  # type: ignore[arg-type]
        assert counter.outstanding == 1
        await counter.flush()
        assert sent == [0, 1, 2, 3]
    finally:
        await _drained(buffer, sent, 4)


async def test_a_flush_while_stopping_says_what_was_not_sent():
    sent: list[Any] = []
    buffer = await _buffer(sent)
    counter = _counted(buffer)
    buffer.put(0)  # type: ignore[arg-type]  # never started: nothing is handed over
    buffer._stopped.set()  # as when the producer is stopping
    with pytest.raises(RuntimeError, match="1 messages not sent"):
        await counter.flush()
