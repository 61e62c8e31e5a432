"""One step's randomness, shared by every driver of the walk.

A :class:`StepModel` knows, for one (scenario, seed, matter, step), every random
quantity a case may need at that step — clerk time, lag, external duration, rework,
rejection, blocking, transient faults and their delays — as values of named streams
indexed by the case's sequence number (see :mod:`services.core.timing`).  What the
values *mean* for the case is the walk's business (:mod:`services.core.walk`).

The walk asks by ``(seq, attempt)``: a live department for one case at a time, the
capacity engine for hundreds of thousands.  :meth:`StepModel.prepare` draws every case's
first attempt in bulk into plain lists (already scaled and rounded), so the engine's
hot path is a list lookup; any other attempt is read from its stream.  Both paths give
the same numbers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from services.core.calendar import WorkingCalendar
from services.core.catalog import Step
from services.core.scenario import Scenario, StepTiming
from services.core.timing import (
    Clock,
    Distribution,
    DrawStream,
    Duration,
    to_duration,
    uniform_sampler,
)

_DAY_US = 86_400_000_000
#: The timing of a step on no route the scenario takes: never drawn from.
UNTIMED = StepTiming()

#: Branch flags of one attempt (:meth:`StepModel.branches`).
REJECT, FAULT, REWORK, BLOCK = 1, 2, 4, 8
_FLAGS = {"reject": REJECT, "fault": FAULT, "rework": REWORK, "block": BLOCK}


class StepDraw(NamedTuple):
    """Everything drawn for one case at one attempt of one step (for inspection and
    tests; the walk reads the same values one at a time)."""

    service_us: int  # clerk working time, µs on the department's working clock (0: none)
    lag: Duration | None  # after service, no clerk
    duration: Duration | None  # external steps only
    rework: bool
    rework_delay: Duration | None
    reject: bool
    block_delay: Duration | None  # None: not blocked
    fault: bool = False  # a transient fault: this attempt fails and is retried


def advance(posix: float, duration: Duration | None, calendar: WorkingCalendar) -> float:
    """``posix`` moved forward by ``duration`` (working time on ``calendar``, or clock)."""
    if duration is None or duration.us == 0:
        return posix
    if duration.clock == "clock":
        return posix + duration.us / 1e6
    return calendar.posix_at(calendar.clock_at(posix) + duration.us)


class _Prepared:
    """Every case's first attempt, as lists indexed by the sequence number."""

    __slots__ = ("block_delay", "duration", "flags", "lag", "n", "rework_delay", "service_us")

    def __init__(self) -> None:
        self.n = 0
        self.service_us: list[int] = []
        self.lag: list[int] | None = None
        self.duration: list[int] | None = None
        self.flags: list[int] = []
        self.rework_delay: list[int] | None = None
        self.block_delay: list[int] | None = None


