"""Generate govflow's Grafana dashboards into deploy/grafana/dashboards/.

    python deploy/grafana/build_dashboards.py          # (re)write the dashboards
    python deploy/grafana/build_dashboards.py --check  # exit 1 if the files on disk differ

Writes ``overview.json``, ``linked-transfers.json`` and ``department.json`` — one
dashboard for every department, chosen with its ``$department`` variable.  The generated
files are checked in (Grafana provisions them from /var/lib/grafana/dashboards); edit this
script, not the JSON.  Thresholds the alert rules use (the attainment objective, the lag
threshold, the age of a stuck linked transfer) are read from deploy/prometheus/alerts.yml,
so a panel's red line is where its alert fires.

Every query uses only the services' metric contract (``govflow_*``) and ``up``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CATALOG = ROOT / "services" / "core" / "data" / "catalog.yaml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
OUT = HERE / "dashboards"

SCHEMA_VERSION = 39
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "prometheus"}
TAGS = ["govflow"]


def alert_threshold(name: str, pattern: str, path: Path = ALERTS) -> int | float:
    """The number in alert ``name``'s expression that ``pattern`` (one group) captures."""
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                found = re.search(pattern, rule["expr"])
                if found is None:
                    raise ValueError(f"{path}: {name}: no threshold matching {pattern!r}")
                value = float(found.group(1))
                return int(value) if value.is_integer() else value
    raise ValueError(f"{path}: no alert {name}")


_NUMBER = r"(\d+(?:\.\d+)?)"
#: Attainment objective of GovflowTargetAttainmentLow (deploy/prometheus/alerts.yml).
OBJECTIVE = alert_threshold("GovflowTargetAttainmentLow", rf"ratio1h\s*<\s*{_NUMBER}")
#: GovflowLinkedTransferStuck fires above this age (working days).
STUCK_WORKING_DAYS = alert_threshold("GovflowLinkedTransferStuck", rf">\s*{_NUMBER}")
#: GovflowConsumerLagGrowing's threshold (messages).
LAG_THRESHOLD = alert_threshold("GovflowConsumerLagGrowing", rf"consumer_lag\)\s*>\s*{_NUMBER}")
#: The tracker's latency histograms, by the unit of the targets they measure.
LATENCY_HISTOGRAMS: list[tuple[str, str, str]] = [
    # (metric, title, target units that metric measures)
    ("govflow_case_latency_working_days", "working days", "working_days"),
    ("govflow_case_latency_hours", "hours", "hours|working_hours"),
    ("govflow_case_latency_calendar_days", "calendar days", "calendar_days"),
]
#: Buckets shown for the linked transfer's latency distribution (working days); each is
#: a bucket bound of govflow_case_latency_working_days.
LINKED_BUCKETS = [1, 2, 3, 5, 10]

Json = dict[str, Any]


# ----------------------------------------------------------------------------- queries


@dataclass
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False

    def render(self, ref_id: str) -> Json:
        target: Json = {
            "datasource": DATASOURCE,
            "editorMode": "code",
            "expr": self.expr,
            "legendFormat": self.legend or "__auto",
            "range": not self.instant,
            "instant": self.instant,
            "refId": ref_id,
        }
        if self.table:
            target["format"] = "table"
        return target


def le_match(bound: float) -> str:
    """A matcher for a bucket's ``le``: Python clients write 3 as "3.0", Go ones as "3"."""
    text = f"{bound:g}"
    if "." in text or "e" in text:
        return f'le="{text}"'
    return f'le=~"{text}(\\\\.0)?"'


def ratio_met(selector: str, window: str, by: str = "") -> str:
    """Share of ``verdict="met"`` among the target verdicts over ``window`` (0 if none met).

    A matter whose cases all missed has no ``verdict="met"`` series: ``or ... * 0``.
    """
    grouping = f"sum by ({by}) " if by else "sum"
    comma = ", " if selector else ""
    total = f"{grouping}(increase(govflow_target_verdicts_total{{{selector}}}[{window}]))"
    met = (
        f"{grouping}(increase(govflow_target_verdicts_total"
        f'{{{selector}{comma}verdict="met"}}[{window}]))'
    )
    return f"({met} or {total} * 0) / {total}"


