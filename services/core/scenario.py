"""Scenarios: demand, staffing, step timing, branches and process variants, as validated data.

A scenario says *how much* work arrives and *who* does it; the catalog says *what* the
work is and *which targets* it must meet.  Both engines read the same scenario: the
capacity engine simulates it, the live services take their clerk pools and step timing
from it, and the replay publishes its demand.

Validation is against a catalog (passed in the validation context): demand and timing
name real matters and steps, every department a demanded matter uses is staffed in
every county, shares sum to one, the horizon lies inside the calendar's data.  Errors
name the file, the field path and the reason.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.core.calendar import (
    DEFAULT_OFFICE_HOURS,
    SHANGHAI,
    ContinuousCalendar,
    HolidayYear,
    OfficeCalendar,
    WorkingCalendar,
    missing_holiday_year,
)
from services.core.catalog import Catalog, Matter, Step, read_yaml
from services.core.errors import InputError, from_validation_error
from services.core.timing import Distribution

#: Days a scenario's calendars run on past the last year of holiday data, on the
#: provisional rule (Monday to Friday, 1 January off): the cases a horizon ending in
#: that year leaves open finish there.  A horizon itself never reaches into them.
RUN_OUT_DAYS = 366

NonNegative = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _parse_hours(value: object) -> object:
    """``[["08:30", "12:00"], …]`` → tuples of :class:`time`."""
    if isinstance(value, list | tuple):
        out = []
        for pair in value:
            if isinstance(pair, str) and "-" in pair:
                pair = pair.split("-", 1)
            out.append(tuple(time.fromisoformat(p) if isinstance(p, str) else p for p in pair))
        return tuple(out)
    return value


class Horizon(_Model):
    start: date
    end: date  # inclusive

    @model_validator(mode="after")
    def _non_empty(self) -> Horizon:
        if self.end < self.start:
            raise ValueError(f"empty horizon: end {self.end} is before start {self.start}")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _expand_days(value: object) -> object:
    """``[2027-01-01, "2027-02-05..2027-02-13"]`` → the dates, ranges inclusive."""
    if not isinstance(value, list | tuple):
        return value
    out: list[object] = []
    for item in value:
        if isinstance(item, str) and ".." in item:
            first_text, last_text = item.split("..", 1)
            first = date.fromisoformat(first_text.strip())
            last = date.fromisoformat(last_text.strip())
            if last < first:
                raise ValueError(f"{item}: the range ends before it starts")
            out.extend(first + timedelta(days=i) for i in range((last - first).days + 1))
        else:
            out.append(item)
    return out


class HolidayYearData(_Model):
    """A year's public holidays and 调休 make-up working days, for a year chinese-calendar
    does not know yet (see scenarios/calendars/2027-unofficial.yaml)."""

    year: int
    official: bool = False  # True once the data is the State Council's notice
    source: str = Field(min_length=1)
    holidays: tuple[date, ...] = Field(min_length=1)
    workdays: tuple[date, ...] = ()

    _days = field_validator("holidays", "workdays", mode="before")(_expand_days)

    @model_validator(mode="after")
    def _valid_year(self) -> HolidayYearData:
        self.as_calendar_data()  # raises ValueError naming the day and the reason
        return self

    def as_calendar_data(self) -> HolidayYear:
        return HolidayYear(
            year=self.year,
            holidays=frozenset(self.holidays),
            workdays=frozenset(self.workdays),
            official=self.official,
            source=self.source,
        )


class Peak(_Model):
    """A day-of-month window with more demand (e.g. the tax filing period after a quarter)."""

    months: tuple[Annotated[int, Field(ge=1, le=12)], ...] = Field(min_length=1)
    first_day: int = Field(ge=1, le=31)
    last_day: int = Field(ge=1, le=31)
    factor: float = Field(gt=0)


class DemandProfile(_Model):
    """Relative demand by month, weekday (Mon..Sun), public holiday and hour of day."""

    month: tuple[NonNegative, ...] = Field(default=(1.0,) * 12, min_length=12, max_length=12)
    weekday: tuple[NonNegative, ...] = Field(
        default=(1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0), min_length=7, max_length=7
    )
    holiday: NonNegative = 0.0
    hour: tuple[NonNegative, ...] = Field(default=(1.0,) * 24, min_length=24, max_length=24)
    peaks: tuple[Peak, ...] = ()

    @model_validator(mode="after")
    def _some_demand(self) -> DemandProfile:
        if sum(self.month) <= 0 or sum(self.hour) <= 0 or (sum(self.weekday) + self.holiday) <= 0:
            raise ValueError("a profile needs some positive weight in month, weekday and hour")
        return self


class Segment(_Model):
    """A share of a matter's cases with its own targets (``applies_to``), speed and
    path: ``time_scale`` multiplies its clerk time and lags (0.5: twice as fast);
    ``route`` names one of the matter's routes in the catalog (a shortcut of the plan:
    its cases run that route's steps)."""

    name: str
    share: float = Field(gt=0, le=1)
    time_scale: float = Field(default=1.0, gt=0)
    route: str | None = None
    #: other names its cases go by for ``applies_to`` (a 200 m 备案 connection is also a
    #: 一般项目)
    part_of: tuple[str, ...] = ()