class StepModel:
    """Reproducible draws for one step of one matter under one scenario and seed.

    ``calendar`` is the calendar the step's durations are counted on (the department's,
    or the office calendar for an external step): it fixes how working days convert to
    microseconds.
    """

    def __init__(
        self,
        scenario: Scenario,
        matter_id: str,
        step: Step,
        seed: int,
        calendar: WorkingCalendar,
    ) -> None:
        self.matter_id = matter_id
        self.step = step
        # a step no case of the scenario runs (on a route not taken) may have no timing
        self.timing: StepTiming = scenario.timing.get(matter_id, {}).get(step.id, UNTIMED)
        self.seed = seed
        self.calendar = calendar
        continuous = calendar.day_us == _DAY_US
        t = self.timing
        dists: dict[str, Distribution | None] = {
            "service": t.service,
            "lag": t.lag,
            "duration": t.duration,
            "rework_delay": t.rework.delay if t.rework else None,
            "block_delay": t.block.delay if t.block else None,
            "deadline": t.deadline,
        }
        self._dists: dict[str, Distribution] = {k: d for k, d in dists.items() if d is not None}
        # each duration purpose converts with a fixed factor to a fixed clock
        self._convert: dict[str, tuple[Clock, float]] = {}
        for purpose, dist in self._dists.items():
            unit = to_duration(1.0, dist.unit, calendar.day_us, continuous)
            self._convert[purpose] = (unit.clock, float(unit.us))
        branches = {"rework": t.rework, "reject": t.reject, "block": t.block, "fault": t.fault}
        self._probabilities = {
            purpose: branch.probability
            for purpose, branch in branches.items()
            if branch is not None and branch.probability > 0
        }
        self._streams: dict[tuple[str, int], DrawStream] = {}
        self.first = _Prepared()
        self.has_lag = t.lag is not None
        self.lag_clock: Clock = self._convert["lag"][0] if self.has_lag else "working"

    # -- streams ----------------------------------------------------------------------

    def stream(self, purpose: str, attempt: int) -> DrawStream | None:
        key = (purpose, attempt)
        if key not in self._streams:
            if purpose in self._probabilities:
                sampler = uniform_sampler
            elif purpose in self._dists:
                sampler = self._dists[purpose].sample
            else:
                return None
            name = (self.matter_id, self.step.id, purpose, attempt)
            self._streams[key] = DrawStream(self.seed, name, sampler)
        return self._streams[key]

    def prepare(self, scales: np.ndarray) -> None:
        """Draw the first attempt of ``len(scales)`` cases in bulk; ``scales[seq]`` is
        the time scale of case ``seq`` (see :meth:`service_us`)."""
        n = len(scales)
        first = _Prepared()

        def values(purpose: str, scaled: bool) -> list[int] | None:
            stream = self.stream(purpose, 0)
            if stream is None:
                return None
            _, per = self._convert[purpose]
            raw = stream.take(n) * scales if scaled else stream.take(n)
            return np.rint(raw * per).astype(np.int64).tolist()

        first.service_us = values("service", True) or [0] * n
        first.lag = values("lag", True)
        first.duration = values("duration", False)
        first.rework_delay = values("rework_delay", False)
        first.block_delay = values("block_delay", False)
        flags = np.zeros(n, dtype=np.int64)
        for purpose, p in self._probabilities.items():
            stream = self.stream(purpose, 0)
            assert stream is not None
            flags |= np.where(stream.take(n) < p, _FLAGS[purpose], 0)
        first.flags = flags.tolist()
        first.n = n
        self.first = first

    # -- one value at a time ----------------------------------------------------------

    def _drawn(self, purpose: str, seq: int, attempt: int, scale: float = 1.0) -> int | None:
        stream = self.stream(purpose, attempt)
        if stream is None:
            return None
        return round(stream.at(seq) * scale * self._convert[purpose][1])

    def _duration(self, purpose: str, us: int | None) -> Duration | None:
        return None if us is None else Duration(self._convert[purpose][0], us)

    def service_us(self, seq: int, attempt: int, scale: float = 1.0) -> int:
        """Clerk working time (µs); ``scale`` (the case's segment) multiplies it."""
        first = self.first
        if attempt == 0 and seq < first.n:
            return first.service_us[seq]
        return self._drawn("service", seq, attempt, scale) or 0

    def lag(self, seq: int, attempt: int, scale: float = 1.0) -> Duration | None:
        """Time after the service without a clerk (site visits, circulation), scaled too."""
        return self._duration("lag", self.lag_us(seq, attempt, scale) if self.has_lag else None)

    def lag_us(self, seq: int, attempt: int, scale: float = 1.0) -> int:
        """The lag in µs on :attr:`lag_clock` (0 without a lag)."""
        first = self.first
        if attempt == 0 and seq < first.n:
            return first.lag[seq] if first.lag is not None else 0
        return self._drawn("lag", seq, attempt, scale) or 0

    def duration(self, seq: int, attempt: int) -> Duration | None:
        """An external step's length."""
        first = self.first
        if attempt == 0 and seq < first.n and first.duration is not None:
            return self._duration("duration", first.duration[seq])
        return self._duration("duration", self._drawn("duration", seq, attempt))

    def branches(self, seq: int, attempt: int) -> int:
        """Which branches this attempt takes: ``REJECT | FAULT | REWORK | BLOCK`` flags
        (only a first attempt can be blocked: arrears are settled once).

        补正 is one round at most: the applicant is told everything missing at once
        (一次性告知, plan L338), so once an attempt of the case drew ``REWORK`` no later
        attempt does — also when that attempt was pre-empted by a fault (the draw, not the
        outcome, spends the round: a rule of the draws, the same in every driver)."""
        first = self.first
        if attempt == 0 and seq < first.n:
            return first.flags[seq]
        flags = 0
        for purpose, p in self._probabilities.items():
            if purpose == "block" and attempt > 0:
                continue
            stream = self.stream(purpose, attempt)
            assert stream is not None
            if stream.at(seq) < p:
                flags |= _FLAGS[purpose]
        if flags & REWORK and any(self._drew_rework(seq, k) for k in range(attempt)):
            flags &= ~REWORK
        return flags

    def _drew_rework(self, seq: int, attempt: int) -> bool:
        first = self.first
        if attempt == 0 and seq < first.n:
            return bool(first.flags[seq] & REWORK)
        stream = self.stream("rework", attempt)
        return stream is not None and stream.at(seq) < self._probabilities["rework"]

    def rework_delay(self, seq: int, attempt: int) -> Duration | None:
        """How long the applicant takes to correct the materials (when reworked)."""
        first = self.first
        if attempt == 0 and seq < first.n and first.rework_delay is not None:
            return self._duration("rework_delay", first.rework_delay[seq])
        return self._duration("rework_delay", self._drawn("rework_delay", seq, attempt))

    def block_delay(self, seq: int) -> Duration | None:
        """How long arrears take to settle (when the first attempt is blocked)."""
        first = self.first
        if seq < first.n and first.block_delay is not None:
            return self._duration("block_delay", first.block_delay[seq])
        return self._duration("block_delay", self._drawn("block_delay", seq, 0))

    def misses_deadline(self, seq: int, attempt: int) -> bool:
        """容缺: whether the applicant's part (an external step's duration) takes longer
        than the step's deadline (False without one)."""
        if "deadline" not in self._dists:
            return False
        duration = self.duration(seq, attempt)
        deadline = self._drawn("deadline", seq, 0)
        return duration is not None and deadline is not None and duration.us > deadline

    def deadline(self, seq: int) -> Duration | None:
        """The 容缺 deadline of the case (None without one)."""
        return self._duration("deadline", self._drawn("deadline", seq, 0))

    def draw(self, seq: int, attempt: int, time_scale: float = 1.0) -> StepDraw:
        """Everything drawn for attempt ``attempt`` (0-based) of case ``seq``."""
        flags = self.branches(seq, attempt)
        return StepDraw(
            service_us=self.service_us(seq, attempt, time_scale),
            lag=self.lag(seq, attempt, time_scale),
            duration=self.duration(seq, attempt),
            rework=bool(flags & REWORK),
            rework_delay=self.rework_delay(seq, attempt) if flags & REWORK else None,
            reject=bool(flags & REJECT),
            block_delay=self.block_delay(seq) if flags & BLOCK else None,
            fault=bool(flags & FAULT),
        )


def expected_attempts(timing: StepTiming) -> float:
    """Mean attempts at a step with 补正 probability p: 1 + p (one round at most)."""
    p = timing.rework.probability if timing.rework else 0.0
    return 1.0 + p
