"""Measuring cases against targets, in each target's own unit.

Used by the capacity engine (arrays of many cases) and by the live tracker (one case,
arrays of length one): the same rule, written once.

Per case, a target's scope gives an interval or a sum of intervals:

* ``case`` — submission → completion of the last step;
* ``step:x`` — step ``x`` enabled (first attempt) → done (last attempt, rework included);
* ``span:a,b`` — earliest enabling among the steps → latest completion;
* ``sum:a,b`` — the sum of each step's own interval.

Elapsed time is converted to the target's unit: working days and working hours on the
plan's office calendar, clock hours, calendar days.  A time target of 0 (即时办结) is
attained when the case finishes on the working day it was submitted.

Some targets are not per-case times:

* ``service_steps`` / ``stages`` are structural: counted on the (variant) step graph;
* share metrics are per-case booleans: ``one_visit_share`` (no rework), ``closure_rate``
  (completed, not rejected), ``on_time_rate`` (the matter's case-time target met);
* ``visits`` counts the applicant's trips: attempts at offline service and window steps;
* what the engines cannot observe (``annual`` tax time, material sets, follow-up calls)
  is reported as not simulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from services.core.calendar import WorkingCalendar
from services.core.catalog import Matter, Target

NOT_SIMULATED = {
    "annual": "a per-enterprise yearly figure, not a case",
    "material_sets": "the number of forms is a property of the process, not simulated",
    "online_steps": "the online channel's step count is not simulated",
    "applications": "whether an application is needed is not simulated",
    "follow_up_rate": "follow-up calls are not simulated",
}
SHARE_METRICS = {"one_visit_share", "closure_rate", "on_time_rate"}
#: Step kinds the applicant visits in person when offline: a department's service, and
#: the one window (a window step's intake or issue)
VISITED = frozenset({"service", "window"})


@dataclass(frozen=True)
class StepTimes:
    """Per case (arrays aligned with the cases): first enabling and last completion of
    each step, and the applicant's attempts (rounds) at it."""

    enabled: dict[str, np.ndarray]
    done: dict[str, np.ndarray]
    attempts: dict[str, np.ndarray]
    #: 补正 (one round at most): when the step sent the applicant away, and when its
    #: next attempt was enabled (NaN: no correction) — the pause of an ``agency`` clock
    corrected_from: dict[str, np.ndarray] = field(default_factory=dict)
    corrected_to: dict[str, np.ndarray] = field(default_factory=dict)

    def subset(self, mask: np.ndarray) -> StepTimes:
        """The same for the cases selected by ``mask``."""
        return StepTimes(
            {k: v[mask] for k, v in self.enabled.items()},
            {k: v[mask] for k, v in self.done.items()},
            {k: v[mask] for k, v in self.attempts.items()},
            {k: v[mask] for k, v in self.corrected_from.items()},
            {k: v[mask] for k, v in self.corrected_to.items()},
        )

    def pauses(self, step_ids: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The correction pauses of those steps (each a pair of arrays, NaN: none)."""
        return [
            (self.corrected_from[s], self.corrected_to[s])
            for s in step_ids
            if s in self.corrected_from and s in self.corrected_to
        ]


@dataclass(frozen=True)
class Measurement:
    """A target measured over cases: per-case values and whether each case attained it,
    or (for structural targets) one value for all cases, or a reason it is not simulated."""

    target: Target
    values: np.ndarray | None = None  # per case, in the target's unit
    attained: np.ndarray | None = None  # per case, bool
    structural: float | None = None
    not_simulated: str | None = None


def elapsed(unit: str, a: np.ndarray, b: np.ndarray, office: WorkingCalendar) -> np.ndarray:
    """Time from ``a`` to ``b`` (POSIX seconds) in ``unit``."""
    if unit == "working_days":
        return (office.clock_at_many(b) - office.clock_at_many(a)) / office.day_us
    if unit == "working_hours":
        return (office.clock_at_many(b) - office.clock_at_many(a)) / 3.6e9
    if unit == "hours":
        return (np.asarray(b) - np.asarray(a)) / 3600.0
    if unit == "calendar_days":
        return (np.asarray(b) - np.asarray(a)) / 86400.0
    raise ValueError(f"{unit} is not a time unit")


def same_working_day(a: np.ndarray, b: np.ndarray, office: WorkingCalendar) -> np.ndarray:
    """Whether each case finished on the working day it was submitted (即时办结)."""
    wa = office.clock_at_many(a)
    wb = office.clock_at_many(b)
    day = office.day_us
    return (wb <= wa) | ((wb - 1) // day <= wa // day)


def _interval(
    target: Target, submitted: np.ndarray, completed: np.ndarray, steps: StepTimes
) -> tuple[list[np.ndarray], list[np.ndarray], list[list[str]]]:
    """The intervals a target's scope measures (starts, ends) and, for each, the steps
    whose correction pauses fall in it."""
    kind, _, rest = target.scope.partition(":")
    if kind == "case":
        return [submitted], [completed], [list(steps.enabled)]
    ids = rest.split(",")
    if kind == "step":
        return [steps.enabled[ids[0]]], [steps.done[ids[0]]], [ids]
    if kind == "span":  # over the steps the case's route runs (the others are NaN)
        a = np.fmin.reduce([steps.enabled[i] for i in ids])
        b = np.fmax.reduce([steps.done[i] for i in ids])
        return [a], [b], [ids]
    if kind == "sum":
        return [steps.enabled[i] for i in ids], [steps.done[i] for i in ids], [[i] for i in ids]
    raise ValueError(f"scope {target.scope} is not an interval")


def paused(
    unit: str,
    a: np.ndarray,
    b: np.ndarray,
    pauses: list[tuple[np.ndarray, np.ndarray]],
    office: WorkingCalendar,
) -> np.ndarray:
    """Time in ``unit`` inside [a, b] covered by the pauses (their union: parallel
    corrections overlapping in time stop the clock once)."""
    total = np.zeros(len(a))
    if not pauses:
        return total
    starts = np.array([np.clip(s, a, b) for s, _ in pauses])
    ends = np.array([np.clip(e, a, b) for _, e in pauses])
    empty = ~(np.isfinite(starts) & np.isfinite(ends) & (ends > starts))
    starts[empty] = ends[empty] = np.broadcast_to(b, starts.shape)[empty]
    order = np.argsort(starts, axis=0)
    starts = np.take_along_axis(starts, order, axis=0)
    ends = np.take_along_axis(ends, order, axis=0)
    low, high = starts[0].copy(), ends[0].copy()
    for s, e in zip(starts[1:], ends[1:], strict=True):
        apart = s > high
        total[apart] += elapsed(unit, low[apart], high[apart], office)
        low = np.where(apart, s, low)
        high = np.where(apart, e, np.maximum(high, e))
    return total + elapsed(unit, low, high, office)


def _time_values(
    target: Target,
    submitted: np.ndarray,
    completed: np.ndarray,
    steps: StepTimes,
    office: WorkingCalendar,
) -> tuple[np.ndarray, np.ndarray]:
    """A time target's value per case, and whether each case attained it.

    A ``sum:`` runs over the steps the case's route runs (a left-out step, NaN, adds
    nothing; a case on none of them has no value); an ``agency`` clock leaves out the
    applicant's corrections."""
    starts, ends, groups = _interval(target, submitted, completed, steps)
    ran = np.array([np.isfinite(a) & np.isfinite(b) for a, b in zip(starts, ends, strict=True)])
    parts = np.zeros(ran.shape)
    same = np.ones(ran.shape, dtype=bool)
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        here = ran[i]
        a, b = a[here], b[here]
        parts[i, here] = elapsed(target.unit, a, b, office)
        if target.clock == "agency":
            pauses = [(s[here], e[here]) for s, e in steps.pauses(groups[i])]
            parts[i, here] -= paused(target.unit, a, b, pauses, office)
        if target.immediate:
            same[i, here] = same_working_day(a, b, office)
    values = np.where(ran.any(axis=0), parts.sum(axis=0), np.nan)
    if target.immediate:
        return values, np.asarray(same.all(axis=0) & ran.any(axis=0))
    return values, np.asarray(target.meets(values), dtype=bool)


