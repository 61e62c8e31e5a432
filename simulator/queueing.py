"""Small catalogs and scenarios for validating the engine against queueing theory.

Used by the validation tests and the benchmarks: a one-step M/M/c matter, a
four-step fork/join process, and the Erlang C formula.
"""

from __future__ import annotations

import math
from typing import Any

from services.core.catalog import Catalog
from services.core.scenario import Scenario, scenario_from_dict


def one_matter_catalog(
    matter_id: str,
    name: str,
    departments: list[str],
    steps: list[dict[str, Any]],
    target_hours: float = 24.0,
) -> Catalog:
    """A catalog of one matter (attachment 1) in one county, with a whole-case target in
    clock hours; the other attachments are declared out of scope."""
    return Catalog.model_validate(
        {
            "title": f"{name} (validation)",
            "counties": [{"id": "xinzhou", "name": "信州区"}],
            "departments": [{"id": d, "name": d, "name_en": d} for d in departments],
            "matters": [
                {
                    "id": matter_id,
                    "name": name,
                    "name_en": matter_id,
                    "attachment": 1,
                    "lead_department": departments[0],
                    "steps": steps,
                    "targets": [
                        {
                            "metric": "case_duration",
                            "value": target_hours,
                            "unit": "hours",
                            "scope": "case",
                            "source": "validation target",
                        }
                    ],
                }
            ],
            "unmodelled": [
                {"attachment": a, "title": "-", "reason": "not part of this validation"}
                for a in range(2, 18)
            ],
        }
    )


def single_step_catalog(target_hours: float = 24.0) -> Catalog:
    """One matter ``mmc`` with one step ``serve`` at department ``desk``."""
    steps = [{"id": "serve", "name": "办理", "department": "desk"}]
    return one_matter_catalog("mmc", "排队", ["desk"], steps, target_hours)


def erlang_c_wait(servers: int, arrivals_per_hour: float, service_hours: float) -> float:
    """Mean wait in queue (hours) of an M/M/c queue (Erlang C)."""
    a = arrivals_per_hour * service_hours
    if a >= servers:
        raise ValueError("unstable queue: offered load is not below the number of servers")
    below = sum(a**k / math.factorial(k) for k in range(servers))
    top = a**servers / math.factorial(servers) * servers / (servers - a)
    return top / (below + top) / (servers / service_hours - arrivals_per_hour)


def round_the_clock_scenario(
    catalog: Catalog,
    matter_id: str,
    *,
    arrivals_per_hour: float,
    departments: dict[str, int],
    timing: dict[str, Any],
    days: int,
    warmup_days: int,
    extra: dict[str, Any] | None = None,
) -> Scenario:
    """One matter with Poisson arrivals around the clock from 2021-01-01 for ``days``;
    ``departments`` maps each department to its clerks on a 24/7 calendar, ``timing`` maps
    each step to its timing."""
    from datetime import date, timedelta

    start = date(2021, 1, 1)
    data: dict[str, Any] = {
        "name": matter_id,
        "horizon": {
            "start": start.isoformat(),
            "end": (start + timedelta(days=days - 1)).isoformat(),
        },
        "warmup_days": warmup_days,
        "seed": 7,
        "counties": {"xinzhou": 1.0},
        "demand": {matter_id: {"per_year": arrivals_per_hour * 24 * 365, "profile": "flat"}},
        "departments": {
            d: {"calendar": "24x7", "clerks": {"default": n}} for d, n in departments.items()
        },
        "timing": {matter_id: timing},
    }
    data.update(extra or {})
    return scenario_from_dict(data, catalog)


def mmc_scenario(
    catalog: Catalog,
    *,
    arrivals_per_hour: float,
    mean_service_minutes: float,
    clerks: int,
    days: int = 365,
    warmup_days: int = 10,
    rework: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> Scenario:
    """Poisson arrivals around the clock, exponential service, ``clerks`` on a 24/7 calendar."""
    timing: dict[str, Any] = {
        "service": {"kind": "exponential", "mean": mean_service_minutes},
    }
    if rework:
        timing["rework"] = {
            "probability": rework,
            "delay": {"kind": "fixed", "value": 0, "unit": "minutes"},
        }
    return round_the_clock_scenario(
        catalog,
        "mmc",
        arrivals_per_hour=arrivals_per_hour,
        departments={"desk": clerks},
        timing={"serve": timing},
        days=days,
        warmup_days=warmup_days,
        extra=extra,
    )


#: Station of the fork/join process: step id -> (clerks, mean service minutes).  At
#: 6 cases an hour every station runs at 70 % load (A, B and C: 6 × 14 / 60 / 2;
#: D: 6 × 7 / 60 / 1).
FORK_JOIN_STATIONS: dict[str, tuple[int, float]] = {
    "a": (2, 14.0),
    "b": (2, 14.0),
    "c": (2, 14.0),
    "d": (1, 7.0),
}


def fork_join_catalog(target_hours: float = 24.0) -> Catalog:
    """One matter ``fork_join``: step ``a``, then ``b`` and ``c`` in parallel, then ``d``
    once both are done; each step at a department of its own (``desk_a`` … ``desk_d``)."""
    steps: list[dict[str, Any]] = [
        {"id": "a", "name": "受理", "department": "desk_a"},
        {"id": "b", "name": "审查甲", "department": "desk_b", "depends_on": ["a"]},
        {"id": "c", "name": "审查乙", "department": "desk_c", "depends_on": ["a"]},
        {"id": "d", "name": "办结", "department": "desk_d", "depends_on": ["b", "c"]},
    ]
    return one_matter_catalog(
        "fork_join", "并联", [f"desk_{s}" for s in "abcd"], steps, target_hours
    )


def fork_join_scenario(
    catalog: Catalog,
    *,
    arrivals_per_hour: float = 6.0,
    stations: dict[str, tuple[int, float]] | None = None,
    days: int = 365,
    warmup_days: int = 10,
    extra: dict[str, Any] | None = None,
) -> Scenario:
    """Poisson arrivals around the clock into :func:`fork_join_catalog`; each step has
    exponential service and its own pool of clerks on a 24/7 calendar.

    ``stations`` maps step id to ``(clerks, mean service minutes)``; steps left out keep
    :data:`FORK_JOIN_STATIONS`.
    """
    chosen = {**FORK_JOIN_STATIONS, **(stations or {})}
    return round_the_clock_scenario(
        catalog,
        "fork_join",
        arrivals_per_hour=arrivals_per_hour,
        departments={f"desk_{step}": clerks for step, (clerks, _) in chosen.items()},
        timing={
            step: {"service": {"kind": "exponential", "mean": minutes}}
            for step, (_, minutes) in chosen.items()
        },
        days=days,
        warmup_days=warmup_days,
        extra=extra,
    )
