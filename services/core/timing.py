"""Step timing: service-time distributions and reproducible per-case draws.

Both engines must draw *the same* durations for the same case, so that a live replay
and a simulation of one scenario and seed agree case by case.  Every random quantity
therefore comes from a named stream — ``(seed, matter, step, purpose, attempt)`` — and a
case takes the value at its *sequence number* within its matter (the order in which the
demand model generated it).  A stream is a numpy ``Generator`` seeded from a stable
hash of its name; numpy draws the same sequence whether it is asked for values one
chunk at a time (a live service) or all at once (the simulation engine).

Durations resolve to one of two clocks:

* ``working`` — minutes, hours or working days of the department's calendar (clerk work,
  lags, the applicant's return after 补正 rework, arrears settlement);
* ``clock`` — calendar days (contract periods, comment periods), or any unit on a 24/7
  calendar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

DurationUnit = Literal["minutes", "hours", "working_days", "calendar_days"]
Clock = Literal["working", "clock"]
_US_PER = {"minutes": 60_000_000, "hours": 3_600_000_000, "calendar_days": 86_400_000_000}


class _Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: DurationUnit = "minutes"

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def mean_value(self) -> float:  # pragma: no cover
        raise NotImplementedError


class Fixed(_Distribution):
    kind: Literal["fixed"]
    value: float = Field(ge=0)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, self.value)

    def mean_value(self) -> float:
        return self.value


class Exponential(_Distribution):
    kind: Literal["exponential"]
    mean: float = Field(gt=0)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean, size)

    def mean_value(self) -> float:
        return self.mean


class LogNormal(_Distribution):
    """Log-normal given by its mean and coefficient of variation (sd / mean)."""

    kind: Literal["lognormal"]
    mean: float = Field(gt=0)
    cv: float = Field(gt=0)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        sigma2 = np.log1p(self.cv**2)
        return rng.lognormal(np.log(self.mean) - sigma2 / 2, np.sqrt(sigma2), size)

    def mean_value(self) -> float:
        return self.mean


class Gamma(_Distribution):
    """Gamma given by its mean and coefficient of variation (shape = 1/cv²)."""

    kind: Literal["gamma"]
    mean: float = Field(gt=0)
    cv: float = Field(gt=0)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        shape = 1 / self.cv**2
        return rng.gamma(shape, self.mean / shape, size)

    def mean_value(self) -> float:
        return self.mean


class Triangular(_Distribution):
    kind: Literal["triangular"]
    low: float = Field(ge=0)
    mode: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not (self.low <= self.mode <= self.high and self.low < self.high):
            raise ValueError("triangular needs low <= mode <= high and low < high")
        return self

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.triangular(self.low, self.mode, self.high, size)

    def mean_value(self) -> float:
        return (self.low + self.mode + self.high) / 3


class Uniform(_Distribution):
    kind: Literal["uniform"]
    low: float = Field(ge=0)
    high: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.low < self.high:
            raise ValueError("uniform needs low < high")
        return self

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size)

    def mean_value(self) -> float:
        return (self.low + self.high) / 2


class Empirical(_Distribution):
    """Resamples observed durations (e.g. from a service centre's log)."""

    kind: Literal["empirical"]
    values: tuple[Annotated[float, Field(ge=0)], ...] = Field(min_length=1)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(np.asarray(self.values, dtype=float), size)

    def mean_value(self) -> float:
        return float(np.mean(self.values))


Distribution = Annotated[
    Fixed | Exponential | LogNormal | Gamma | Triangular | Uniform | Empirical,
    Field(discriminator="kind"),
]


class Duration(NamedTuple):
    """An amount of time on one of the two clocks, in integer microseconds."""

    clock: Clock
    us: int


def to_duration(
    value: float, unit: DurationUnit, working_day_us: int, continuous: bool
) -> Duration:
    """One drawn value in ``unit`` → a :class:`Duration` for a calendar.

    ``continuous`` calendars (24/7) have no off-hours, so every unit is clock time.
    """
    if unit == "calendar_days" or continuous:
        per = 86_400_000_000 if unit in ("calendar_days", "working_days") else _US_PER[unit]
        return Duration("clock", round(value * per))
    per = working_day_us if unit == "working_days" else _US_PER[unit]
    return Duration("working", round(value * per))


def stream_seed(seed: int, *name: str | int) -> np.random.SeedSequence:
    """A seed sequence for a named stream, stable across processes and platforms."""
    digest = hashlib.blake2b("\x1f".join(map(str, name)).encode(), digest_size=16).digest()
    return np.random.SeedSequence(
        [seed % 2**64, int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")]
    )


class DrawStream:
    """The values of one named stream, extended lazily; value ``k`` never changes."""

    def __init__(
        self,
        seed: int,
        name: tuple[str | int, ...],
        sampler: Callable[[np.random.Generator, int], np.ndarray],
        chunk: int = 256,
    ) -> None:
        self._rng = np.random.Generator(np.random.PCG64(stream_seed(seed, *name)))
        self._sampler = sampler
        self._chunk = chunk
        self._values = np.empty(0)

    def take(self, n: int) -> np.ndarray:
        """The first ``n`` values."""
        if n > len(self._values):
            # grow geometrically: a live service asks for ever later sequence numbers
            need = max(n - len(self._values), len(self._values), self._chunk)
            self._values = np.concatenate([self._values, self._sampler(self._rng, need)])
        return self._values[:n]

    def at(self, k: int) -> float:
        if k >= len(self._values):
            self.take(k + 1)
        return float(self._values[k])


def uniform_sampler(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.random(size)