class MatterDemand(_Model):
    per_year: NonNegative
    profile: str = "office"
    segments: tuple[Segment, ...] = ()

    @field_validator("segments")
    @classmethod
    def _shares(cls, segments: tuple[Segment, ...]) -> tuple[Segment, ...]:
        if sum(s.share for s in segments) > 1 + 1e-9:
            raise ValueError("segment shares add up to more than 1")
        return segments


def _parse_county_hours(value: object) -> object:
    if isinstance(value, dict):
        return {county: _parse_hours(hours) for county, hours in value.items()}
    return value


class Staffing(_Model):
    """Clerks of one department per county, and the hours they work: ``office_hours``
    for the department, ``county_hours`` for the pools of some counties that keep their
    own (延时服务: open through lunch, into the evening)."""

    calendar: Literal["office", "24x7"] = "office"
    office_hours: tuple[tuple[time, time], ...] | None = None
    county_hours: dict[str, tuple[tuple[time, time], ...]] = Field(default_factory=dict)
    clerks: dict[str, Annotated[int, Field(ge=0)]]

    _hours = field_validator("office_hours", mode="before")(_parse_hours)
    _county_hours = field_validator("county_hours", mode="before")(_parse_county_hours)

    @model_validator(mode="after")
    def _hours_of_an_office(self) -> Staffing:
        if self.county_hours and self.calendar == "24x7":
            raise ValueError("county_hours: a 24x7 department has no office hours to extend")
        return self


class Branch(_Model):
    """A branch taken with ``probability``, optionally costing a delay."""

    probability: Probability
    delay: Distribution | None = None


class StepTiming(_Model):
    """How long one step takes and which branches it may take.

    ``service``: clerk working time (service and approval steps); ``lag``: time after
    the service without a clerk (site visits, internal circulation); ``duration``: an
    external step's length; ``rework``: 补正 — materials missing, the applicant is told
    everything missing at once (一次性告知) and returns after ``delay``, and the step
    repeats — one round at most; ``reject``: the step rejects the case (e.g. tax
    refuses a transfer); ``block``: the step waits ``delay`` before it can start (e.g.
    utility arrears to be settled).
    """

    service: Distribution | None = None
    lag: Distribution | None = None
    duration: Distribution | None = None
    rework: Branch | None = None
    reject: Branch | None = None
    block: Branch | None = None
    fault: Branch | None = None  # a transient fault: the attempt fails and is retried
    #: 容缺: an external step the applicant must finish within ``deadline`` (same unit
    #: as ``duration``); one that takes longer is ``missed``: ``reject`` — the case is
    #: rejected at the deadline — or ``hold`` — the case waits for it
    deadline: Distribution | None = None
    missed: Literal["reject", "hold"] = "hold"

    @model_validator(mode="after")
    def _rework_ends(self) -> StepTiming:
        if self.service is not None and self.service.unit == "calendar_days":
            raise ValueError("service is clerk working time: use minutes, hours or working_days")
        if self.rework is not None and self.rework.probability >= 1:
            raise ValueError("rework.probability must be below 1 (the step must end)")
        if self.block is not None and self.block.probability > 0 and self.block.delay is None:
            raise ValueError("block needs a delay (e.g. the arrears settlement time)")
        if self.deadline is not None and (
            self.duration is None or self.deadline.unit != self.duration.unit
        ):
            raise ValueError("deadline: only an external step has one, in the unit of its duration")
        return self


