"""A matter's demand from its cases' arrival instants: the yearly volume and the arrival
profile the demand model (:mod:`simulator.demand`) draws from — month, weekday, holiday
and hour weights, and peak windows.

The day weights are the maximum-likelihood fit of the demand model's own multiplicative
form (``month × day kind × peak``) to the daily counts, a Poisson log-linear model
fitted by iterative proportional fitting.  Peak windows are looked for where the tax
calendar puts them (days 1–15 of a month, the filing period): a month gets one when a
likelihood-ratio test says its first half differs from its second (p < 0.001) by more
than 5 %.  调休 make-up days are left out of the fit: the model gives them the mean
working-day weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from scipy import stats

from services.core.calendar import SHANGHAI, OfficeCalendar
from services.core.scenario import DemandProfile, Peak
from simulator.demand import hourly_weights, year_weight

PEAK_WINDOW = (1, 15)
PEAK_P_VALUE = 1e-3
PEAK_MIN_EFFECT = 0.05
#: Peak factors of months this close to a group's mean join the group.
PEAK_MERGE = 0.15


@dataclass
class DemandFit:
    per_year: float
    profile: DemandProfile
    cases: int
    first_day: date
    last_day: date
    notes: list[str]

    def as_dict(self) -> dict[str, object]:
        rel = 1 / math.sqrt(self.cases) if self.cases else float("inf")
        return {
            "per_year": round(self.per_year, 1),
            "cases": self.cases,
            "from": f"{self.cases} case arrivals {self.first_day}–{self.last_day}, scaled to "
            "a year by the fitted profile",
            "se_per_year": round(self.per_year * rel, 1),
            "notes": self.notes,
        }


def local_days(posix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01 and hours of day, in Shangrao local time."""
    local = np.asarray(posix, dtype=float) + 8 * 3600
    return (local // 86400).astype(np.int64), ((local % 86400) // 3600).astype(np.int64)


def fit_demand(
    arrivals: np.ndarray, calendar: OfficeCalendar, first: date, last: date
) -> DemandFit:
    """The volume and profile that give ``arrivals`` over ``first``–``last`` (inclusive)."""
    days = (last - first).days + 1
    epoch = date(1970, 1, 1)
    day_index, hour = local_days(arrivals)
    offset = (first - epoch).days
    counts = np.bincount(day_index - offset, minlength=days)[:days].astype(float)
    dates = [first + timedelta(days=i) for i in range(days)]
    kinds = [calendar.day_kind(d) for d in dates]
    month = np.array([d.month - 1 for d in dates])
    kind = np.array(
        [
            d.weekday() if k in ("workday", "weekend") else (7 if k == "holiday" else -1)
            for d, k in zip(dates, kinds, strict=True)
        ]
    )
    first_half = np.array([PEAK_WINDOW[0] <= d.day <= PEAK_WINDOW[1] for d in dates])
    used = kind >= 0
    notes: list[str] = []
    peak_months = _peak_months(counts, month, kind, first_half, used)
    month_w, kind_w, peak_w = _ipf(counts, month, kind, first_half, used, peak_months)
    weekday = kind_w[:7]
    scale = float(np.mean(weekday[:5])) or 1.0
    months_seen = sorted(set(month[used].tolist()))
    mw = np.ones(12)
    if months_seen:
        seen_mean = float(np.mean(month_w[months_seen]))
        for m in months_seen:
            mw[m] = month_w[m] / seen_mean
    for m in range(12):
        if m not in months_seen:
            notes.append(f"month {m + 1}: not in the log, weight 1 assumed")
    hours = np.bincount(hour, minlength=24).astype(float)
    hour_w = hours / hours.max() if hours.max() > 0 else np.ones(24)
    peaks = _peaks(peak_w, peak_months)
    profile = DemandProfile(
        month=tuple(_r(x) for x in mw),
        weekday=tuple(_r(x / scale) for x in weekday),
        holiday=_r(kind_w[7] / scale) if (kind == 7).any() else 0.0,
        hour=tuple(_r(x) for x in hour_w),
        peaks=peaks,
    )
    if not (kind == 7).any():
        notes.append("no public holiday in the log: holiday weight 0 assumed")
    year = year_weight(profile, calendar, first.year)
    span_weight = hourly_weights(profile, calendar, first, days).sum()
    per_year = len(arrivals) * year / span_weight if span_weight > 0 else 0.0
    return DemandFit(per_year, profile, len(arrivals), first, last, notes)


def _r(x: float) -> float:
    return round(float(x), 4)


def _ipf(
    counts: np.ndarray,
    month: np.ndarray,
    kind: np.ndarray,
    first_half: np.ndarray,
    used: np.ndarray,
    peak_months: set[int],
    rounds: int = 50,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson MLE of ``count ~ month × kind × peak`` by iterative proportional fitting."""
    month_w = np.ones(12)
    kind_w = np.ones(8)
    peak_w = np.ones(12)
    in_peak = np.array([first_half[i] and month[i] in peak_months for i in range(len(counts))])
    for _ in range(rounds):
        for weights, group, mask in (
            (month_w, month, used),
            (kind_w, kind, used),
            (peak_w, month, used & in_peak),
        ):
            expected = (
                month_w[month] * kind_w[np.maximum(kind, 0)] * np.where(in_peak, peak_w[month], 1.0)
            )
            obs = np.bincount(group[mask], weights=counts[mask], minlength=len(weights))
            exp = np.bincount(group[mask], weights=expected[mask], minlength=len(weights))
            ok = exp > 0
            weights[ok] *= obs[ok] / exp[ok]
    return month_w, kind_w, peak_w


def _peak_months(
    counts: np.ndarray,
    month: np.ndarray,
    kind: np.ndarray,
    first_half: np.ndarray,
    used: np.ndarray,
) -> set[int]:
    """Months whose days 1–15 carry significantly more (or less) demand than the rest."""
    month_w, kind_w, _ = _ipf(counts, month, kind, first_half, used, set())
    expected = month_w[month] * kind_w[np.maximum(kind, 0)]
    out: set[int] = set()
    for m in range(12):
        sel = used & (month == m)
        a, b = sel & first_half, sel & ~first_half
        oa, ob, ea, eb = counts[a].sum(), counts[b].sum(), expected[a].sum(), expected[b].sum()
        if min(oa, ob) < 20 or min(ea, eb) <= 0:
            continue
        ratio = (oa / ea) / (ob / eb)
        # likelihood ratio of one rate for the month against one per half
        pa, pb = ea / (ea + eb), eb / (ea + eb)
        total = oa + ob
        lr = 2 * (_xlogy(oa, oa / (total * pa)) + _xlogy(ob, ob / (total * pb)))
        if stats.chi2.sf(lr, 1) < PEAK_P_VALUE and abs(ratio - 1) > PEAK_MIN_EFFECT:
            out.add(m)
    return out


def _xlogy(x: float, y: float) -> float:
    return x * math.log(y) if x > 0 else 0.0


def _peaks(peak_w: np.ndarray, months: set[int]) -> tuple[Peak, ...]:
    """Months with a peak, grouped where their factors lie within :data:`PEAK_MERGE` of
    the group's mean (one filing period, not one peak per month); factor = the mean."""
    groups: list[list[int]] = []
    for m in sorted(months, key=lambda m: float(peak_w[m])):
        if groups and abs(float(peak_w[m]) - float(np.mean(peak_w[groups[-1]]))) <= PEAK_MERGE:
            groups[-1].append(m)
        else:
            groups.append([m])
    return tuple(
        Peak(
            months=tuple(sorted(m + 1 for m in group)),
            first_day=PEAK_WINDOW[0],
            last_day=PEAK_WINDOW[1],
            factor=round(float(np.mean(peak_w[group])), 2),
        )
        for group in groups
        if float(np.mean(peak_w[group])) > 0
    )


def local_date(posix: float) -> date:
    return datetime.fromtimestamp(posix, SHANGHAI).date()
