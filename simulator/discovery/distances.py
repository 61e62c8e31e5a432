"""``govflow validate``: how far a simulated log is from a real one, per matter, in the
log distances of business-process simulation (log-distance-measures, the package Simod
scores its models with):

* cycle-time EMD — the Wasserstein distance between the cases' cycle times, in hours
  (1-hour bins);
* absolute-hourly EMD — between the logs' event timestamps, discretised to the hour;
* circadian EMD — between the events' hours of day, weekday by weekday;
* control flow — the CFLD (mean Damerau–Levenshtein distance of optimally paired
  traces, on a sample of cases) and the 3-gram distribution distance.

Both logs are read with :func:`simulator.discovery.eventlog.read_log`, so a real log
may be CSV or XES and is checked the same way.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from log_distance_measures.absolute_event_distribution import absolute_event_distribution_distance
from log_distance_measures.circadian_event_distribution import (
    circadian_event_distribution_distance,
)
from log_distance_measures.config import EventLogIDs
from log_distance_measures.control_flow_log_distance import control_flow_log_distance
from log_distance_measures.cycle_time_distribution import cycle_time_distribution_distance
from log_distance_measures.n_gram_distribution import n_gram_distribution_distance

from simulator.discovery.eventlog import EventLog

IDS = EventLogIDs(
    case="case", activity="activity", start_time="start", end_time="end", resource="resource"
)
#: Cases per log the CFLD pairs (it is quadratic in them); drawn with a fixed seed.
CFLD_CASES = 200
#: Cases per matter and log the other measures compare (a seeded sample of a larger
#: log: the measures loop over events in Python; the sampling noise is in the docs).
SAMPLE_CASES = 1000
#: Cases per matter and log the 3-gram distance counts (it sorts each case in Python).
NGRAM_CASES = 400
#: Matters whose median case is shorter than this get 3-minute cycle-time bins.
SHORT_CASE_H = 10.0
#: Fewest cases of a matter in each log for its distances to be worth reporting.
MIN_CASES = 5
MEASURES = ("cycle_time_emd_h", "absolute_hourly_emd_h", "circadian_emd_h", "cfld", "ngram_3")


@dataclass
class MatterDistances:
    matter: str
    real_cases: int
    simulated_cases: int
    distances: dict[str, float]
    compared: tuple[int, int]  # cases of each log the measures saw (a sample of big logs)
    cycle_times_h: tuple[list[float], list[float]] = field(repr=False)  # real, simulated

    def as_dict(self) -> dict[str, Any]:
        real, sim = self.cycle_times_h
        return {
            "real_cases": self.real_cases,
            "simulated_cases": self.simulated_cases,
            "compared_cases": list(self.compared),
            **{k: round(v, 4) for k, v in self.distances.items()},
            "cycle_time_mean_h": {
                "real": round(float(np.mean(real)), 3) if real else None,
                "simulated": round(float(np.mean(sim)), 3) if sim else None,
            },
        }


def _frame(rows: pd.DataFrame, cases: int, seed: int) -> pd.DataFrame:
    """One matter's attempts (``rows``) as the measures read them, on a sample of cases."""
    names = rows["case"].unique()
    if len(names) > cases:
        rng = np.random.default_rng(seed)
        rows = rows[rows["case"].isin(rng.choice(names, cases, replace=False))]
    end = rows["end"].to_numpy()
    start = rows["start"].fillna(rows["end"]).to_numpy()
    # local wall-clock time, timezone-naive (the measures bin hours of day and weekdays)
    to_local = lambda s: pd.to_datetime((s + 8 * 3600) * 1e9, unit="ns")  # noqa: E731
    return pd.DataFrame(
        {
            "case": rows["case"].to_numpy(),
            "activity": rows["step"].to_numpy(),
            "start": to_local(start),
            "end": to_local(end),
            "resource": rows["resource"].to_numpy(),
        }
    )


def _cycle_times_h(rows: pd.DataFrame) -> list[float]:
    """Every case's cycle time (first start to last completion), hours, whole log."""
    first = rows["start"].fillna(rows["end"]).groupby(rows["case"]).min()
    last = rows["end"].groupby(rows["case"]).max()
    return ((last - first) / 3600).tolist()


def _sample_cases(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    cases = frame["case"].unique()
    if len(cases) <= n:
        return frame
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(cases, n, replace=False).tolist())
    return frame[frame["case"].isin(keep)]


def cycle_time_bin_h(frame: pd.DataFrame) -> float:
    """The cycle-time histogram's bin: an hour, or 3 minutes for a matter whose median
    case takes less than :data:`SHORT_CASE_H` hours (customs clears in minutes)."""
    grouped = frame.groupby("case")
    spans = (grouped["end"].max() - grouped["start"].min()).to_numpy(dtype="timedelta64[s]")
    median_h = float(np.median(spans.astype(np.int64))) / 3600 if len(spans) else 0.0
    return 1.0 if median_h >= SHORT_CASE_H else 0.05


