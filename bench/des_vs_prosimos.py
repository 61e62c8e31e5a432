"""govflow against Prosimos on the same fork/join process: cases per second.

Process: start → a → (b ∥ c) → d → end; each task has its own pool of clerks
(a, b, c: 2 clerks, mean 14 min; d: 1 clerk, mean 7 min), exponential service, Poisson
arrivals (6 an hour) around the clock, so every station runs at 70 % load.  govflow runs
:func:`~simulator.queueing.fork_join_catalog` / :func:`~simulator.queueing.fork_join_scenario`
over 70 days (≈ 10,000 cases); Prosimos runs ``bench/prosimos/fork_join.bpmn`` +
``fork_join.json`` for *exactly* the number of cases govflow simulated with the same seed.

Prosimos 2.1.0 cannot be installed next to govflow (its ``click>=8.4.2`` pin conflicts
with faust-streaming's ``click<8.4``), so it lives in ``.venv-prosimos`` (``make bench``
creates it): this script re-invokes itself with that interpreter and ``--worker``; the
worker times only the ``run_simulation`` call (its import excluded) and prints its own
JSON.  govflow's timed block is ``run_replication``.  Both engines get one short
untimed warm-up run first.

The mean cycle time (arrival to completion, first 5 % of cases in arrival order dropped)
and the mean wait at ``a`` (an M/M/2 queue: Erlang C) show the two model the same thing.
Last line: one JSON object, ``ratio`` = govflow cases/s ÷ Prosimos cases/s (medians).

    .venv/bin/python bench/des_vs_prosimos.py [--runs 3] [--days 70]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, emit_json, goal_line, last_json_line, median, peak_rss_mib, rounded

GOAL_RATIO = 10.0
HERE = Path(__file__).resolve().parent
BPMN = HERE / "prosimos" / "fork_join.bpmn"
PARAMS = HERE / "prosimos" / "fork_join.json"
PROSIMOS_PYTHON = ROOT / ".venv-prosimos" / "bin" / "python"
START = "2021-01-01T00:00:00.000+08:00"  # fixed, so Prosimos runs are reproducible
ARRIVALS_PER_HOUR = 6.0
WARMUP_SHARE = 0.05  # cycle times: drop this share of the cases, in arrival order


# --- the Prosimos side (runs under .venv-prosimos; imports nothing from govflow) ---


def worker(cases: list[int], seed: int) -> int:
    try:
        import importlib.metadata
        import random

        import numpy as np
        from prosimos.simulation_engine import run_simulation
        from prosimos.warning_logger import warning_logger
    except ImportError as exc:
        print(f"cannot import Prosimos ({exc}): run `make bench`", file=sys.stderr)
        return 2

    def once(n: int, s: int) -> tuple[float, Any]:
        random.seed(s)  # gateway shuffles
        np.random.seed(s)  # arrivals and durations (scipy .rvs on numpy's global RNG)
        warning_logger.clear_warnings()  # module-global list, grows across runs otherwise
        t0 = time.perf_counter()
        _, log_info = run_simulation(str(BPMN), str(PARAMS), n, starting_at=START)
        return time.perf_counter() - t0, log_info

    once(200, 0)  # untimed warm-up
    runs = []
    for i, n in enumerate(cases):
        wall, log_info = once(n, seed + i)
        traces = log_info.trace_list  # index = case id = arrival order
        kept = traces[int(len(traces) * WARMUP_SHARE) :]
        cycle = statistics.fmean((t.completed_at - t.started_at).total_seconds() for t in kept)
        wait_a = statistics.fmean(
            e.waiting_time for t in kept for e in t.event_list if e.task_id == "a"
        )
        runs.append(
            {
                "cases": len(traces),
                "wall_s": rounded(wall),
                "mean_cycle_min": rounded(cycle / 60, 3),
                "mean_wait_a_min": rounded(wait_a / 60, 3),
            }
        )
    emit_json(
        {
            "engine": f"prosimos {importlib.metadata.version('prosimos')}",
            "runs": runs,
            "peak_rss_mib": rounded(peak_rss_mib(), 1),
        }
    )
    return 0


# --- the govflow side and the comparison ---


def check_same_model(stations: dict[str, tuple[int, float]]) -> None:
    """The Prosimos JSON must describe the govflow scenario's stations and arrivals."""
    params = json.loads(PARAMS.read_text(encoding="utf-8"))

    def mean_s(dist: dict[str, Any]) -> float:
        assert dist["distribution_name"] == "expon", dist
        return float(dist["distribution_params"][0]["value"])

    assert mean_s(params["arrival_time_distribution"]) == 3600 / ARRIVALS_PER_HOUR
    amounts = {
        r["id"].removeprefix("clerk_"): r["amount"]
        for p in params["resource_profiles"]
        for r in p["resource_list"]
    }
    means = {t["task_id"]: mean_s(t["resources"][0]) for t in params["task_resource_distribution"]}
    for step, (clerks, minutes) in stations.items():
        if amounts.get(step) != clerks or means.get(step) != minutes * 60:
            raise SystemExit(f"{PARAMS} does not match station {step}: {clerks} × {minutes} min")


