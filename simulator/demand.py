"""Demand: when cases of each matter arrive, in which county, in which segment.

Arrivals are a non-homogeneous Poisson process.  Each hour of the horizon gets a weight
``month × day × hour`` from the matter's profile — day weights distinguish ordinary
working days (by weekday), 调休 make-up working days (which behave like an average
working day), weekends and public holidays — times any peak window (e.g. the tax
filing period after a quarter end).  A matter's yearly volume is spread over the
hours of a year in proportion to those weights, so a horizon shorter than a year gets
its share of the volume.  Within an hour, arrival instants are uniform.

Everything is drawn with numpy from streams named after the matter, so the same seed
gives the same cases — their ids, instants, counties and segments — to the capacity
engine and to the live replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import numpy as np

from services.core.calendar import SHANGHAI, OfficeCalendar
from services.core.scenario import DemandProfile, Scenario
from services.core.timing import stream_seed


@dataclass(frozen=True)
class MatterArrivals:
    """The cases of one matter, in arrival order (the index is the case's sequence)."""

    matter_id: str
    submitted: np.ndarray  # POSIX seconds, ascending
    county: np.ndarray  # index into Scenario.counties (insertion order)
    segment: np.ndarray  # index into MatterDemand.segments, -1 for none
    unit: np.ndarray | None = None  # unit number of the case's property (register matters)

    def __len__(self) -> int:
        return len(self.submitted)

    def case_id(self, seq: int) -> str:
        return case_id(self.matter_id, seq)


def case_id(matter_id: str, seq: int) -> str:
    return f"{matter_id}-{seq:07d}"


def midnight(day: date) -> float:
    return datetime.combine(day, time(), tzinfo=SHANGHAI).timestamp()


@lru_cache(maxsize=64)
def _day_kinds(calendar: OfficeCalendar, first: date, days: int) -> tuple[str, ...]:
    return tuple(calendar.day_kind(first + timedelta(days=i)) for i in range(days))


def hourly_weights(
    profile: DemandProfile, calendar: OfficeCalendar, first: date, days: int
) -> np.ndarray:
    """Relative demand for each hour of ``days`` days from ``first`` (shape ``days*24``)."""
    kinds = _day_kinds(calendar, first, days)
    workday_mean = float(np.mean(profile.weekday[:5]))
    day_w = np.empty(days)
    for i, kind in enumerate(kinds):
        day = first + timedelta(days=i)
        if kind == "workday" or kind == "weekend":
            w = profile.weekday[day.weekday()]
        elif kind == "makeup":
            w = workday_mean
        else:
            w = profile.holiday
        w *= profile.month[day.month - 1]
        for peak in profile.peaks:
            if day.month in peak.months and peak.first_day <= day.day <= peak.last_day:
                w *= peak.factor
        day_w[i] = w
    return (day_w[:, None] * np.asarray(profile.hour)[None, :]).ravel()


def year_weight(profile: DemandProfile, calendar: OfficeCalendar, year: int) -> float:
    """The summed hourly weights of a calendar year: a matter's ``per_year`` is spread
    over them, so a span gets ``per_year × its weights ÷ this``."""
    first = date(year, 1, 1)
    return float(
        hourly_weights(profile, calendar, first, (date(year + 1, 1, 1) - first).days).sum()
    )


def generate_demand(scenario: Scenario, seed: int) -> dict[str, MatterArrivals]:
    """Every matter's cases over the scenario's horizon."""
    calendar = scenario.office_calendar
    start = scenario.horizon.start
    days = scenario.horizon.days
    t0 = midnight(start)
    counties = list(scenario.counties)
    shares = np.array([scenario.counties[c] for c in counties])
    shares = shares / shares.sum()
    out: dict[str, MatterArrivals] = {}
    matter_index = {m: i for i, m in enumerate(scenario.demand)}
    for matter_id, demand in scenario.demand.items():
        rng = np.random.Generator(np.random.PCG64(stream_seed(seed, "demand", matter_id)))
        profile = scenario.profile(demand.profile)
        year = year_weight(profile, calendar, start.year)
        weights = hourly_weights(profile, calendar, start, days)
        if demand.per_year == 0 or year == 0:
            empty = np.empty(0)
            out[matter_id] = MatterArrivals(
                matter_id, empty, empty.astype(int), empty.astype(int), empty.astype(int)
            )
            continue
        counts = rng.poisson(demand.per_year * weights / year)
        hour_index = np.repeat(np.arange(len(weights)), counts)
        submitted = t0 + hour_index * 3600.0 + rng.random(len(hour_index)) * 3600.0
        submitted.sort()
        county = rng.choice(len(counties), size=len(submitted), p=shares)
        segment = np.full(len(submitted), -1)
        if demand.segments:
            p = [s.share for s in demand.segments]
            p.append(1 - sum(p))
            segment = rng.choice(len(p), size=len(submitted), p=p)
            segment[segment == len(demand.segments)] = -1
        unit = _units(scenario, seed, matter_id, county, shares)
        if unit is None:
            unit = UNITS_PER_MATTER * matter_index[matter_id] + np.arange(len(submitted))
        out[matter_id] = MatterArrivals(matter_id, submitted, county, segment, unit)
    return _seize_transfers(scenario, seed, out)


#: Unit numbers: each matter's cases get their own range (a case's own unit).
UNITS_PER_MATTER = 10**7
#: Numbers per housing stock (they follow every matter's own range)
UNITS_PER_STOCK = 10**6


def county_stock(units: int, shares: np.ndarray) -> np.ndarray:
    """Each county's share of a stock of ``units`` (by demand share, at least one)."""
    return np.maximum(1, np.rint(units * shares)).astype(np.int64)


def _units(
    scenario: Scenario, seed: int, matter_id: str, county: np.ndarray, shares: np.ndarray
) -> np.ndarray | None:
    """The units of a matter's cases drawn from its housing stock (None: it has none).
    A stream of its own, so a stock changes no other draw of the matter."""
    found = scenario.housing_stock(matter_id)
    if found is None:
        return None
    index, stock = found
    sizes = county_stock(stock.units, shares)
    if sizes.sum() > UNITS_PER_STOCK:
        raise ValueError(f"housing[{index}].units: at most {UNITS_PER_STOCK:,} units a stock")
    base = UNITS_PER_MATTER * len(scenario.demand) + index * UNITS_PER_STOCK
    first = base + np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rng = np.random.Generator(np.random.PCG64(stream_seed(seed, "housing", matter_id)))
    return first[county] + (rng.random(len(county)) * sizes[county]).astype(np.int64)


TRANSFERS = ("linked_transfer", "property_transfer")
SEIZURES = "seizure_registration"


def _seize_transfers(
    scenario: Scenario, seed: int, arrivals: dict[str, MatterArrivals]
) -> dict[str, MatterArrivals]:
    """Fault injection: a share of the transfers' units get a 查封 case of their own,
    submitted within ``seizure_within_hours`` after the transfer (so it may land while
    the transfer is in flight)."""
    faults = scenario.faults
    if faults.seizure_rate <= 0 or SEIZURES not in arrivals:
        return arrivals
    rng = np.random.Generator(np.random.PCG64(stream_seed(seed, "demand", "seizures")))
    parts = [arrivals[SEIZURES]]
    for matter_id in TRANSFERS:
        transfers = arrivals.get(matter_id)
        if transfers is None or len(transfers) == 0 or transfers.unit is None:
            continue
        hit = rng.random(len(transfers)) < faults.seizure_rate
        delay = rng.random(int(hit.sum())) * faults.seizure_within_hours * 3600.0
        parts.append(
            MatterArrivals(
                SEIZURES,
                transfers.submitted[hit] + delay,
                transfers.county[hit],
                np.full(int(hit.sum()), -1),
                transfers.unit[hit],
            )
        )
    submitted = np.concatenate([p.submitted for p in parts])
    order = np.argsort(submitted, kind="stable")
    merged = MatterArrivals(
        SEIZURES,
        submitted[order],
        np.concatenate([p.county for p in parts])[order],
        np.concatenate([p.segment for p in parts])[order],
        np.concatenate([p.unit for p in parts if p.unit is not None])[order],
    )
    return {**arrivals, SEIZURES: merged}
