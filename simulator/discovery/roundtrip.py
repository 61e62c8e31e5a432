"""How far a discovered scenario is from the one that made the log (the round trip:
simulate → events.csv → discover), parameter by parameter."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from services.core.calendar import WorkingCalendar
from services.core.catalog import Catalog
from services.core.scenario import Scenario, StepTiming
from simulator.discovery.eventlog import EventLog

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


def expected_cases(scenario: Scenario, matter_id: str, over: Scenario) -> float:
    """A matter's expected cases over ``over``'s horizon under ``scenario``'s volume and
    profile (a log shorter than a year says how many cases came in its span; its yearly
    volume also rests on the months it does not show)."""
    from simulator.demand import hourly_weights, year_weight

    demand = scenario.demand[matter_id]
    profile = scenario.profile(demand.profile)
    calendar = scenario.office_calendar
    start = over.horizon.start
    year = year_weight(profile, calendar, start.year)
    span = hourly_weights(profile, calendar, start, over.horizon.days).sum()
    return float(demand.per_year * span / year) if year > 0 else 0.0


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
        volumes.append(
            Difference(
                f"demand.{matter_id}: expected cases {discovered.horizon.start}–"
                f"{discovered.horizon.end}",
                expected_cases(original, matter_id, discovered),
                expected_cases(discovered, matter_id, discovered),
            )
        )
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


# -- the whole round trip --------------------------------------------------------------


@dataclass
class RoundTripRun:
    """simulate (seed a) → events.csv → discover → simulate the discovered (seed b),
    with a second run of the original (seed c) as the yardstick of sampling noise."""

    parameters: RoundTrip
    step_times: list[Difference]  # mean start → complete per step (working hours), a vs b
    distances: dict[str, dict[str, float]]  # matter → measure → discovered run's distance
    reference: dict[str, dict[str, float]]  # matter → measure → original seed c's distance
    seconds: dict[str, float]
    discovered: Scenario
    notes: list[str]
    workdir: Path  # a/, b/, c/, discovered.yaml, discovery.json

    def emd_factors(self) -> dict[str, float]:
        """Per matter: cycle-time EMD of the discovered run ÷ that of the original's
        second seed (how much worse than sampling noise)."""
        out = {}
        for matter, measures in self.distances.items():
            reference = self.reference.get(matter, {}).get("cycle_time_emd_h")
            if not reference:  # identical histograms: no yardstick
                continue
            out[matter] = measures["cycle_time_emd_h"] / reference
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "worst": self.parameters.worst(),
            "step_time_worst": max(
                (
                    {
                        "step": d.parameter,
                        "original_h": d.original,
                        "discovered_h": d.discovered,
                        "relative": round(d.relative, 4),
                    }
                    for d in self.step_times
                ),
                key=lambda r: float(r["relative"]),  # type: ignore[arg-type]
                default=None,
            ),
            "cycle_time_emd_factor": {m: round(f, 3) for m, f in self.emd_factors().items()},
            "distances": self.distances,
            "reference": self.reference,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "notes": self.notes,
        }


def step_time_means(
    log: EventLog, calendar: WorkingCalendar, min_attempts: int = 30
) -> dict[str, float]:
    """Mean start → complete of each matter's steps as a log shows it, in working hours
    of ``calendar`` (elapsed time would weigh a service that spans a night by the night)."""
    rows = log.attempts[log.attempts["start"].notna()]
    key = rows["matter"] + "." + rows["step"]
    working = calendar.clock_at_many(rows["end"].to_numpy()) - calendar.clock_at_many(
        rows["start"].to_numpy()
    )
    grouped = pd.Series(working / 3.6e9, index=rows.index).groupby(key)
    means, counts = grouped.mean(), grouped.count()
    enough = counts.to_numpy() >= min_attempts
    return {
        str(k): float(v)
        for k, v, ok in zip(means.index, means.to_numpy(), enough, strict=True)
        if ok
    }


def run_round_trip(
    catalog: Catalog,
    original: Scenario,
    workdir: Path,
    *,
    seeds: tuple[int, int, int] = (1, 7, 13),
    replications: int = 1,
) -> RoundTripRun:
    """The round trip in ``workdir`` (a/, b/, c/ run folders, discovered.yaml)."""
    import json
    import time

    import yaml

    from services.core.scenario import load_scenario
    from simulator.discovery.discover import discover
    from simulator.discovery.distances import log_distances
    from simulator.discovery.eventlog import read_log
    from simulator.run import simulate

    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    simulate(catalog, original, replications=replications, seed=seeds[0], out=workdir / "a")
    simulate(catalog, original, replications=replications, seed=seeds[2], out=workdir / "c")
    seconds["simulate original (a, c)"] = time.perf_counter() - clock
    clock = time.perf_counter()
    real = read_log(workdir / "a" / "events.csv", catalog)
    found = discover(real, catalog, name=f"{original.name}-discovered")
    path = workdir / "discovered.yaml"
    path.write_text(yaml.safe_dump(found.scenario, allow_unicode=True, sort_keys=False))
    (workdir / "discovery.json").write_text(json.dumps(found.report, ensure_ascii=False))
    discovered = load_scenario(path, catalog)
    seconds["discover"] = time.perf_counter() - clock
    clock = time.perf_counter()
    simulate(catalog, discovered, replications=replications, seed=seeds[1], out=workdir / "b")
    seconds["simulate discovered (b)"] = time.perf_counter() - clock
    clock = time.perf_counter()
    again = read_log(workdir / "b" / "events.csv", catalog)
    second = read_log(workdir / "c" / "events.csv", catalog)
    distances = {r.matter: r.distances for r in log_distances(real, again)}
    reference = {r.matter: r.distances for r in log_distances(real, second)}
    seconds["validate (a–b, a–c)"] = time.perf_counter() - clock
    calendar = original.office_calendar
    a_times = step_time_means(real, calendar)
    b_times = step_time_means(again, calendar)
    step_times = [
        Difference(f"{key}.step_time_h", a_times[key], b_times[key])
        for key in a_times
        if key in b_times
    ]
    return RoundTripRun(
        compare_scenarios(catalog, original, discovered),
        step_times,
        distances,
        reference,
        seconds,
        discovered,
        found.notes,
        workdir,
    )