def run_govflow(catalog: Any, scenario: Any, seed: int) -> dict[str, Any]:
    from simulator.engine import run_replication

    t0 = time.perf_counter()
    rep = run_replication(catalog, scenario, seed)
    wall = time.perf_counter() - t0
    outcome = rep.outcomes["fork_join"]
    skip = int(rep.cases * WARMUP_SHARE)
    cycle = (outcome.completed - outcome.arrivals.submitted)[skip:]
    cols = rep.columns()
    step_a = [s.id for s in outcome.matter.steps].index("a")
    at_a = (cols["step"] == step_a) & (cols["seq"] >= skip)
    wait_a = (cols["start"] - cols["arrival"])[at_a]
    return {
        "cases": rep.cases,
        "wall_s": wall,
        "mean_cycle_min": float(cycle.mean() / 60),
        "mean_wait_a_min": float(wait_a.mean() / 60),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="first seed; run i uses seed + i")
    parser.add_argument("--days", type=int, default=70, help="govflow horizon (≈ 144 cases/day)")
    parser.add_argument("--prosimos-python", type=Path, default=PROSIMOS_PYTHON)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.cases, args.seed)

    if not args.prosimos_python.exists():
        print(
            f"Prosimos' virtualenv is missing ({args.prosimos_python} not found).\n"
            "Run `make bench`: it creates .venv-prosimos with prosimos==2.1.0 "
            "(Prosimos cannot be installed into .venv: click pins conflict with faust-streaming).",
            file=sys.stderr,
        )
        return 2

    import numpy.random  # noqa: F401  (imports are not timed)

    from simulator.queueing import (
        FORK_JOIN_STATIONS,
        erlang_c_wait,
        fork_join_catalog,
        fork_join_scenario,
    )

    check_same_model(FORK_JOIN_STATIONS)
    clerks_a, minutes_a = FORK_JOIN_STATIONS["a"]
    wait_a_analytic = 60 * erlang_c_wait(clerks_a, ARRIVALS_PER_HOUR, minutes_a / 60)
    catalog = fork_join_catalog()
    scenario = fork_join_scenario(
        catalog, arrivals_per_hour=ARRIVALS_PER_HOUR, days=args.days, warmup_days=0
    )
    print(
        "fork/join a → (b ∥ c) → d, "
        + ", ".join(f"{s}: {c} × {m:g} min" for s, (c, m) in FORK_JOIN_STATIONS.items())
        + f", {ARRIVALS_PER_HOUR:g} arrivals/h, 24/7; govflow horizon {args.days} days"
    )

    warm = fork_join_scenario(catalog, arrivals_per_hour=ARRIVALS_PER_HOUR, days=2, warmup_days=0)
    run_govflow(catalog, warm, 0)  # untimed warm-up
    ours = [run_govflow(catalog, scenario, args.seed + i) for i in range(args.runs)]
    for i, r in enumerate(ours):
        print(
            f"  govflow  run {i} (seed {args.seed + i}): {r['cases']:,} cases, "
            f"{r['wall_s']:.3f} s, {r['cases'] / r['wall_s']:,.0f} cases/s, "
            f"cycle {r['mean_cycle_min']:.1f} min, wait at a {r['mean_wait_a_min']:.1f} min"
        )

    command = [
        str(args.prosimos_python),
        str(Path(__file__).resolve()),
        "--worker",
        "--seed",
        str(args.seed),
        "--cases",
        *(str(r["cases"]) for r in ours),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return done.returncode
    theirs_all = last_json_line(done.stdout)
    theirs = theirs_all["runs"]
    for i, r in enumerate(theirs):
        print(
            f"  prosimos run {i} (seed {args.seed + i}): {r['cases']:,} cases, "
            f"{r['wall_s']:.3f} s, {r['cases'] / r['wall_s']:,.0f} cases/s, "
            f"cycle {r['mean_cycle_min']:.1f} min, wait at a {r['mean_wait_a_min']:.1f} min"
        )

    figures: dict[str, Any] = {
        "benchmark": "des_vs_prosimos",
        "model": "a -> (b || c) -> d, 24/7, rho 0.7 at every station",
        "runs": args.runs,
        "cases_median": int(median([r["cases"] for r in ours])),
        "same_case_counts": [r["cases"] for r in ours] == [r["cases"] for r in theirs],
        "wait_a_erlang_c_min": rounded(wait_a_analytic, 3),
    }
    for key, label, rows in (
        ("govflow", "govflow", ours),
        ("prosimos", theirs_all["engine"], theirs),
    ):
        per_s = median([r["cases"] / r["wall_s"] for r in rows])
        cycle = statistics.fmean(r["mean_cycle_min"] for r in rows)
        wait_a = statistics.fmean(r["mean_wait_a_min"] for r in rows)
        figures[key] = {
            "engine": label,
            "wall_s_median": rounded(median([r["wall_s"] for r in rows])),
            "cases_per_s": round(per_s, 1),
            "task_attempts_per_s": round(4 * per_s, 1),
            "mean_cycle_min": rounded(cycle, 2),
            "mean_wait_a_min": rounded(wait_a, 2),
        }
        print(
            f"{label:>14}: {per_s:,.0f} cases/s (median), mean cycle {cycle:.1f} min, "
            f"wait at a {wait_a:.1f} min (Erlang C {wait_a_analytic:.1f}) — means of runs"
        )
    figures["prosimos"]["worker_peak_rss_mib"] = theirs_all["peak_rss_mib"]
    ratio = figures["govflow"]["cases_per_s"] / figures["prosimos"]["cases_per_s"]
    figures["ratio"] = rounded(ratio, 3)
    gap = figures["govflow"]["mean_cycle_min"] / figures["prosimos"]["mean_cycle_min"] - 1
    figures["cycle_time_rel_diff"] = rounded(gap, 4)
    print(f"ratio govflow/prosimos cases per second: {ratio:.1f}")
    print(f"mean cycle time, govflow vs prosimos: {gap:+.1%}")
    figures["goal_ratio"] = GOAL_RATIO
    figures["goal_met"] = goal_line("ratio", ratio, GOAL_RATIO, at_least=True)
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
