"""Self-contained HTML reports of a run's :class:`~simulator.summary.Summary`.

:func:`write_report` renders one scenario's summary and :func:`write_comparison_report`
puts two side by side, from the Jinja2 templates beside this module (autoescaped) and
the plots of :mod:`simulator.report.charts`.  Each writes one HTML file with an inline
stylesheet and inline SVG plots: no scripts, no external stylesheets, images, fonts or
CDNs, so the file can be mailed or archived as is.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from simulator.report import charts
from simulator.report.formatting import (
    PASS_LEVEL,
    WARN_LEVEL,
    ci,
    count,
    delta,
    fmt,
    pct,
    status,
    target_details,
    target_label,
    unit,
    with_unit,
)
from simulator.summary import MatterResult, Summary

__all__ = ["write_comparison_report", "write_report"]


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("simulator.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        fmt=fmt,
        count=count,
        pct=pct,
        unit=unit,
        with_unit=with_unit,
        status=status,
        ci=ci,
        target_label=target_label,
        target_details=target_details,
    )
    env.globals.update(pass_level=PASS_LEVEL, warn_level=WARN_LEVEL)
    return env


def _write(path: Path, template: str, **context: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_environment().get_template(template).render(**context), encoding="utf-8")
    return path


def write_report(
    summary: Summary,
    path: Path,
    *,
    title: str | None = None,
    validation: dict[str, Any] | None = None,
) -> Path:
    """Write one scenario's summary as a self-contained HTML report; returns ``path``.
    ``validation`` (from ``govflow validate``) adds the distances to a real log."""
    rendered = {
        "attainment": charts.attainment(summary.matters, "att"),
        "histograms": charts.histograms(summary.matters, "lat"),
        "utilisation": charts.utilisation(summary.departments, "util"),
        "bottlenecks": charts.bottlenecks(summary.bottlenecks, "bn"),
    }
    return _write(
        path,
        "report.html.j2",
        title=title or f"govflow simulation report — {summary.scenario}",
        summary=summary,
        charts=rendered,
        chart_bottlenecks=charts.CHART_BOTTLENECKS,
        validation=validation,
    )


def _comparison_rows(a: Summary, b: Summary) -> list[dict[str, Any]]:
    rows = []
    for matter_id in list(a.matters) + [m for m in b.matters if m not in a.matters]:
        ma, mb = a.matters.get(matter_id), b.matters.get(matter_id)
        rows.append(_comparison_row(matter_id, ma, mb))
    return rows


def _comparison_row(
    matter_id: str, ma: MatterResult | None, mb: MatterResult | None
) -> dict[str, Any]:
    ref = ma or mb
    assert ref is not None
    ua = ma.latency.unit if ma else None
    ub = mb.latency.unit if mb else None
    same_unit = ua == ub or ma is None or mb is None
    latency = []
    for stat in ("p50", "p95"):
        left = getattr(ma.latency, stat) if ma else None
        right = getattr(mb.latency, stat) if mb else None
        pair = delta(left, right, kind="latency", unit_name=ua or ub) if same_unit else None
        latency.append((stat, with_unit(fmt(left), ua), with_unit(fmt(right), ub), pair))
    keyed_a = {_key(t): t for t in (ma.targets if ma else [])}
    keyed_b = {_key(t): t for t in (mb.targets if mb else [])}
    targets = []
    for key in list(keyed_a) + [k for k in keyed_b if k not in keyed_a]:
        ta, tb = keyed_a.get(key), keyed_b.get(key)
        shown = ta or tb
        assert shown is not None
        pair = delta(
            ta.attainment if ta else None, tb.attainment if tb else None, kind="attainment"
        )
        targets.append((target_label(shown), ta, tb, pair))
    return {
        "matter_id": matter_id,
        "name": ref.name,
        "a": ma,
        "b": mb,
        "only_in": "B" if ma is None else "A" if mb is None else None,
        "cases_delta": delta(
            ma.cases_per_replication if ma else None,
            mb.cases_per_replication if mb else None,
            kind="count",
        ),
        "latency": latency,
        "targets": targets,
    }


def _key(target: Any) -> tuple[str, ...]:
    fields = ("metric", "scope", "statistic", "bound", "value", "unit", "year", "applies_to")
    return tuple(str(getattr(target, name)) for name in fields)


def write_comparison_report(
    a: Summary, b: Summary, path: Path, *, labels: tuple[str, str] | None = None
) -> Path:
    """Write scenarios ``a`` and ``b`` side by side (with B − A) as one HTML file."""
    if labels is None:
        labels = (
            (a.scenario, b.scenario)
            if a.scenario != b.scenario
            else (
                f"{a.scenario} (A)",
                f"{b.scenario} (B)",
            )
        )
    return _write(
        path,
        "comparison.html.j2",
        title=f"govflow scenario comparison — {labels[0]} vs {labels[1]}",
        a=a,
        b=b,
        labels=labels,
        chart=charts.comparison(a.matters, b.matters, labels, "cmp"),
        rows=_comparison_rows(a, b),
    )
