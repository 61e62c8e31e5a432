"""Self-contained HTML reports of a simulation summary.

`write_report` renders one scenario's summary (as produced by the engine) and
`write_comparison_report` puts two summaries side by side. Each writes a single
HTML file with an inline stylesheet and inline SVG plots: no scripts, no external
stylesheets, images, fonts or CDNs, so the file can be mailed or archived as is.

Matter names are Chinese and matplotlib may lack CJK fonts, so plots label matters
by their ASCII ``id`` and the Chinese names appear only in the HTML tables (which
the browser renders with its own fonts).
"""

from __future__ import annotations

import html
import io
import math
import pathlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from services.core.catalog import TIME_UNITS, UNIT_ABBREVIATIONS

__all__ = ["write_comparison_report", "write_report"]

BOUND_SYMBOL: dict[str, str] = {"at_most": "≤", "at_least": "≥"}

PASS_LEVEL = 0.95
WARN_LEVEL = 0.8

COLOURS: dict[str, str] = {
    "pass": "#2e7d32",
    "warn": "#f9a825",
    "fail": "#c62828",
    "na": "#9e9e9e",
    "a": "#5c6bc0",
    "b": "#ef6c00",
}

# Plots are rendered with these settings; the fixed hash salt keeps the SVG (and so
# the report) byte-for-byte reproducible. Glyphs stay paths (svg.fonttype "path").
_RC: dict[str, Any] = {
    "svg.hashsalt": "govflow-report",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

_STYLE = """
:root { --pass:#e8f5e9; --pass-fg:#1b5e20; --warn:#fff8e1; --warn-fg:#8d6e00;
        --fail:#ffebee; --fail-fg:#b71c1c; --na:#f2f2f2; --na-fg:#616161; }
body { font-family: system-ui, -apple-system, "Segoe UI", "PingFang SC", "Hiragino Sans GB",
       "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", sans-serif;
       margin: 0 auto; padding: 1.5rem 2rem; max-width: 1200px; color: #212121;
       line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 2px solid #e0e0e0;
     padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1.4rem 0 .4rem; }
header p { margin: .2rem 0 .6rem; color: #424242; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .15rem 1rem;
          margin: .6rem 0; font-size: .92rem; }
dl.meta dt { font-weight: 600; color: #555; }
dl.meta dd { margin: 0; }
table { border-collapse: collapse; font-size: .86rem; margin: .6rem 0 1rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; vertical-align: top; }
th { background: #fafafa; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.att-pass { background: var(--pass); color: var(--pass-fg); }
td.att-warn { background: var(--warn); color: var(--warn-fg); }
td.att-fail { background: var(--fail); color: var(--fail-fg); }
td.att-na { background: var(--na); color: var(--na-fg); font-style: italic; }
.delta-better { color: var(--pass-fg); font-weight: 600; }
.delta-worse { color: var(--fail-fg); font-weight: 600; }
.ci, .note, .muted { color: #757575; font-size: .8rem; }
.legend span { display: inline-block; padding: 0 .5rem; margin-right: .4rem;
               border-radius: 3px; font-size: .8rem; }
.legend .att-pass { background: var(--pass); color: var(--pass-fg); }
.legend .att-warn { background: var(--warn); color: var(--warn-fg); }
.legend .att-fail { background: var(--fail); color: var(--fail-fg); }
.legend .att-na { background: var(--na); color: var(--na-fg); }
figure { margin: .8rem 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: .8rem; color: #616161; }
p.empty { color: #757575; font-style: italic; }
footer { margin-top: 2.5rem; font-size: .78rem; color: #9e9e9e; }
"""


# --------------------------------------------------------------------------- helpers


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _number(value: object) -> float | None:
    """A finite float, or None for anything missing or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: object) -> str:
    """A measured quantity: about three significant figures, '—' when missing."""
    number = _number(value)
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


def _fmt_target_value(value: object) -> str:
    number = _number(value)
    return "—" if number is None else f"{number:g}"


def _fmt_count(value: object) -> str:
    number = _number(value)
    if number is None:
        return "—"
    return f"{number:,.0f}" if number == int(number) else f"{number:,.1f}"


def _pct(value: object) -> str:
    number = _number(value)
    return "—" if number is None else f"{number * 100:.1f}%"


def _unit(unit: object) -> str:
    text = "" if unit is None else str(unit)
    return UNIT_ABBREVIATIONS.get(text, text)


def _with_unit(text: str, unit: object) -> str:
    suffix = _unit(unit)
    if not suffix or text == "—":
        return text
    return f"{text}{suffix}" if suffix == "%" else f"{text} {suffix}"


def _status(attainment: object) -> str:
    number = _number(attainment)
    if number is None:
        return "na"
    if number >= PASS_LEVEL:
        return "pass"
    if number >= WARN_LEVEL:
        return "warn"
    return "fail"


def _ci(value: object) -> tuple[float, float] | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return None
    low, high = _number(value[0]), _number(value[1])
    if low is None or high is None:
        return None
    return low, high


def _target_label(target: Mapping[str, Any], *, for_plot: bool = False) -> str:
    """'metric scope ≤ value unit', e.g. 'case_duration case ≤ 1 wd'.  In plots (whose
    font may lack CJK glyphs) a Chinese ``applies_to`` is shown as "(subset)"."""
    symbol = BOUND_SYMBOL.get(str(target.get("bound")), "≤")
    value = _with_unit(_fmt_target_value(target.get("value")), target.get("unit"))
    words = [str(target.get("metric") or "?")]
    if target.get("scope"):
        words.append(str(target["scope"]))
    words += [symbol, value]
    if target.get("year") not in (None, 2021):
        words.append(f"[{target['year']}]")
    if target.get("applies_to"):
        words.append("(subset)" if for_plot else f"({target['applies_to']})")
    return " ".join(words)


def _target_details(target: Mapping[str, Any]) -> str:
    """What the short label leaves out (statistic, year), for a tooltip."""
    parts = [f"{name} {target[name]}" for name in ("statistic", "year") if target.get(name)]
    return ", ".join(parts)


def _target_key(target: Mapping[str, Any]) -> tuple[str, ...]:
    fields = ("metric", "scope", "statistic", "bound", "value", "unit", "year", "applies_to")
    return tuple(str(target.get(name)) for name in fields)


_PLOT_SAFE_EXTRA = frozenset("≤≥–—→×·")


def _plot_label(text: object, fallback: str) -> str:
    """Text matplotlib's default font (DejaVu Sans, no CJK) can draw, else the fallback."""
    value = "" if text is None else str(text)
    safe = all(ord(c) < 0x0530 or c in _PLOT_SAFE_EXTRA for c in value)
    return value if value and safe else fallback


def _matters(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    matters = summary.get("matters") or {}
    return {str(k): v for k, v in matters.items() if isinstance(v, Mapping)}


def _latency(matter: Mapping[str, Any]) -> Mapping[str, Any]:
    latency = matter.get("latency")
    return latency if isinstance(latency, Mapping) else {}


def _targets(matter: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in matter.get("targets") or [] if isinstance(t, Mapping)]


def _histogram(latency: Mapping[str, Any]) -> tuple[list[float], list[float]] | None:
    histogram = latency.get("histogram")
    if not isinstance(histogram, Mapping):
        return None
    edges = [_number(e) for e in histogram.get("edges") or []]
    counts = [_number(c) for c in histogram.get("counts") or []]
    if not counts or len(edges) != len(counts) + 1:
        return None
    if any(e is None for e in edges) or any(c is None for c in counts):
        return None
    return [e for e in edges if e is not None], [c for c in counts if c is not None]


def _time_target(matter: Mapping[str, Any], unit: object) -> Mapping[str, Any] | None:
    """The matter's first whole-case target measured in ``unit`` (the latency's unit):
    the histogram shows whole-case latency, so a step or sum target does not belong."""
    if unit is None:
        return None
    for target in _targets(matter):
        if (
            target.get("unit") == unit
            and target.get("scope", "case") == "case"
            and _number(target.get("value")) is not None
        ):
            return target
    return None


def _first_time_target(matter: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for target in _targets(matter):
        if target.get("unit") in TIME_UNITS:
            return target
    return None


_ID_ATTR = re.compile(r'\bid="([^"]+)"')
_HREF_ATTR = re.compile(r'\b(?:xlink:)?href="#([^"]+)"')
_URL_REF = re.compile(r"url\(#([^)]+)\)")


def _svg(fig: Figure, prefix: str, label: str) -> str:
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
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_esc(label)}" ', 1).strip()


def _figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}\n<figcaption>{_esc(caption)}</figcaption>\n</figure>"


def _empty(text: str) -> str:
    return f'<p class="empty">{_esc(text)}</p>'


def _page(title: str, header: str, sections: Iterable[str], footer: str) -> str:
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{header}\n{body}\n<footer>{footer}</footer>\n</body>\n</html>\n"
    )


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _horizon(summary: Mapping[str, Any]) -> str:
    horizon = summary.get("horizon")
    if not isinstance(horizon, Mapping):
        return "—"
    return f"{horizon.get('start') or '?'} → {horizon.get('end') or '?'}"


