"""Does a live replay agree with the simulation of the same scenario and seed?

The rule (the live-twin issue): equal case counts per matter, and per-matter p50 and p95
latency within 5 % or 0.05 working days, whichever is larger. Used by the agreement test
and by ``bench/soak.py``; both compare two ``summary.json`` documents.
"""

from __future__ import annotations

from simulator.summary import Summary

RELATIVE = 0.05
WORKING_DAYS_FLOOR = 0.05
QUANTILES = ("p50", "p95")


def latency_tolerance(unit: str, value: float) -> float:
    """5 % of the value, or 0.05 working days where the unit is working days."""
    floor = WORKING_DAYS_FLOOR if unit == "working_days" else 0.0
    return max(RELATIVE * abs(value), floor)


def compare(live: Summary, simulated: Summary) -> tuple[int, list[str]]:
    """(matters with cases compared, what differs) between two summaries."""
    compared, differing = 0, []
    for matter, sim in simulated.matters.items():
        got = live.matters.get(matter)
        cases = got.cases if got is not None else None
        if got is None or cases != sim.cases:
            differing.append(f"{matter}: {cases} cases live, {sim.cases} simulated")
            continue
        if not sim.cases:
            continue
        compared += 1
        unit = sim.latency.unit
        for q in QUANTILES:
            x, y = getattr(got.latency, q), getattr(sim.latency, q)
            if x is None or y is None:
                if x != y:
                    differing.append(f"{matter} {q}: {x} live vs {y} simulated")
                continue
            if abs(x - y) > latency_tolerance(unit, y) + 1e-9:
                differing.append(f"{matter} {q}: {x:.3f} live vs {y:.3f} simulated {unit}")
    return compared, differing
