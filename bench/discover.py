"""Discovery on the city year, and on a log made by another engine (Prosimos).

City year (scenarios/shangrao-2021.yaml, one replication ≈ 1.2 M step attempts):

1. the round trip — simulate (seed a) → events.csv → discover → simulate the discovered
   scenario (seed b), and the original again (seed c) as the yardstick of sampling noise:
   expected cases per matter, branch probabilities, clerks per pool, service / lag /
   duration means, each step's mean start → complete, and the cycle-time EMD of the
   discovered run over the original's second seed (the factor);
2. speed — ``govflow discover`` and ``govflow validate`` as a user runs them (the
   commands, imports included), ``--runs`` times each, medians; goals 60 s and 30 s.

Prosimos: ``bench/prosimos_log.py`` (water connection in Prosimos 2.1.0 → discover →
simulate → validate); skipped with a line when .venv-prosimos is missing (`make bench`).

    .venv/bin/python bench/discover.py [--runs 3] [--out out/bench-discover] [--no-prosimos]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, emit_json, goal_line, median, rounded

from services.core.catalog import load_catalog
from services.core.scenario import load_scenario
from simulator.discovery.roundtrip import RoundTripRun, run_round_trip

DISCOVER_GOAL_S = 60.0
VALIDATE_GOAL_S = 30.0
SCENARIO = ROOT / "scenarios" / "shangrao-2021.yaml"
GOVFLOW = ROOT / ".venv" / "bin" / "govflow"
#: matters with at least this many cases a year are held to the 5 % volume rule (a
#: matter of 12 cases a year has a Poisson spread of 29 %)
VOLUME_RULE_CASES = 1000


def _timed(command: list[str]) -> float:
    clock = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - clock


def round_trip_figures(trip: RoundTripRun) -> dict[str, Any]:
    found = trip.parameters
    big = [d for d in found.volumes if d.original >= VOLUME_RULE_CASES]
    means = sorted(found.means, key=lambda d: -d.relative)
    factors = trip.emd_factors()
    return {
        "matters": len(found.volumes),
        "volume_worst_rel_big": rounded(max(d.relative for d in big)),
        "volume_matters_big": len(big),
        "volume_worst_rel_all": rounded(max(d.relative for d in found.volumes)),
        "branch_worst_abs": rounded(max((d.absolute for d in found.branches), default=0.0)),
        "branches": len(found.branches),
        "pools": len(found.clerks),
        "pools_exact": sum(d.absolute == 0 for d in found.clerks),
        "means": len(means),
        "means_within_5pct": sum(d.relative <= 0.05 for d in means),
        "means_within_20pct": sum(d.relative <= 0.20 for d in means),
        "means_worst": [
            {
                "parameter": d.parameter,
                "original": rounded(d.original),
                "found": rounded(d.discovered),
            }
            for d in means[:8]
        ],
        "step_times": len(trip.step_times),
        "step_times_within_5pct": sum(d.relative <= 0.05 for d in trip.step_times),
        "cycle_time_emd_factor_median": rounded(statistics.median(factors.values())),
        "cycle_time_emd_factor_max": rounded(max(factors.values())),
        "cycle_time_emd_factor_max_matter": max(factors, key=lambda m: factors[m]),
        "cycle_time_emd_factor": {m: rounded(f, 3) for m, f in sorted(factors.items())},
        "missing": found.missing,
        "seconds": {k: rounded(v, 2) for k, v in trip.seconds.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-discover")
    parser.add_argument("--no-prosimos", action="store_true")
    args = parser.parse_args()
    catalog = load_catalog()
    original = load_scenario(SCENARIO, catalog)
    work = args.out
    work.mkdir(parents=True, exist_ok=True)
    print(f"round trip of {SCENARIO.name} in {work} …", flush=True)
    trip = run_round_trip(catalog, original, work, seeds=(original.seed, 7, original.seed + 1))
    figures: dict[str, Any] = {"round_trip": round_trip_figures(trip)}
    events = work / "a" / "events.csv"
    attempts = sum(1 for _ in events.open(encoding="utf-8")) - 1
    discover_s, validate_s = [], []
    for run in range(args.runs):  # taking turns, so that both see the same machine
        discover_s.append(
            _timed(
                [
                    str(GOVFLOW),
                    "discover",
                    "--log",
                    str(events),
                    "--out",
                    str(work / f"timed-{run}.yaml"),
                    "--report",
                    str(work / f"timed-{run}.json"),
                ]
            )
        )
        validate_s.append(
            _timed([str(GOVFLOW), "validate", "--log", str(events), "--run", str(work / "b")])
        )
        print(f"run {run + 1}: discover {discover_s[-1]:.1f} s, validate {validate_s[-1]:.1f} s")
    figures["city_year"] = {
        "attempts": attempts,
        "discover_s": [rounded(x, 2) for x in discover_s],
        "discover_median_s": rounded(median(discover_s), 2),
        "validate_s": [rounded(x, 2) for x in validate_s],
        "validate_median_s": rounded(median(validate_s), 2),
    }
    rt = figures["round_trip"]
    print(
        f"round trip: volumes ≤ {rt['volume_worst_rel_big']:.1%} off (matters ≥ "
        f"{VOLUME_RULE_CASES} cases a year; all: {rt['volume_worst_rel_all']:.1%}), branches ≤ "
        f"{rt['branch_worst_abs']:.4f}, clerks exact in {rt['pools_exact']}/{rt['pools']} "
        f"pools, means within 5 %: {rt['means_within_5pct']}/{rt['means']}, cycle-time EMD "
        f"factor median {rt['cycle_time_emd_factor_median']} max "
        f"{rt['cycle_time_emd_factor_max']} ({rt['cycle_time_emd_factor_max_matter']})"
    )
    ok = goal_line(
        "discover, city year", median(discover_s), DISCOVER_GOAL_S, at_least=False, unit="s"
    )
    ok &= goal_line(
        "validate, city year", median(validate_s), VALIDATE_GOAL_S, at_least=False, unit="s"
    )
    if not args.no_prosimos:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        try:
            from prosimos_log import prosimos_round_trip

            figures["prosimos"] = prosimos_round_trip(work / "prosimos")
        except SystemExit as exc:  # .venv-prosimos missing: the module says so
            figures["prosimos"] = {"skipped": f"exit {exc.code}"}
    figures["goals_met"] = ok
    emit_json(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
