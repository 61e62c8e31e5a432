"""The report's plots: matplotlib figures as inline, self-contained SVG.

Matter names are Chinese and matplotlib may lack CJK fonts, so plots label matters by
their ASCII ``id``; the Chinese names appear only in the HTML tables (which the browser
renders with its own fonts).  A fixed hash salt keeps the SVG — and so the report —
byte-for-byte reproducible; glyphs stay paths; no raster is embedded.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from simulator.report.formatting import (
    BOUND_SYMBOL,
    PASS_LEVEL,
    plot_label,
    status,
    target_label,
)
from simulator.summary import Bottleneck, MatterResult, PoolResult, TargetResult

COLOURS: dict[str, str] = {
    "pass": "#2e7d32",
    "warn": "#f9a825",
    "fail": "#c62828",
    "na": "#9e9e9e",
    "a": "#5c6bc0",
    "b": "#ef6c00",
}
_RC: Any = {  # matplotlib rc parameters
    "svg.hashsalt": "govflow-report",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
#: At most this many bottlenecks in the chart (the table lists them all).
CHART_BOTTLENECKS = 30

_ID_ATTR = re.compile(r'\bid="([^"]+)"')
_HREF_ATTR = re.compile(r'\b(?:xlink:)?href="#([^"]+)"')
_URL_REF = re.compile(r"url\(#([^)]+)\)")


def svg_of(fig: Figure, prefix: str, label: str) -> str:
    """The figure as an inline <svg> element (closes the figure).

    The XML prolog, DOCTYPE and RDF metadata are dropped (they hold URLs and a
    timestamp); namespace declarations are unnecessary inline in HTML; ids are
    prefixed so several plots can share one document without clashing.
    """
    buffer = io.StringIO()
    try:
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    finally:
        plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", svg)
    svg = _ID_ATTR.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = _HREF_ATTR.sub(lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    svg = _URL_REF.sub(lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    aria = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{aria}" ', 1).strip()


def _error_bar(value: float, ci: Sequence[float] | None) -> list[list[float]] | None:
    if ci is None or len(ci) != 2:
        return None
    return [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]


def attainment(matters: Mapping[str, MatterResult], prefix: str) -> str | None:
    bars: list[tuple[str, float | None, Sequence[float] | None]] = []
    for matter_id, matter in matters.items():
        for target in matter.targets:
            label = (
                f"{plot_label(matter_id, '?')}: "
                f"{plot_label(target_label(target, for_plot=True), '?')}"
            )
            bars.append((label, target.attainment, target.ci95))
    if not bars:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(bars) + 1.3))
        positions = np.arange(len(bars))
        for y, (_label, value, ci) in zip(positions.tolist(), bars, strict=True):
            if value is None:
                ax.text(0.01, y, "n/a (not measured)", va="center", color=COLOURS["na"])
                continue
            ax.barh(y, value, color=COLOURS[status(value)], height=0.65)
            err = _error_bar(value, ci)
            if err is not None:
                ax.errorbar(value, y, xerr=err, fmt="none", ecolor="#333333", capsize=3, lw=1)
        ax.axvline(PASS_LEVEL, color="#424242", linestyle="--", linewidth=1)
        ax.set_yticks(positions, [label for label, _, _ in bars])
        ax.set_ylim(len(bars) - 0.5, -0.5)  # first target on top
        ax.set_xlim(0, 1.05)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("attainment (share of cases / periods meeting the target)")
        ax.set_title(f"Target attainment (dashed: {PASS_LEVEL:.0%})")
        return svg_of(fig, prefix, "Target attainment by matter and target")


def _histogram_panel(ax: Any, matter_id: str, matter: MatterResult) -> None:
    latency = matter.latency
    ax.set_title(plot_label(matter_id, "?"))
    ax.set_xlabel(plot_label(latency.unit, "latency"))
    histogram = latency.histogram
    if not histogram.counts or len(histogram.edges) != len(histogram.counts) + 1:
        ax.text(
            0.5, 0.5, "no latency data", ha="center", va="center", transform=ax.transAxes,
            color=COLOURS["na"],
        )  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        return
    edges, counts = histogram.edges, histogram.counts
    ax.stairs(counts, edges, fill=True, color="#90a4ae", edgecolor="#546e7a")
    ax.set_ylabel("cases")
    ax.set_ylim(0, max(max(counts), 1.0) * 1.3)  # headroom for the legend
    target = matter.case_target()
    if target is None:
        return
    from services.core.catalog import UNIT_ABBREVIATIONS

    bound = BOUND_SYMBOL.get(target.bound, "≤")
    text = f"target {bound} {target.value:g} {UNIT_ABBREVIATIONS.get(target.unit, '')}".strip()
    low, high = edges[0], edges[-1]
    if target.value <= high + 0.5 * (high - low):
        ax.set_xlim(min(low, target.value), max(high, target.value * 1.02))
        ax.axvline(target.value, color="#d32f2f", linewidth=1.5, label=text)
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    else:
        ax.text(
            0.98, 0.92, f"{text} (off scale) \u2192", ha="right", va="top",
            transform=ax.transAxes, color="#d32f2f", fontsize=7,
        )  # fmt: skip


def histograms(matters: Mapping[str, MatterResult], prefix: str) -> str | None:
    if not matters:
        return None
    items = list(matters.items())
    ncols = min(3, len(items))
    nrows = math.ceil(len(items) / ncols)
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(3.6 * ncols, 2.5 * nrows), squeeze=False, layout="constrained"
        )
        for ax in axes.flat[len(items) :]:
            ax.set_visible(False)
        for ax, (matter_id, matter) in zip(axes.flat, items, strict=False):
            _histogram_panel(ax, matter_id, matter)
        return svg_of(fig, prefix, "Latency histograms per matter with their targets")


def _utilisation_grid(
    departments: Mapping[str, Mapping[str, PoolResult]],
) -> tuple[list[str], list[str], np.ndarray]:
    """Departments (rows), counties (columns) and utilisation (NaN: no pool there)."""
    rows = [d for d, pools in departments.items() if pools]
    counties = list(dict.fromkeys(c for d in rows for c in departments[d]))
    values = np.full((len(rows), len(counties)), np.nan)
    for i, department in enumerate(rows):
        for j, county in enumerate(counties):
            pool = departments[department].get(county)
            if pool is not None and math.isfinite(pool.utilization):
                values[i, j] = pool.utilization
    return rows, counties, values


def utilisation(departments: Mapping[str, Mapping[str, PoolResult]], prefix: str) -> str | None:
    rows, counties, values = _utilisation_grid(departments)
    if not rows or not counties:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(0.9 * len(counties) + 2.8, 0.42 * len(rows) + 1.4))
        cmap = plt.get_cmap("YlOrRd").with_extremes(bad="#eeeeee")
        # pcolormesh (not imshow) so the cells stay vector paths instead of an embedded PNG
        ax.set_facecolor("#eeeeee")
        image = ax.pcolormesh(
            np.arange(len(counties) + 1) - 0.5,
            np.arange(len(rows) + 1) - 0.5,
            np.ma.masked_invalid(values),
            cmap=cmap,
            vmin=0.0,
            vmax=1.0,
            edgecolors="white",
            linewidth=1.0,
        )
        ax.invert_yaxis()
        ax.set_xticks(range(len(counties)), [plot_label(c, "?") for c in counties])
        ax.set_yticks(range(len(rows)), [plot_label(d, "?") for d in rows])
        if len(counties) > 4:
            ax.tick_params(axis="x", labelrotation=45)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        for (i, j), value in np.ndenumerate(values):
            text, colour = ("–", "#9e9e9e") if np.isnan(value) else (f"{value:.2f}", None)
            if colour is None:
                colour = "white" if value > 0.65 else "#212121"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
        colorbar = fig.colorbar(image, ax=ax, label="utilisation", fraction=0.05, pad=0.02)
        if colorbar.solids is not None:
            colorbar.solids.set_rasterized(False)  # keep it vector: no embedded PNG
        ax.set_title("Clerk utilisation")
        return svg_of(fig, prefix, "Clerk utilisation heatmap, department by county")


def bottlenecks(ranked: Sequence[Bottleneck], prefix: str) -> str | None:
    shown = ranked[:CHART_BOTTLENECKS]
    if not shown:
        return None
    labels = [f"{plot_label(b.department, '?')} / {plot_label(b.county, '?')}" for b in shown]
    values = [b.utilization for b in shown]
    colours = [
        COLOURS["fail"] if v >= 0.9 else COLOURS["warn"] if v >= 0.8 else "#78909c" for v in values
    ]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(shown) + 1.2))
        positions = np.arange(len(shown))
        ax.barh(positions, values, color=colours, height=0.65)
        for y, value in zip(positions.tolist(), values, strict=True):
            ax.text(value + 0.01, y, f"{value:.0%}", va="center", fontsize=7)
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max(1.0, max(values) + 0.08))
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("clerk utilisation")
        ax.set_title("Bottlenecks (ranked)")
        return svg_of(fig, prefix, "Bottleneck utilisation")


def comparison(
    a: Mapping[str, MatterResult],
    b: Mapping[str, MatterResult],
    labels: tuple[str, str],
    prefix: str,
) -> str | None:
    entries: list[tuple[str, TargetResult | None, TargetResult | None]] = []
    for matter_id in list(a) + [m for m in b if m not in a]:
        ma, mb = a.get(matter_id), b.get(matter_id)
        target = (ma and ma.first_time_target()) or (mb and mb.first_time_target())
        if not target:
            continue
        label = (
            f"{plot_label(matter_id, '?')}\n{plot_label(target_label(target, for_plot=True), '')}"
        )
        entries.append(
            (label, ma.target_like(target) if ma else None, mb.target_like(target) if mb else None)
        )
    if not entries:
        return None
    legend = (plot_label(labels[0], "A"), plot_label(labels[1], "B"))
    if legend[0] == legend[1]:
        legend = (f"A: {legend[0]}", f"B: {legend[1]}")
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8.5, 0.6 * len(entries) + 1.4))
        positions = np.arange(len(entries))
        height = 0.38
        sides = ((-height / 2, COLOURS["a"], legend[0]), (height / 2, COLOURS["b"], legend[1]))
        for side, (offset, colour, name) in enumerate(sides):
            for y, entry in zip(positions.tolist(), entries, strict=True):
                shown = entry[1] if side == 0 else entry[2]
                value = shown.attainment if shown is not None else None
                if value is None:
                    ax.text(0.01, y + offset, "n/a", va="center", fontsize=7, color=COLOURS["na"])
                    continue
                ax.barh(y + offset, value, height=height, color=colour, label=name)
                err = _error_bar(value, shown.ci95 if shown is not None else None)
                if err is not None:
                    ax.errorbar(
                        value, y + offset, xerr=err, fmt="none", ecolor="#333333", capsize=2, lw=0.8
                    )
        ax.axvline(PASS_LEVEL, color="#424242", linestyle="--", linewidth=1)
        ax.set_yticks(positions, [entry[0] for entry in entries], fontsize=7)
        ax.set_ylim(len(entries) - 0.5, -0.5)  # first matter on top
        ax.set_xlim(0, 1.05)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("attainment of the matter's first time target")
        handles, names = ax.get_legend_handles_labels()
        if handles:
            unique = dict(zip(names, handles, strict=True))
            ax.legend(
                unique.values(),
                unique.keys(),
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
                fontsize=8,
                frameon=False,
            )
        ax.set_title("Attainment, A vs B")
        return svg_of(fig, prefix, "Attainment of each matter's first time target, A versus B")
