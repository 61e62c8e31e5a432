"""The run announcement: what a live run is, and the shared sim clock.

The replay announces a run on the control topic: the scenario *document* (resolved:
its ``base`` chain merged, any horizon cut applied) with its sha256, the seed, and the
sim instant that corresponds to a wall instant at a speed.  Services share no
filesystem and open no file a message names: a run's scenario travels in the message.
An announcement that is not valid, too large, or whose document does not match its
hash is refused (the service dead-letters it and keeps its current run).

Every service maps wall time to sim time the same way:
``sim = sim_epoch + (wall - wall_epoch) * speed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

from services.core.catalog import Catalog
from services.core.errors import InputError, from_validation_error
from services.core.scenario import Scenario, scenario_from_dict

#: Largest announcement a service reads (a city-year scenario is ~30 KB of JSON).
MAX_ANNOUNCEMENT_BYTES = 1024 * 1024


def canonical(document: dict[str, Any]) -> bytes:
    """A scenario document as canonical JSON (the bytes its hash is taken of)."""
    return json.dumps(
        to_jsonable_python(document), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


def document_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(document)).hexdigest()


class RunAnnounced(BaseModel):
    """The control message that starts a live run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(default="run.started", pattern=r"^run\.started$")
    run_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    scenario_name: str = Field(min_length=1, max_length=128)
    scenario: dict[str, Any]  # the resolved scenario document
    scenario_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    seed: int
    sim_epoch: float  # POSIX sim seconds at wall_epoch
    wall_epoch: float  # POSIX wall seconds
    speed: float = Field(gt=0)
    #: every case of the run has an id starting with this (the replay's run id and a
    #: dot); an event for any other case is dead-lettered. Empty: no check.
    case_prefix: str = ""

    @classmethod
    def of(cls, scenario: dict[str, Any], **fields: Any) -> RunAnnounced:
        """An announcement carrying ``scenario`` (and its hash)."""
        document = to_jsonable_python(scenario)
        name = str(document.get("name", "scenario"))
        return cls(
            scenario=document,
            scenario_sha256=document_hash(document),
            scenario_name=name,
            **fields,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def load(self, catalog: Catalog) -> Scenario:
        """The announced scenario, validated against ``catalog``; :class:`InputError`
        if the document does not match its hash or is not a valid scenario."""
        if document_hash(self.scenario) != self.scenario_sha256:
            raise InputError(
                f"run {self.run_id}", "scenario_sha256", "does not match the scenario document"
            )
        return scenario_from_dict(self.scenario, catalog, source=f"run {self.run_id} scenario")


def read_announcement(raw: bytes, catalog: Catalog) -> tuple[RunAnnounced, Scenario]:
    """A control message → the run and its scenario, or :class:`InputError` saying why
    it is refused (too large, not an announcement, a document that does not match)."""
    if len(raw) > MAX_ANNOUNCEMENT_BYTES:
        raise InputError(
            "control", "", f"announcement of {len(raw)} bytes exceeds {MAX_ANNOUNCEMENT_BYTES}"
        )
    try:
        run = RunAnnounced.model_validate_json(raw)
    except ValidationError as exc:
        raise from_validation_error("control", exc) from None
    return run, run.load(catalog)


class SimClock:
    def __init__(self, run: RunAnnounced) -> None:
        self.run = run

    def now(self, wall: float | None = None) -> float:
        wall = time.time() if wall is None else wall
        return self.run.sim_epoch + (wall - self.run.wall_epoch) * self.run.speed

    def wall_at(self, sim: float) -> float:
        return self.run.wall_epoch + (sim - self.run.sim_epoch) / self.run.speed


class RunControl:
    """The current run of a service: set by the control follower, awaited by the
    service's input (without polling)."""

    def __init__(self) -> None:
        self.run: RunAnnounced | None = None
        self.scenario: Scenario | None = None
        self.clock: SimClock | None = None
        self._known = asyncio.Event()

    def start(self, run: RunAnnounced, scenario: Scenario) -> bool:
        """Take a new run (False: it is the current one already)."""
        if self.run is not None and run.run_id == self.run.run_id:
            return False
        self.run, self.scenario, self.clock = run, scenario, SimClock(run)
        self._known.set()
        return True

    async def wait(self) -> RunAnnounced:
        """The current run, once one is known."""
        if self.run is None:
            await self._known.wait()
        assert self.run is not None
        return self.run
