"""One step's randomness and timing rules, shared by the capacity engine and the services.

A :class:`StepModel` knows, for one (scenario, seed, matter, step), every random
quantity a case may need at that step — clerk time, lag, external duration, rework,
rejection, blocking and their delays — as values of named streams indexed by the
case's sequence number (see :mod:`services.core.timing`).  :func:`advance` moves an
instant forward by a :class:`~services.core.timing.Duration` on a calendar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from services.core.calendar import WorkingCalendar
from services.core.catalog import Step
from services.core.scenario import Scenario, StepTiming
from services.core.timing import (
    Distribution,
    DrawStream,
    Duration,
    to_duration,
    uniform_sampler,
)

_DAY_US = 86_400_000_000


class StepDraw(NamedTuple):
    """What happens to one case at one attempt of one step."""

    service: Duration | None  # clerk time (None for external steps)
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


class StepModel:
    """Reproducible draws for one step of one matter under one scenario and seed."""

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
        self.timing: StepTiming = scenario.timing[matter_id][step.id]
        self.seed = seed
        self.calendar = calendar
        continuous = calendar.day_us == _DAY_US
        t = self.timing
        self._dists: dict[str, Distribution] = {
            purpose: dist
            for purpose, dist in (
                ("service", t.service),
                ("lag", t.lag),
                ("duration", t.duration),
                ("rework_delay", t.rework.delay if t.rework else None),
                ("block_delay", t.block.delay if t.block else None),
            )
            if dist is not None
        }
        # each duration purpose converts with a fixed factor to a fixed clock
        self._convert: dict[str, tuple[str, float]] = {}
        for purpose, dist in self._dists.items():
            unit = to_duration(1.0, dist.unit, calendar.day_us, continuous)
            self._convert[purpose] = (unit.clock, float(unit.us))
        self._probabilities = {
            purpose: branch.probability
            for purpose, branch in (
                ("rework", t.rework),
                ("reject", t.reject),
                ("block", t.block),
                ("fault", t.fault),
            )
            if branch is not None and branch.probability > 0
        }
        self._streams: dict[tuple[str, int], DrawStream] = {}
        self._n = 0
        self._values: dict[str, list[float]] = {}
        self._flags: dict[str, list[bool]] = {}

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

    def prepare(self, n: int) -> None:
        """Draw the first attempt of ``n`` cases in bulk (the capacity engine's fast path)."""
        self._n = n
        for purpose in self._dists:
            stream = self.stream(purpose, 0)
            assert stream is not None
            self._values[purpose] = stream.take(n).tolist()
        for purpose, p in self._probabilities.items():
            stream = self.stream(purpose, 0)
            assert stream is not None
            self._flags[purpose] = (stream.take(n) < p).tolist()
        self._first = self._first_attempt_reader()

    def _first_attempt_reader(self) -> Callable[[int, float], StepDraw]:
        """A specialised reader of the prepared first attempts (the engine's hot path)."""
        values, flags, convert = self._values, self._flags, self._convert

        def reader(purpose: str) -> tuple[list[float] | None, str, float]:
            clock, per = convert.get(purpose, ("working", 0.0))
            return values.get(purpose), clock, per

        sv, sc, sp = reader("service")
        lv, lc, lp = reader("lag")
        dv, dc, dp = reader("duration")
        rv, rc, rp = reader("rework_delay")
        bv, bc, bp = reader("block_delay")
        rework, reject, block = flags.get("rework"), flags.get("reject"), flags.get("block")
        fault = flags.get("fault")

        def first(seq: int, scale: float) -> StepDraw:
            again = rework is not None and rework[seq]
            blocked = block is not None and block[seq]
            return StepDraw(
                Duration(sc, round(sv[seq] * scale * sp)) if sv is not None else None,
                Duration(lc, round(lv[seq] * scale * lp)) if lv is not None else None,
                Duration(dc, round(dv[seq] * dp)) if dv is not None else None,
                again,
                Duration(rc, round(rv[seq] * rp)) if again and rv is not None else None,
                reject is not None and reject[seq],
                Duration(bc, round(bv[seq] * bp)) if blocked and bv is not None else None,
                fault is not None and fault[seq],
            )

        return first

    def _value(self, purpose: str, seq: int, attempt: int) -> float | None:
        if attempt == 0 and seq < self._n:
            values = self._values.get(purpose)
            return None if values is None else values[seq]
        stream = self.stream(purpose, attempt)
        return None if stream is None else stream.at(seq)

    def _flag(self, purpose: str, seq: int, attempt: int) -> bool:
        if purpose not in self._probabilities:
            return False
        if attempt == 0 and seq < self._n:
            return self._flags[purpose][seq]
        stream = self.stream(purpose, attempt)
        assert stream is not None
        return stream.at(seq) < self._probabilities[purpose]

    def _duration(
        self, purpose: str, seq: int, attempt: int, scale: float = 1.0
    ) -> Duration | None:
        value = self._value(purpose, seq, attempt)
        if value is None:
            return None
        clock, per = self._convert[purpose]
        return Duration(clock, round(value * scale * per))  # type: ignore[arg-type]

    def draw(self, seq: int, attempt: int, time_scale: float = 1.0) -> StepDraw:
        """What happens at attempt ``attempt`` (0-based) for the case with sequence ``seq``;
        ``time_scale`` (the case's segment) multiplies clerk time and lag."""
        if attempt == 0 and seq < self._n:
            return self._first(seq, time_scale)
        rework = self._flag("rework", seq, attempt)
        blocked = attempt == 0 and self._flag("block", seq, 0)
        return StepDraw(
            service=self._duration("service", seq, attempt, time_scale),
            lag=self._duration("lag", seq, attempt, time_scale),
            duration=self._duration("duration", seq, attempt),
            rework=rework,
            rework_delay=self._duration("rework_delay", seq, attempt) if rework else None,
            reject=self._flag("reject", seq, attempt),
            block_delay=self._duration("block_delay", seq, 0) if blocked else None,
            fault=self._flag("fault", seq, attempt),
        )

    def mean_service_us(self) -> float:
        """Expected clerk time per attempt (µs of working time), for capacity estimates."""
        dist = self.timing.service
        if dist is None:
            return 0.0
        return float(
            to_duration(dist.mean_value(), dist.unit, self.calendar.day_us, self._continuous).us
        )


def expected_attempts(timing: StepTiming) -> float:
    """Mean attempts at a step with rework probability p: 1 / (1 - p)."""
    p = timing.rework.probability if timing.rework else 0.0
    return 1.0 / (1.0 - p)
