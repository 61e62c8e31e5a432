"""One replication of the default city-year (``scenarios/shangrao-2021.yaml``).

Each repetition runs in a fresh interpreter (this script re-invokes itself with
``--worker``), so the peak RSS is that of one replication and nothing is cached from an
earlier one.  The worker loads the catalog and the scenario (not timed), then times
``run_replication`` (the simulation) and ``measure_replication`` (turning it into the
per-target statistics) separately, and reports the simulated cases, the step attempts
(``len(rep.steps)``) and its peak RSS.  Every repetition uses the scenario's own seed, so
all do the same work.

``--against COMMIT`` times that commit too, in the same invocation: its tree is checked
out into a temporary git worktree (removed afterwards) and the same worker runs on it,
its own catalog and scenario file, the two sides taking turns so that both see the same
machine.  The figure is the ratio of the medians, HEAD ÷ COMMIT (below 1: HEAD faster).

Last line: one JSON object with the medians (and the ratio).

    .venv/bin/python bench/city_year.py [--runs 3] [--against 063bb8f]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import ROOT, emit_json, goal_line, last_json_line, median, peak_rss_mib, rounded

GOAL_SECONDS = 10.0
SCENARIO = Path("scenarios") / "shangrao-2021.yaml"  # relative to the tree measured


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


@contextlib.contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """``commit``'s tree in a temporary git worktree, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="govflow-bench-worktree-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(folder), commit],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, capture_output=True
        )
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)


def run_once(tree: Path, scenario: Path, seed: int | None) -> dict[str, Any]:
    """One replication in a fresh interpreter, importing the code of ``tree``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    command += ["--scenario", str(scenario)]
    if seed is not None:
        command += ["--seed", str(seed)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tree, env=env, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(done.returncode)
    return last_json_line(done.stdout)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "runs": len(rows),
        "seed": rows[0]["seed"],
        "simulate_s_median": rounded(median([r["simulate_s"] for r in rows])),
        "measure_s_median": rounded(median([r["measure_s"] for r in rows])),
        "simulate_plus_measure_s_median": rounded(
            median([r["simulate_s"] + r["measure_s"] for r in rows])
        ),
        "cases": rows[0]["cases"],
        "step_attempts": rows[0]["step_attempts"],
        "peak_rss_mib_median": rounded(median([r["peak_rss_mib"] for r in rows]), 1),
        "simulate_s_per_run": [r["simulate_s"] for r in rows],
    }
    figures["cases_per_s"] = round(figures["cases"] / figures["simulate_s_median"], 1)
    return figures


def describe(label: str, i: int, row: dict[str, Any]) -> None:
    print(
        f"  {label} run {i}: simulate {row['simulate_s']:.2f} s, measure {row['measure_s']:.2f} s, "
        f"{row['cases']:,} cases, {row['step_attempts']:,} step attempts, "
        f"peak RSS {row['peak_rss_mib']:.0f} MiB"
    )


def head_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    return done.stdout.decode().strip() or "HEAD"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", type=Path, default=None, help=f"default: {SCENARIO}")
    parser.add_argument("--seed", type=int, default=None, help="default: the scenario's seed")
    parser.add_argument("--against", default=None, help="also time this commit; print the ratio")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.scenario or SCENARIO, args.seed)

    scenario = args.scenario.resolve() if args.scenario else SCENARIO
    print(f"one replication of {scenario}, {args.runs} runs, each in a fresh process")
    trees = {"HEAD": ROOT}
    rows: dict[str, list[dict[str, Any]]] = {"HEAD": []}
    with contextlib.ExitStack() as stack:
        if args.against:
            trees[args.against] = stack.enter_context(worktree(args.against))
            rows[args.against] = []
            print(f"against {args.against} (a temporary worktree), taking turns with HEAD")
        for i in range(args.runs):
            for label, tree in trees.items():
                row = run_once(tree, scenario, args.seed)
                rows[label].append(row)
                describe(label, i, row)

    figures: dict[str, Any] = {
        "benchmark": "city_year",
        "scenario": str(scenario),
        "commit": head_commit(),
        **summary(rows["HEAD"]),
    }
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
    if args.against:
        other = summary(rows[args.against])
        ratio = figures["simulate_s_median"] / other["simulate_s_median"]
        figures["against"] = {"commit": args.against, **other}
        figures["ratio"] = rounded(ratio, 3)
        print(
            f"HEAD ÷ {args.against}: {ratio:.3f} "
            f"({figures['simulate_s_median']:.2f} s ÷ {other['simulate_s_median']:.2f} s)"
        )
        goal_line(f"ratio to {args.against}", ratio, 1.0, at_least=False)
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