def quantile(q: float, metric: str, selector: str, by: str, window: str) -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}, le) "
        f"(rate({metric}_bucket{{{selector}}}[{window}])))"
    )


# ------------------------------------------------------------------------------ panels


def _thresholds(steps: list[tuple[str, float | None]]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in steps],
    }


GREEN = [("green", None)]


def _targets(queries: list[Query]) -> list[Json]:
    return [q.render(chr(ord("A") + i)) for i, q in enumerate(queries)]


def timeseries(
    title: str,
    queries: list[Query],
    *,
    description: str,
    unit: str = "short",
    minimum: float | None = 0,
    maximum: float | None = None,
    bars: bool = False,
    stack: bool = False,
    threshold_lines: list[tuple[str, float | None]] | None = None,
    dashed_refs: tuple[str, ...] = (),
) -> Json:
    """A time series; ``dashed_refs`` are the refIds drawn as dashed reference lines."""
    defaults: Json = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "axisPlacement": "auto",
            "barAlignment": 0,
            "drawStyle": "bars" if bars else "line",
            "fillOpacity": 60 if bars else 10,
            "gradientMode": "none",
            "lineInterpolation": "linear",
            "lineWidth": 1,
            "pointSize": 4,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
            "thresholdsStyle": {"mode": "dashed" if threshold_lines else "off"},
        },
        "thresholds": _thresholds(threshold_lines or GREEN),
        "unit": unit,
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    overrides = [
        {
            "matcher": {"id": "byFrameRefID", "options": ref},
            "properties": [
                {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                {"id": "custom.fillOpacity", "value": 0},
                {"id": "custom.lineWidth", "value": 2},
            ],
        }
        for ref in dashed_refs
    ]
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": {
            "legend": {
                "calcs": [],
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str,
    queries: list[Query],
    *,
    description: str,
    unit: str = "short",
    thresholds: list[tuple[str, float | None]] | None = None,
    decimals: int | None = None,
    mappings: list[Json] | None = None,
    color_mode: str = "value",
    graph: bool = True,
) -> Json:
    defaults: Json = {
        "color": {"mode": "thresholds"},
        "mappings": mappings or [],
        "thresholds": _thresholds(thresholds or GREEN),
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "colorMode": color_mode,
            "graphMode": "area" if graph else "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showPercentChange": False,
            "textMode": "auto",
            "wideLayout": True,
        },
    }


def table(
    title: str,
    columns: list[tuple[str, Query, str]],
    *,
    description: str,
    sort_by: str | None = None,
) -> Json:
    """Instant queries merged on their labels; ``columns`` = (column name, query, unit)."""
    queries = [q for _, q, _ in columns]
    for q in queries:
        q.instant, q.table = True, True
    targets = _targets(queries)
    rename = {
        f"Value #{t['refId']}": name for (name, _, _), t in zip(columns, targets, strict=True)
    }
    overrides = [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "unit", "value": unit}],
        }
        for name, _, unit in columns
    ]
    transformations: list[Json] = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {"excludeByName": {"Time": True}, "renameByName": rename},
        },
    ]
    if sort_by:
        transformations.append(
            {"id": "sortBy", "options": {"sort": [{"field": sort_by, "desc": False}]}}
        )
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "transformations": transformations,
        "fieldConfig": {
            "defaults": {
                "custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
                "thresholds": _thresholds(GREEN),
            },
            "overrides": overrides,
        },
        "options": {"cellHeight": "sm", "showHeader": True, "footer": {"show": False}},
    }


# --------------------------------------------------------------------------- dashboards