_LEGEND = (
    '<p class="legend">'
    f'<span class="att-pass">≥ {PASS_LEVEL:.0%} attained</span>'
    f'<span class="att-warn">≥ {WARN_LEVEL:.0%}</span>'
    f'<span class="att-fail">&lt; {WARN_LEVEL:.0%}</span>'
    '<span class="att-na">not measured</span></p>'
)


# --------------------------------------------------------------------- single report


def _header(summary: Mapping[str, Any], title: str) -> str:
    rows = [
        ("Scenario", summary.get("scenario")),
        ("Replications", summary.get("replications")),
        ("Horizon", _horizon(summary)),
        ("Seed", summary.get("seed")),
    ]
    wall = _number(summary.get("wall_seconds"))
    if wall is not None:
        rows.append(("Wall time", f"{wall:.1f} s"))
    meta = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc('—' if v is None else v)}</dd>" for k, v in rows)
    description = summary.get("description")
    text = f"<p>{_esc(description)}</p>" if description else ""
    return f'<header>\n<h1>{_esc(title)}</h1>\n{text}\n<dl class="meta">{meta}</dl>\n</header>'


def _attainment_cell(target: Mapping[str, Any]) -> str:
    status = _status(target.get("attainment"))
    if status == "na":
        note = target.get("note") or "not measured"
        return f'<td class="att att-na">n/a <span class="note">{_esc(note)}</span></td>'
    ci = _ci(target.get("ci95"))
    ci_text = f' <span class="ci">[{ci[0] * 100:.1f}–{ci[1] * 100:.1f}]</span>' if ci else ""
    return f'<td class="num att att-{status}">{_pct(target.get("attainment"))}{ci_text}</td>'