def measure(a: pd.DataFrame, b: pd.DataFrame, seed: int) -> dict[str, float]:
    """The five distances between two logs of one matter (log-distance-measures)."""
    distances: dict[str, float] = {}
    bin_h = cycle_time_bin_h(a)
    distances["cycle_time_emd_h"] = bin_h * cycle_time_distribution_distance(
        a, IDS, b, IDS, bin_size=timedelta(hours=bin_h)
    )
    distances["cycle_time_bin_h"] = bin_h
    distances["absolute_hourly_emd_h"] = absolute_event_distribution_distance(a, IDS, b, IDS)
    distances["circadian_emd_h"] = circadian_event_distribution_distance(a, IDS, b, IDS)
    n = min(CFLD_CASES, a["case"].nunique(), b["case"].nunique())
    distances["cfld"] = control_flow_log_distance(
        _sample_cases(a, n, seed), IDS, _sample_cases(b, n, seed), IDS, parallel=False
    )
    n = min(NGRAM_CASES, a["case"].nunique(), b["case"].nunique())
    distances["ngram_3"] = n_gram_distribution_distance(
        _sample_cases(a, n, seed + 1), IDS, _sample_cases(b, n, seed + 1), IDS, n=3
    )
    return {k: float(v) for k, v in distances.items()}


def _measure_job(job: tuple[pd.DataFrame, pd.DataFrame, int]) -> dict[str, float]:
    return measure(*job)


def log_distances(
    real: EventLog,
    simulated: EventLog,
    seed: int = 0,
    cases: int = SAMPLE_CASES,
    workers: int | None = None,
) -> list[MatterDistances]:
    """The distances of every matter both logs have (with at least :data:`MIN_CASES`),
    matters measured in parallel on ``workers`` processes (default: the machine's cores,
    at most 4); the result does not depend on them."""
    counts_real = real.attempts.groupby("matter")["case"].nunique()
    counts_sim = simulated.attempts.groupby("matter")["case"].nunique()
    matters = sorted(
        str(m)
        for m in set(counts_real.index) & set(counts_sim.index)
        if counts_real[m] >= MIN_CASES and counts_sim[m] >= MIN_CASES
    )
    real_rows = dict(tuple(real.attempts.groupby("matter", sort=False)))
    simulated_rows = dict(tuple(simulated.attempts.groupby("matter", sort=False)))
    jobs = [
        (_frame(real_rows[m], cases, seed), _frame(simulated_rows[m], cases, seed), seed)
        for m in matters
    ]
    workers = workers or min(4, os.cpu_count() or 1)
    if workers > 1 and len(jobs) > 1:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            measured = list(pool.map(_measure_job, jobs))
    else:
        measured = [_measure_job(job) for job in jobs]
    return [
        MatterDistances(
            m,
            int(counts_real[m]),
            int(counts_sim[m]),
            distances,
            (int(a["case"].nunique()), int(b["case"].nunique())),
            (_cycle_times_h(real_rows[m]), _cycle_times_h(simulated_rows[m])),
        )
        for m, (a, b, _), distances in zip(matters, jobs, measured, strict=True)
    ]


def only_in_one(real: EventLog, simulated: EventLog) -> dict[str, list[str]]:
    a, b = set(real.matters()), set(simulated.matters())
    return {"only_real": sorted(a - b), "only_simulated": sorted(b - a)}


def cycle_time_svg(results: list[MatterDistances], prefix: str) -> str | None:
    """Both cycle-time distributions of every matter, one small panel each (ECDFs on a
    log scale of hours, at 400 quantiles), as one inline SVG."""
    if not results:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    from simulator.report.charts import svg_of

    columns = 4
    rows = math.ceil(len(results) / columns)
    fig = Figure(figsize=(3.0 * columns, 2.2 * rows))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, result in zip(axes, results, strict=False):
        for values, label, style in (
            (result.cycle_times_h[0], "real", "-"),
            (result.cycle_times_h[1], "simulated", "--"),
        ):
            if not values:
                continue
            share = np.linspace(0, 1, min(len(values), 400))
            x = np.quantile(np.maximum(np.asarray(values), 1e-3), share)
            ax.step(x, share, style, where="post", label=label)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels pile up on short spans
        ax.set_title(result.matter, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(results) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.supxlabel("cycle time (h, log scale)", fontsize=8)
    fig.supylabel("share of cases ≤", fontsize=8)
    fig.tight_layout()
    return svg_of(fig, prefix, "cycle-time distributions per matter, real and simulated")


def summary_row(result: MatterDistances) -> dict[str, Any]:
    return {"matter": result.matter, **result.as_dict()}
