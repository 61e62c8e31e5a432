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
  ``chinese-calendar`` package, which covers 2004–2026).
* :class:`ContinuousCalendar` — 24/7 (customs clearance is measured in clock hours).

All instants are timezone-aware and returned in Asia/Shanghai (UTC+8, no DST since
1991, so local wall-clock arithmetic is exact).
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

SHANGHAI = ZoneInfo("Asia/Shanghai")
_US_PER_SECOND = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_SECOND

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


class CalendarRangeError(ValueError):
    """An instant falls outside the dates the calendar has data for."""


class WorkingCalendar(Protocol):
    """What both engines need from a calendar."""

    name: str
    working_day: timedelta

    def is_working_day(self, day: date) -> bool: ...
    def working_clock(self, t: datetime) -> int: ...
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


@lru_cache(maxsize=8)
def _day_table(first: date, last: date, observe_public_holidays: bool) -> _DayTable:
    n = (last - first).days + 1
    flags: list[bool] = []
    for i in range(n):
        day = first + timedelta(days=i)
        if observe_public_holidays:
            flags.append(chinese_calendar.is_workday(day))
        else:
            flags.append(day.weekday() < 5)
    prefix = [0] * (n + 1)
    for i, flag in enumerate(flags):
        prefix[i + 1] = prefix[i] + (1 if flag else 0)
    workdays = tuple(i for i, flag in enumerate(flags) if flag)
    return _DayTable(first, last, tuple(prefix), workdays, tuple(flags))


class OfficeCalendar(_CalendarOps):
    """Office hours on Chinese working days (holidays and 调休 make-up days observed).

    ``shifts`` are the daily office periods in local time, ascending and disjoint.
    With ``observe_public_holidays=False`` the calendar is plain Monday–Friday and is
    not limited to the years chinese-calendar knows.
    """

    def __init__(
        self,
        shifts: Sequence[tuple[time, time]] = DEFAULT_OFFICE_HOURS,
        *,
        observe_public_holidays: bool = True,
        first: date | None = None,
        last: date | None = None,
        name: str = "office",
    ) -> None:
        if not shifts:
            raise ValueError("an office calendar needs at least one shift")
        bounds = [(_time_us(s), _time_us(e)) for s, e in shifts]
        for (s, e), prev in zip(bounds, [(-1, -1), *bounds[:-1]], strict=True):
            if not e > s:
                raise ValueError(f"shift {_us_time(s)}–{_us_time(e)} must end after it starts")
            if s < prev[1]:
                raise ValueError("shifts must be ascending and must not overlap")
        if observe_public_holidays:
            first = first or HOLIDAY_DATA_FIRST
            last = last or HOLIDAY_DATA_LAST
            if first < HOLIDAY_DATA_FIRST or last > HOLIDAY_DATA_LAST:
                raise CalendarRangeError(
                    f"holiday data covers {HOLIDAY_DATA_FIRST}–{HOLIDAY_DATA_LAST} only; "
                    f"asked for {first}–{last}"
                )
        else:
            first = first or date(2000, 1, 3)
            last = last or date(2100, 12, 31)
        self.name = name
        self.shifts: tuple[tuple[time, time], ...] = tuple(shifts)
        self.observe_public_holidays = observe_public_holidays
        self._bounds = bounds
        self._cum_before = []
        total = 0
        for s, e in bounds:
            self._cum_before.append(total)
            total += e - s
        self._day_us = total
        self.working_day = timedelta(microseconds=total)
        self._table = _day_table(first, last, observe_public_holidays)
        self._anchor = datetime.combine(first, time())

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
        if w < 0:
            raise CalendarRangeError("working clock before the calendar's first day")
        k, r = divmod(w, self._day_us)
        if r == 0 and not at_start and k > 0:
            k, r = k - 1, self._day_us
        if k >= len(self._table.workdays):
            raise CalendarRangeError(
                f"working time runs past this calendar's last day ({self._table.last})"
            )
        day = self._table.first + timedelta(days=self._table.workdays[k])
        for (s, e), before in zip(self._bounds, self._cum_before, strict=True):
            length = e - s
            if r < before + length or (r == before + length and not at_start):
                tod = s + (r - before)
                break
        else:  # pragma: no cover - divmod keeps r below a full day
            raise AssertionError(f"working clock {w} does not map into a shift")
        naive = datetime.combine(day, time()) + timedelta(microseconds=tod)
        return naive.replace(tzinfo=SHANGHAI)

    def working_days_in(self, first: date, last: date) -> int:
        """Number of working days in the closed range ``[first, last]``."""
        return (
            self._table.prefix[self._day_index(last) + 1]
            - self._table.prefix[self._day_index(first)]
        )

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

    def __repr__(self) -> str:
        return "ContinuousCalendar()"

    def is_working_day(self, day: date) -> bool:
        return True

    def working_clock(self, t: datetime) -> int:
        return _us(_local_naive(t) - self._anchor)

    def from_working_clock(self, w: int, *, at_start: bool = False) -> datetime:
        return (self._anchor + timedelta(microseconds=w)).replace(tzinfo=SHANGHAI)


def at_shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Convenience constructor for an instant in Shangrao's local time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)