def _attainment_table(matters: Mapping[str, Mapping[str, Any]]) -> str:
    head = (
        "<tr><th>Matter</th><th>Name</th><th class=num>Cases</th><th>Unit</th>"
        "<th class=num>p50</th><th class=num>p95</th><th>Target</th>"
        "<th class=num>Attainment (95% CI)</th><th class=num>Measured</th></tr>"
    )
    rows: list[str] = []
    for matter_id, matter in matters.items():
        latency = _latency(matter)
        unit = latency.get("unit")
        targets = _targets(matter)
        span = max(1, len(targets))
        rowspan = f' rowspan="{span}"' if span > 1 else ""
        lead = (
            f"<td{rowspan}><code>{_esc(matter_id)}</code></td>"
            f'<td{rowspan} lang="zh-CN">{_esc(matter.get("name") or "")}</td>'
            f'<td{rowspan} class="num">{_fmt_count(matter.get("cases"))}</td>'
            f"<td{rowspan}>{_esc(_unit(unit) or unit or '—')}</td>"
            f'<td{rowspan} class="num">{_esc(_with_unit(_fmt(latency.get("p50")), unit))}</td>'
            f'<td{rowspan} class="num">{_esc(_with_unit(_fmt(latency.get("p95")), unit))}</td>'
        )
        if not targets:
            rows.append(f'<tr>{lead}<td colspan="3" class="muted">no targets</td></tr>')
            continue
        for index, target in enumerate(targets):
            status = _status(target.get("attainment"))
            measured = _with_unit(_fmt(target.get("measured")), target.get("unit"))
            cells = (
                f'<td class="att att-{status}" title="{_esc(_target_details(target))}">'
                f"{_esc(_target_label(target))}</td>"
                f"{_attainment_cell(target)}"
                f'<td class="num att att-{status}">{_esc(measured)}</td>'
            )
            rows.append(f"<tr>{lead if index == 0 else ''}{cells}</tr>")
    return f"<table>\n{head}\n" + "\n".join(rows) + "\n</table>"


