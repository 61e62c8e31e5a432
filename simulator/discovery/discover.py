"""``govflow discover``: a scenario from an event log, and what every parameter rests on.

For each matter of the catalog found in the log: the yearly volume and arrival profile
(:mod:`simulator.discovery.arrivals`), its segments and routes (from a ``case:segment``
column, or from the steps each case ran), and per step the clerk's service time, the
lag after it (time without a clerk), an external step's duration, and the branch
probabilities (补正 rework and its delay, rejection, transient faults); per department
and county the clerks (distinct ``org:resource``) and office hours (from when clerks
start work).  Every figure goes into ``discovery.json`` with its source, its number of
observations and its uncertainty, beside what had to be assumed.

Service and lag are told apart by the clerks' own sequence: a clerk who starts a case
that was already waiting when the clerk started the previous one started it the moment
the previous service ended, so ``next start − start`` is that service time (on the
working clock), and the rest of the step's time up to its completion is the lag.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.core.calendar import (
    DEFAULT_OFFICE_HOURS,
    ContinuousCalendar,
    HolidayYear,
    OfficeCalendar,
    WorkingCalendar,
)
from services.core.catalog import Catalog, Matter
from services.core.scenario import RUN_OUT_DAYS, Scenario, scenario_from_dict
from simulator.discovery.arrivals import fit_demand, local_date
from simulator.discovery.eventlog import EventLog
from simulator.discovery.fitting import Fit, fit_duration, fit_left_censored
from simulator.intervals import wilson

Hours = tuple[tuple[time, time], ...]
US_PER_MINUTE = 60e6
#: Offices open and close on the half hour (an assumption, in discovery.json): the
#: hours found from clerk start times are rounded out to it.
HOURS_STEP = 30
#: A gap in clerks' start times at least this long splits the office day (lunch).
GAP_MINUTES = 45
#: Share of clerk starts outside every office day above which a department is 24x7.
ROUND_THE_CLOCK = 0.02
#: Share of completions outside office hours above which a lag or duration runs on
#: the clock (calendar days), not on the working clock.
ON_THE_CLOCK = 0.01
#: Fewest clerk starts outside the department's hours that give a county pool its own.
OWN_HOURS_STARTS = 20
#: Largest relative standard error of a service mean by moments (step time − lag); a
#: lag much longer than the service makes it noisy, and the censored fit is used instead.
MOMENTS_SE = 0.05
#: Fewest observations behind a segment's time scale, per step.
SCALE_MIN = 10


@dataclass
class Discovery:
    """The discovered scenario (as the mapping a scenario file holds) and its report."""

    scenario: dict[str, Any]
    report: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def validated(self, catalog: Catalog, source: str) -> Scenario:
        return scenario_from_dict(self.scenario, catalog, source=source)


def discover(
    log: EventLog,
    catalog: Catalog,
    *,
    name: str = "discovered",
    holiday_years: list[dict[str, Any]] | None = None,
    seed: int = 0,
) -> Discovery:
    """Discover a scenario from ``log`` (see the module docstring)."""
    notes: list[str] = []
    attempts = log.attempts
    if attempts.empty:
        raise ValueError(f"{log.source}: no usable step attempt in the log")
    holidays = tuple(_holiday_year(y) for y in holiday_years or ())
    cases = _cases(attempts)
    first = local_date(float(cases["arrival"].min()))
    last = local_date(float(cases["arrival"].max()))
    office = OfficeCalendar(DEFAULT_OFFICE_HOURS, holiday_years=holidays, run_out_days=RUN_OUT_DAYS)
    attempts = attempts.assign(
        department=_departments(attempts, catalog), external=_external_steps(attempts, catalog)
    )
    hours_report: dict[str, Any] = {}
    staffing, calendars, global_hours = _staffing(attempts, holidays, hours_report)
    attempts = add_clerk_sequence(attempts, calendars)
    attempts["span"] = _clock_spans(attempts, calendars, "start", "end") / US_PER_MINUTE
    report: dict[str, Any] = {
        "log": {
            "source": log.source,
            "attempts": len(attempts),
            "cases": len(cases),
            "has": sorted(log.has),
            "excluded": log.exclusions.as_dict(),
        },
        "horizon": {"start": str(first), "end": str(last), "from": "first and last case arrival"},
        "counties": {},
        "demand": {},
        "departments": hours_report,
        "timing": {},
        "assumed": [],
    }
    counties = _county_shares(cases, report)
    scenario: dict[str, Any] = {
        "name": name,
        "description": (
            f"Discovered by govflow discover from {Path(log.source).name}: "
            f"{len(attempts):,} step attempts of {len(cases):,} cases, {first}–{last}. "
            "What each figure rests on: discovery.json."
        ),
        "horizon": {"start": str(first), "end": str(last)},
        "seed": seed,
        "office_hours": _hours_text(global_hours),
        "counties": counties,
        "profiles": {},
        "demand": {},
        "departments": {},
        "timing": {},
    }
    if holiday_years:
        scenario["holiday_years"] = holiday_years
    for matter_id in sorted(cases["matter"].unique()):
        matter = catalog.matter(matter_id)
        matter_cases = cases[cases["matter"] == matter_id]
        matter_attempts = attempts[attempts["matter"] == matter_id]
        demand = fit_demand(matter_cases["arrival"].to_numpy(), office, first, last)
        segments, scales, segment_report = _segments(matter, matter_cases, matter_attempts, log)
        timing, timing_report, missing = _timing(
            matter, matter_attempts, scales, calendars, log.has, seed
        )
        routes = {s.get("route") for s in segments} | (
            {None} if sum(s["share"] for s in segments) < 1 - 1e-9 or not segments else set()
        )
        unrun = [
            s.id
            for s in matter.steps
            if s.id not in timing and any(matter.on_route(r)[matter.steps.index(s)] for r in routes)
        ]
        if unrun:
            notes.append(
                f"{matter_id}: left out — step {unrun[0]} never observed (no timing for it)"
            )
            report["assumed"].append(
                {"matter": matter_id, "left out": f"steps {unrun} never observed"}
            )
            continue
        scenario["profiles"][matter_id] = demand.profile.model_dump(mode="json")
        entry: dict[str, Any] = {"per_year": round(demand.per_year, 1), "profile": matter_id}
        if segments:
            entry["segments"] = segments
        scenario["demand"][matter_id] = entry
        scenario["timing"][matter_id] = timing
        report["demand"][matter_id] = {**demand.as_dict(), "segments": segment_report}
        report["timing"][matter_id] = timing_report
        notes.extend(f"{matter_id}: {n}" for n in missing)
        notes.extend(f"{matter_id}: {n}" for n in demand.notes)
    scenario["departments"] = _departments_needed(
        scenario, catalog, staffing, counties, report, notes
    )
    report["assumed"].extend(_assumptions(log))
    report["notes"] = notes
    return Discovery(plain(scenario), plain(report), notes)


# -- cases --------------------------------------------------------------------------


def _cases(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per case: matter, county, segment, arrival (the earliest enable, start
    or completion it has), whether it was rejected, and whether its rows are trusted."""
    first_time = attempts[["enable", "start", "end"]].min(axis=1)
    grouped = attempts.assign(first_time=first_time).groupby("case", sort=False)
    cases = grouped.agg(
        matter=("matter", "first"),
        county=("county", "first"),
        segment=("segment", "first"),
        arrival=("first_time", "min"),
        case_ok=("case_ok", "all"),
    )
    rejected = attempts.loc[attempts["outcome"] == "rejected", "case"].unique()
    cases["rejected"] = cases.index.isin(rejected)
    return cases


