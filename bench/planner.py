"""The staffing planner on the city year, beside an older commit's, in one invocation.

Runs ``govflow plan --scenario scenarios/shangrao-2021.yaml --attainment 0.95`` — the
README's line, with ``--out`` into a temporary folder — with this tree's code and with
``--against COMMIT``'s (a temporary git worktree, its own ``python -m govflow.cli``),
taking turns, ``--runs`` times each.  Per side: wall time, rounds, simulations run
(in city-year replications: a round that simulates some counties, or
one replication of a trial, counts its share of the cases), total clerks, still missing
(must be none) and the not-fixable list (must be the same on both sides).  The figure is
the ratio of the median wall times, HEAD ÷ COMMIT; the goal is ≤ 2 minutes for HEAD.

    .venv/bin/python bench/planner.py [--runs 1] [--against 8adbb00] [--against-runs N]
                                      [--executor local]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, emit_json, goal_line, median, rounded
from city_year import head_commit, worktree

GOAL_S = 120.0
SCENARIO = "scenarios/shangrao-2021.yaml"
REPLICATIONS = 2  # the plan's default


def plan_once(tree: Path, executor: str) -> dict[str, Any]:
    """One `govflow plan` in ``tree`` (its own code and scenario file)."""
    with tempfile.TemporaryDirectory(prefix="govflow-bench-plan-") as out:
        command = [sys.executable, "-m", "govflow.cli", "plan", "--scenario", SCENARIO]
        command += ["--attainment", "0.95", "--out", out]
        env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "120"}
        if executor != "local":
            command += ["--executor", executor]
        clock = time.perf_counter()
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - clock
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
            raise SystemExit(done.returncode)
        document = json.loads((Path(out) / "plan.json").read_text(encoding="utf-8"))
    rounds = document["rounds"]
    if rounds and rounds[0]["phase"] == "no-queue":
        # the run with unlimited clerks is recorded first, and each record counts the
        # cases it simulated (a round may simulate some counties, a trial one replication)
        one_year = rounds[0]["cases"] / REPLICATIONS
        simulations = sum(r["cases"] for r in rounds) / one_year
        rounds = rounds[1:]
    else:  # before: every round and the no-queue run simulated every replication whole
        simulations = (len(rounds) + 1) * REPLICATIONS
    unfixable = sorted(
        f"{r['matter']}/{r['metric']}/{r['scope']}/{r['county']}"
        for r in document["not_fixable_by_staffing"]
    )
    return {
        "seconds": rounded(seconds, 1),
        "rounds": len(rounds),
        "phases": [r["phase"] for r in rounds],
        "simulations": rounded(simulations, 1),
        "clerks": document["total_clerks"],
        "still_missing": len(document["still_missing"]),
        "not_fixable": unfixable,
        "staffing": {
            f"{dept}/{county}": row["clerks"]
            for dept, counties in document["departments"].items()
            for county, row in counties.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--against", default="8adbb00", help="the planner to compare with")
    parser.add_argument(
        "--against-runs", type=int, help="runs of the older planner (default: --runs)"
    )
    parser.add_argument("--executor", default="local")
    args = parser.parse_args()
    head = head_commit()
    rows: dict[str, list[dict[str, Any]]] = {head: [], args.against: []}
    with contextlib.ExitStack() as stack:
        trees = {head: ROOT, args.against: stack.enter_context(worktree(args.against))}
        for run in range(args.runs):
            for label in (head, args.against):
                if label != head and run >= (args.against_runs or args.runs):
                    continue
                row = plan_once(trees[label], args.executor)
                rows[label].append(row)
                print(
                    f"run {run + 1} {label}: {row['seconds']:.0f} s, {row['rounds']} rounds, "
                    f"{row['simulations']} simulations, {row['clerks']} clerks, "
                    f"{row['still_missing']} still missing, {len(row['not_fixable'])} not "
                    "fixable",
                    flush=True,
                )
    ours, theirs = rows[head], rows[args.against]
    t_ours = median([r["seconds"] for r in ours])
    t_theirs = median([r["seconds"] for r in theirs])
    same_unfixable = all(r["not_fixable"] == theirs[0]["not_fixable"] for r in ours + theirs)
    # pool by pool: which pools the two planners staff differently
    differ = sorted(
        pool
        for pool in set(ours[0]["staffing"]) | set(theirs[0]["staffing"])
        if ours[0]["staffing"].get(pool) != theirs[0]["staffing"].get(pool)
    )
    figures = {
        "head": head,
        "against": args.against,
        "executor": args.executor,
        "head_s": [r["seconds"] for r in ours],
        "against_s": [r["seconds"] for r in theirs],
        "head_median_s": rounded(t_ours, 1),
        "head_max_s": rounded(max(r["seconds"] for r in ours), 1),
        "head_runs_within_goal": sum(r["seconds"] <= GOAL_S for r in ours),
        "against_median_s": rounded(t_theirs, 1),
        "ratio": rounded(t_ours / t_theirs, 3),
        "head_rounds": ours[0]["rounds"],
        "against_rounds": theirs[0]["rounds"],
        "head_simulations": ours[0]["simulations"],
        "against_simulations": theirs[0]["simulations"],
        "head_clerks": ours[0]["clerks"],
        "against_clerks": theirs[0]["clerks"],
        "still_missing": max(r["still_missing"] for r in ours),
        "not_fixable_same": same_unfixable,
        "pools_staffed_differently": differ,
        "not_fixable": len(ours[0]["not_fixable"]),
        "head_phases": ours[0]["phases"],
    }
    print(
        f"HEAD {head}: {t_ours:.0f} s, {figures['head_rounds']} rounds, "
        f"{figures['head_clerks']} clerks; {args.against}: {t_theirs:.0f} s, "
        f"{figures['against_rounds']} rounds, {figures['against_clerks']} clerks; ratio "
        f"{figures['ratio']}; not-fixable list the same: {same_unfixable}; pools staffed "
        f"differently: {len(differ)}"
    )
    goal_line("plan, city year, two cores", t_ours, GOAL_S, at_least=False, unit="s")
    emit_json(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