def _attainment_chart(matters: Mapping[str, Mapping[str, Any]], prefix: str) -> str | None:
    bars: list[tuple[str, float | None, tuple[float, float] | None]] = []
    for matter_id, matter in matters.items():
        for target in _targets(matter):
            label = (
                f"{_plot_label(matter_id, '?')}: "
                f"{_plot_label(_target_label(target, for_plot=True), '?')}"
            )
            bars.append((label, _number(target.get("attainment")), _ci(target.get("ci95"))))
    if not bars:
        return None
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(bars) + 1.3))
        positions = np.arange(len(bars))
        for y, (_label, value, ci) in zip(positions, bars, strict=True):
            if value is None:
                ax.text(0.01, y, "n/a (not measured)", va="center", color=COLOURS["na"])
                continue
            ax.barh(y, value, color=COLOURS[_status(value)], height=0.65)
            if ci is not None:
                err = [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]
                ax.errorbar(value, y, xerr=err, fmt="none", ecolor="#333333", capsize=3, lw=1)
        ax.axvline(PASS_LEVEL, color="#424242", linestyle="--", linewidth=1)
        ax.set_yticks(positions, [label for label, _, _ in bars])
        ax.set_ylim(len(bars) - 0.5, -0.5)  # first target on top
        ax.set_xlim(0, 1.05)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("attainment (share of cases / periods meeting the target)")
        ax.set_title(f"Target attainment (dashed: {PASS_LEVEL:.0%})")
        return _svg(fig, prefix, "Target attainment by matter and target")


def _histograms_chart(matters: Mapping[str, Mapping[str, Any]], prefix: str) -> str | None:
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
            latency = _latency(matter)
            unit = latency.get("unit")
            ax.set_title(_plot_label(matter_id, "?"))
            ax.set_xlabel(_plot_label(unit, "latency"))
            histogram = _histogram(latency)
            if histogram is None:
                ax.text(
                    0.5,
                    0.5,
                    "no latency data",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color=COLOURS["na"],
                )
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            edges, counts = histogram
            ax.stairs(counts, edges, fill=True, color="#90a4ae", edgecolor="#546e7a")
            ax.set_ylabel("cases")
            ax.set_ylim(0, max(max(counts), 1.0) * 1.3)  # headroom for the legend
            target = _time_target(matter, unit)
            value = _number(target.get("value")) if target else None
            if target is None or value is None:
                continue
            bound = BOUND_SYMBOL.get(str(target.get("bound")), "≤")
            suffix = UNIT_ABBREVIATIONS.get(str(target.get("unit")), "")
            text = f"target {bound} {value:g} {suffix}".strip()
            low, high = edges[0], edges[-1]
            if value <= high + 0.5 * (high - low):
                ax.set_xlim(min(low, value), max(high, value * 1.02))
                ax.axvline(value, color="#d32f2f", linewidth=1.5, label=text)
                ax.legend(loc="upper right", fontsize=7, frameon=False)
            else:
                ax.text(
                    0.98,
                    0.92,
                    f"{text} (off scale) \u2192",
                    ha="right",
                    va="top",
                    transform=ax.transAxes,
                    color="#d32f2f",
                    fontsize=7,
                )
        return _svg(fig, prefix, "Latency histograms per matter with their targets")


def _utilisation_chart(departments: Mapping[str, Any], prefix: str) -> str | None:
    rows = [d for d, v in departments.items() if isinstance(v, Mapping) and v]
    counties: list[str] = []
    for department in rows:
        for county in departments[department]:
            if county not in counties:
                counties.append(county)
    if not rows or not counties:
        return None
    values = np.full((len(rows), len(counties)), np.nan)
    for i, department in enumerate(rows):
        for j, county in enumerate(counties):
            cell = departments[department].get(county)
            if isinstance(cell, Mapping):
                number = _number(cell.get("utilization"))
                values[i, j] = np.nan if number is None else number
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
        ax.set_xticks(range(len(counties)), [_plot_label(c, "?") for c in counties])
        ax.set_yticks(range(len(rows)), [_plot_label(d, "?") for d in rows])
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
        return _svg(fig, prefix, "Clerk utilisation heatmap, department by county")


