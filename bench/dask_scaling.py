"""Replications of the city year on a Dask cluster: 1 and 2 workers, and the efficiency.

16 replications of ``scenarios/shangrao-2021.yaml`` (no event logs) on a
``distributed.LocalCluster`` with 1 and then 2 single-threaded worker processes, and the
same 16 in two local processes (``--executor local --workers 2``) as the baseline the
cluster must not fall behind.  Efficiency = T(1 worker) ÷ (2 × T(2 workers)).  The
machine has two cores, so 2 workers is its ceiling; the runs take turns (1, 2, local)
``--runs`` times, medians.  The results of every run are checked to be identical.

    .venv/bin/python bench/dask_scaling.py [--replications 16] [--runs 1]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pickle
import time
from typing import Any

from _common import ROOT, emit_json, median, rounded
from distributed import LocalCluster

from services.core.catalog import load_catalog
from services.core.scenario import load_scenario
from simulator.executors import ExecutorSpec, parse_executor
from simulator.montecarlo import RepStats, run_replications

SCENARIO = ROOT / "scenarios" / "shangrao-2021.yaml"


def fingerprint(reps: list[RepStats]) -> str:
    """A digest of everything the replications measured (their wall times left out)."""
    digest = hashlib.sha256()
    for rep in reps:
        data = dataclasses.asdict(rep)
        data.pop("wall_seconds")
        digest.update(pickle.dumps(data, protocol=5))
    return digest.hexdigest()


def timed(spec: ExecutorSpec, replications: int) -> tuple[float, str]:
    catalog = load_catalog()
    scenario = load_scenario(SCENARIO, catalog)
    clock = time.perf_counter()
    reps = run_replications(
        catalog, scenario, replications=replications, seed=scenario.seed, executor=spec
    )
    return time.perf_counter() - clock, fingerprint(reps)


def on_cluster(workers: int, replications: int) -> tuple[float, str]:
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        spec = parse_executor(cluster.scheduler_address.replace("tcp://", "dask://"))
        timed(spec, 1)  # the workers import govflow once, untimed
        return timed(spec, replications)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replications", type=int, default=16)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"dask_1": [], "dask_2": [], "local_2": []}
    prints: set[str] = set()
    for run in range(args.runs):
        for name, runner in (
            ("dask_1", lambda: on_cluster(1, args.replications)),
            ("dask_2", lambda: on_cluster(2, args.replications)),
            ("local_2", lambda: timed(ExecutorSpec("local", workers=2), args.replications)),
        ):
            seconds, print_ = runner()
            times[name].append(seconds)
            prints.add(print_)
            print(f"run {run + 1}: {name} {seconds:.1f} s", flush=True)
    t1, t2, local = (median(times[k]) for k in ("dask_1", "dask_2", "local_2"))
    efficiency = t1 / (2 * t2)
    figures: dict[str, Any] = {
        "replications": args.replications,
        "runs": args.runs,
        "seconds": {k: [rounded(x, 2) for x in v] for k, v in times.items()},
        "dask_1_s": rounded(t1, 2),
        "dask_2_s": rounded(t2, 2),
        "local_2_s": rounded(local, 2),
        "speedup_2_over_1": rounded(t1 / t2, 3),
        "efficiency_2_workers": rounded(efficiency, 3),
        "ratio": rounded(t2 / local, 3),  # dask with 2 workers ÷ local with 2 processes
        "identical_results": len(prints) == 1,
    }
    print(
        f"{args.replications} city-year replications: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s "
        f"(speed-up {t1 / t2:.2f}, efficiency {efficiency:.0%}), local 2 processes "
        f"{local:.1f} s; results identical: {len(prints) == 1}"
    )
    emit_json(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