def query_variable(name: str, label: str, metric_selector: str, label_name: str) -> Json:
    definition = f"label_values({metric_selector}, {label_name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"qryType": 1, "query": definition, "refId": "PrometheusVariableQueryEditor"},
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
        "skipUrlSync": False,
    }


def custom_variable(name: str, label: str, values: list[str], default: str) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(values),
        "current": {"selected": True, "text": default, "value": default},
        "options": [
            {"selected": value == default, "text": value, "value": value} for value in values
        ],
        "multi": False,
        "includeAll": False,
        "hide": 0,
        "skipUrlSync": False,
    }


@dataclass
class Board:
    uid: str
    title: str
    description: str
    variables: list[Json] = field(default_factory=list)
    panels: list[Json] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _line_height: int = 0

    def _newline(self) -> None:
        if self._x:
            self._x, self._y, self._line_height = 0, self._y + self._line_height, 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
            }
        )
        self._y += 1

    def add(self, panel: Json, width: int, height: int) -> None:
        if self._x + width > 24:
            self._newline()
        panel["gridPos"] = {"h": height, "w": width, "x": self._x, "y": self._y}
        self.panels.append(panel)
        self._x += width
        self._line_height = max(self._line_height, height)

    def render(self) -> Json:
        panels = []
        for number, panel in enumerate(self.panels, start=1):
            panels.append({"id": number, **panel})
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": TAGS,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "liveNow": False,
            "refresh": "10s",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "weekStart": "",
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "links": [
                {
                    "asDropdown": True,
                    "icon": "external link",
                    "includeVars": False,
                    "keepTime": True,
                    "tags": TAGS,
                    "targetBlank": False,
                    "title": "govflow dashboards",
                    "type": "dashboards",
                }
            ],
            "templating": {"list": self.variables},
            "panels": panels,
        }


UP_MAPPINGS: list[Json] = [
    {
        "type": "value",
        "options": {
            "0": {"color": "red", "index": 0, "text": "DOWN"},
            "1": {"color": "green", "index": 1, "text": "UP"},
        },
    }
]
ATTAINMENT_STEPS: list[tuple[str, float | None]] = [("red", None), ("green", OBJECTIVE)]


