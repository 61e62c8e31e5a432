"""How far a discovered scenario is from the one that made the log (the round trip:
simulate → events.csv → discover), parameter by parameter."""

from __future__ import annotations

from dataclasses import dataclass

from services.core.catalog import Catalog
from services.core.scenario import Scenario, StepTiming

#: The timing distributions compared (by their means), per step.
DURATIONS = ("service", "lag", "duration")
BRANCHES = ("rework", "reject", "fault")


@dataclass(frozen=True)
class Difference:
    parameter: str
    original: float
    discovered: float

    @property
    def relative(self) -> float:
        if self.original == 0:
            return 0.0 if self.discovered == 0 else float("inf")
        return abs(self.discovered - self.original) / abs(self.original)

    @property
    def absolute(self) -> float:
        return abs(self.discovered - self.original)


@dataclass
class RoundTrip:
    volumes: list[Difference]
    means: list[Difference]
    branches: list[Difference]
    clerks: list[Difference]
    missing: list[str]

    def worst(self) -> dict[str, object]:
        def top(rows: list[Difference], key: str) -> dict[str, object] | None:
            if not rows:
                return None
            row = max(rows, key=lambda r: getattr(r, key))
            return {
                "parameter": row.parameter,
                "original": row.original,
                "discovered": row.discovered,
                key: round(getattr(row, key), 4),
            }

        return {
            "volume": top(self.volumes, "relative"),
            "mean": top(self.means, "relative"),
            "branch": top(self.branches, "absolute"),
            "clerks": top(self.clerks, "absolute"),
            "missing": self.missing,
        }


def _mean_minutes(dist: object, working_day_minutes: float) -> tuple[float, str]:
    """A distribution's mean in a comparable unit: working-clock minutes, or calendar days."""
    unit = getattr(dist, "unit", "minutes")
    mean = float(dist.mean_value())  # type: ignore[attr-defined]
    factor = {"minutes": 1.0, "hours": 60.0, "working_days": working_day_minutes}
    if unit == "calendar_days":
        return mean, "calendar_days"
    return mean * factor[unit], "working_minutes"


def compare_scenarios(
    catalog: Catalog, original: Scenario, discovered: Scenario, *, min_cases: float = 0
) -> RoundTrip:
    """Each parameter both scenarios have, original against discovered (matters with at
    least ``min_cases`` a year; a parameter one of them lacks is listed as missing)."""
    day = original.office_calendar.day_us / 60e6
    volumes, means, branches, clerks, missing = [], [], [], [], []
    for matter_id, demand in original.demand.items():
        if demand.per_year <= min_cases:
            continue
        found = discovered.demand.get(matter_id)
        if found is None:
            missing.append(f"demand.{matter_id}")
            continue
        volumes.append(Difference(f"demand.{matter_id}.per_year", demand.per_year, found.per_year))
        matter = original.matter(catalog, matter_id)
        for step in original.steps_run(matter):
            a = original.timing[matter_id][step.id]
            b = discovered.timing.get(matter_id, {}).get(step.id)
            if b is None:
                missing.append(f"timing.{matter_id}.{step.id}")
                continue
            means.extend(_durations(f"timing.{matter_id}.{step.id}", a, b, day, missing))
            for purpose in BRANCHES:
                pa, pb = getattr(a, purpose), getattr(b, purpose)
                if pa is None and pb is None:
                    continue
                branches.append(
                    Difference(
                        f"timing.{matter_id}.{step.id}.{purpose}.probability",
                        pa.probability if pa else 0.0,
                        pb.probability if pb else 0.0,
                    )
                )
    for department, staffing in discovered.departments.items():
        for county in discovered.counties:
            clerks.append(
                Difference(
                    f"departments.{department}.clerks.{county}",
                    original.clerks(department, county),
                    staffing.clerks.get(county, 0),
                )
            )
    return RoundTrip(volumes, means, branches, clerks, missing)


def _durations(
    where: str, a: StepTiming, b: StepTiming, day: float, missing: list[str]
) -> list[Difference]:
    out = []
    for purpose in DURATIONS:
        da, db = getattr(a, purpose), getattr(b, purpose)
        if da is None and db is None:
            continue
        if da is None or db is None:
            missing.append(f"{where}.{purpose}")
            continue
        ma, ua = _mean_minutes(da, day)
        mb, ub = _mean_minutes(db, day)
        if ua != ub:
            missing.append(f"{where}.{purpose}: {ua} vs {ub}")
            continue
        out.append(Difference(f"{where}.{purpose}.mean", ma, mb))
    return out