def measure_target(
    matter: Matter,
    target: Target,
    *,
    submitted: np.ndarray,
    completed: np.ndarray,
    steps: StepTimes,
    office: WorkingCalendar,
) -> Measurement:
    """Measure one target over cases (arrays aligned with each other).

    ``completed`` is NaN for cases that ended without completion (rejected): they count
    for ``closure_rate`` and are left out of time measurements."""
    if target.scope in NOT_SIMULATED or target.metric in NOT_SIMULATED:
        reason = NOT_SIMULATED.get(target.scope) or NOT_SIMULATED[target.metric]
        return Measurement(target, not_simulated=reason)
    if target.scope == "service_steps":
        return Measurement(target, structural=float(matter.service_step_count))
    if target.scope == "stages":
        return Measurement(target, structural=float(matter.stage_count))
    missing = [s for s in target.scope_steps() if s not in steps.enabled]
    if missing:
        return Measurement(target, not_simulated=f"this process has no step {missing[0]!r}")
    if target.metric in SHARE_METRICS:
        flags = _share_flags(matter, target, submitted, completed, steps, office)
        return Measurement(target, values=flags.astype(float), attained=flags)
    finished = np.isfinite(completed)
    if not finished.all():  # rejected cases have no completion time to measure
        submitted, completed = submitted[finished], completed[finished]
        steps = steps.subset(finished)
    if target.metric == "visits":
        visits = np.zeros(len(submitted))
        for s in matter.steps:
            if s.kind in VISITED and s.channel == "offline" and s.id in steps.attempts:
                visits = visits + steps.attempts[s.id]
        return Measurement(target, values=visits, attained=target.meets(visits))
    if not target.is_time:
        return Measurement(target, not_simulated=f"{target.metric} is not a simulated quantity")
    values, attained = _time_values(target, submitted, completed, steps, office)
    return Measurement(target, values=values, attained=attained)


def case_time_target(matter: Matter) -> Target | None:
    """The matter's first per-case time target on the whole case, if any."""
    for t in matter.targets:
        if t.scope == "case" and t.is_time and t.statistic == "each" and t.year == 2021:
            return t
    return None


def _share_flags(
    matter: Matter,
    target: Target,
    submitted: np.ndarray,
    completed: np.ndarray,
    steps: StepTimes,
    office: WorkingCalendar,
) -> np.ndarray:
    if target.metric == "one_visit_share":
        rounds = [steps.attempts[s.id] for s in matter.steps if s.kind == "service"]
        return (
            np.logical_and.reduce([r <= 1 for r in rounds])
            if rounds
            else np.ones(len(submitted), dtype=bool)
        )
    if target.metric == "closure_rate":
        return np.isfinite(completed)
    # on_time_rate: the matter's own case-time target
    case_target = case_time_target(matter)
    if case_target is None:
        return np.ones(len(submitted), dtype=bool)
    finished = np.isfinite(completed)  # a case not (yet) completed is not on time
    flags = np.zeros(len(submitted), dtype=bool)
    values = elapsed(case_target.unit, submitted[finished], completed[finished], office)
    flags[finished] = case_target.meets(values)
    return flags