def overview() -> Json:
    matter = 'matter=~"$matter"'
    board = Board(
        uid="govflow-overview",
        title="govflow / overview",
        description="Targets, latency, throughput and health of every govflow service.",
        variables=[
            query_variable("matter", "Matter", "govflow_cases_total", "matter"),
            custom_variable("window", "Attainment window", ["5m", "15m", "1h", "6h", "1d"], "1h"),
        ],
    )
    board.row("Cases")
    board.add(
        stat(
            "Cases in flight",
            [Query("sum(govflow_replay_cases_in_flight)")],
            description="Cases the replay job submitted that are not terminal yet.",
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Submitted",
            [Query("sum(increase(govflow_replay_cases_submitted_total[$__range]))")],
            description="Cases submitted by the replay job in the dashboard's time range.",
            decimals=0,
        ),
        4,
        4,
    )
    for outcome, color in (("completed", "green"), ("rejected", "orange")):
        board.add(
            stat(
                outcome.capitalize(),
                [
                    Query(
                        f'sum(increase(govflow_cases_total{{outcome="{outcome}", {matter}}}'
                        "[$__range]))"
                    )
                ],
                description=f"Cases {outcome} (tracker) in the dashboard's time range.",
                thresholds=[(color, None)],
                decimals=0,
            ),
            4,
            4,
        )
    board.add(
        stat(
            "Targets met",
            [Query(ratio_met(matter, "$__range"))],
            description=(
                "Share of all time-target verdicts that met their target in the dashboard's "
                f"time range (objective {OBJECTIVE:.0%})."
            ),
            unit="percentunit",
            thresholds=ATTAINMENT_STEPS,
            decimals=1,
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Services down",
            [Query('count(up{job="govflow"} == 0) or vector(0)')],
            description="govflow scrape targets Prometheus cannot reach (GovflowServiceDown).",
            thresholds=[("green", None), ("red", 1)],
            color_mode="background",
            graph=False,
        ),
        4,
        4,
    )

    board.row("Targets")
    board.add(
        timeseries(
            f"Attainment by matter and target (over $window) vs {OBJECTIVE:.0%}",
            [
                Query(
                    ratio_met(matter, "$window", "matter, target"),
                    "{{matter}} / {{target}}",
                )
            ],
            description=(
                "Share of verdicts that met the target, per matter and time target, over "
                f"the selected window.  The dashed line is the {OBJECTIVE:.0%} objective of "
                "GovflowTargetAttainmentLow (which uses a 1h window)."
            ),
            unit="percentunit",
            maximum=1,
            threshold_lines=ATTAINMENT_STEPS,
        ),
        14,
        10,
    )
    target_unit = (
        " * on (matter, target) group_left (unit) "
        f"clamp(max by (matter, target, unit) (govflow_target_value{{{matter}}}), 1, 1)"
    )
    board.add(
        table(
            "Attainment against targets (dashboard range)",
            [
                (
                    "target value",
                    Query(f"max by (matter, target, unit) (govflow_target_value{{{matter}}})"),
                    "short",
                ),
                (
                    "verdicts",
                    Query(
                        "sum by (matter, target) (increase(govflow_target_verdicts_total"
                        f"{{{matter}}}[$__range])){target_unit}"
                    ),
                    "short",
                ),
                (
                    "met",
                    Query(f"{ratio_met(matter, '$__range', 'matter, target')}{target_unit}"),
                    "percentunit",
                ),
            ],
            description=(
                "Per matter and time target: the plan's target value (in its unit), the "
                "number of verdicts and the share met in the dashboard's time range."
            ),
            sort_by="met",
        ),
        10,
        10,
    )
    for metric, unit_title, target_units in LATENCY_HISTOGRAMS:
        board.add(
            timeseries(
                f"Case latency p50 / p95 ({unit_title})",
                [
                    Query(
                        quantile(0.5, metric, matter, "matter", "$__rate_interval"),
                        "{{matter}} p50",
                    ),
                    Query(
                        quantile(0.95, metric, matter, "matter", "$__rate_interval"),
                        "{{matter}} p95",
                    ),
                    Query(
                        "max by (matter, target) "
                        f'(govflow_target_value{{unit=~"{target_units}", {matter}}})',
                        "target {{matter}} / {{target}}",
                    ),
                ],
                description=(
                    f"histogram_quantile over the tracker's {metric} (matters whose targets "
                    f"are in {unit_title}); dashed: the plan's target values in that unit."
                ),
                dashed_refs=("C",),
            ),
            8,
            9,
        )

    board.row("Throughput")
    board.add(
        timeseries(
            "Events in by service",
            [
                Query(
                    "sum by (service) (rate(govflow_events_in_total[$__rate_interval]))",
                    "{{service}}",
                )
            ],
            description="Events consumed per second, per service.",
            unit="ops",
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "Events out by service",
            [
                Query(
                    "sum by (service) (rate(govflow_events_out_total[$__rate_interval]))",
                    "{{service}}",
                )
            ],
            description="Events produced per second, per service.",
            unit="ops",
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "Cases terminal by outcome",
            [
                Query(
                    f"sum by (outcome) (rate(govflow_cases_total{{{matter}}}[$__rate_interval]))",
                    "{{outcome}}",
                ),
                Query(
                    "sum(rate(govflow_replay_cases_submitted_total[$__rate_interval]))",
                    "submitted (replay)",
                ),
            ],
            description="Cases judged terminal by the tracker per second, and submissions.",
            unit="ops",
        ),
        8,
        8,
    )

    board.row("Health")
    board.add(
        timeseries(
            "Dead letters by service and reason",
            [
                Query(
                    "sum by (service, reason) "
                    "(increase(govflow_dead_letters_total[$__rate_interval])) > 0",
                    "{{service}} {{reason}}",
                )
            ],
            description="Events dead-lettered per interval (GovflowDeadLetters).",
            bars=True,
            stack=True,
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "Consumer lag by service",
            [Query("sum by (service) (govflow_consumer_lag)", "{{service}}")],
            description=(
                "Messages behind the high-water mark, summed over topics and partitions; "
                f"GovflowConsumerLagGrowing fires above {LAG_THRESHOLD} while rising."
            ),
            threshold_lines=[("green", None), ("red", LAG_THRESHOLD)],
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "Cases in flight",
            [
                Query("sum(govflow_replay_cases_in_flight)", "cases in flight (replay)"),
                Query("sum(govflow_linked_transfers_in_flight)", "linked transfers in flight"),
            ],
            description="Submitted but not yet terminal cases; linked transfers among them.",
        ),
        8,
        8,
    )
    board.add(
        stat(
            "Scrape targets",
            [Query('max by (service) (up{job="govflow"})', "{{service}}")],
            description="Whether Prometheus reaches each govflow service (not the replay job).",
            thresholds=[("red", None), ("green", 1)],
            mappings=UP_MAPPINGS,
            color_mode="background",
            graph=False,
        ),
        24,
        4,
    )
    return board.render()


