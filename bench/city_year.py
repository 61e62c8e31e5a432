"""One replication of the default city-year (``scenarios/shangrao-2021.yaml``).

Each repetition runs in a fresh interpreter (this script re-invokes itself with
``--worker``), so the peak RSS is that of one replication and nothing is cached from an
earlier one.  The worker loads the catalog and the scenario (not timed), then times
``run_replication`` (the simulation) and ``measure_replication`` (turning it into the
per-target statistics) separately, and reports the simulated cases, the step attempts
(``len(rep.steps)``) and its peak RSS.  Every repetition uses the scenario's own seed, so
all do the same work.  Last line: one JSON object with the medians.

    .venv/bin/python bench/city_year.py [--runs 3] [--scenario scenarios/shangrao-2021.yaml]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, emit_json, goal_line, last_json_line, median, peak_rss_mib, rounded

GOAL_SECONDS = 10.0
DEFAULT_SCENARIO = ROOT / "scenarios" / "shangrao-2021.yaml"


def worker(scenario_path: Path, seed: int | None) -> int:
    import numpy.random  # noqa: F401  (imports are not timed)

    from services.core.catalog import default_catalog
    from services.core.scenario import load_scenario
    from simulator.engine import run_replication
    from simulator.montecarlo import measure_replication

    catalog = default_catalog()
    scenario = load_scenario(scenario_path, catalog)
    seed = scenario.seed if seed is None else seed
    t0 = time.perf_counter()
    rep = run_replication(catalog, scenario, seed)
    simulate = time.perf_counter() - t0
    t0 = time.perf_counter()
    measure_replication(catalog, scenario, rep)
    measure = time.perf_counter() - t0
    emit_json(
        {
            "seed": seed,
            "simulate_s": rounded(simulate),
            "measure_s": rounded(measure),
            "cases": rep.cases,
            "step_attempts": len(rep.steps),
            "peak_rss_mib": rounded(peak_rss_mib(), 1),
        }
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--seed", type=int, default=None, help="default: the scenario's seed")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.scenario, args.seed)

    command = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    command += ["--scenario", str(args.scenario.resolve())]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    print(f"one replication of {args.scenario}, {args.runs} runs, each in a fresh process")
    rows: list[dict[str, Any]] = []
    for i in range(args.runs):
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return done.returncode
        row = last_json_line(done.stdout)
        rows.append(row)
        print(
            f"  run {i}: simulate {row['simulate_s']:.2f} s, measure {row['measure_s']:.2f} s, "
            f"{row['cases']:,} cases, {row['step_attempts']:,} step attempts, "
            f"peak RSS {row['peak_rss_mib']:.0f} MiB"
        )

    figures: dict[str, Any] = {
        "benchmark": "city_year",
        "scenario": str(args.scenario.resolve().relative_to(ROOT))
        if args.scenario.resolve().is_relative_to(ROOT)
        else str(args.scenario),
        "seed": rows[0]["seed"],
        "runs": args.runs,
        "simulate_s_median": rounded(median([r["simulate_s"] for r in rows])),
        "measure_s_median": rounded(median([r["measure_s"] for r in rows])),
        "cases": rows[0]["cases"],
        "step_attempts": rows[0]["step_attempts"],
        "simulate_plus_measure_s_median": rounded(
            median([r["simulate_s"] + r["measure_s"] for r in rows])
        ),
        "peak_rss_mib_median": rounded(median([r["peak_rss_mib"] for r in rows]), 1),
        "simulate_s_per_run": [r["simulate_s"] for r in rows],
    }
    figures["cases_per_s"] = round(figures["cases"] / figures["simulate_s_median"], 1)
    print(
        f"median: simulate {figures['simulate_s_median']:.2f} s "
        f"({figures['cases_per_s']:,.0f} cases/s), measure {figures['measure_s_median']:.2f} s "
        f"(both: {figures['simulate_plus_measure_s_median']:.2f} s), "
        f"peak RSS {figures['peak_rss_mib_median']:.0f} MiB"
    )
    figures["goal_seconds"] = GOAL_SECONDS
    figures["goal_met"] = goal_line(
        "one replication (run_replication)",
        figures["simulate_s_median"],
        GOAL_SECONDS,
        at_least=False,
        unit=" s",
    )
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