def _bottleneck_rows(bottlenecks: Sequence[Mapping[str, Any]]) -> str:
    head = (
        "<tr><th class=num>#</th><th>Department</th><th>County</th><th class=num>Clerks</th>"
        "<th class=num>Utilisation</th><th class=num>Mean wait</th>"
        "<th class=num>Max queue</th></tr>"
    )
    rows = []
    for rank, item in enumerate(bottlenecks, start=1):
        utilisation = _number(item.get("utilization"))
        status = (
            "fail" if (utilisation or 0) >= 0.9 else "warn" if (utilisation or 0) >= 0.8 else ""
        )
        css = f' class="num att att-{status}"' if status else ' class="num"'
        rows.append(
            f"<tr><td class=num>{rank}</td><td><code>{_esc(item.get('department'))}</code></td>"
            f"<td>{_esc(item.get('county'))}</td>"
            f"<td class=num>{_fmt_count(item.get('clerks'))}</td>"
            f"<td{css}>{_pct(utilisation)}</td>"
            f"<td class=num>{_esc(_with_unit(_fmt(item.get('mean_wait')), 'working_hours'))}</td>"
            f"<td class=num>{_fmt_count(item.get('max_queue'))}</td></tr>"
        )
    return f"<table>\n{head}\n" + "\n".join(rows) + "\n</table>"


_CHART_BOTTLENECKS = 30


def _bottleneck_chart(bottlenecks: Sequence[Mapping[str, Any]], prefix: str) -> str | None:
    shown = bottlenecks[:_CHART_BOTTLENECKS]
    if not shown:
        return None
    labels = [
        f"{_plot_label(b.get('department'), '?')} / {_plot_label(b.get('county'), '?')}"
        for b in shown
    ]
    values = [_number(b.get("utilization")) or 0.0 for b in shown]
    colours = [
        COLOURS["fail"] if v >= 0.9 else COLOURS["warn"] if v >= 0.8 else "#78909c" for v in values
    ]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(shown) + 1.2))
        positions = np.arange(len(shown))
        ax.barh(positions, values, color=colours, height=0.65)
        for y, value in zip(positions, values, strict=True):
            ax.text(value + 0.01, y, f"{value:.0%}", va="center", fontsize=7)
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max(1.0, max(values) + 0.08))
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel("clerk utilisation")
        ax.set_title("Bottlenecks (ranked)")
        return _svg(fig, prefix, "Bottleneck utilisation")


def write_report(
    summary: dict[str, Any], path: pathlib.Path, *, title: str | None = None
) -> pathlib.Path:
    """Write one scenario's summary as a self-contained HTML report; returns ``path``."""
    matters = _matters(summary)
    departments = summary.get("departments") or {}
    bottlenecks = [b for b in summary.get("bottlenecks") or [] if isinstance(b, Mapping)]
    title = title or f"govflow simulation report — {summary.get('scenario') or 'scenario'}"

    sections: list[str] = []

    attainment = [
        '<section id="attainment">\n<h2>Target attainment by matter</h2>',
        _LEGEND,
        _attainment_table(matters) if matters else _empty("No matters in this summary."),
    ]
    chart = _attainment_chart(matters, "att")
    if chart:
        caption = "Bars: attainment per (matter, target); whiskers: 95% CI; dashed line: 95%."
        attainment.append(_figure(chart, caption))
    sections.append("\n".join(attainment) + "\n</section>")

    latency = [
        '<section id="latency">\n<h2>Latency distribution per matter against its target</h2>'
    ]
    chart = _histograms_chart(matters, "lat")
    if chart:
        caption = (
            "Panels are labelled by matter id (names in the table above); red line: the "
            "matter's first target in the latency's unit."
        )
        latency.append(_figure(chart, caption))
    else:
        latency.append(_empty("No latency data."))
    sections.append("\n".join(latency) + "\n</section>")

    utilisation = ['<section id="utilisation">\n<h2>Clerk utilisation, department × county</h2>']
    chart = _utilisation_chart(departments if isinstance(departments, Mapping) else {}, "util")
    if chart:
        caption = "Share of clerk time busy; colour scale 0–1; grey: no clerks modelled there."
        utilisation.append(_figure(chart, caption))
    else:
        utilisation.append(_empty("No department data."))
    sections.append("\n".join(utilisation) + "\n</section>")

    bottleneck = ['<section id="bottlenecks">\n<h2>Bottlenecks</h2>']
    if bottlenecks:
        bottleneck.append(_bottleneck_rows(bottlenecks))
        chart = _bottleneck_chart(bottlenecks, "bn")
        if chart:
            caption = "Utilisation of the ranked bottlenecks; mean wait is in working hours."
            if len(bottlenecks) > _CHART_BOTTLENECKS:
                caption += f" Chart shows the first {_CHART_BOTTLENECKS}."
            bottleneck.append(_figure(chart, caption))
    else:
        bottleneck.append(_empty("No bottlenecks reported."))
    sections.append("\n".join(bottleneck) + "\n</section>")

    footer = "Generated by govflow <code>simulator.report</code>."
    return _write(path, _page(title, _header(summary, title), sections, footer))


