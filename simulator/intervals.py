"""Confidence intervals shared by the summary statistics and discovery."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(successes: int, trials: int) -> list[float] | None:
    """95% Wilson score interval of a proportion (None without trials)."""
    if trials == 0:
        return None
    z = Z95
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return [max(0.0, centre - half), min(1.0, centre + half)]
