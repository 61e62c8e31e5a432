"""``summary.json``: one typed contract for every run.

Written by ``govflow simulate`` (:func:`simulator.montecarlo.summarise`) and by ``govflow
replay`` (which adds its :class:`SystemFigures`); read by the report, ``govflow
compare``, the agreement check and anyone scripting against a run's output.  The JSON
shape is this model's, field by field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.core.catalog import Bound, Statistic, Unit
from services.core.errors import InputError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Histogram(_Model):
    edges: list[float] = Field(default_factory=list)
    counts: list[int] = Field(default_factory=list)


class Latency(_Model):
    """A matter's end-to-end latency of completed cases, pooled over replications, in
    ``unit`` (the unit of the matter's first time target)."""

    unit: str
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    ci95_mean: list[float] | None = None  # between replications (Student's t)
    histogram: Histogram = Field(default_factory=Histogram)


class TargetResult(_Model):
    """One target of the plan, and how the run met it."""

    metric: str
    value: float
    unit: Unit
    scope: str
    statistic: Statistic
    bound: Bound
    year: int
    applies_to: str | None = None
    #: the catalog's scope when the run's process measured it on another (a variant's)
    catalog_scope: str | None = None
    attainment: float | None = None  # share of cases (each) or of replications (mean/share)
    ci95: list[float] | None = None
    measured: float | None = None
    measured_ci95: list[float] | None = None
    note: str | None = None

    @property
    def is_time(self) -> bool:
        return self.unit in ("working_days", "working_hours", "hours", "calendar_days")


class MatterResult(_Model):
    name: str
    attachment: int
    cases: int
    cases_per_replication: float
    rejected: int
    latency: Latency
    targets: list[TargetResult]

    def headline(self) -> TargetResult | None:
        """The first time target with an attainment, else the first target with one."""
        measured = [t for t in self.targets if t.attainment is not None]
        timed = [t for t in measured if t.unit not in ("count", "percent")]
        return next(iter(timed or measured), None)

    def target_like(self, other: TargetResult) -> TargetResult | None:
        """This matter's result for the same target of the catalog (metric, scope as
        the catalog states it, year, applies_to), whatever graph measured it."""

        def key(t: TargetResult) -> tuple[str, str, int, str | None]:
            return (t.metric, t.catalog_scope or t.scope, t.year, t.applies_to)

        return next((t for t in self.targets if key(t) == key(other)), None)

    def first_time_target(self) -> TargetResult | None:
        return next((t for t in self.targets if t.is_time), None)

    def case_target(self) -> TargetResult | None:
        """The first whole-case target in the latency's unit (the histogram's line)."""
        return next(
            (t for t in self.targets if t.unit == self.latency.unit and t.scope == "case"), None
        )


class PoolResult(_Model):
    """A department's clerks in one county, averaged over replications."""

    clerks: int
    utilization: float
    mean_wait: float  # working hours
    max_queue: int


class Bottleneck(PoolResult):
    department: str
    county: str


class Horizon(_Model):
    start: str
    end: str


class Quantiles(_Model):
    p50: float | None = None
    p99: float | None = None


class SystemFigures(_Model):
    """What a live replay measures of the twin itself."""

    mode: Literal["replay"] = "replay"
    run_id: str
    speed: float
    cases_submitted: int
    cases_terminal: int
    step_events: int
    events_per_second: float
    wall_seconds: float
    cases_per_second: float
    case_overhead_seconds: Quantiles
    processing_latency_seconds: Quantiles
    latency_in_department_seconds: Quantiles
    latency_in_transit_seconds: Quantiles
    dead_letters: int


class Summary(_Model):
    scenario: str
    description: str = ""
    replications: int
    seed: int
    horizon: Horizon
    warmup_days: int
    wall_seconds: float
    matters: dict[str, MatterResult]
    departments: dict[str, dict[str, PoolResult]]
    bottlenecks: list[Bottleneck]
    system: SystemFigures | None = None

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2, exclude_none=False) + "\n", encoding="utf-8")
        return path


def read_summary(path: Path) -> Summary:
    """A run's ``summary.json``; an :class:`InputError` naming the file and field if it
    is not one."""
    from pydantic import ValidationError

    from services.core.errors import from_validation_error

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            str(path), "", "no summary.json: run a simulation or replay first"
        ) from None
    try:
        return Summary.model_validate_json(text)
    except ValidationError as exc:
        raise from_validation_error(str(path), exc) from None
