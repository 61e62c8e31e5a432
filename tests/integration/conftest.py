"""Integration tests run against real brokers, each started on free ports and stopped:
the embedded Tansu and Apache Kafka (``make kafka``; ``make test`` installs it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from services.runtime.broker import DEFAULT_KAFKA_HOME, EmbeddedBroker

#: The brokers the live twin's tests run on, as ``govflow up --broker`` spells them.
BROKERS = ("embedded", "kafka")


def kafka_missing() -> str | None:
    """Why Apache Kafka cannot run here, or None."""
    if shutil.which("java") is None:
        return "no Java on PATH (Apache Kafka needs Java 17)"
    if not any((DEFAULT_KAFKA_HOME / "libs").glob("kafka_2.13-*.jar")):
        return "Apache Kafka is not installed: run `make kafka` (make test does)"
    return None


def broker_param(kind: str) -> object:
    """A pytest param for a broker kind, skipped with the reason when it cannot run."""
    reason = kafka_missing() if kind == "kafka" else None
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    return pytest.param(kind, id=kind, marks=marks)


BROKER_PARAMS = [broker_param(kind) for kind in BROKERS]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log")
    embedded.start()
    yield embedded
    embedded.stop()