def department(departments: list[Json]) -> Json:
    """One dashboard for every department service, chosen with ``$department``."""
    sel = 'department="$department", county=~"$county"'
    svc = 'service="$department"'
    names = ", ".join(f"{d['id']} ({d['name']})" for d in departments)
    department_variable = query_variable(
        "department", "Department", 'govflow_build_info{service!~"tracker|replay"}', "service"
    )
    department_variable.update(
        multi=False,
        includeAll=False,
        current={"selected": True, "text": "property", "value": "property"},
    )
    board = Board(
        uid="govflow-department",
        title="govflow / department",
        description=f"One department service (choose it above): {names}.",
        variables=[
            department_variable,
            query_variable(
                "county", "County", 'govflow_clerks{department="$department"}', "county"
            ),
        ],
    )
    board.row("$department now")
    board.add(
        stat(
            "Pending work",
            [Query(f"sum(govflow_pending_work{{{sel}}})")],
            description="Planned work not yet done (the queue), selected counties.",
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Clerks busy",
            [Query(f"sum(govflow_clerks_busy{{{sel}}})")],
            description="Clerks working on a step now, selected counties.",
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Clerk utilisation",
            [Query(f"sum(govflow_clerks_busy{{{sel}}}) / sum(govflow_clerks{{{sel}}})")],
            description="Busy clerks over all clerks, selected counties.",
            unit="percentunit",
            thresholds=[("green", None), ("orange", 0.8), ("red", 0.95)],
            decimals=0,
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Events in",
            [Query(f"sum(rate(govflow_events_in_total{{{svc}}}[$__rate_interval]))")],
            description="Events consumed per second.",
            unit="ops",
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Dead letters",
            [Query(f"sum(increase(govflow_dead_letters_total{{{svc}}}[$__range])) or vector(0)")],
            description="Events dead-lettered in the dashboard's time range.",
            thresholds=[("green", None), ("red", 1)],
            decimals=0,
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Consumer lag",
            [Query(f"sum(govflow_consumer_lag{{{svc}}})")],
            description="Messages behind the high-water mark, all topics and partitions.",
            thresholds=[("green", None), ("red", LAG_THRESHOLD)],
        ),
        4,
        4,
    )

    board.row("Queue and clerks")
    board.add(
        timeseries(
            "Queue: pending work by county",
            [Query(f"sum by (county) (govflow_pending_work{{{sel}}})", "{{county}}")],
            description="Planned work not yet done, per county.",
        ),
        12,
        9,
    )
    board.add(
        timeseries(
            "Clerks busy vs clerks by county",
            [
                Query(f"sum by (county) (govflow_clerks_busy{{{sel}}})", "{{county}} busy"),
                Query(f"sum by (county) (govflow_clerks{{{sel}}})", "{{county}} clerks"),
            ],
            description="Busy clerks (solid) against the county's clerks on duty (dashed).",
            dashed_refs=("B",),
        ),
        12,
        9,
    )
    board.add(
        table(
            "By county (now)",
            [
                (
                    "pending work",
                    Query(f"sum by (county) (govflow_pending_work{{{sel}}})"),
                    "short",
                ),
                ("clerks busy", Query(f"sum by (county) (govflow_clerks_busy{{{sel}}})"), "short"),
                ("clerks", Query(f"sum by (county) (govflow_clerks{{{sel}}})"), "short"),
                (
                    "utilisation",
                    Query(
                        f"sum by (county) (govflow_clerks_busy{{{sel}}}) "
                        f"/ sum by (county) (govflow_clerks{{{sel}}})"
                    ),
                    "percentunit",
                ),
            ],
            description="Queue and clerks of each county now.",
            sort_by="county",
        ),
        12,
        9,
    )
    board.add(
        timeseries(
            "Processing time p50 / p95",
            [
                Query(
                    quantile(
                        0.5,
                        "govflow_step_processing_seconds",
                        'department="$department"',
                        "kind",
                        "$__rate_interval",
                    ),
                    "{{kind}} p50",
                ),
                Query(
                    quantile(
                        0.95,
                        "govflow_step_processing_seconds",
                        'department="$department"',
                        "kind",
                        "$__rate_interval",
                    ),
                    "{{kind}} p95",
                ),
            ],
            description=(
                "Wall time to handle one input event (input) or execute one due action (action)."
            ),
            unit="s",
        ),
        12,
        9,
    )

    board.row("Events")
    board.add(
        timeseries(
            "Events in by topic",
            [
                Query(
                    f"sum by (topic) (rate(govflow_events_in_total{{{svc}}}[$__rate_interval]))",
                    "{{topic}}",
                )
            ],
            description="Events consumed per second, per topic.",
            unit="ops",
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Events out by type",
            [
                Query(
                    f"sum by (type) (rate(govflow_events_out_total{{{svc}}}[$__rate_interval]))",
                    "{{type}}",
                )
            ],
            description="Events produced per second, per event type.",
            unit="ops",
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Dead letters by reason",
            [
                Query(
                    "sum by (reason) "
                    f"(increase(govflow_dead_letters_total{{{svc}}}[$__rate_interval]))",
                    "{{reason}}",
                )
            ],
            description="Events dead-lettered per interval: invalid_event or handler_error.",
            bars=True,
            stack=True,
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "Consumer lag by topic",
            [Query(f"sum by (topic) (govflow_consumer_lag{{{svc}}})", "{{topic}}")],
            description="Messages behind the high-water mark, per topic.",
            threshold_lines=[("green", None), ("red", LAG_THRESHOLD)],
        ),
        12,
        8,
    )
    return board.render()


