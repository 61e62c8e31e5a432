"""Discovery's estimators on samples with known parameters: duration families by
likelihood, left-censored services, Wilson intervals, the arrival profile."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from services.core.catalog import load_catalog
from services.core.scenario import scenario_from_dict
from simulator.demand import generate_demand
from simulator.discovery.arrivals import fit_demand
from simulator.discovery.fitting import fit_duration, fit_left_censored
from simulator.intervals import wilson

RNG = np.random.default_rng(20210101)


def test_gamma_sample_fits_gamma_with_its_mean_and_cv() -> None:
    fit = fit_duration(RNG.gamma(4.0, 5.0, 5000), "minutes")  # mean 20, cv 0.5
    assert fit.spec["kind"] == "gamma"
    assert fit.spec["mean"] == pytest.approx(20, rel=0.03)
    assert fit.spec["cv"] == pytest.approx(0.5, rel=0.05)
    assert fit.ks is not None and fit.ks < 0.03
    assert fit.ks < fit.candidates["exponential"]["ks_distance"]


def test_lognormal_sample_fits_lognormal() -> None:
    sigma = 0.8
    fit = fit_duration(RNG.lognormal(2.0, sigma, 5000), "hours")
    assert fit.spec["kind"] == "lognormal"
    assert fit.spec["unit"] == "hours"
    assert fit.spec["cv"] == pytest.approx(np.sqrt(np.expm1(sigma**2)), rel=0.08)


def test_constant_is_fixed_and_a_bimodal_sample_is_empirical() -> None:
    assert fit_duration(np.full(50, 7.0), "minutes").spec == {
        "kind": "fixed",
        "value": 7.0,
        "unit": "minutes",
    }
    bimodal = np.concatenate([RNG.normal(5, 0.2, 2000), RNG.normal(20, 0.5, 2000)])
    fit = fit_duration(bimodal, "minutes")
    assert fit.spec["kind"] == "empirical"
    values = np.asarray(fit.spec["values"])
    assert values.mean() == pytest.approx(bimodal.mean(), rel=0.02)
    assert min(c["ks_distance"] for c in fit.candidates.values()) > 0.05


def test_left_censored_fit_undoes_the_selection_of_the_exact_values() -> None:
    """Only services longer than an independent bound are seen exactly (the others are
    known to be at most their bound): the exact ones alone overstate the mean."""
    service = RNG.gamma(4.0, 5.0, 8000)
    bound = RNG.exponential(25.0, 8000)
    seen = service > bound
    naive = service[seen].mean()
    fit = fit_left_censored(service[seen], bound[seen], bound[~seen], "minutes")
    assert naive > 1.1 * 20  # the bias the fit must remove
    assert fit.mean == pytest.approx(20, rel=0.04)
    assert fit.spec["kind"] == "gamma"
    assert fit.ks is not None and fit.ks < 0.05


def test_wilson_interval_covers_the_proportion() -> None:
    interval = wilson(50, 1000)
    assert interval is not None
    low, high = interval
    assert low < 0.05 < high
    assert high - low == pytest.approx(2 * 1.96 * np.sqrt(0.05 * 0.95 / 1000), rel=0.05)
    assert wilson(0, 0) is None


def _scenario(profile: dict) -> object:
    return scenario_from_dict(
        {
            "name": "arrivals",
            "horizon": {"start": "2021-01-01", "end": "2021-12-31"},
            "counties": {"xinzhou": 1.0},
            "profiles": {"p": profile},
            "demand": {"tax_handling": {"per_year": 30000, "profile": "p"}},
            "departments": {"tax": {"clerks": {"xinzhou": 1}}},
            "timing": {"tax_handling": {"handle": {"service": {"kind": "fixed", "value": 1}}}},
        },
        load_catalog(),
    )


def test_arrival_profile_and_volume_are_recovered() -> None:
    hour = [0.0] * 24
    for h, w in ((9, 0.5), (10, 1.0), (11, 0.8), (14, 0.9), (15, 1.0), (16, 0.6)):
        hour[h] = w
    profile = {
        "weekday": [1.3, 1.0, 1.0, 1.0, 0.7, 0, 0],
        "hour": hour,
        "month": [1.0, 0.6, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 1.0, 1.4],
        "peaks": [{"months": [1, 4, 7, 10], "first_day": 1, "last_day": 15, "factor": 1.8}],
    }
    scenario = _scenario(profile)
    arrivals = generate_demand(scenario, seed=5)["tax_handling"].submitted  # type: ignore[arg-type]
    fit = fit_demand(
        arrivals,
        scenario.office_calendar,  # type: ignore[attr-defined]
        date(2021, 1, 1),
        date(2021, 12, 31),
    )
    assert fit.per_year == pytest.approx(30000, rel=0.02)
    weekday = np.asarray(fit.profile.weekday)
    assert weekday[:5] / weekday[:5].mean() == pytest.approx(
        np.array([1.3, 1.0, 1.0, 1.0, 0.7]) / 1.0, abs=0.06
    )
    assert weekday[5:].tolist() == [0.0, 0.0]
    assert fit.profile.month[11] / fit.profile.month[1] == pytest.approx(1.4 / 0.6, rel=0.08)
    assert np.argmax(fit.profile.hour) in (10, 15)
    assert sum(fit.profile.hour[h] for h in (0, 1, 2, 3, 12, 13, 20)) == 0
    (peak,) = [p for p in fit.profile.peaks if p.factor > 1.5]
    assert set(peak.months) == {1, 4, 7, 10}
    assert peak.factor == pytest.approx(1.8, abs=0.15)
