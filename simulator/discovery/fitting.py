"""Fitting a duration distribution from observations: the scenario schema's families by
maximum likelihood (scipy.stats), the best by AIC, a Kolmogorov–Smirnov distance as the
goodness of fit, and ``empirical`` (observed quantiles) when no family fits.

Also the uncertainty of what was fitted: the standard error of the mean, and a Wilson
interval for a branch probability.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

#: Largest sample a likelihood fit uses (a random subsample beyond; the mean and the
#: spread are still from every observation).
FIT_SAMPLE = 20_000
#: A family fits when its KS distance is at most this, or within sampling noise
#: (the 99 % critical value 1.63 / sqrt(n)) of zero.
KS_FITS = 0.05
#: Quantiles an ``empirical`` distribution keeps.
EMPIRICAL_POINTS = 200
#: Families fitted (the schema's kinds with a likelihood; ``fixed`` when every value is
#: the same).
FAMILIES = ("gamma", "lognormal", "exponential", "uniform")


@dataclass
class Fit:
    """A fitted distribution as the scenario schema writes it, and how it was found."""

    spec: dict[str, object]  # kind + parameters + unit
    n: int
    mean: float
    sd: float
    se_mean: float
    ks: float | None  # KS distance of the chosen family (None: fixed or empirical)
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "distribution": self.spec,
            "observations": self.n,
            "mean": _round(self.mean),
            "sd": _round(self.sd),
            "se_mean": _round(self.se_mean),
            "ci95_mean": [
                _round(self.mean - 1.96 * self.se_mean),
                _round(self.mean + 1.96 * self.se_mean),
            ],
            "ks_distance": None if self.ks is None else round(self.ks, 4),
            "candidates": self.candidates,
        }


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def fit_duration(values: np.ndarray, unit: str, seed: int = 0) -> Fit:
    """The best of :data:`FAMILIES` for ``values`` (> 0 mostly; zeros are allowed)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    values = np.clip(values, 0.0, None)
    n = len(values)
    if n == 0:
        raise ValueError("no observations")
    mean = float(values.mean())
    sd = float(values.std(ddof=1)) if n > 1 else 0.0
    se = sd / math.sqrt(n) if n > 1 else 0.0
    if n == 1 or sd <= 1e-9 * max(mean, 1e-12):
        return Fit({"kind": "fixed", "value": _round(mean), "unit": unit}, n, mean, sd, se, None)
    rng = np.random.default_rng(seed)
    sample = rng.choice(values, FIT_SAMPLE, replace=False) if n > FIT_SAMPLE else values
    positive = sample[sample > 0]
    candidates: dict[str, dict[str, float]] = {}
    specs: dict[str, dict[str, object]] = {}
    cv = sd / mean if mean > 0 else 0.0
    for family in FAMILIES:
        fitted = _fit_family(family, positive, mean, cv)
        if fitted is None:
            continue
        frozen, spec = fitted
        with np.errstate(divide="ignore"):
            loglik = float(np.sum(frozen.logpdf(positive)))
        if not math.isfinite(loglik):
            continue
        k = 1 if family == "exponential" else 2
        ks = float(stats.kstest(positive[:5000], frozen.cdf).statistic)
        candidates[family] = {
            "loglik": round(loglik, 2),
            "aic": round(2 * k - 2 * loglik, 2),
            "ks_distance": round(ks, 4),
        }
        specs[family] = {**spec, "unit": unit}
    threshold = max(KS_FITS, 1.63 / math.sqrt(min(len(positive), 5000)))
    fitting = {f: c for f, c in candidates.items() if c["ks_distance"] <= threshold}
    zeros = float(np.mean(sample <= 0))
    if fitting and zeros < 0.01:
        best = min(fitting, key=lambda f: fitting[f]["aic"])
        return Fit(specs[best], n, mean, sd, se, fitting[best]["ks_distance"], candidates)
    quantiles = np.quantile(values, (np.arange(EMPIRICAL_POINTS) + 0.5) / EMPIRICAL_POINTS)
    spec = {"kind": "empirical", "values": [_round(max(q, 0.0)) for q in quantiles], "unit": unit}
    return Fit(spec, n, mean, sd, se, None, candidates)


def _fit_family(
    family: str, positive: np.ndarray, mean: float, cv: float
) -> tuple[Any, dict[str, object]] | None:
    """MLE with the location at zero; the spec in the schema's mean/cv form."""
    if len(positive) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if family == "exponential":
            _, scale = stats.expon.fit(positive, floc=0)
            return stats.expon(scale=scale), {"kind": "exponential", "mean": _round(scale)}
        if family == "uniform":
            low, high = float(positive.min()), float(positive.max())
            if high <= low:
                return None
            spec = {"kind": "uniform", "low": _round(low), "high": _round(high)}
            return stats.uniform(loc=low, scale=high - low), spec
        if family == "lognormal":
            logs = np.log(positive)
            mu, sigma = float(logs.mean()), float(logs.std())
            if sigma <= 0:
                return None
            m = math.exp(mu + sigma**2 / 2)
            c = math.sqrt(math.expm1(sigma**2))
            return (
                stats.lognorm(s=sigma, scale=math.exp(mu)),
                {"kind": "lognormal", "mean": _round(m), "cv": _round(c)},
            )
        shape, _, scale = stats.gamma.fit(positive, floc=0)
        if not (shape > 0 and scale > 0):
            return None
        return (
            stats.gamma(shape, scale=scale),
            {"kind": "gamma", "mean": _round(shape * scale), "cv": _round(1 / math.sqrt(shape))},
        )


