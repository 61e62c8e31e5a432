"""Working-time arithmetic on Shangrao's calendar.

Every target in the plan is stated in a unit — working days, working hours, clock
hours, calendar days — and the unit matters: "3 working days" submitted on the eve
of the Spring Festival is more than a week of calendar time.  This module is the one
place that knows how to add and measure working time.

Model
-----
A calendar maps each instant ``t`` to its *working clock* ``W(t)``: the working time
(in integer microseconds) that has elapsed since the calendar's anchor.  ``W`` is
non-decreasing and flat outside office hours, so

* ``working_between(a, b) = W(b) - W(a)``
* ``add_working(t, d)`` is the earliest instant ``u`` with ``W(u) = W(t) + d``

Because ``W`` is integer-valued the laws the engines rely on hold exactly, not
approximately: ``add(add(t, a), b) == add(t, a + b)`` and
``working_between(t, add_working(t, d)) == d``.

Two calendars exist:

* :class:`OfficeCalendar` — Monday to Friday within office hours, minus Chinese public
  holidays, plus the 调休 make-up working Saturdays/Sundays (data from the
  ``chinese-calendar`` package, which covers 2004–2026; later years from
  :class:`HolidayYear` data a scenario supplies, e.g. before the package knows them).
* :class:`ContinuousCalendar` — 24/7 (customs clearance is measured in clock hours).

All instants are timezone-aware and returned in Asia/Shanghai (UTC+8, no DST since
1991, so local wall-clock arithmetic is exact).  Hot paths (the simulation engine, the
live services' clerk pools) use the numeric twins ``clock_at(posix_seconds)`` and
``posix_at(w)``, which agree with the datetime API to the microsecond.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import chinese_calendar
import numpy as np

SHANGHAI = ZoneInfo("Asia/Shanghai")
_US_PER_SECOND = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_SECOND
#: Asia/Shanghai is UTC+8 without DST since 1992, which covers every calendar here.
_UTC_OFFSET_S = 8 * 3600
_EPOCH = date(1970, 1, 1)

#: Default office hours of a Shangrao administrative service centre (行政服务中心):
#: 08:30–12:00 and 14:00–17:30, i.e. a 7-hour working day.  Configurable per
#: calendar; scenarios may give departments other hours.
DEFAULT_OFFICE_HOURS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(14, 0), time(17, 30)),
)


def _holiday_data_range() -> tuple[date, date]:
    """First and last date the installed chinese-calendar has holiday data for."""
    first_year = min(chinese_calendar.holidays).year
    last_year = max(chinese_calendar.holidays).year
    return date(first_year, 1, 1), date(last_year, 12, 31)


HOLIDAY_DATA_FIRST, HOLIDAY_DATA_LAST = _holiday_data_range()
#: The last date an event may carry (a plausibility bound, not calendar data).
EVENT_DATES_LAST = date(2100, 12, 31)
#: Where the docs show how to supply a year's holidays.
HOLIDAY_FILE_EXAMPLE = "scenarios/calendars/2027-unofficial.yaml"


class CalendarRangeError(ValueError):
    """An instant falls outside the dates the calendar has data for."""


@dataclass(frozen=True)
class HolidayYear:
    """One year's public holidays and 调休 make-up working days, for a year the
    ``chinese-calendar`` package does not know yet (the State Council publishes each
    year's arrangement in the November before; the package follows later).

    ``holidays`` are the days off (weekend days among them change nothing);
    ``workdays`` the make-up days worked on a Saturday or Sunday.  Every other day is
    a working day from Monday to Friday.  ``official`` says whether the data is the
    State Council's notice or a projection.
    """

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]
    official: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if self.year <= HOLIDAY_DATA_LAST.year:
            raise ValueError(
                f"{self.year}: chinese-calendar already has this year's holidays "
                f"(it covers {HOLIDAY_DATA_FIRST.year}–{HOLIDAY_DATA_LAST.year})"
            )
        for kind, days in (("holidays", self.holidays), ("workdays", self.workdays)):
            stray = sorted(d for d in days if d.year != self.year)
            if stray:
                raise ValueError(f"{self.year}: {kind} {stray[0]} is not in {self.year}")
        both = sorted(self.holidays & self.workdays)
        if both:
            raise ValueError(f"{self.year}: {both[0]} is both a holiday and a make-up workday")
        weekday = sorted(d for d in self.workdays if d.weekday() < 5)
        if weekday:
            raise ValueError(
                f"{self.year}: make-up workday {weekday[0]} is a {weekday[0]:%A}; "
                "make-up days (调休) fall on Saturdays or Sundays"
            )

    def is_workday(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return day in self.workdays or day.weekday() < 5


def holiday_data_last(extra: Sequence[HolidayYear] = ()) -> date:
    """The last day holiday data covers: the package's, then each following year supplied."""
    years = {y.year for y in extra}
    last = HOLIDAY_DATA_LAST
    while last.year + 1 in years:
        last = date(last.year + 1, 12, 31)
    return last


def missing_holiday_year(first: date, last: date, extra: Sequence[HolidayYear] = ()) -> str | None:
    """The one-line reason ``first``–``last`` lacks holiday data, or None when covered."""
    if first < HOLIDAY_DATA_FIRST:
        return (
            f"no public-holiday data before {HOLIDAY_DATA_FIRST.year}: chinese-calendar covers "
            f"{HOLIDAY_DATA_FIRST.year}–{HOLIDAY_DATA_LAST.year}"
        )
    covered = holiday_data_last(extra)
    if last <= covered:
        return None
    year = covered.year + 1
    return (
        f"no public-holiday data for {year}: chinese-calendar covers "
        f"{HOLIDAY_DATA_FIRST.year}–{HOLIDAY_DATA_LAST.year}; give {year}'s holidays and "
        f"调休 make-up days in the scenario (holiday_years, or holiday_file naming a file "
        f"like {HOLIDAY_FILE_EXAMPLE})"
    )


class WorkingCalendar(Protocol):
    """What both engines need from a calendar."""

    name: str
    working_day: timedelta

    def is_working_day(self, day: date) -> bool: ...
    def working_clock(self, t: datetime) -> int: ...
    def clock_at(self, posix: float) -> int: ...
    def clock_at_many(self, posix: np.ndarray) -> np.ndarray: ...
    def posix_at_many(self, w: np.ndarray, *, at_start: bool = False) -> np.ndarray: ...
    @property
    def day_us(self) -> int: ...
    def posix_at(self, w: int, *, at_start: bool = False) -> float: ...
    def from_working_clock(self, w: int, *, at_start: bool = False) -> datetime: ...
    def add_working(self, start: datetime, duration: timedelta) -> datetime: ...
    def working_between(self, a: datetime, b: datetime) -> timedelta: ...
    def next_open(self, t: datetime) -> datetime: ...
    def to_working_days(self, duration: timedelta) -> float: ...


def _local_naive(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: give a timezone (e.g. Asia/Shanghai)")
    return t.astimezone(SHANGHAI).replace(tzinfo=None)


def _us(td: timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * _US_PER_SECOND + td.microseconds


def _time_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _US_PER_SECOND + t.microsecond


def _us_time(us: int) -> time:
    seconds, micro = divmod(us, _US_PER_SECOND)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return time(hours, minute, sec, micro)


class _CalendarOps:
    """The operations every calendar derives from its working clock."""

    name: str
    working_day: timedelta

    def working_clock(self, t: datetime) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_working_clock(self, w: int, *, at_start: bool = False) -> datetime:  # pragma: no cover
        raise NotImplementedError

    def add_working(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which ``duration`` of working time has passed since ``start``."""
        d = _us(duration)
        if d < 0:
            raise ValueError(f"negative working duration {duration}")
        return self.from_working_clock(self.working_clock(start) + d)

    def working_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time elapsed from ``a`` to ``b`` (negative when ``b`` is before ``a``)."""
        return timedelta(microseconds=self.working_clock(b) - self.working_clock(a))

    def next_open(self, t: datetime) -> datetime:
        """``t`` itself if the office is open then, otherwise the next opening instant."""
        return self.from_working_clock(self.working_clock(t), at_start=True)

    def to_working_days(self, duration: timedelta) -> float:
        """A working duration expressed in working days of this calendar."""
        return duration / self.working_day

    def working_days_between(self, a: datetime, b: datetime) -> float:
        return self.to_working_days(self.working_between(a, b))


@dataclass(frozen=True)
class _DayTable:
    """Per-calendar-day prefix counts of working days, computed once per calendar kind."""

    first: date
    last: date
    prefix: tuple[int, ...]  # prefix[i] = working days in [first, first + i)
    workdays: tuple[int, ...]  # day offsets (from first) of the working days, ascending
    flags: tuple[bool, ...]


def provisional_workday(day: date) -> bool:
    """The run-out rule past the holiday data: Monday to Friday, 1 January off."""
    return day.weekday() < 5 and not (day.month == 1 and day.day == 1)


@lru_cache(maxsize=8)
def _day_table(
    first: date,
    last: date,
    observe_public_holidays: bool,
    extra: tuple[HolidayYear, ...] = (),
    data_last: date = HOLIDAY_DATA_LAST,
) -> _DayTable:
    n = (last - first).days + 1
    by_year = {y.year: y for y in extra}
    flags: list[bool] = []
    for i in range(n):
        day = first + timedelta(days=i)
        if not observe_public_holidays:
            flags.append(day.weekday() < 5)
        elif day > data_last:
            flags.append(provisional_workday(day))
        elif day.year in by_year:
            flags.append(by_year[day.year].is_workday(day))
        else:
            flags.append(chinese_calendar.is_workday(day))
    prefix = [0] * (n + 1)
    for i, flag in enumerate(flags):
        prefix[i + 1] = prefix[i] + (1 if flag else 0)
    workdays = tuple(i for i, flag in enumerate(flags) if flag)
    return _DayTable(first, last, tuple(prefix), workdays, tuple(flags))


class OfficeCalendar(_CalendarOps):
    """Office hours on Chinese working days (holidays and 调休 make-up days observed).

    ``shifts`` are the daily office periods in local time, ascending and disjoint.
    With ``observe_public_holidays=False`` the calendar is plain Monday–Friday and is
    not limited to the years chinese-calendar knows.  ``holiday_years`` extend the
    holiday data past the package's last year (each year following the one before).
    ``run_out_days`` add days after the last day of data on a provisional rule (Monday
    to Friday, 1 January off) — for the cases a horizon ending in the last year of data
    leaves open, never for a horizon (see :func:`missing_holiday_year`).
    """

    def __init__(
        self,
        shifts: Sequence[tuple[time, time]] = DEFAULT_OFFICE_HOURS,
        *,
        observe_public_holidays: bool = True,
        first: date | None = None,
        last: date | None = None,
        name: str = "office",
        holiday_years: Sequence[HolidayYear] = (),
        run_out_days: int = 0,
    ) -> None:
        if not shifts:
            raise ValueError("an office calendar needs at least one shift")
        bounds = [(_time_us(s), _time_us(e)) for s, e in shifts]
        for (s, e), prev in zip(bounds, [(-1, -1), *bounds[:-1]], strict=True):
            if not e > s:
                raise ValueError(f"shift {_us_time(s)}–{_us_time(e)} must end after it starts")
            if s < prev[1]:
                raise ValueError("shifts must be ascending and must not overlap")
        extra = tuple(sorted(holiday_years, key=lambda y: y.year))
        if len({y.year for y in extra}) != len(extra):
            raise ValueError("holiday_years: a year is given twice")
        if observe_public_holidays:
            first = first or HOLIDAY_DATA_FIRST
            data_last = holiday_data_last(extra)
            last = last or data_last
            reason = missing_holiday_year(first, last, extra)
            if reason:
                raise CalendarRangeError(reason)
            last += timedelta(days=run_out_days)
        else:
            first = first or date(2000, 1, 3)
            last = last or date(2100, 12, 31)
        self.name = name
        self.shifts: tuple[tuple[time, time], ...] = tuple(shifts)
        self.observe_public_holidays = observe_public_holidays
        self.holiday_years = extra
        self._bounds = bounds
        self._cum_before = []
        total = 0
        for s, e in bounds:
            self._cum_before.append(total)
            total += e - s
        self._day_us = total
        self.working_day = timedelta(microseconds=total)
        self.provisional_from = (
            holiday_data_last(extra) + timedelta(days=1) if observe_public_holidays else None
        )
        self._table = _day_table(
            first, last, observe_public_holidays, extra, holiday_data_last(extra)
        )
        self._anchor = datetime.combine(first, time())
        self._anchor_epoch_day = (first - _EPOCH).days
        # flattened tables for the numeric hot path
        self._prefix = self._table.prefix
        self._flags = self._table.flags
        self._workdays = self._table.workdays
        self._n_days = len(self._flags)
        self._n_workdays = len(self._workdays)
        self._shifts = tuple(
            (s, e, before, before + e - s)
            for (s, e), before in zip(self._bounds, self._cum_before, strict=True)
        )
        self._shift_bounds = tuple(self._bounds)
        self._day_base_us = tuple(p * total for p in self._prefix)  # working clock at 00:00

    def __repr__(self) -> str:
        hours = ", ".join(f"{s:%H:%M}–{e:%H:%M}" for s, e in self.shifts)
        return f"OfficeCalendar({hours}, holidays={self.observe_public_holidays})"

    @property
    def first_day(self) -> date:
        return self._table.first

    @property
    def last_day(self) -> date:
        return self._table.last

    def _day_index(self, day: date) -> int:
        i = (day - self._table.first).days
        if i < 0 or day > self._table.last:
            raise CalendarRangeError(
                f"{day} is outside this calendar's data ({self._table.first}–{self._table.last})"
            )
        return i

    def is_working_day(self, day: date) -> bool:
        return self._table.flags[self._day_index(day)]

    def _within_day(self, tod_us: int) -> int:
        worked = 0
        for s, e in self._bounds:
            if tod_us <= s:
                break
            worked += min(tod_us, e) - s
        return worked

    def working_clock(self, t: datetime) -> int:
        local = _local_naive(t)
        i = self._day_index(local.date())
        w = self._table.prefix[i] * self._day_us
        if self._table.flags[i]:
            tod = _us(local - datetime.combine(local.date(), time()))
            w += self._within_day(tod)
        return w

    def from_working_clock(self, w: int, *, at_start: bool = False) -> datetime:
        """Instant whose working clock is ``w``.

        Outside office hours ``W`` is flat, so many instants share one value.  By
        default the earliest is returned (the moment work *finishes*); with
        ``at_start=True`` the latest (the moment work can *start*).
        """
        day_offset, tod = self._locate(w, at_start)
        naive = self._anchor + timedelta(days=day_offset, microseconds=tod)
        return naive.replace(tzinfo=SHANGHAI)

    # The two numeric functions below are the engines' hot path: plain integer
    # arithmetic on precomputed tuples, no datetime objects.

    def clock_at(self, posix: float) -> int:
        """Working clock at a POSIX timestamp (seconds); same value as :meth:`working_clock`."""
        day, tod = divmod(round((posix + _UTC_OFFSET_S) * _US_PER_SECOND), _US_PER_DAY)
        i = day - self._anchor_epoch_day
        if i < 0 or i >= self._n_days:
            raise CalendarRangeError(
                f"{_EPOCH + timedelta(days=day)} is outside this calendar's data "
                f"({self._table.first}–{self._table.last})"
            )
        w = self._day_base_us[i]
        if self._flags[i]:
            for s, e in self._shift_bounds:
                if tod <= s:
                    break
                w += (tod if tod < e else e) - s
        return w

    def posix_at(self, w: int, *, at_start: bool = False) -> float:
        """POSIX timestamp (seconds) of working clock ``w`` (see :meth:`from_working_clock`)."""
        day_offset, tod = self._locate(w, at_start)
        return ((self._anchor_epoch_day + day_offset) * _US_PER_DAY + tod) / _US_PER_SECOND - (
            _UTC_OFFSET_S
        )

    def _locate(self, w: int, at_start: bool) -> tuple[int, int]:
        """(day offset from the first day, microseconds into that day) of working clock ``w``."""
        if w < 0:
            raise CalendarRangeError("working clock before the calendar's first day")
        k, r = divmod(w, self._day_us)
        if r == 0 and not at_start and k > 0:
            k, r = k - 1, self._day_us
        if k >= self._n_workdays:
            raise CalendarRangeError(
                f"working time runs past this calendar's last day ({self._table.last})"
            )
        for s, _, before, end in self._shifts:
            if r < end or (r == end and not at_start):
                return self._workdays[k], s + (r - before)
        raise AssertionError(f"working clock {w} does not map into a shift")  # pragma: no cover

    def clock_at_many(self, posix: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`clock_at` (int64 microseconds) for arrays of timestamps."""
        local_us = np.rint((np.asarray(posix, dtype=float) + _UTC_OFFSET_S) * 1e6).astype(np.int64)
        day, tod = np.divmod(local_us, _US_PER_DAY)
        i = day - self._anchor_epoch_day
        if i.size and (i.min() < 0 or i.max() >= len(self._table.flags)):
            raise CalendarRangeError(
                f"timestamps outside this calendar's data ({self._table.first}–{self._table.last})"
            )
        prefix, flags = self._arrays()
        within = np.zeros_like(tod)
        for s, e in self._bounds:
            within += np.clip(tod - s, 0, e - s)
        return prefix[i] * self._day_us + np.where(flags[i], within, 0)

    def posix_at_many(self, w: np.ndarray, *, at_start: bool = False) -> np.ndarray:
        """Vectorised :meth:`posix_at` for an array of working-clock values."""
        w = np.asarray(w, dtype=np.int64)
        k, r = np.divmod(w, self._day_us)
        if not at_start:
            back = (r == 0) & (k > 0)
            k = k - back
            r = np.where(back, self._day_us, r)
        workdays = self._workday_array()
        if k.size and (k.min() < 0 or k.max() >= len(workdays)):
            raise CalendarRangeError(
                f"working time outside this calendar ({self._table.first}–{self._table.last})"
            )
        before = np.asarray(self._cum_before, dtype=np.int64)
        ends = before + np.asarray([e - s for s, e in self._bounds], dtype=np.int64)
        starts = np.asarray([s for s, _ in self._bounds], dtype=np.int64)
        j = np.searchsorted(ends, r, side="right" if at_start else "left")
        tod = starts[j] + (r - before[j])
        local_us = (self._anchor_epoch_day + workdays[k]) * _US_PER_DAY + tod
        return local_us / 1e6 - _UTC_OFFSET_S

    def _workday_array(self) -> np.ndarray:
        cached = getattr(self, "_np_workdays", None)
        if cached is None:
            cached = self._np_workdays = np.asarray(self._table.workdays, dtype=np.int64)
        return cached

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        cached = getattr(self, "_np_tables", None)
        if cached is None:
            cached = (
                np.asarray(self._table.prefix[:-1], dtype=np.int64),
                np.asarray(self._table.flags, dtype=bool),
            )
            self._np_tables = cached
        return cached

    @property
    def day_us(self) -> int:
        return self._day_us

    def working_days_in(self, first: date, last: date) -> int:
        """Number of working days in the closed range ``[first, last]``."""
        return (
            self._table.prefix[self._day_index(last) + 1]
            - self._table.prefix[self._day_index(first)]
        )

    def day_kind(self, day: date) -> str:
        """``workday``, ``makeup`` (a weekend 调休 working day), ``weekend`` or ``holiday``."""
        working = self.is_working_day(day)
        if working:
            return "workday" if day.weekday() < 5 else "makeup"
        if self.observe_public_holidays:
            supplied = next((y for y in self.holiday_years if y.year == day.year), None)
            if self.provisional_from is not None and day >= self.provisional_from:
                pass  # the run-out: only 1 January is a holiday there
            elif supplied is not None:
                if day in supplied.holidays:
                    return "holiday"
            elif chinese_calendar.get_holiday_detail(day)[1] is not None:
                return "holiday"
        return "weekend" if day.weekday() >= 5 else "holiday"

    def next_working_day(self, day: date) -> date:
        """The first working day on or after ``day``."""
        i = self._day_index(day)
        k = bisect.bisect_left(self._table.workdays, i)
        if k >= len(self._table.workdays):
            raise CalendarRangeError(f"no working day on or after {day} in this calendar")
        return self._table.first + timedelta(days=self._table.workdays[k])


class ContinuousCalendar(_CalendarOps):
    """A 24/7 calendar: working time equals clock time (customs, online systems)."""

    def __init__(self, *, name: str = "24x7") -> None:
        self.name = name
        self.working_day = timedelta(days=1)
        self._anchor = datetime(2000, 1, 1)
        self._anchor_posix = datetime(2000, 1, 1, tzinfo=SHANGHAI).timestamp()

    def __repr__(self) -> str:
        return "ContinuousCalendar()"

    def is_working_day(self, day: date) -> bool:
        return True

    def working_clock(self, t: datetime) -> int:
        return _us(_local_naive(t) - self._anchor)

    def from_working_clock(self, w: int, *, at_start: bool = False) -> datetime:
        return (self._anchor + timedelta(microseconds=w)).replace(tzinfo=SHANGHAI)

    def clock_at(self, posix: float) -> int:
        return round((posix - self._anchor_posix) * _US_PER_SECOND)

    def clock_at_many(self, posix: np.ndarray) -> np.ndarray:
        return np.rint((np.asarray(posix, dtype=float) - self._anchor_posix) * 1e6).astype(np.int64)

    def posix_at_many(self, w: np.ndarray, *, at_start: bool = False) -> np.ndarray:
        return self._anchor_posix + np.asarray(w, dtype=np.int64) / 1e6

    @property
    def day_us(self) -> int:
        return _US_PER_DAY

    def posix_at(self, w: int, *, at_start: bool = False) -> float:
        return self._anchor_posix + w / _US_PER_SECOND


def at_shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Convenience constructor for an instant in Shangrao's local time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)