class Outage(_Model):
    """A department out of service from ``start`` to ``end`` (local time, +08:00).

    ``mode: retry`` — an attempt that completes inside the window fails and is retried
    with backoff; ``mode: hold`` — work reaching the clerks inside the window waits
    until it ends."""

    department: str
    start: datetime
    end: datetime
    mode: Literal["retry", "hold"] = "retry"

    @model_validator(mode="after")
    def _ordered(self) -> Outage:
        if self.end <= self.start:
            raise ValueError(f"outage of {self.department}: end must be after start")
        return self

    def window(self) -> tuple[float, float]:
        """POSIX seconds (naive times are Shangrao local time)."""
        start, end = (t if t.tzinfo else t.replace(tzinfo=SHANGHAI) for t in (self.start, self.end))
        return start.timestamp(), end.timestamp()


class RetryPolicy(_Model):
    """Capped exponential backoff after a failed attempt: ``first_minutes × factor^k``
    for the k-th retry, at most ``cap_hours`` (clock time)."""

    first_minutes: float = Field(default=30.0, gt=0)
    factor: float = Field(default=2.0, ge=1)
    cap_hours: float = Field(default=8.0, gt=0)

    def delay_seconds(self, retry: int) -> float:
        return min(self.first_minutes * 60 * self.factor**retry, self.cap_hours * 3600)


class Faults(_Model):
    """Fault injection for the walk and the linked-transfer saga (:mod:`services.core.walk`).

    Tax rejections, arrears (with their settlement delay) and transient faults are
    per-step branches in ``timing`` (``reject``, ``block``, ``fault``); here are the
    faults that cut across cases."""

    seizure_rate: Probability = 0.0  # share of transfers whose unit gets a 查封 in flight
    seizure_within_hours: float = Field(default=24.0, gt=0)  # after the transfer's submission
    outages: tuple[Outage, ...] = ()
    retry: RetryPolicy = RetryPolicy()


class HousingStock(_Model):
    """Units in the property register that the cases of ``matters`` draw from.

    Without a stock every case of a register matter has a unit of its own, so the
    register (and tax's deed-tax records) gain one entry per case for ever; a city's
    register holds its housing stock, and a transfer, mortgage or seizure is of one of
    those units.  ``units`` is the city's stock, split among the counties by their
    demand shares; each case draws its unit uniformly from its county's share.  A
    matter may draw from one stock only; linked transfers (联动过户) need a stock of
    their own, since a plain transfer of a linked unit would leave its utility accounts
    behind its owner — a mismatch the ledger's audit counts as a saga failure."""

    units: int = Field(gt=0)
    matters: tuple[str, ...] = Field(min_length=1)


class ProcessVariant(_Model):
    """Another step graph for a matter (e.g. the 2020 serial process with more steps).

    ``scopes`` measures a target on this graph's own steps: a catalog scope → the
    variant's (the 2020 connection's utility steps were six, not the 2021 three)."""

    steps: tuple[Step, ...] = Field(min_length=1)
    scopes: dict[str, str] = Field(default_factory=dict)