def fit_left_censored(
    exact: np.ndarray,
    bound_of_exact: np.ndarray,
    censored: np.ndarray,
    unit: str,
    seed: int = 0,
    lower: np.ndarray | None = None,
) -> Fit:
    """Maximum likelihood with left-censored observations: ``exact`` values were seen
    because they exceeded their ``bound_of_exact``; of the ``censored`` ones only that
    they are at most the bound is known — or, where ``lower`` is positive, that they lie
    between it and the bound (interval-censored; scipy.stats.CensoredData).

    Goodness of fit: the KS distance of the exact values' probability integral
    transform given that they exceeded their bounds, ``(F(s) − F(w)) / (1 − F(w))``,
    against the uniform distribution."""
    rng = np.random.default_rng(seed)
    exact = np.asarray(exact, dtype=float)
    bounds = np.clip(np.asarray(bound_of_exact, dtype=float), 0.0, None)
    censored = np.asarray(censored, dtype=float)
    floors = np.zeros(len(censored)) if lower is None else np.asarray(lower, dtype=float)
    keep = exact > 0
    exact, bounds = exact[keep], bounds[keep]
    positive = censored > 0
    censored, floors = censored[positive], np.clip(floors[positive], 0.0, None)
    floors = np.minimum(floors, censored)
    n = len(exact) + len(censored)
    if len(exact) > FIT_SAMPLE // 4:
        pick = rng.choice(len(exact), FIT_SAMPLE // 4, replace=False)
        exact_fit, bounds_fit = exact[pick], bounds[pick]
    else:
        exact_fit, bounds_fit = exact, bounds
    if len(censored) > FIT_SAMPLE // 4:
        pick = rng.choice(len(censored), FIT_SAMPLE // 4, replace=False)
        censored_fit, floors_fit = censored[pick], floors[pick]
    else:
        censored_fit, floors_fit = censored, floors
    between = (floors_fit > 0) & (floors_fit < censored_fit)
    left_fit = censored_fit[~between]
    interval_fit = np.column_stack([floors_fit[between], censored_fit[between]])
    data = stats.CensoredData(
        uncensored=exact_fit, left=left_fit, interval=interval_fit if len(interval_fit) else None
    )
    candidates: dict[str, dict[str, float]] = {}
    best: tuple[float, str, Any, dict[str, object]] | None = None
    for family, dist in (
        ("gamma", stats.gamma),
        ("lognormal", stats.lognorm),
        ("exponential", stats.expon),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                params = dist.fit(data, floc=0)
            except (ValueError, RuntimeError, FloatingPointError):
                continue
        frozen = dist(*params)
        with np.errstate(divide="ignore"):
            mass = frozen.cdf(interval_fit[:, 1]) - frozen.cdf(interval_fit[:, 0])
            loglik = float(
                np.sum(frozen.logpdf(exact_fit))
                + np.sum(frozen.logcdf(left_fit))
                + np.sum(np.log(np.maximum(mass, 1e-300)))
            )
        if not math.isfinite(loglik):
            continue
        k = 1 if family == "exponential" else 2
        tail = frozen.sf(bounds_fit)
        ok = tail > 1e-12
        pit = (frozen.cdf(exact_fit[ok]) - frozen.cdf(bounds_fit[ok])) / tail[ok]
        ks = float(stats.kstest(pit[:5000], "uniform").statistic) if ok.any() else 1.0
        aic = 2 * k - 2 * loglik
        candidates[family] = {
            "loglik": round(loglik, 2),
            "aic": round(aic, 2),
            "ks_distance": round(ks, 4),
        }
        mean, sd = float(frozen.mean()), float(frozen.std())
        spec: dict[str, object]
        if family == "exponential":
            spec = {"kind": "exponential", "mean": _round(mean)}
        else:
            spec = {"kind": family, "mean": _round(mean), "cv": _round(sd / mean)}
        if best is None or aic < best[0]:
            best = (aic, family, frozen, {**spec, "unit": unit})
    if best is None:
        raise ValueError("no family could be fitted to the censored observations")
    _, family, frozen, spec = best
    mean, sd = float(frozen.mean()), float(frozen.std())
    se = sd / math.sqrt(max(len(exact), 1))
    return Fit(spec, n, mean, sd, se, candidates[family]["ks_distance"], candidates)
