"""The shared sim clock of a live run.

The replay announces a run on the control topic: the sim instant that corresponds to a
wall instant, the speed, the scenario and the seed.  Every service maps wall time to sim
time the same way: ``sim = sim_epoch + (wall - wall_epoch) * speed``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class RunAnnounced(BaseModel):
    """The control message that starts a live run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(default="run.started", pattern=r"^run\.started$")
    run_id: str = Field(min_length=1, max_length=64)
    scenario: Path
    seed: int
    sim_epoch: float  # POSIX sim seconds at wall_epoch
    wall_epoch: float  # POSIX wall seconds
    speed: float = Field(gt=0)
    #: every case of the run has an id starting with this (the replay's run id and a
    #: dot); an event for any other case is dead-lettered. Empty: no check.
    case_prefix: str = ""

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class SimClock:
    def __init__(self, run: RunAnnounced) -> None:
        self.run = run

    def now(self, wall: float | None = None) -> float:
        wall = time.time() if wall is None else wall
        return self.run.sim_epoch + (wall - self.run.wall_epoch) * self.run.speed

    def wall_at(self, sim: float) -> float:
        return self.run.wall_epoch + (sim - self.run.sim_epoch) / self.run.speed
