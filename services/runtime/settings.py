"""Runtime configuration from the environment (prefix ``GOVFLOW_``).

Every process of the twin — the CLI, each department worker, the replay — reads the
same settings, so one environment (a shell, a compose file) configures them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.errors import InputError


class Settings(BaseSettings):
    """``GOVFLOW_BROKER_URL=kafka://kafka:9092 govflow up`` etc."""

    model_config = SettingsConfigDict(env_prefix="GOVFLOW_", extra="ignore")

    broker_url: str | None = Field(
        default=None,
        description="Kafka bootstrap URL (kafka://host:port). Unset: start the embedded broker.",
    )
    broker: Literal["embedded", "kafka"] = Field(
        default="embedded",
        description="Which broker `govflow up` starts when GOVFLOW_BROKER_URL is unset: "
        "embedded (Tansu, memory only, pip-installed) or kafka (Apache Kafka from "
        "`make kafka`, KRaft, its log in the data dir).",
    )
    broker_port: int = Field(
        default=0, ge=0, le=65535, description="Port of the broker `up` starts; 0 picks a free one."
    )
    group_instance_id: str | None = Field(
        default=None,
        description="Static consumer-group membership (group.instance.id): a worker that "
        "restarts with the same id takes its partitions back at once instead of waiting "
        "for the session timeout. `govflow up` gives each worker <service>-1; unique per "
        "worker of a service.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="Faust's processing guarantee. exactly_once needs broker transactions "
        "(Apache Kafka, not the embedded broker); docs/RELIABILITY.md says how it fared.",
    )
    speed: float = Field(
        default=8640.0,
        gt=0,
        description="Sim seconds per wall second in live replay (8640: one calendar day in 10 s).",
    )
    metrics_port: int = Field(
        default=9300,
        ge=0,
        le=65535,
        description="First metrics port; services take consecutive ports. 0: free ports.",
    )
    prometheus_port: int = Field(
        default=9090,
        ge=0,
        le=65535,
        description="Port of the local Prometheus (`govflow up --prometheus`); taken: the next.",
    )
    data_dir: Path = Field(
        default=Path(".govflow"), description="Pids, ports and logs of `govflow up`."
    )
    topic_prefix: str = Field(default="govflow", pattern=r"^[a-z][a-z0-9_-]*$")
    catalog_path: Path | None = Field(
        default=None, description="Another catalog YAML instead of the shipped one."
    )
    embedded_broker_quirks: bool = Field(
        default=True,
        description="Work around the embedded broker's ListOffsets (one record per batch).",
    )
    watermark: float = Field(
        default=0.3,
        ge=0,
        description="Wall seconds a department waits before acting on arrivals, so that "
        "events delayed in transit are still served in time order.",
    )

    closed_case_horizon_s: float = Field(
        default=300.0,
        gt=0,
        description="Wall seconds a service keeps the marker of a case it is done with "
        "(to drop its late duplicates) before forgetting it; counted from the worker's "
        "start at the earliest, a rebalance pausing it (services.core.closing). Bounds the "
        "state a service keeps.",
    )

    executor: str = Field(
        default="local",
        description="Where simulations run: local (this machine's processes) or "
        "dask://HOST:PORT (a dask.distributed scheduler); --executor overrides it.",
    )
    backfill_working_days: float = Field(
        default=10.0,
        ge=0,
        description="Working days a clerk pool keeps idle gaps for arrivals that reach it "
        "late (out of order); 0 serves strictly in order of receipt.",
    )

    @field_validator("broker_url")
    @classmethod
    def _broker_url_shape(cls, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        if "://" not in url:
            url = f"kafka://{url}"
        scheme, _, rest = url.partition("://")
        host, _, port = rest.rpartition(":")
        if scheme != "kafka" or not host or not port.isdigit():
            raise ValueError(f"broker URL {url!r} must look like kafka://host:port")
        return url


def load_settings() -> Settings:
    """Settings from the environment; a bad variable is an :class:`InputError` naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = "GOVFLOW_" + str(first["loc"][0]).upper() if first["loc"] else "GOVFLOW_*"
        raise InputError("environment", name, first["msg"]) from None
