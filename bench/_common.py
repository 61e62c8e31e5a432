"""Helpers shared by the benchmark scripts: medians, peak RSS, the JSON last line.

Only the standard library, so the Prosimos worker (run with another virtualenv's
interpreter) can import it too.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 1024 / 1024


def goal_line(name: str, value: float, goal: float, *, at_least: bool, unit: str = "") -> bool:
    """Print whether a goal is met (never fails: timings on shared machines are noisy)."""
    met = value >= goal if at_least else value <= goal
    sign = "≥" if at_least else "≤"
    verdict = "MET" if met else "NOT met"
    print(f"goal {name} {sign} {goal:g}{unit}: {verdict} (measured {value:.3g}{unit})")
    return met


def emit_json(figures: dict[str, Any]) -> None:
    """The figures as one JSON object on the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(figures, ensure_ascii=False, sort_keys=False), flush=True)


def last_json_line(text: str) -> dict[str, Any]:
    """The JSON object on the last non-empty line of a subprocess's stdout."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no output")
    return json.loads(lines[-1])


def rounded(value: float, digits: int = 4) -> float:
    return float(round(value, digits))