def linked_transfers(catalog: Json) -> Json:
    matter = next(m for m in catalog["matters"] if m["id"] == "linked_transfer")
    utilities = sorted({s["department"] for s in matter["steps"] if s.get("effect") == "account"})
    chain = sorted({s["department"] for s in matter["steps"]} - set(utilities))
    target_days = min(float(t["value"]) for t in matter["targets"] if t["unit"] == "working_days")
    lt = 'matter="linked_transfer"'
    metric = "govflow_case_latency_working_days"
    board = Board(
        uid="govflow-linked-transfers",
        title="govflow / linked transfers",
        description=(
            f"{matter['name']} ({matter['name_en']}): cases in flight, age, latency against "
            f"the {target_days:g}-working-day target, verdicts and the utilities' queues."
        ),
    )
    board.row("Now")
    board.add(
        stat(
            "In flight",
            [Query("max(govflow_linked_transfers_in_flight)")],
            description="Linked transfers submitted and not yet terminal.",
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Oldest open (working days)",
            [Query("max(govflow_linked_transfer_oldest_open_working_days)")],
            description=(
                "Age of the oldest linked transfer not yet terminal; "
                f"GovflowLinkedTransferStuck fires above {STUCK_WORKING_DAYS}."
            ),
            thresholds=[("green", None), ("orange", target_days), ("red", STUCK_WORKING_DAYS)],
            decimals=1,
        ),
        4,
        4,
    )
    for outcome, color in (("completed", "green"), ("rejected", "orange")):
        board.add(
            stat(
                outcome.capitalize(),
                [
                    Query(
                        f'sum(increase(govflow_cases_total{{{lt}, outcome="{outcome}"}}[$__range]))'
                    )
                ],
                description=f"Linked transfers {outcome} in the dashboard's time range.",
                thresholds=[(color, None)],
                decimals=0,
            ),
            4,
            4,
        )
    board.add(
        stat(
            f"Within {target_days:g} working days",
            [
                Query(
                    f"sum(increase({metric}_bucket{{{lt}, {le_match(target_days)}}}[$__range])) "
                    f"/ sum(increase({metric}_count{{{lt}}}[$__range]))"
                )
            ],
            description=(
                f"Share of linked transfers done within {target_days:g} working days in the "
                "dashboard's time range (case latency)."
            ),
            unit="percentunit",
            thresholds=ATTAINMENT_STEPS,
            decimals=1,
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Targets met",
            [Query(ratio_met(lt, "$__range"))],
            description="Share of the tracker's target verdicts met in the time range.",
            unit="percentunit",
            thresholds=ATTAINMENT_STEPS,
            decimals=1,
        ),
        4,
        4,
    )

    board.row("Latency")
    board.add(
        timeseries(
            f"Latency vs the {target_days:g}-working-day target",
            [
                Query(quantile(q, metric, lt, "matter", "$__rate_interval"), f"p{q * 100:g}")
                for q in (0.5, 0.9, 0.99)
            ]
            + [
                Query(
                    f'max by (target) (govflow_target_value{{{lt}, unit="working_days"}})',
                    "target: {{target}}",
                )
            ],
            description=(
                "Quantiles of the linked transfer's case latency (working days); dashed: "
                "the plan's target."
            ),
            dashed_refs=("D",),
        ),
        12,
        9,
    )
    board.add(
        stat(
            "Latency distribution (dashboard range)",
            [
                Query(
                    f"sum(increase({metric}_bucket{{{lt}, {le_match(bound)}}}[$__range])) "
                    f"/ sum(increase({metric}_count{{{lt}}}[$__range]))",
                    f"≤ {bound:g} working days",
                )
                for bound in LINKED_BUCKETS
            ]
            + [
                Query(
                    f"1 - sum(increase({metric}_bucket{{{lt}, "
                    f"{le_match(LINKED_BUCKETS[-1])}}}[$__range])) "
                    f"/ sum(increase({metric}_count{{{lt}}}[$__range]))",
                    f"> {LINKED_BUCKETS[-1]:g} working days",
                )
            ],
            description=(
                "Share of the linked transfers done in the time range whose case latency "
                "was at most N working days (cumulative), and the share beyond the last."
            ),
            unit="percentunit",
            decimals=1,
            graph=False,
        ),
        12,
        9,
    )
    board.add(
        timeseries(
            "Oldest open linked transfer (working days)",
            [Query("max(govflow_linked_transfer_oldest_open_working_days)", "oldest open")],
            description=(
                f"Dashed: the {target_days:g}-working-day target and the "
                f"{STUCK_WORKING_DAYS}-day alert threshold."
            ),
            threshold_lines=[
                ("green", None),
                ("orange", target_days),
                ("red", STUCK_WORKING_DAYS),
            ],
        ),
        12,
        8,
    )
    board.add(
        timeseries(
            "In flight",
            [Query("max(govflow_linked_transfers_in_flight)", "in flight")],
            description="Linked transfers submitted and not yet terminal.",
        ),
        12,
        8,
    )

    board.row("Verdicts")
    board.add(
        timeseries(
            "Verdicts per interval",
            [
                Query(
                    "sum by (target, verdict) (increase(govflow_target_verdicts_total"
                    f"{{{lt}}}[$__rate_interval]))",
                    "{{target}} {{verdict}}",
                )
            ],
            description="Target verdicts given by the tracker (met or missed), per target.",
            bars=True,
            stack=True,
        ),
        12,
        8,
    )
    board.add(
        table(
            "Verdicts (dashboard range)",
            [
                (
                    "verdicts",
                    Query(
                        "sum by (target, verdict) (increase(govflow_target_verdicts_total"
                        f"{{{lt}}}[$__range]))"
                    ),
                    "short",
                )
            ],
            description="Met and missed verdicts per target in the time range.",
            sort_by="target",
        ),
        12,
        8,
    )

    utility_re = "|".join(utilities)
    chain_re = "|".join(chain)
    board.row("Departments on the chain")
    board.add(
        timeseries(
            f"Utility departments: pending work ({', '.join(utilities)})",
            [
                Query(
                    f'sum by (department) (govflow_pending_work{{department=~"{utility_re}"}})',
                    "{{department}}",
                )
            ],
            description="Planned work not yet done at the utilities that transfer accounts.",
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            "Utility departments: clerk utilisation",
            [
                Query(
                    f'sum by (department) (govflow_clerks_busy{{department=~"{utility_re}"}}) '
                    f'/ sum by (department) (govflow_clerks{{department=~"{utility_re}"}})',
                    "{{department}}",
                )
            ],
            description="Busy clerks over clerks on duty, per utility.",
            unit="percentunit",
            maximum=1,
        ),
        8,
        8,
    )
    board.add(
        timeseries(
            f"Upstream departments: pending work ({', '.join(chain)})",
            [
                Query(
                    f'sum by (department) (govflow_pending_work{{department=~"{chain_re}"}})',
                    "{{department}}",
                )
            ],
            description=(
                "Planned work not yet done at the steps before the account transfers "
                "(one-window intake, property registration, transaction check, tax)."
            ),
        ),
        8,
        8,
    )
    return board.render()