# ----------------------------------------------------------------- comparison report


def _delta(a: object, b: object, *, kind: str, unit: object = None) -> str:
    """The B − A cell; ``kind`` is 'latency' (lower is better), 'attainment' or 'count'."""
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return '<td class="num muted">—</td>'
    diff = y - x
    if kind == "attainment":
        text = f"{diff * 100:+.1f} pp"
        better = diff > 1e-12
    elif kind == "latency":
        text = _with_unit(f"{diff:+.2f}", unit)
        better = diff < -1e-12
    else:
        text = f"{diff:+,.0f}"
        better = None
    if kind == "count" or abs(diff) <= 1e-12:
        css = "num"
    else:
        css = "num delta-better" if better else "num delta-worse"
    return f'<td class="{css}">{_esc(text)}</td>'


def _comparison_header(
    a: Mapping[str, Any], b: Mapping[str, Any], labels: tuple[str, str], title: str
) -> str:
    def row(name: str, left: object, right: object) -> str:
        cells = "".join(f"<td>{_esc('—' if v is None else v)}</td>" for v in (left, right))
        return f"<tr><th>{_esc(name)}</th>{cells}</tr>"

    rows = [
        f"<tr><th></th><th>A: {_esc(labels[0])}</th><th>B: {_esc(labels[1])}</th></tr>",
        row("Scenario", a.get("scenario"), b.get("scenario")),
        row("Description", a.get("description"), b.get("description")),
        row("Replications", a.get("replications"), b.get("replications")),
        row("Horizon", _horizon(a), _horizon(b)),
        row("Seed", a.get("seed"), b.get("seed")),
    ]
    return (
        f"<header>\n<h1>{_esc(title)}</h1>\n<table>\n" + "\n".join(rows) + "\n</table>\n</header>"
    )


def _matter_comparison(
    matter_id: str,
    ma: Mapping[str, Any] | None,
    mb: Mapping[str, Any] | None,
    labels: tuple[str, str],
) -> str:
    ma, mb = ma or {}, mb or {}
    name = ma.get("name") or mb.get("name") or ""
    la, lb = _latency(ma), _latency(mb)
    ua, ub = la.get("unit"), lb.get("unit")
    same_unit = ua == ub or not ma or not mb
    unit = ua or ub
    head = (
        f"<tr><th></th><th class=num>A: {_esc(labels[0])}</th>"
        f"<th class=num>B: {_esc(labels[1])}</th><th class=num>B − A</th></tr>"
    )
    rows = [head]
    cases = ("cases_per_replication", "Cases / replication")
    rows.append(
        f"<tr><th>{cases[1]}</th><td class=num>{_fmt_count(ma.get(cases[0]))}</td>"
        f"<td class=num>{_fmt_count(mb.get(cases[0]))}</td>"
        f"{_delta(ma.get(cases[0]), mb.get(cases[0]), kind='count')}</tr>"
    )
    for stat in ("p50", "p95"):
        left, right = la.get(stat), lb.get(stat)
        delta = (
            _delta(left, right, kind="latency", unit=unit)
            if same_unit
            else '<td class="num muted">units differ</td>'
        )
        rows.append(
            f"<tr><th>Latency {stat}</th>"
            f"<td class=num>{_esc(_with_unit(_fmt(left), ua))}</td>"
            f"<td class=num>{_esc(_with_unit(_fmt(right), ub))}</td>{delta}</tr>"
        )
    targets_a = {_target_key(t): t for t in _targets(ma)}
    targets_b = {_target_key(t): t for t in _targets(mb)}
    for key in list(targets_a) + [k for k in targets_b if k not in targets_a]:
        ta, tb = targets_a.get(key), targets_b.get(key)
        label = _target_label(ta or tb or {})
        cells = []
        for target in (ta, tb):
            if target is None:
                cells.append('<td class="num muted">—</td>')
            else:
                cells.append(_attainment_cell(target))
        delta = _delta(
            (ta or {}).get("attainment"), (tb or {}).get("attainment"), kind="attainment"
        )
        rows.append(f"<tr><th>{_esc(label)}</th>{''.join(cells)}{delta}</tr>")
    heading = f'<code>{_esc(matter_id)}</code> <span lang="zh-CN">{_esc(name)}</span>'
    missing = ""
    if not ma or not mb:
        missing = f'<p class="muted">Only in {"B" if not ma else "A"}.</p>'
    return f"<h3>{heading}</h3>\n{missing}<table>\n" + "\n".join(rows) + "\n</table>"


