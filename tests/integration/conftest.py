"""Integration tests run against a real broker: the embedded Tansu on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.runtime.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log")
    embedded.start()
    yield embedded
    embedded.stop()