class Scenario(_Model):
    name: str
    description: str = ""
    #: holidays of years past chinese-calendar's data (a scenario file's
    #: ``holiday_file`` is read into this when the file is loaded); before ``horizon``,
    #: whose check needs it
    holiday_years: tuple[HolidayYearData, ...] = ()
    horizon: Horizon
    warmup_days: int = Field(default=0, ge=0)
    seed: int = 0
    office_hours: tuple[tuple[time, time], ...] = DEFAULT_OFFICE_HOURS
    counties: dict[str, Annotated[float, Field(gt=0)]]
    profiles: dict[str, DemandProfile] = Field(default_factory=dict)
    demand: dict[str, MatterDemand]
    departments: dict[str, Staffing]
    timing: dict[str, dict[str, StepTiming]]
    process: dict[str, ProcessVariant] = Field(default_factory=dict)
    faults: Faults = Faults()
    housing: tuple[HousingStock, ...] = ()

    _hours = field_validator("office_hours", mode="before")(_parse_hours)

    @field_validator("holiday_years")
    @classmethod
    def _each_year_once(cls, years: tuple[HolidayYearData, ...]) -> tuple[HolidayYearData, ...]:
        given = [y.year for y in years]
        if len(set(given)) != len(given):
            raise ValueError(f"{sorted(given)} gives a year twice")
        return years

    @field_validator("horizon")
    @classmethod
    def _horizon_has_holidays(cls, horizon: Horizon, info: ValidationInfo) -> Horizon:
        years = info.data.get("holiday_years", ())
        extra = tuple(y.as_calendar_data() for y in years)
        reason = missing_holiday_year(horizon.start, horizon.end, extra)
        if reason:
            raise ValueError(f"{horizon.start}–{horizon.end}: {reason}")
        return horizon

    @model_validator(mode="after")
    def _consistent_with_catalog(self, info: ValidationInfo) -> Scenario:
        catalog: Catalog | None = (info.context or {}).get("catalog")
        total = sum(self.counties.values())
        if abs(total - 1) > 1e-6:
            raise ValueError(f"counties: demand shares add up to {total:g}, not 1")
        if self.warmup_days >= self.horizon.days:
            raise ValueError("warmup_days must be shorter than the horizon")
        for matter_id, demand in self.demand.items():
            if demand.profile not in self.profiles and demand.profile != "flat":
                raise ValueError(
                    f"demand.{matter_id}.profile: unknown profile {demand.profile!r} "
                    f"(known: {', '.join(sorted(self.profiles)) or 'none'}, flat)"
                )
        self._check_housing()
        seizures = self.demand.get("seizure_registration")
        if self.faults.seizure_rate > 0 and (seizures is None or seizures.per_year <= 0):
            raise ValueError(
                "faults.seizure_rate: seizures are 查封 cases — give "
                "demand.seizure_registration a per_year above 0"
            )
        if catalog is not None:
            self._check_against(catalog)
        return self

    def _check_housing(self) -> None:
        drawn: dict[str, int] = {}
        for i, stock in enumerate(self.housing):
            for matter_id in stock.matters:
                if matter_id in drawn:
                    raise ValueError(
                        f"housing[{i}].matters: {matter_id} already draws from "
                        f"housing[{drawn[matter_id]}]; a matter draws from one stock"
                    )
                drawn[matter_id] = i
            linked = "linked_transfer" in stock.matters
            if linked and len(stock.matters) > 1:
                raise ValueError(
                    f"housing[{i}].matters: linked_transfer needs a stock of its own "
                    "(a plain transfer would leave a linked unit's utility accounts behind)"
                )

    def housing_stock(self, matter_id: str) -> tuple[int, HousingStock] | None:
        """The stock ``matter_id`` draws its units from, with its index."""
        for i, stock in enumerate(self.housing):
            if matter_id in stock.matters:
                return i, stock
        return None

    def _check_against(self, catalog: Catalog) -> None:
        departments = {d.id for d in catalog.departments}
        self._check_names(catalog, departments)
        self._check_variants(catalog, departments)
        for matter_id, demand in self.demand.items():
            if demand.per_year > 0:
                self._check_demanded(self.matter(catalog, matter_id), catalog.matter(matter_id))

    def _check_names(self, catalog: Catalog, departments: set[str]) -> None:
        """Counties, departments and matters the catalog knows."""
        unknown_counties = sorted(set(self.counties) - catalog.county_ids)
        if unknown_counties:
            raise ValueError(f"counties: unknown county {unknown_counties[0]!r}")
        for dept, staffing in self.departments.items():
            if dept not in departments:
                raise ValueError(f"departments.{dept}: unknown department")
            named = [("clerks", c) for c in staffing.clerks if c != "default"]
            named += [("county_hours", c) for c in staffing.county_hours]
            for field, county in named:
                if county not in catalog.county_ids:
                    raise ValueError(f"departments.{dept}.{field}.{county}: unknown county")
        for i, stock in enumerate(self.housing):
            for matter_id in stock.matters:
                if matter_id not in {m.id for m in catalog.matters}:
                    raise ValueError(f"housing[{i}].matters: unknown matter {matter_id!r}")
        for matter_id in (*self.demand, *self.timing, *self.process):
            try:
                catalog.matter(matter_id)
            except KeyError:
                raise ValueError(f"{matter_id}: unknown matter {matter_id!r}") from None

    def _check_variants(self, catalog: Catalog, departments: set[str]) -> None:
        """Process variants are sound step graphs of known departments."""
        for matter_id, variant in self.process.items():
            try:
                catalog.matter(matter_id).with_steps(variant.steps, variant.scopes)
            except ValueError as exc:
                raise ValueError(f"process.{matter_id}: {exc}") from None
            for step in variant.steps:
                if step.department not in departments:
                    raise ValueError(
                        f"process.{matter_id}.steps: unknown department {step.department!r}"
                    )

    def _check_demanded(self, matter: Matter, catalogued: Matter) -> None:
        """A matter with demand (``catalogued``: as the catalog has it, before a process
        variant): a workflow, its segments' routes known, every step a case may run
        timed, every clerk step staffed.  Timing for a step the variant lacks but the
        catalog has is allowed (a base scenario's timing of the reformed process)."""
        if matter.kind != "workflow":
            raise ValueError(f"demand.{matter.id}: {matter.id} is not a workflow")
        timings = self.timing.get(matter.id, {})
        known = {s.id for s in (*matter.steps, *catalogued.steps)}
        for step_id in timings:
            if step_id not in known:
                raise ValueError(f"timing.{matter.id}.{step_id}: {matter.id} has no such step")
        for step in self.steps_run(matter):
            timing = timings.get(step.id)
            if timing is None:
                raise ValueError(f"timing.{matter.id}.{step.id}: no timing for this step")
            self._check_step(matter.id, step, timing)

    def _check_step(self, matter_id: str, step: Step, timing: StepTiming) -> None:
        where = f"timing.{matter_id}.{step.id}"
        needed = "duration" if step.kind == "external" else "service"
        if step.kind == "external" and timing.block is not None:
            raise ValueError(
                f"{where}.block: an external step is not served by clerks, so nothing can "
                "block it (use a longer duration)"
            )
        if getattr(timing, needed) is None:
            raise ValueError(f"{where}.{needed}: a {step.kind} step needs it")
        if step.kind == "external":
            return
        if self.departments.get(step.department) is None:
            raise ValueError(
                f"departments.{step.department}: not staffed, but {matter_id} "
                f"step {step.id} needs it"
            )
        for county in self.counties:
            if self.clerks(step.department, county) < 1:
                raise ValueError(
                    f"departments.{step.department}.clerks.{county}: no clerk, "
                    f"but {matter_id} step {step.id} needs one"
                )

    # -- derived ----------------------------------------------------------------------

    def routes_taken(self, matter: Matter) -> tuple[str | None, ...]:
        """The routes a matter's cases take: the default path (None) while some share of
        the cases has no segment or a segment without a route, and each segment's route."""
        demand = self.demand.get(matter.id)
        segments = demand.segments if demand else ()
        taken: list[str | None] = []
        if sum(s.share for s in segments) < 1 - 1e-9 or any(not s.route for s in segments):
            taken.append(None)
        for i, segment in enumerate(segments):
            if segment.route and segment.route not in taken:
                try:
                    matter.route_steps(segment.route)
                except (KeyError, ValueError) as exc:
                    reason = exc.args[0] if exc.args else str(exc)
                    raise ValueError(f"demand.{matter.id}.segments[{i}].route: {reason}") from None
                taken.append(segment.route)
        return tuple(taken)

    def steps_run(self, matter: Matter) -> tuple[Step, ...]:
        """The matter's steps that some case of this scenario runs (on a route taken)."""
        runs = [False] * len(matter.steps)
        for route in self.routes_taken(matter):
            runs = [a or b for a, b in zip(runs, matter.on_route(route), strict=True)]
        return tuple(s for s, r in zip(matter.steps, runs, strict=True) if r)

    def matter(self, catalog: Catalog, matter_id: str) -> Matter:
        """The catalog's matter with this scenario's process variant applied."""
        matter = catalog.matter(matter_id)
        variant = self.process.get(matter_id)
        return matter.with_steps(variant.steps, variant.scopes) if variant else matter

    def clerks(self, department: str, county: str) -> int:
        staffing = self.departments.get(department)
        if staffing is None:
            return 0
        return staffing.clerks.get(county, staffing.clerks.get("default", 0))

    @cached_property
    def office_calendar(self) -> OfficeCalendar:
        """The calendar the plan's working days are measured on."""
        return OfficeCalendar(
            self.office_hours,
            name="office",
            holiday_years=self.holiday_data,
            run_out_days=RUN_OUT_DAYS,
        )

    @cached_property
    def holiday_data(self) -> tuple[HolidayYear, ...]:
        """The calendar's form of ``holiday_years``."""
        return tuple(y.as_calendar_data() for y in self.holiday_years)

    def calendar(self, department: str) -> WorkingCalendar:
        """The calendar a department works on (cached per scenario)."""
        cache = self.__dict__.setdefault("_calendars", {})
        if department not in cache:
            staffing = self.departments.get(department)
            if staffing is not None and staffing.calendar == "24x7":
                cache[department] = ContinuousCalendar(name=f"{department}:24x7")
            elif staffing is not None and staffing.office_hours:
                cache[department] = OfficeCalendar(
                    staffing.office_hours,
                    name=department,
                    holiday_years=self.holiday_data,
                    run_out_days=RUN_OUT_DAYS,
                )
            else:
                cache[department] = self.office_calendar
        return cache[department]

    def pool_calendar(self, department: str, county: str) -> WorkingCalendar:
        """The calendar one county's pool of a department works on: its own hours
        (``county_hours``), or the department's (cached per scenario)."""
        staffing = self.departments.get(department)
        hours = staffing.county_hours.get(county) if staffing is not None else None
        if not hours:
            return self.calendar(department)
        cache = self.__dict__.setdefault("_pool_calendars", {})
        key = (department, county)
        if key not in cache:
            cache[key] = OfficeCalendar(
                hours,
                name=f"{department}/{county}",
                holiday_years=self.holiday_data,
                run_out_days=RUN_OUT_DAYS,
            )
        return cache[key]

    def pool_calendars(self, department: str) -> dict[str, WorkingCalendar]:
        """The pools of a department with hours of their own: pool name → calendar."""
        staffing = self.departments.get(department)
        if staffing is None:
            return {}
        return {
            f"{department}/{county}": self.pool_calendar(department, county)
            for county in staffing.county_hours
        }

    def profile(self, name: str) -> DemandProfile:
        return self.profiles.get(name, DemandProfile()) if name != "flat" else FLAT_PROFILE

    def with_clerks(self, clerks: dict[tuple[str, str], int]) -> Scenario:
        """A copy with some (department, county) pools resized (used by the planner)."""
        departments = {d: dict(s.clerks) for d, s in self.departments.items()}
        for (dept, county), n in clerks.items():
            departments[dept][county] = n
        staffed = {
            d: s.model_copy(update={"clerks": departments[d]}) for d, s in self.departments.items()
        }
        return self.model_copy(update={"departments": staffed})

    def end_of_horizon(self) -> date:
        return self.horizon.end

    def measured_from(self) -> date:
        return self.horizon.start + timedelta(days=self.warmup_days)