def _county_shares(cases: pd.DataFrame, report: dict[str, Any]) -> dict[str, float]:
    """One share per county for every matter (the scenario schema's form)."""
    counts = cases["county"].value_counts()
    total = int(counts.sum())
    shares = {str(c): int(n) / total for c, n in counts.items()}
    rounded = {c: round(s, 6) for c, s in shares.items()}
    largest = max(rounded, key=lambda c: rounded[c])
    rounded[largest] = round(rounded[largest] + 1 - sum(rounded.values()), 6)
    for key, n in counts.items():
        c = str(key)
        p = int(n) / total
        report["counties"][c] = {
            "share": rounded[c],
            "cases": int(n),
            "se": round(math.sqrt(p * (1 - p) / total), 6),
            "from": "share of all cases filed in the county",
        }
    by_matter = pd.crosstab(cases["matter"], cases["county"], normalize="index")
    spread = (by_matter - pd.Series(shares)).abs().max(axis=1)
    report["counties_by_matter_max_difference"] = {m: round(float(v), 4) for m, v in spread.items()}
    return dict(sorted(rounded.items()))


# -- departments: clerks and hours ----------------------------------------------------


def _departments(attempts: pd.DataFrame, catalog: Catalog) -> pd.Series:
    lookup = {(m.id, s.id): s.department for m in catalog.matters for s in m.steps}
    keys = list(zip(attempts["matter"], attempts["step"], strict=True))
    return pd.Series([lookup[k] for k in keys], index=attempts.index)


def _external_steps(attempts: pd.DataFrame, catalog: Catalog) -> pd.Series:
    """Rows of external steps (the applicant's or a contractor's part: no clerk), whatever
    resource the log names for them."""
    external = {(m.id, s.id) for m in catalog.matters for s in m.steps if s.kind == "external"}
    keys = zip(attempts["matter"], attempts["step"], strict=True)
    return pd.Series([k in external for k in keys], index=attempts.index)


def _clerk_rows(attempts: pd.DataFrame) -> pd.Series:
    """Attempts a clerk served: a resource named, not an external step."""
    named = (attempts["resource"] != "") & (attempts["resource"] != "external")
    return named & ~attempts["external"] if "external" in attempts else named


