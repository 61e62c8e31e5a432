"""Working-time arithmetic: laws (hypothesis) and 2021's holidays with 调休 make-up days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.calendar import (
    DEFAULT_OFFICE_HOURS,
    HOLIDAY_DATA_FIRST,
    HOLIDAY_DATA_LAST,
    SHANGHAI,
    CalendarRangeError,
    ContinuousCalendar,
    HolidayYear,
    OfficeCalendar,
    at_shanghai,
    missing_holiday_year,
    provisional_workday,
)

OFFICE = OfficeCalendar()
H = timedelta(hours=1)

instants = st.datetimes(
    min_value=datetime(2019, 1, 1), max_value=datetime(2025, 6, 30), timezones=st.just(SHANGHAI)
)
durations = st.integers(min_value=0, max_value=400 * 3600 * 10**6).map(
    lambda us: timedelta(microseconds=us)
)
calendars = st.sampled_from(
    [
        OFFICE,
        OfficeCalendar([(time(9), time(17))], name="single-shift"),
        OfficeCalendar(observe_public_holidays=False, name="mon-fri"),
        ContinuousCalendar(),
    ]
)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations, durations)
def test_add_working_is_additive(cal, t, a, b):
    assert cal.add_working(cal.add_working(t, a), b) == cal.add_working(t, a + b)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations)
def test_working_between_inverts_add_working(cal, t, d):
    assert cal.working_between(t, cal.add_working(t, d)) == d


@settings(max_examples=300, deadline=None)
@given(calendars, instants, instants)
def test_working_clock_is_monotonic(cal, a, b):
    lo, hi = sorted((a, b))
    assert cal.working_between(lo, hi) >= timedelta(0)
    assert cal.working_between(lo, hi) <= hi - lo


@settings(max_examples=200, deadline=None)
@given(instants, durations, durations)
def test_add_working_is_monotonic_in_duration(t, a, b):
    lo, hi = sorted((a, b))
    assert OFFICE.add_working(t, lo) <= OFFICE.add_working(t, hi)


@settings(max_examples=200, deadline=None)
@given(instants, durations.filter(lambda d: d > timedelta(0)))
def test_completion_falls_inside_office_hours(t, d):
    done = OFFICE.add_working(t, d).astimezone(SHANGHAI)
    assert OFFICE.is_working_day(done.date())
    assert any(start < done.time() <= end for start, end in DEFAULT_OFFICE_HOURS)


@settings(max_examples=200, deadline=None)
@given(instants)
def test_next_open_is_inside_office_hours_and_costs_no_working_time(t):
    opened = OFFICE.next_open(t)
    assert opened >= t
    assert OFFICE.working_between(t, opened) == timedelta(0)
    assert OFFICE.is_working_day(opened.date())
    assert any(start <= opened.time() < end for start, end in DEFAULT_OFFICE_HOURS)


def test_default_working_day_is_seven_hours():
    assert OFFICE.working_day == timedelta(hours=7)
    assert OFFICE.to_working_days(timedelta(hours=14)) == 2.0


def test_ordinary_week():
    monday = at_shanghai(2021, 3, 8, 8, 30)
    assert OFFICE.add_working(monday, 7 * H) == at_shanghai(2021, 3, 8, 17, 30)
    # the lunch break does not count
    assert OFFICE.add_working(at_shanghai(2021, 3, 8, 11), 2 * H) == at_shanghai(2021, 3, 8, 15)
    # work finishing at close is done that evening, not next morning
    assert OFFICE.add_working(at_shanghai(2021, 3, 8, 14), 3.5 * H) == at_shanghai(
        2021, 3, 8, 17, 30
    )
    # Friday afternoon → Monday
    friday = at_shanghai(2021, 3, 12, 16)
    assert OFFICE.add_working(friday, 3 * H) == at_shanghai(2021, 3, 15, 10)
    # arriving on a Saturday: the clock starts Monday 08:30
    assert OFFICE.next_open(at_shanghai(2021, 3, 13, 10)) == at_shanghai(2021, 3, 15, 8, 30)
    assert OFFICE.working_days_between(friday, at_shanghai(2021, 3, 15, 16)) == 1.0


def test_spring_festival_2021_with_makeup_sunday_and_saturday():
    # 2021-02-11..17 is the holiday; Sunday 02-07 and Saturday 02-20 are 调休 working days.
    assert OFFICE.is_working_day(date(2021, 2, 7))  # Sunday, make-up
    assert not OFFICE.is_working_day(date(2021, 2, 11))  # 除夕 (Thursday)
    assert not OFFICE.is_working_day(date(2021, 2, 17))  # Wednesday
    assert OFFICE.is_working_day(date(2021, 2, 20))  # Saturday, make-up
    assert not OFFICE.is_working_day(date(2021, 2, 21))  # Sunday
    # 3 working days from Wednesday 02-10 08:30: 02-10, 02-18, 02-19 — done Friday 17:30
    start = at_shanghai(2021, 2, 10, 8, 30)
    assert OFFICE.add_working(start, 3 * OFFICE.working_day) == at_shanghai(2021, 2, 19, 17, 30)
    # submitted on the make-up Sunday: one working day ends that same Sunday
    sunday = at_shanghai(2021, 2, 7, 8, 30)
    assert OFFICE.add_working(sunday, OFFICE.working_day) == at_shanghai(2021, 2, 7, 17, 30)
    assert OFFICE.working_days_in(date(2021, 2, 7), date(2021, 2, 21)) == 7


def test_labour_day_2021():
    # 05-01..05 off; Sunday 04-25 and Saturday 05-08 are working days.
    assert OFFICE.is_working_day(date(2021, 4, 25))
    assert not any(OFFICE.is_working_day(date(2021, 5, d)) for d in range(1, 6))
    assert OFFICE.is_working_day(date(2021, 5, 8))
    friday_noon = at_shanghai(2021, 4, 30, 12)
    # 3.5 h left on 04-30; the next office hours are on Thursday 05-06
    assert OFFICE.add_working(friday_noon, 5 * H) == at_shanghai(2021, 5, 6, 10)


def test_national_day_2021():
    # 10-01..07 off; Sunday 09-26 and Saturday 10-09 are working days.
    assert OFFICE.is_working_day(date(2021, 9, 26))
    assert not any(OFFICE.is_working_day(date(2021, 10, d)) for d in range(1, 8))
    assert OFFICE.is_working_day(date(2021, 10, 9))
    # an immediate-looking 1-working-day matter submitted at close on 09-30 ends 10-08
    closing = at_shanghai(2021, 9, 30, 17, 30)
    assert OFFICE.add_working(closing, OFFICE.working_day) == at_shanghai(2021, 10, 8, 17, 30)
    assert OFFICE.working_between(closing, at_shanghai(2021, 10, 7, 23, 59)) == timedelta(0)


def test_continuous_calendar_counts_clock_time():
    cal = ContinuousCalendar()
    t = at_shanghai(2021, 10, 1, 23)
    assert cal.add_working(t, timedelta(hours=0.8)) == at_shanghai(2021, 10, 1, 23, 48)
    assert cal.working_between(t, at_shanghai(2021, 10, 3, 23)) == timedelta(days=2)


def test_other_timezones_are_converted():
    utc_morning = datetime(2021, 3, 8, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert OFFICE.add_working(utc_morning, H) == at_shanghai(2021, 3, 8, 10)


def test_errors_are_explicit():
    with pytest.raises(ValueError, match="naive"):
        OFFICE.working_clock(datetime(2021, 3, 8, 9))
    with pytest.raises(ValueError, match="negative"):
        OFFICE.add_working(at_shanghai(2021, 3, 8), -H)
    with pytest.raises(CalendarRangeError, match="outside"):
        OFFICE.working_clock(datetime(HOLIDAY_DATA_LAST.year + 1, 1, 5, 9, tzinfo=SHANGHAI))
    with pytest.raises(CalendarRangeError, match="last day"):
        OFFICE.add_working(at_shanghai(HOLIDAY_DATA_LAST.year, 12, 30), timedelta(days=365))
    with pytest.raises(CalendarRangeError, match="public-holiday data"):
        OfficeCalendar(last=date(HOLIDAY_DATA_LAST.year + 1, 12, 31))
    with pytest.raises(ValueError, match="overlap"):
        OfficeCalendar([(time(8), time(12)), (time(11), time(17))])
    with pytest.raises(ValueError, match="end after"):
        OfficeCalendar([(time(12), time(8))])


def test_holiday_data_range_is_what_chinese_calendar_ships():
    assert date(2004, 1, 1) == HOLIDAY_DATA_FIRST
    assert HOLIDAY_DATA_LAST.year >= 2025


def test_plain_weekday_calendar_ignores_holidays():
    cal = OfficeCalendar(observe_public_holidays=False)
    assert cal.is_working_day(date(2021, 10, 1))  # National Day is a Friday
    assert not cal.is_working_day(date(2021, 10, 9))  # a make-up Saturday is not
    assert cal.is_working_day(date(2030, 1, 2))  # beyond the holiday data


@settings(max_examples=300, deadline=None)
@given(calendars, instants, durations)
def test_numeric_path_agrees_with_datetimes(cal, t, d):
    t = t.replace(microsecond=0)
    w = cal.working_clock(t)
    assert cal.clock_at(t.timestamp()) == w
    done = cal.add_working(t, d)
    assert cal.posix_at(w + d // timedelta(microseconds=1)) == pytest.approx(
        done.timestamp(), abs=1e-6
    )
    assert cal.posix_at(w, at_start=True) == pytest.approx(cal.next_open(t).timestamp(), abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(calendars, st.lists(instants, min_size=1, max_size=20))
def test_vectorised_clock_agrees(cal, ts):
    import numpy as np

    posix = np.array([t.replace(microsecond=0).timestamp() for t in ts])
    assert cal.clock_at_many(posix).tolist() == [cal.clock_at(p) for p in posix]


@settings(max_examples=50, deadline=None)
@given(calendars, st.lists(st.integers(0, 10**17), min_size=1, max_size=20), st.booleans())
def test_vectorised_posix_agrees(cal, offsets, at_start):
    import numpy as np

    base = cal.clock_at(at_shanghai(2019, 1, 2).timestamp())
    ws = [base + o % (700 * cal.day_us) for o in offsets]
    got = cal.posix_at_many(np.array(ws), at_start=at_start)
    want = [cal.posix_at(w, at_start=at_start) for w in ws]
    assert np.allclose(got, want, rtol=0, atol=1e-6)


# -- years past chinese-calendar's data ------------------------------------------------

NEXT = HOLIDAY_DATA_LAST.year + 1  # 2027 with chinese-calendar 1.11


def _next_year(**changes: object) -> HolidayYear:
    """A made-up year after the package's data: a 9-day break from the first Friday of
    February, bridged by the Sunday before and the second Saturday after."""
    first_feb_friday = next(
        date(NEXT, 2, d) for d in range(1, 8) if date(NEXT, 2, d).weekday() == 4
    )
    fields: dict[str, object] = {
        "year": NEXT,
        "holidays": frozenset(first_feb_friday + timedelta(days=i) for i in range(9)),
        "workdays": frozenset(
            {first_feb_friday - timedelta(days=5), first_feb_friday + timedelta(days=15)}
        ),
        "source": "test",
    }
    fields.update(changes)
    return HolidayYear(**fields)  # type: ignore[arg-type]


def test_a_supplied_year_extends_the_calendar_with_its_holidays_and_makeup_days():
    year = _next_year()
    cal = OfficeCalendar(holiday_years=[year])
    assert cal.last_day == date(NEXT, 12, 31)
    start = min(year.holidays)  # the Friday the break starts
    sunday_before, saturday_after = sorted(year.workdays)
    assert not cal.is_working_day(start) and not cal.is_working_day(start + timedelta(days=3))
    assert cal.is_working_day(sunday_before) and cal.is_working_day(saturday_after)
    assert cal.day_kind(start) == "holiday" and cal.day_kind(sunday_before) == "makeup"
    assert cal.day_kind(start + timedelta(days=15 + 1)) == "weekend"  # the Sunday after
    # one working day asked for on the Thursday afternoon before the break ends on the
    # first working day after it, ten calendar days later; without the break, on the Friday
    thursday = datetime.combine(start - timedelta(days=1), time(16), SHANGHAI)
    after = cal.add_working(thursday, cal.working_day)
    assert after == datetime.combine(start + timedelta(days=10), time(16), SHANGHAI)
    plain = OfficeCalendar(observe_public_holidays=False)
    assert plain.add_working(thursday, plain.working_day).date() == start
    # the package's years are unchanged by the supplied one
    assert cal.working_days_in(date(2021, 1, 1), date(2021, 12, 31)) == OFFICE.working_days_in(
        date(2021, 1, 1), date(2021, 12, 31)
    )
    # a year of 261 weekdays minus 6 weekday holidays plus 2 make-up days
    weekdays = sum(
        (date(NEXT, 1, 1) + timedelta(days=i)).weekday() < 5
        for i in range((date(NEXT, 12, 31) - date(NEXT, 1, 1)).days + 1)
    )
    assert cal.working_days_in(date(NEXT, 1, 1), date(NEXT, 12, 31)) == weekdays - 6 + 2


def test_without_a_years_data_the_error_names_the_year_and_how_to_supply_it():
    reason = missing_holiday_year(date(NEXT, 1, 1), date(NEXT, 3, 1))
    assert reason is not None
    assert f"no public-holiday data for {NEXT}" in reason
    assert "holiday_file" in reason and "2027-unofficial.yaml" in reason
    assert "\n" not in reason
    assert missing_holiday_year(date(NEXT, 1, 1), date(NEXT, 3, 1), [_next_year()]) is None
    # a later year without the one between is not enough: the gap is named
    later = _next_year(
        year=NEXT + 1, holidays=frozenset({date(NEXT + 1, 1, 1)}), workdays=frozenset()
    )
    gap = missing_holiday_year(date(NEXT + 1, 1, 1), date(NEXT + 1, 2, 1), [later])
    assert gap is not None and f"for {NEXT}:" in gap
    with pytest.raises(CalendarRangeError, match=f"for {NEXT}"):
        OfficeCalendar(holiday_years=[later], last=date(NEXT + 1, 12, 31))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"year": HOLIDAY_DATA_LAST.year}, "already has this year"),
        (
            {"workdays": frozenset({date(NEXT, 3, 1) + timedelta(days=i) for i in range(7)})},
            "Saturdays or Sundays",
        ),
        ({"holidays": frozenset({date(NEXT + 1, 1, 1)})}, f"is not in {NEXT}"),
    ],
)
def test_bad_holiday_years_are_refused_with_the_day_and_reason(changes, reason):
    with pytest.raises(ValueError, match=reason):
        _next_year(**changes)


def test_a_day_both_off_and_worked_is_refused():
    saturday = next(date(NEXT, 3, d) for d in range(1, 8) if date(NEXT, 3, d).weekday() == 5)
    with pytest.raises(ValueError, match="both a holiday and a make-up"):
        _next_year(holidays=frozenset({saturday}), workdays=frozenset({saturday}))


def test_the_run_out_after_the_data_is_monday_to_friday_with_new_year_off():
    cal = OfficeCalendar(holiday_years=[_next_year()], run_out_days=366)
    assert cal.provisional_from == date(NEXT + 1, 1, 1)
    assert cal.last_day == date(NEXT, 12, 31) + timedelta(days=366)
    assert not provisional_workday(date(2030, 1, 1))  # a Tuesday
    assert provisional_workday(date(2030, 1, 2)) and not provisional_workday(date(2030, 1, 5))
    monday = next(date(NEXT + 1, 2, d) for d in range(1, 8) if date(NEXT + 1, 2, d).weekday() == 0)
    assert cal.is_working_day(monday) and not cal.is_working_day(monday - timedelta(days=1))
    # a case open at the end of the data finishes in the run-out instead of failing
    late = datetime.combine(date(NEXT, 12, 30), time(9), SHANGHAI)
    assert cal.add_working(late, 5 * cal.working_day).year == NEXT + 1
    with pytest.raises(CalendarRangeError, match="last day"):
        OfficeCalendar(holiday_years=[_next_year()]).add_working(late, 5 * cal.working_day)
