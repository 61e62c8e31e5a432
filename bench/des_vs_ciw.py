"""govflow against Ciw on the same M/M/3 queue: customers per second and Wq accuracy.

One queue, Poisson arrivals around the clock, exponential service (mean 60 min), three
servers; by default ρ = 0.8 (2.4 arrivals an hour) over five simulated years, about
105,000 customers a run.  Each round runs govflow's engine (``run_replication`` on
:func:`~simulator.queueing.single_step_catalog`) and then Ciw on the *same number* of
customers: Ciw stops when as many customers have completed service as govflow simulated.

Timed: ``run_replication`` for govflow (arrival generation included); ``ciw.Simulation``
plus ``simulate_until_max_customers`` for Ciw.  Not timed: imports, building the
catalog/scenario/network, reading the results back, one short untimed warm-up run of each.

Wq (hours) is measured over customers arriving after the warm-up days, for both engines,
and compared with Erlang C.  Output: readable lines, then one JSON object on the last line
with ``ratio`` = govflow customers/s ÷ Ciw customers/s (medians of the rounds).

    .venv/bin/python bench/des_vs_ciw.py [--runs 3] [--days 1825] [--arrivals-per-hour 2.4]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from typing import Any

from _common import emit_json, goal_line, median, rounded

GOAL_RATIO = 1.5


def run_govflow(catalog: Any, scenario: Any, seed: int) -> tuple[int, float, float]:
    """(customers, wall seconds, mean Wq hours after the warm-up)."""
    from simulator.engine import run_replication

    t0 = time.perf_counter()
    rep = run_replication(catalog, scenario, seed)
    wall = time.perf_counter() - t0
    cols = rep.columns()
    measured = cols["enabled"] >= rep.measured_from
    wq = float(((cols["start"] - cols["arrival"])[measured] / 3600).mean())
    return rep.cases, wall, wq


def run_ciw(
    customers: int,
    seed: int,
    *,
    arrivals_per_hour: float,
    service_hours: float,
    servers: int,
    warmup_hours: float,
) -> tuple[int, float, float]:
    """(customers served, wall seconds, mean Wq hours after the warm-up); time in hours."""
    import ciw

    ciw.seed(seed)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=arrivals_per_hour)],
        service_distributions=[ciw.dists.Exponential(rate=1 / service_hours)],
        number_of_servers=[servers],
    )
    t0 = time.perf_counter()
    sim = ciw.Simulation(network)
    sim.simulate_until_max_customers(customers, progress_bar=False, method="Complete")
    wall = time.perf_counter() - t0
    records = sim.get_all_records()
    waits = [r.waiting_time for r in records if r.arrival_date >= warmup_hours]
    return len(records), wall, statistics.fmean(waits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="first seed; run i uses seed + i")
    parser.add_argument("--arrivals-per-hour", type=float, default=2.4)
    parser.add_argument("--service-minutes", type=float, default=60.0)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--days", type=int, default=1825, help="simulated days per run")
    parser.add_argument("--warmup-days", type=int, default=10)
    args = parser.parse_args(argv)

    try:
        import ciw
    except ImportError:
        print(
            "Ciw is not installed in this environment: run `make bench` "
            "(or `.venv/bin/pip install -e '.[bench]'`).",
            file=sys.stderr,
        )
        return 2
    import numpy.random  # noqa: F401  (imports are not timed)

    from simulator.queueing import erlang_c_wait, mmc_scenario, single_step_catalog

    service_hours = args.service_minutes / 60
    rho = args.arrivals_per_hour * service_hours / args.servers
    analytic = erlang_c_wait(args.servers, args.arrivals_per_hour, service_hours)
    catalog = single_step_catalog()
    queue = {
        "arrivals_per_hour": args.arrivals_per_hour,
        "mean_service_minutes": args.service_minutes,
        "clerks": args.servers,
    }
    scenario = mmc_scenario(catalog, **queue, days=args.days, warmup_days=args.warmup_days)
    ciw_queue = {
        "arrivals_per_hour": args.arrivals_per_hour,
        "service_hours": service_hours,
        "servers": args.servers,
        "warmup_hours": args.warmup_days * 24.0,
    }
    print(
        f"M/M/{args.servers}, ρ = {rho:.2f}, {args.days} simulated days a run, "
        f"warm-up {args.warmup_days} days; govflow vs ciw {ciw.__version__}; "
        f"Erlang C Wq = {analytic:.4f} h"
    )

    # untimed warm-up of both engines (lazy imports, first-call caches)
    warm = mmc_scenario(catalog, **queue, days=7, warmup_days=0)
    n_warm, _, _ = run_govflow(catalog, warm, 0)
    run_ciw(n_warm, 0, **{**ciw_queue, "warmup_hours": 0.0})

    rows: dict[str, list[tuple[int, float, float]]] = {"govflow": [], "ciw": []}
    for i in range(args.runs):
        seed = args.seed + i
        gc.collect()
        n, wall, wq = run_govflow(catalog, scenario, seed)
        rows["govflow"].append((n, wall, wq))
        gc.collect()
        served, c_wall, c_wq = run_ciw(n, seed, **ciw_queue)
        rows["ciw"].append((served, c_wall, c_wq))
        print(
            f"  run {i} (seed {seed}): {n:,} customers | "
            f"govflow {wall:.3f} s, {n / wall:,.0f}/s, Wq {wq:.4f} h | "
            f"ciw {c_wall:.3f} s, {served / c_wall:,.0f}/s, Wq {c_wq:.4f} h"
        )

    figures: dict[str, Any] = {
        "benchmark": "des_vs_ciw",
        "model": f"M/M/{args.servers}",
        "rho": rounded(rho, 3),
        "simulated_days": args.days,
        "runs": args.runs,
        "customers_median": int(median([r[0] for r in rows["govflow"]])),
        "wq_erlang_c_h": rounded(analytic, 5),
    }
    for engine, label in (("govflow", "govflow"), ("ciw", f"ciw {ciw.__version__}")):
        per_s = median([n / wall for n, wall, _ in rows[engine]])
        wq = statistics.fmean(r[2] for r in rows[engine])
        err = (wq - analytic) / analytic
        figures[engine] = {
            "engine": label,
            "wall_s_median": rounded(median([r[1] for r in rows[engine]])),
            "customers_per_s": round(per_s, 1),
            "wq_h_mean_of_runs": rounded(wq, 5),
            "wq_rel_err": rounded(err, 5),
            "wq_rel_err_per_run": [rounded((r[2] - analytic) / analytic, 4) for r in rows[engine]],
        }
        print(
            f"{label:>12}: {per_s:,.0f} customers/s (median), Wq {wq:.4f} h "
            f"(mean of runs), error vs Erlang C {err:+.2%}"
        )
    ratio = figures["govflow"]["customers_per_s"] / figures["ciw"]["customers_per_s"]
    figures["ratio"] = rounded(ratio, 3)
    print(f"ratio govflow/ciw customers per second: {ratio:.2f}")
    figures["goal_ratio"] = GOAL_RATIO
    figures["goal_met"] = goal_line("ratio", ratio, GOAL_RATIO, at_least=True)
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