def _staffing(
    attempts: pd.DataFrame,
    holidays: tuple[HolidayYear, ...],
    report: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], WorkingCalendar], Hours]:
    """Clerks per pool and each department's (and pool's) hours, from clerk activity."""
    clerked = attempts[_clerk_rows(attempts)]
    probe = OfficeCalendar(DEFAULT_OFFICE_HOURS, holiday_years=holidays, run_out_days=RUN_OUT_DAYS)
    starts = clerked["start"].fillna(clerked["end"]).to_numpy()
    local = starts + 8 * 3600
    minute = ((local % 86400) // 60).astype(np.int64)
    days = (local // 86400).astype(np.int64)
    working_day = _working_days(days, probe)
    staffing: dict[str, dict[str, Any]] = {}
    calendars: dict[tuple[str, str], WorkingCalendar] = {}
    department_hours: dict[str, Hours | None] = {}
    weight: Counter[Hours] = Counter()
    dept_values = clerked["department"].to_numpy()
    county_values = clerked["county"].to_numpy()
    for department in sorted(set(dept_values)):
        rows = dept_values == department
        outside = float(np.mean(~working_day[rows] | (minute[rows] < 6 * 60)))
        entry: dict[str, Any] = {"clerks": {}, "clerk_starts": int(rows.sum())}
        if outside > ROUND_THE_CLOCK:
            hours: Hours | None = None
            entry["calendar"] = "24x7"
            entry["from"] = f"{outside:.1%} of clerk starts on days off or at night: 24x7"
        else:
            hours = _hours_from_minutes(minute[rows & working_day])
            weight[hours] += int(rows.sum())
            entry["office_hours"] = _hours_text(hours)
            entry["from"] = (
                "clerk start times on working days (gaps ≥ 45 min closed), rounded out "
                "to the half hour (assumed: offices open and close on the half hour)"
            )
        department_hours[department] = hours
        staffing[department] = entry
        clerk_sets = clerked[rows].groupby("county")["resource"].nunique()
        for county, n in clerk_sets.items():
            entry["clerks"][str(county)] = int(n)
        if hours is not None:
            for county in sorted(set(county_values[rows])):
                pool = rows & (county_values == county) & working_day
                outside_dept = ~_within(minute[pool], hours)
                if outside_dept.sum() >= OWN_HOURS_STARTS:
                    own = _hours_from_minutes(minute[pool])
                    entry.setdefault("county_hours", {})[county] = _hours_text(own)
    global_hours = weight.most_common(1)[0][0] if weight else DEFAULT_OFFICE_HOURS
    for department, entry in staffing.items():
        hours = department_hours[department]
        text = entry.get("county_hours", {})
        for county in set(county_values[dept_values == department]):
            if entry.get("calendar") == "24x7":
                calendars[(department, county)] = ContinuousCalendar(name=f"{department}:24x7")
                continue
            shifts = _parse_hours(text[county]) if county in text else hours or global_hours
            calendars[(department, county)] = OfficeCalendar(
                shifts,
                name=f"{department}/{county}",
                holiday_years=holidays,
                run_out_days=RUN_OUT_DAYS,
            )
        report[department] = entry
    return staffing, calendars, global_hours


def _working_days(days: np.ndarray, calendar: OfficeCalendar) -> np.ndarray:
    epoch = date(1970, 1, 1)
    flags = {d: calendar.is_working_day(epoch + timedelta(days=int(d))) for d in np.unique(days)}
    return np.vectorize(flags.__getitem__, otypes=[bool])(days) if len(days) else np.zeros(0, bool)


def _hours_from_minutes(minutes: np.ndarray) -> Hours:
    """Open intervals: from the first to the last start, split where no clerk starts
    for :data:`GAP_MINUTES` or more; bounds to :data:`HOURS_STEP` minutes (start down,
    end up): a clerk busy with yesterday's case starts nothing at the opening, and the
    last start of the day comes before the closing."""
    if len(minutes) == 0:
        return DEFAULT_OFFICE_HOURS
    seen = np.unique(minutes)
    gaps = np.flatnonzero(np.diff(seen) >= GAP_MINUTES)
    bounds = []
    lo = seen[0]
    for g in gaps:
        bounds.append((lo, seen[g]))
        lo = seen[g + 1]
    bounds.append((lo, seen[-1]))
    out = []
    for a, b in bounds:
        start = int(a // HOURS_STEP * HOURS_STEP)
        end = min(int(math.ceil((b + 1) / HOURS_STEP) * HOURS_STEP), 24 * 60 - 1)
        out.append((time(start // 60, start % 60), time(end // 60, end % 60)))
    return tuple(out)


def _within(minutes: np.ndarray, hours: Hours) -> np.ndarray:
    inside = np.zeros(len(minutes), dtype=bool)
    for s, e in hours:
        inside |= (minutes >= s.hour * 60 + s.minute) & (minutes < e.hour * 60 + e.minute)
    return inside


def _hours_text(hours: Hours) -> list[list[str]]:
    return [[f"{s:%H:%M}", f"{e:%H:%M}"] for s, e in hours]


def _parse_hours(text: list[list[str]]) -> Hours:
    return tuple((time.fromisoformat(a), time.fromisoformat(b)) for a, b in text)


def _holiday_year(data: dict[str, Any]) -> HolidayYear:
    from services.core.scenario import HolidayYearData

    return HolidayYearData.model_validate(data).as_calendar_data()


def _departments_needed(
    scenario: dict[str, Any],
    catalog: Catalog,
    staffing: dict[str, dict[str, Any]],
    counties: dict[str, float],
    report: dict[str, Any],
    notes: list[str],
) -> dict[str, Any]:
    """The staffing section: every department a discovered matter's clerk steps use,
    a clerk at least in every county (a pool the log never shows gets one, noted)."""
    needed: set[str] = set()
    for matter_id in scenario["demand"]:
        needed |= {s.department for s in catalog.matter(matter_id).steps if s.kind != "external"}
    out: dict[str, Any] = {}
    for department in sorted(needed):
        entry = staffing.get(department, {"clerks": {}})
        clerks = dict(entry["clerks"])
        for county in counties:
            if clerks.get(county, 0) < 1:
                clerks[county] = 1
                notes.append(f"departments.{department}.clerks.{county}: no clerk seen, 1 assumed")
                report["assumed"].append(
                    {
                        "parameter": f"departments.{department}.clerks.{county}",
                        "value": 1,
                        "why": "no attempt of this pool in the log",
                    }
                )
        section: dict[str, Any] = {"clerks": dict(sorted(clerks.items()))}
        if entry.get("calendar") == "24x7":
            section["calendar"] = "24x7"
        elif entry.get("office_hours") and entry["office_hours"] != scenario["office_hours"]:
            section["office_hours"] = entry["office_hours"]
        if entry.get("county_hours"):
            section["county_hours"] = entry["county_hours"]
        out[department] = section
    return out


# -- segments and routes --------------------------------------------------------------


def _route_of_cases(matter: Matter, attempts: pd.DataFrame) -> pd.Series:
    """Each completed case's route (by the set of steps it ran, as a bit mask), "" for
    the default path, "?" where no route runs exactly those steps."""
    bit = {s.id: 1 << i for i, s in enumerate(matter.steps)}
    done = attempts[attempts["outcome"].isin(("done", ""))].drop_duplicates(["case", "step"])
    masks = done["step"].map(bit).groupby(done["case"]).sum()
    routes: dict[int, str] = {}
    for route in (None, *(r.id for r in matter.routes)):
        on = matter.on_route(route)
        key = sum(1 << i for i, kept in enumerate(on) if kept)
        routes.setdefault(key, route or "")
    return masks.map(lambda m: routes.get(int(m), "?"))


def _segments(
    matter: Matter, cases: pd.DataFrame, attempts: pd.DataFrame, log: EventLog
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, Any]]:
    """The matter's segments (name, share, route, time scale), each case's time scale,
    and the report on them."""
    complete = cases[cases["case_ok"] & ~cases["rejected"]]
    route = _route_of_cases(matter, attempts[attempts["case"].isin(complete.index)])
    n = len(cases)
    report: dict[str, Any] = {}
    segments: list[dict[str, Any]] = []
    scales: dict[str, float] = {}
    if "segment" in log.has and (cases["segment"] != "").any():
        counts = cases["segment"].value_counts()
        scale_of = _segment_scales(attempts, cases)
        for key, k in counts.items():
            name = str(key)
            if name == "":
                continue
            routes = route[route.index.isin(cases.index[cases["segment"] == name])]
            taken = routes[routes != "?"].value_counts()
            segment: dict[str, Any] = {"name": name, "share": round(k / n, 6)}
            if len(taken) and str(taken.index[0]):
                segment["route"] = str(taken.index[0])
            scale = scale_of.get(name, 1.0)
            if abs(scale - 1) > 0.02:
                segment["time_scale"] = round(scale, 4)
            segments.append(segment)
            low, high = wilson(int(k), n) or (0.0, 1.0)
            report[name] = {
                "share": round(k / n, 6),
                "cases": int(k),
                "ci95": [round(low, 6), round(high, 6)],
                "route": segment.get("route"),
                "route_cases": {str(r) or "default": int(c) for r, c in taken.items()},
                "time_scale": round(scale, 4),
                "from": "case:segment column; route by the steps its completed cases ran; "
                "time scale = its attempts' mean time over the unsegmented cases' per step",
            }
            scales[name] = scale
    else:
        taken = route[route != "?"].value_counts()
        classified = int(taken.sum())
        for key, k in taken.items():
            route_id = str(key)
            if not route_id:
                continue
            named = next(r for r in matter.routes if r.id == route_id)
            segments.append(
                {"name": named.name, "share": round(k / classified, 6), "route": route_id}
            )
            low, high = wilson(int(k), classified) or (0.0, 1.0)
            report[named.name] = {
                "share": round(k / classified, 6),
                "cases": int(k),
                "ci95": [round(low, 6), round(high, 6)],
                "route": route_id,
                "from": f"{classified} completed cases classified by the steps they ran; "
                "rejected cases assumed to follow the same shares",
            }
    total = sum(s["share"] for s in segments)
    for s in segments:  # shares floored to 6 decimals: their sum must not pass 1
        s["share"] = math.floor(s["share"] / max(total, 1.0) * 1e6) / 1e6
    return segments, scales, report


def _segment_scales(attempts: pd.DataFrame, cases: pd.DataFrame) -> dict[str, float]:
    """Each segment's time scale: its attempts' step time (working clock) over what the
    reference (unsegmented, or the largest segment's) cases take at the same steps;
    kept only where it differs from 1 by more than three standard errors and 2 %."""
    timed = attempts[_clerk_rows(attempts) & attempts["span"].notna()]
    if timed.empty:
        return {}
    stats_ = timed.groupby(["segment", "step"])["span"].agg(["mean", "var", "count"])
    segments = list(cases["segment"].value_counts().index)
    reference = "" if "" in segments else segments[0]
    names = stats_.index.get_level_values(0)
    if reference not in names:
        return {}
    ref = stats_.loc[reference]
    out: dict[str, float] = {}
    for name in segments:
        if name == reference or name not in names:
            continue
        own = stats_.loc[name]
        both = [
            s
            for s in own.index.intersection(ref.index)
            if own.loc[s, "count"] >= SCALE_MIN and ref.loc[s, "count"] >= SCALE_MIN
        ]
        if not both:
            continue
        o, r = own.loc[both], ref.loc[both]
        num = float((o["mean"] * o["count"]).sum())
        den = float((r["mean"] * o["count"]).sum())
        if num <= 0 or den <= 0:
            continue
        var_num = float((o["var"].fillna(0) * o["count"]).sum())
        var_den = float((r["var"].fillna(0) * o["count"] ** 2 / r["count"]).sum())
        ratio = num / den
        se = ratio * math.sqrt(var_num / num**2 + var_den / den**2)
        if abs(ratio - 1) > max(3 * se, 0.02):
            out[name] = ratio
    return out


# -- step timing ----------------------------------------------------------------------


def _timing(
    matter: Matter,
    attempts: pd.DataFrame,
    scales: dict[str, float],
    calendars: dict[tuple[str, str], WorkingCalendar],
    has: frozenset[str],
    seed: int,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    timing: dict[str, Any] = {}
    report: dict[str, Any] = {}
    missing: list[str] = []
    scale = attempts["segment"].map(lambda s: scales.get(s, 1.0)).to_numpy()
    attempts = attempts.assign(scale=scale)
    for step in matter.steps:
        rows = attempts[attempts["step"] == step.id]
        if rows.empty:
            continue
        entry: dict[str, Any] = {}
        step_report: dict[str, Any] = {"attempts": len(rows)}
        if step.kind == "external":
            fit, clock = _external(rows, calendars, seed)
            entry["duration"] = fit.spec
            step_report["duration"] = {**fit.as_dict(), "from": f"complete − start ({clock})"}
        else:
            fits = _service_and_lag(rows, calendars, has, seed)
            for purpose, (fit, source) in fits.items():
                entry[purpose] = fit.spec
                step_report[purpose] = {**fit.as_dict(), "from": source}
            if "service" not in entry:
                missing.append(f"{step.id}: no attempt with a start time: service unknown")
                continue
            if "not told apart" in step_report["service"]["from"]:
                missing.append(
                    f"{step.id}: service and lag not told apart (its clerks' next cases "
                    f"hardly ever waited): the whole step time is taken as {step.department}'s "
                    "clerk time — a pessimistic load"
                )
        entry.update(_branches(rows, attempts, calendars, step_report, seed))
        timing[step.id] = entry
        report[step.id] = step_report
    return timing, report, missing


def _pool(key: Any) -> tuple[str, str]:
    """A (department, county) groupby key."""
    return str(key[0]), str(key[1])


def _by_pool(
    rows: pd.DataFrame, calendars: dict[tuple[str, str], WorkingCalendar]
) -> Iterator[tuple[WorkingCalendar | None, np.ndarray]]:
    """Each pool's calendar (None: not known) and the positions of its rows."""
    positions = np.arange(len(rows))
    for key, idx in rows.groupby(["department", "county"]).indices.items():
        yield calendars.get(_pool(key)), positions[idx]


def _clock_spans(
    rows: pd.DataFrame, calendars: dict[tuple[str, str], WorkingCalendar], a: str, b: str
) -> np.ndarray:
    """Working time (µs) from column ``a`` to ``b`` on each row's pool calendar."""
    out = np.full(len(rows), np.nan)
    for calendar, sel in _by_pool(rows, calendars):
        if calendar is None:
            continue
        first = rows[a].to_numpy()[sel]
        second = rows[b].to_numpy()[sel]
        ok = np.isfinite(first) & np.isfinite(second)
        values = np.full(len(sel), np.nan)
        if ok.any():
            values[ok] = calendar.clock_at_many(second[ok]) - calendar.clock_at_many(first[ok])
        out[sel] = values
    return out


def _outside_hours(
    rows: pd.DataFrame, calendars: dict[tuple[str, str], WorkingCalendar], column: str
) -> float:
    """Share of ``column``'s instants where the row's pool calendar is closed."""
    outside = 0
    total = 0
    for calendar, idx in _by_pool(rows, calendars):
        values = rows[column].to_numpy()[idx]
        values = values[np.isfinite(values)]
        if calendar is None or not len(values) or isinstance(calendar, ContinuousCalendar):
            total += len(values)
            continue
        before = calendar.clock_at_many(values - 1.0)
        after = calendar.clock_at_many(values + 1.0)
        outside += int(np.sum(after == before))
        total += len(values)
    return outside / total if total else 0.0


def _unit_for(minutes: np.ndarray, day_minutes: float) -> tuple[str, float]:
    """A readable unit for working-clock values (minutes → hours → working days)."""
    mean = float(np.nanmean(minutes)) if len(minutes) else 0.0
    if mean >= 0.5 * day_minutes:
        return "working_days", day_minutes
    if mean >= 60:
        return "hours", 60.0
    return "minutes", 1.0


def _day_minutes(rows: pd.DataFrame, calendars: dict[tuple[str, str], WorkingCalendar]) -> float:
    key = (rows["department"].iloc[0], rows["county"].iloc[0])
    calendar = calendars.get(key)
    return calendar.day_us / US_PER_MINUTE if calendar is not None else 420.0


def _external(
    rows: pd.DataFrame, calendars: dict[tuple[str, str], WorkingCalendar], seed: int
) -> tuple[Fit, str]:
    done = rows[rows["start"].notna()]
    if _outside_hours(done, calendars, "end") > ON_THE_CLOCK:
        days = ((done["end"] - done["start"]) / 86400).to_numpy()
        return fit_duration(days, "calendar_days", seed), "calendar days"
    minutes = _clock_spans(done, calendars, "start", "end") / US_PER_MINUTE
    unit, per = _unit_for(minutes, _day_minutes(done, calendars))
    return fit_duration(minutes / per, unit, seed), "working clock"


def _service_and_lag(
    rows: pd.DataFrame,
    calendars: dict[tuple[str, str], WorkingCalendar],
    has: frozenset[str],
    seed: int,
) -> dict[str, tuple[Fit, str]]:
    """The clerk's service time and the lag after it (see :func:`add_clerk_sequence`).

    Where the exact services equal the step's whole time there is no lag, and every
    attempt's start → complete is a service time.  Otherwise the service is fitted to
    the exact and the left-censored observations together, and the lag to whole time −
    service of the exact ones (the lag does not depend on which ones were exact)."""
    timed = rows[rows["start"].notna() & _clerk_rows(rows)]
    if timed.empty:
        return {}
    scale = timed["scale"].to_numpy()
    total = timed["span"].to_numpy() / scale
    exact_rows = timed["service_exact"].notna().to_numpy() if "service_exact" in timed else None
    if exact_rows is None or exact_rows.sum() < 10 or "enable" not in has:
        why = "complete − start on the working clock"
        if "enable" not in has:
            why += " (no enable times: service and lag not told apart)"
        else:
            why += " (too few attempts whose next case waited: service and lag not told apart)"
        return {"service": (fit_duration(total, "minutes", seed), why)}
    exact = timed["service_exact"].to_numpy()[exact_rows] / scale[exact_rows]
    lag = total[exact_rows] - exact
    if float(np.median(lag)) <= 0.5 and float(np.mean(lag)) <= 0.01 * float(np.mean(total)):
        return {
            "service": (
                fit_duration(total, "minutes", seed),
                "complete − start on the working clock (no lag: in the "
                f"{int(exact_rows.sum())} attempts whose service end is known it is the "
                "completion)",
            )
        }
    # the service ended by the next case's arrival, and by the step's completion
    bound = np.fmin(timed["service_bound"].to_numpy() / scale, total)
    floor = timed["service_floor"].fillna(0).to_numpy() / scale
    censored = ~exact_rows & np.isfinite(bound)
    shape = fit_left_censored(
        exact, bound[exact_rows], bound[censored], "minutes", seed, lower=floor[censored]
    )
    if _outside_hours(timed[exact_rows], calendars, "end") > ON_THE_CLOCK:
        service_end = timed["next_start"].to_numpy()[exact_rows]
        days = (timed["end"].to_numpy()[exact_rows] - service_end) / 86400 / scale[exact_rows]
        return {
            "service": (
                shape,
                f"{int(exact_rows.sum())} exact services (the clerk's next case waited) and "
                f"{int(censored.sum())} bounded by the next case's arrival (left-censored), "
                "maximum likelihood, working clock",
            ),
            "lag": (
                fit_duration(np.clip(days, 0, None), "calendar_days", seed),
                "complete − the service's end in calendar days (completions outside office "
                "hours), attempts whose service end is known",
            ),
        }
    lag = np.clip(lag, 0, None)
    service = _service_by_moments(total, lag, shape)
    unit, per = _unit_for(lag, _day_minutes(timed, calendars))
    censored_source = (
        f"maximum likelihood on {int(exact_rows.sum())} exact services and "
        f"{int(censored.sum())} left-censored ones (working clock)"
    )
    return {
        "service": (
            service or shape,
            f"mean and cv: the whole step time of all {len(total)} attempts minus the lag "
            f"(moments); family: {censored_source}"
            if service
            else f"{censored_source}; step time − lag was too noisy to use: the "
            "lag is much longer than the service",
        ),
        "lag": (
            fit_duration(lag / per, unit, seed),
            f"complete − start − service on the working clock, the {len(lag)} attempts whose "
            "service end is known (the clerk's next case waited: which ones depends on the "
            "service, not on the lag)",
        ),
    }


def _service_by_moments(total: np.ndarray, lag: np.ndarray, shape: Fit) -> Fit | None:
    """Service = step time − lag, with the lag independent of the service: its mean and
    variance are the differences of the moments.  The exact services alone are a
    length-biased sample (a long service makes the clerk's next case more likely to
    wait), the step times and the lags are not.  None when the difference is too noisy
    (relative standard error above :data:`MOMENTS_SE`)."""
    mean = float(np.mean(total) - np.mean(lag))
    variance = float(np.var(total, ddof=1) - np.var(lag, ddof=1))
    se = math.sqrt(np.var(total, ddof=1) / len(total) + np.var(lag, ddof=1) / len(lag))
    if mean <= 0 or se > MOMENTS_SE * mean:
        return None
    cv = math.sqrt(variance) / mean if variance > 0 else 0.05
    cv = max(cv, 0.05)
    kind = shape.spec["kind"]
    spec: dict[str, object]
    if kind == "exponential":
        spec = {"kind": "exponential", "mean": float(f"{mean:.6g}")}
    else:
        spec = {"kind": kind, "mean": float(f"{mean:.6g}"), "cv": float(f"{cv:.6g}")}
    spec["unit"] = shape.spec["unit"]
    return Fit(spec, len(total), mean, cv * mean, se, shape.ks, shape.candidates)


def add_clerk_sequence(
    attempts: pd.DataFrame, calendars: dict[tuple[str, str], WorkingCalendar]
) -> pd.DataFrame:
    """What a clerk's next case says about this attempt's service time.

    A pool gives an arriving case to the clerk free first, and that clerk starts it at
    ``max(arrival, end of the clerk's service before)``.  So when the clerk's next case
    waited (it started after it arrived, on the working clock) the service ended at its
    start: ``service_exact`` = next start − start.  Otherwise the service had ended by the
    next arrival: ``service_bound`` = next arrival − start bounds it from above (a
    left-censored observation).  Both in working minutes; ``next_start`` where exact."""
    clerk = attempts[_clerk_rows(attempts) & attempts["start"].notna()].sort_values(
        ["resource", "start"], kind="stable"
    )
    same = np.append(clerk["resource"].to_numpy()[1:] == clerk["resource"].to_numpy()[:-1], False)
    clerk = clerk.assign(
        next_start=np.append(clerk["start"].to_numpy()[1:], np.nan),
        next_enable=np.append(clerk["enable"].to_numpy()[1:], np.nan),
    )
    clerk.loc[~same, ["next_start", "next_enable"]] = np.nan
    to_start = _clock_spans(clerk, calendars, "start", "next_start") / US_PER_MINUTE
    to_arrival = _clock_spans(clerk, calendars, "start", "next_enable") / US_PER_MINUTE
    waited = to_start > to_arrival
    clerk = clerk.assign(
        service_exact=np.where(waited, to_start, np.nan),
        service_bound=to_arrival,
        service_floor=_service_floors(clerk, calendars),
    )
    clerk.loc[~waited, "next_start"] = np.nan
    columns = ["next_start", "service_exact", "service_bound", "service_floor"]
    return attempts.join(clerk[columns])


def _service_floors(
    clerk: pd.DataFrame, calendars: dict[tuple[str, str], WorkingCalendar]
) -> np.ndarray:
    """A lower bound of each service whose end is not known (working minutes, 0: none).

    A case that waits at a pool finds every clerk busy; so if one arrived — and waited —
    after this attempt started and before the clerk's next case arrived (by when the
    clerk was free), the clerk was still serving this attempt then."""
    floors = np.zeros(len(clerk))
    for calendar, rows in _by_pool(clerk, calendars):
        if calendar is None:
            continue
        start = clerk["start"].to_numpy()[rows]
        enable = clerk["enable"].to_numpy()[rows]
        known = np.isfinite(enable)
        start_w = calendar.clock_at_many(start)
        arrival_w = np.full(len(rows), -1, dtype=np.int64)
        arrival_w[known] = calendar.clock_at_many(enable[known])
        waited_arrivals = np.sort(arrival_w[known & (start_w > arrival_w)])
        next_enable = clerk["next_enable"].to_numpy()[rows]
        open_end = np.isfinite(next_enable)
        if not len(waited_arrivals) or not open_end.any():
            continue
        until = calendar.clock_at_many(next_enable[open_end])
        last = np.searchsorted(waited_arrivals, until, side="left") - 1
        found = waited_arrivals[np.maximum(last, 0)]
        inside = (last >= 0) & (found > start_w[open_end])
        floor = np.where(inside, found - start_w[open_end], 0) / US_PER_MINUTE
        floors[rows[open_end]] = floor
    return floors


def _branches(
    rows: pd.DataFrame,
    attempts: pd.DataFrame,
    calendars: dict[tuple[str, str], WorkingCalendar],
    report: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """补正 rework (and its delay), rejection and transient faults, in the walk's order of
    precedence: a reject pre-empts a fault, a fault a rework."""
    if not (rows["outcome"] != "").any():
        return {}
    out: dict[str, Any] = {}
    n = len(rows)
    rejected = int((rows["outcome"] == "rejected").sum())
    retry = int((rows["outcome"] == "retry").sum())
    rework_rows = rows[rows["outcome"] == "rework"]
    reworked = len(rework_rows)
    # a case draws 补正 once per step (一次性告知): later attempts cannot
    ordered = rows.sort_values(["case", "end"], kind="stable")
    is_rework = (ordered["outcome"] == "rework").astype(int)
    earlier_rework = (is_rework.groupby(ordered["case"]).cumsum() - is_rework) > 0
    eligible = int(((ordered["outcome"].isin(("done", "rework"))) & ~earlier_rework).sum())
    for purpose, k, trials in (
        ("reject", rejected, n),
        ("fault", retry, n - rejected),
        ("rework", reworked, eligible),
    ):
        if trials == 0 or k == 0:
            continue
        p = k / trials
        low, high = wilson(k, trials) or (0.0, 1.0)
        branch: dict[str, Any] = {"probability": round(p, 6)}
        report[purpose] = {
            "probability": round(p, 6),
            "events": k,
            "trials": trials,
            "ci95": [round(low, 6), round(high, 6)],
            "from": f"attempts with outcome {purpose}",
        }
        if purpose == "rework":
            delay = _rework_delay(rework_rows, attempts, calendars, seed)
            if delay is not None:
                fit, source = delay
                branch["delay"] = fit.spec
                report["rework"]["delay"] = {**fit.as_dict(), "from": source}
        out[purpose] = branch
    return out


def _rework_delay(
    rework_rows: pd.DataFrame,
    attempts: pd.DataFrame,
    calendars: dict[tuple[str, str], WorkingCalendar],
    seed: int,
) -> tuple[Fit, str] | None:
    """From a 补正 attempt's completion to the step's next attempt being enabled."""
    same_step = attempts[
        attempts["case"].isin(rework_rows["case"])
        & (attempts["step"] == rework_rows["step"].iloc[0])
    ].sort_values(["case", "end"], kind="stable")
    nxt = same_step.groupby("case")[["enable", "start", "end"]].shift(-1)
    pairs = same_step.assign(next_enable=nxt["enable"].fillna(nxt["start"]).fillna(nxt["end"]))
    pairs = pairs[(pairs["outcome"] == "rework") & pairs["next_enable"].notna()]
    if pairs.empty:
        return None
    if _outside_hours(pairs, calendars, "next_enable") > ON_THE_CLOCK:
        days = ((pairs["next_enable"] - pairs["end"]) / 86400).to_numpy()
        return fit_duration(days, "calendar_days", seed), "next attempt's enable − completion"
    minutes = _clock_spans(pairs, calendars, "end", "next_enable") / US_PER_MINUTE
    unit, per = _unit_for(minutes, _day_minutes(pairs, calendars))
    return (
        fit_duration(minutes / per, unit, seed),
        "next attempt's enable − completion on the working clock",
    )


def _assumptions(log: EventLog) -> list[dict[str, str]]:
    """What a log of step attempts cannot show; the scenario leaves it at its default."""
    out = [
        {
            "parameter": "faults.retry",
            "why": "a retry's backoff is a policy, not in the log: default",
        },
        {"parameter": "timing.*.block", "why": "arrears waits cannot be told from queueing: none"},
        {"parameter": "timing.*.deadline", "why": "容缺 deadlines are not in the log: none"},
        {"parameter": "demand.*.segments[*].part_of", "why": "not in the log: none"},
        {"parameter": "housing", "why": "the housing stock is not in the log: none"},
        {"parameter": "process", "why": "the catalog's (2021) step graphs are assumed"},
    ]
    if "resource" not in log.has:
        out.append({"parameter": "departments.*.clerks", "why": "no org:resource column: 1 each"})
    if "segment" not in log.has:
        out.append(
            {"parameter": "demand.*.segments[*].time_scale", "why": "no case:segment column: 1"}
        )
    return out


def plain(value: Any) -> Any:
    """numpy scalars and tuples → the plain types YAML and JSON write."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