#: Round-the-clock demand, every day alike (queueing-theory validation, customs).
FLAT_PROFILE = DemandProfile(weekday=(1.0,) * 7, holiday=1.0)


def load_scenario(path: Path | str, catalog: Catalog) -> Scenario:
    """Load and validate a scenario file against a catalog; errors name file, field, reason.

    A scenario may name a ``base`` scenario file (relative to itself): the base is loaded
    first and this file's mappings are merged into it, key by key (lists and values
    replace).  The 2020 baseline thus states only what the reform changed.
    """
    path = Path(path)
    return scenario_from_dict(read_scenario_data(path), catalog, source=str(path))


def read_scenario_data(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The scenario file's mapping with its ``base`` chain merged in."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise InputError(str(path), "", "a scenario must be a mapping (horizon, demand, …)")
    holiday_file = data.pop("holiday_file", None)
    if holiday_file is not None:
        data["holiday_years"] = [
            *(data.get("holiday_years") or []),
            *_read_holiday_file(path, holiday_file),
        ]
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise InputError(str(path), "base", "must be the path of another scenario file")
    base_path = (path.parent / base).resolve()
    if base_path in _seen or base_path == path.resolve():
        raise InputError(str(path), "base", f"scenario files include each other ({base})")
    if not base_path.exists():
        raise InputError(str(path), "base", f"base scenario {base_path} not found")
    return deep_merge(read_scenario_data(base_path, (*_seen, path.resolve())), data)


def _read_holiday_file(scenario_path: Path, name: object) -> list:
    """The ``holiday_years`` of the calendar file a scenario names (relative to it)."""
    if not isinstance(name, str):
        raise InputError(str(scenario_path), "holiday_file", "must be the path of a YAML file")
    holiday_path = (scenario_path.parent / name).resolve()
    if not holiday_path.is_file():
        raise InputError(str(scenario_path), "holiday_file", f"{holiday_path} not found")
    data = read_yaml(holiday_path)
    years = data.get("holiday_years") if isinstance(data, dict) else None
    if not isinstance(years, list) or not years:
        raise InputError(
            str(holiday_path), "holiday_years", "a calendar file needs a list of holiday_years"
        )
    return years


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` merged into ``base``: mappings recursively, anything else replaced.
    A distribution of another ``kind`` replaces the base's whole (its parameters do not
    mix: a ``fixed`` service time over a ``lognormal`` one has no ``mean`` or ``cv``)."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and _same_kind(old, value):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def _same_kind(base: dict, override: dict) -> bool:
    return "kind" not in override or base.get("kind") == override["kind"]


def scenario_from_dict(data: dict, catalog: Catalog, source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data, context={"catalog": catalog})
    except ValidationError as exc:
        err = from_validation_error(source, exc)
        # cross-checks report their own dotted path at the start of the message
        reason = err.reason.removeprefix("Value error, ")
        field = err.field
        head, sep, rest = reason.partition(": ")
        if sep and not field and " " not in head:
            field, reason = head, rest
        raise InputError(source, field, reason) from None
