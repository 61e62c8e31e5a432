"""Small catalogs and scenarios for validating the engine against queueing theory.

Used by the validation tests and the benchmarks: a one-step M/M/c matter, a
four-step fork/join process, and the Erlang C formula.
"""

from __future__ import annotations

import math
from typing import Any

from services.core.catalog import Catalog
from services.core.scenario import Scenario, scenario_from_dict


def single_step_catalog(target_hours: float = 24.0) -> Catalog:
    """One matter with one step at one department, nothing else (attachment 1)."""
    return Catalog.model_validate(
        {
            "title": "queueing validation",
            "counties": [{"id": "xinzhou", "name": "信州区"}],
            "departments": [{"id": "desk", "name": "窗口", "name_en": "desk"}],
            "matters": [
                {
                    "id": "mmc",
                    "name": "排队",
                    "name_en": "queue",
                    "attachment": 1,
                    "lead_department": "desk",
                    "steps": [{"id": "serve", "name": "办理", "department": "desk"}],
                    "targets": [
                        {
                            "metric": "case_duration",
                            "value": target_hours,
                            "unit": "hours",
                            "scope": "case",
                            "source": "test target",
                        }
                    ],
                }
            ],
            "unmodelled": [
                {"attachment": a, "title": "-", "reason": "not part of this test"}
                for a in range(2, 18)
            ],
        }
    )


def erlang_c_wait(servers: int, arrivals_per_hour: float, service_hours: float) -> float:
    """Mean wait in queue (hours) of an M/M/c queue (Erlang C)."""
    a = arrivals_per_hour * service_hours
    if a >= servers:
        raise ValueError("unstable queue: offered load is not below the number of servers")
    below = sum(a**k / math.factorial(k) for k in range(servers))
    top = a**servers / math.factorial(servers) * servers / (servers - a)
    return top / (below + top) / (servers / service_hours - arrivals_per_hour)


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
    from datetime import date, timedelta

    start = date(2021, 1, 1)
    timing: dict[str, Any] = {
        "service": {"kind": "exponential", "mean": mean_service_minutes},
    }
    if rework:
        timing["rework"] = {
            "probability": rework,
            "delay": {"kind": "fixed", "value": 0, "unit": "minutes"},
        }
    data: dict[str, Any] = {
        "name": "mmc",
        "horizon": {
            "start": start.isoformat(),
            "end": (start + timedelta(days=days - 1)).isoformat(),
        },
        "warmup_days": warmup_days,
        "seed": 7,
        "counties": {"xinzhou": 1.0},
        "demand": {"mmc": {"per_year": arrivals_per_hour * 24 * 365, "profile": "flat"}},
        "departments": {"desk": {"calendar": "24x7", "clerks": {"default": clerks}}},
        "timing": {"mmc": {"serve": timing}},
    }
    data.update(extra or {})
    return scenario_from_dict(data, catalog)
