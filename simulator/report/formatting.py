"""How the report writes numbers, units, targets and their status (Jinja2 filters)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from services.core.catalog import UNIT_ABBREVIATIONS
from simulator.summary import TargetResult

BOUND_SYMBOL: dict[str, str] = {"at_most": "≤", "at_least": "≥"}
PASS_LEVEL = 0.95
WARN_LEVEL = 0.8
_PLOT_SAFE_EXTRA = frozenset("≤≥–—→×·")


def _finite(value: float | int | None) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def fmt(value: float | int | None) -> str:
    """A measured quantity: about three significant figures, '—' when missing."""
    number = _finite(value)
    if number is None:
        return "—"
    magnitude = abs(number)
    if magnitude >= 1000:
        return f"{number:,.0f}"
    if magnitude >= 100:
        return f"{number:.0f}"
    if magnitude >= 10:
        return f"{number:.1f}"
    return f"{number:.2f}"


def count(value: float | int | None) -> str:
    number = _finite(value)
    if number is None:
        return "—"
    return f"{number:,.0f}" if number == int(number) else f"{number:,.1f}"


def pct(value: float | None) -> str:
    number = _finite(value)
    return "—" if number is None else f"{number * 100:.1f}%"


def unit(name: str | None) -> str:
    text = "" if name is None else name
    return UNIT_ABBREVIATIONS.get(text, text)


def with_unit(text: str, name: str | None) -> str:
    suffix = unit(name)
    if not suffix or text == "—":
        return text
    return f"{text}{suffix}" if suffix == "%" else f"{text} {suffix}"


def status(attainment: float | None) -> str:
    """pass / warn / fail / na: the colour of an attainment."""
    number = _finite(attainment)
    if number is None:
        return "na"
    if number >= PASS_LEVEL:
        return "pass"
    if number >= WARN_LEVEL:
        return "warn"
    return "fail"


def ci(interval: Sequence[float] | None) -> str:
    """``[95.5–99.5]`` for a 95 % interval of a share, empty without one."""
    if interval is None or len(interval) != 2:
        return ""
    return f"[{interval[0] * 100:.1f}–{interval[1] * 100:.1f}]"


def target_label(target: TargetResult, *, for_plot: bool = False) -> str:
    """'metric scope ≤ value unit', e.g. 'case_duration case ≤ 1 wd'.  In plots (whose
    font may lack CJK glyphs) a Chinese ``applies_to`` is shown as "(subset)"."""
    words = [target.metric]
    if target.scope:
        words.append(target.scope)
    words += [BOUND_SYMBOL.get(target.bound, "≤"), with_unit(f"{target.value:g}", target.unit)]
    if target.year != 2021:
        words.append(f"[{target.year}]")
    if target.applies_to:
        words.append("(subset)" if for_plot else f"({target.applies_to})")
    return " ".join(words)


def target_details(target: TargetResult) -> str:
    """What the short label leaves out (statistic, year), for a tooltip."""
    return f"statistic {target.statistic}, year {target.year}"


def delta(
    a: float | None, b: float | None, *, kind: str, unit_name: str | None = None
) -> tuple[str, str]:
    """The B − A text and its CSS class; ``kind`` is latency (lower is better),
    attainment (higher is better) or count."""
    x, y = _finite(a), _finite(b)
    if x is None or y is None:
        return "—", "num muted"
    diff = y - x
    if kind == "attainment":
        text, better = f"{diff * 100:+.1f} pp", diff > 1e-12
    elif kind == "latency":
        text, better = with_unit(f"{diff:+.2f}", unit_name), diff < -1e-12
    else:
        return f"{diff:+,.0f}", "num"
    if abs(diff) <= 1e-12:
        return text, "num"
    return text, "num delta-better" if better else "num delta-worse"


def plot_label(text: str | None, fallback: str) -> str:
    """Text matplotlib's default font (DejaVu Sans, no CJK) can draw, else the fallback."""
    value = "" if text is None else str(text)
    safe = all(ord(c) < 0x0530 or c in _PLOT_SAFE_EXTRA for c in value)
    return value if value and safe else fallback