# ------------------------------------------------------------------------------- files


def load_catalog(path: Path = CATALOG) -> Json:
    with path.open(encoding="utf-8") as handle:
        data: Json = yaml.safe_load(handle)
    return data


def dashboards(catalog: Json) -> dict[str, Json]:
    """File name -> dashboard JSON, for every dashboard this script owns."""
    boards = {"overview.json": overview(), "linked-transfers.json": linked_transfers(catalog)}
    boards["department.json"] = department(catalog["departments"])
    return boards


def render(board: Json) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def stale_files(out: Path, names: set[str]) -> list[Path]:
    """Dashboards in the folder this script no longer writes."""
    return sorted(p for p in out.glob("*.json") if p.name not in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the files on disk differ, write nothing"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="output directory")
    args = parser.parse_args(argv)
    out: Path = args.out
    wanted = {name: render(board) for name, board in dashboards(load_catalog()).items()}
    stale = stale_files(out, set(wanted))
    if args.check:
        differ = [
            name
            for name, text in wanted.items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
        ]
        for name in differ:
            print(f"out of date: {out / name}", file=sys.stderr)
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        if differ or stale:
            print(f"run: python {Path(__file__).name} to regenerate", file=sys.stderr)
            return 1
        print(f"{len(wanted)} dashboards up to date")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        (out / name).write_text(text, encoding="utf-8")
    for path in stale:
        path.unlink()
    print(f"wrote {len(wanted)} dashboards to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