def _comparison_chart(
    a: Mapping[str, Mapping[str, Any]],
    b: Mapping[str, Mapping[str, Any]],
    labels: tuple[str, str],
    prefix: str,
) -> str | None:
    entries: list[tuple[str, float | None, float | None, Any, Any]] = []
    for matter_id in list(a) + [m for m in b if m not in a]:
        ma, mb = a.get(matter_id) or {}, b.get(matter_id) or {}
        target = _first_time_target(ma) or _first_time_target(mb)
        if target is None:
            continue
        key = _target_key(target)
        ta = next((t for t in _targets(ma) if _target_key(t) == key), None)
        tb = next((t for t in _targets(mb) if _target_key(t) == key), None)
        entries.append(
            (
                f"{_plot_label(matter_id, '?')}\n"
                f"{_plot_label(_target_label(target, for_plot=True), '')}",
                _number((ta or {}).get("attainment")),
                _number((tb or {}).get("attainment")),
                (ta or {}).get("ci95"),
                (tb or {}).get("ci95"),
            )
        )
    if not entries:
        return None
    legend = (_plot_label(labels[0], "A"), _plot_label(labels[1], "B"))
    if legend[0] == legend[1]:
        legend = (f"A: {legend[0]}", f"B: {legend[1]}")
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8.5, 0.6 * len(entries) + 1.4))
        positions = np.arange(len(entries))
        height = 0.38
        sides = ((-height / 2, COLOURS["a"], legend[0]), (height / 2, COLOURS["b"], legend[1]))
        for side, (offset, colour, name) in enumerate(sides):
            for y, entry in zip(positions, entries, strict=True):
                value, ci = entry[1 + side], _ci(entry[3 + side])
                if value is None:
                    ax.text(0.01, y + offset, "n/a", va="center", fontsize=7, color=COLOURS["na"])
                    continue
                ax.barh(y + offset, value, height=height, color=colour, label=name)
                if ci is not None:
                    err = [[max(0.0, value - ci[0])], [max(0.0, ci[1] - value)]]
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
        return _svg(fig, prefix, "Attainment of each matter's first time target, A versus B")


def write_comparison_report(
    a: dict[str, Any],
    b: dict[str, Any],
    path: pathlib.Path,
    *,
    labels: tuple[str, str] | None = None,
) -> pathlib.Path:
    """Write scenarios ``a`` and ``b`` side by side (with B − A) as one HTML file."""
    if labels is None:
        first, second = str(a.get("scenario") or "A"), str(b.get("scenario") or "B")
        labels = (first, second) if first != second else (f"{first} (A)", f"{second} (B)")
    title = f"govflow scenario comparison — {labels[0]} vs {labels[1]}"
    matters_a, matters_b = _matters(a), _matters(b)

    sections: list[str] = []
    overview = ['<section id="overview">\n<h2>Attainment per matter, A vs B</h2>']
    chart = _comparison_chart(matters_a, matters_b, labels, "cmp")
    if chart:
        caption = (
            f"A = {labels[0]}, B = {labels[1]}. Each matter's first time target; "
            "whiskers: 95% CI; dashed line: 95%."
        )
        overview.append(_figure(chart, caption))
    else:
        overview.append(_empty("No time targets to compare."))
    sections.append("\n".join(overview) + "\n</section>")

    detail = ['<section id="matters">\n<h2>Per-matter comparison</h2>', _LEGEND]
    detail.append(
        '<p class="muted">B − A: latency in the matter\'s unit (negative is better), '
        "attainment in percentage points (positive is better).</p>"
    )
    ids = list(matters_a) + [m for m in matters_b if m not in matters_a]
    if not ids:
        detail.append(_empty("No matters in either summary."))
    for matter_id in ids:
        detail.append(
            _matter_comparison(
                matter_id, matters_a.get(matter_id), matters_b.get(matter_id), labels
            )
        )
    sections.append("\n".join(detail) + "\n</section>")

    footer = "Generated by govflow <code>simulator.report</code>."
    header = _comparison_header(a, b, labels, title)
    return _write(path, _page(title, header, sections, footer))
