"""Grafana provisioning and dashboards: valid PromQL, one department dashboard, in sync.

Every panel query (rows included) and every ``label_values`` variable selector is given
concrete values for its Grafana variables, written as a recording rule and checked with
``promtool check rules``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_prometheus import (
    ROOT,
    assert_promtool_ok,
    contract_violations,
    department_packages,
)

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
BUILD = GRAFANA / "build_dashboards.py"
PROVISIONING = GRAFANA / "provisioning"
DATASOURCE_UID = "prometheus"
PANEL_TYPES = {"row", "timeseries", "stat", "table"}

#: Concrete values for Grafana's built-in and the dashboards' own variables.
VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "1h",
    "__interval_ms": "30000",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "department": "tax",
    "county": "xinzhou",
    "matter": "linked_transfer",
    "service": "tax",
    "window": "1h",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in VARIABLES, f"no test value for Grafana variable ${name} in {expr!r}"
        return VARIABLES[name]

    return _VARIABLE.sub(value, expr)


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, also those nested in (collapsed) rows."""
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def queries(path: Path) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable of a dashboard."""
    board = load(path)
    for panel in panels(board):
        for target in panel.get("targets", []):
            if target.get("expr"):
                where = f"{path.name}: panel {panel.get('title')!r} {target.get('refId')}"
                yield where, target["expr"]
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text.strip())
        assert match, f"{path.name}: variable ${variable['name']}: unexpected query {text!r}"
        if match.group(1):
            yield f"{path.name}: variable ${variable['name']}", match.group(1)


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    files = dashboard_files()
    assert files, f"no dashboards in {DASHBOARDS}"
    return {path.name: load(path) for path in files}


# ------------------------------------------------------------------------------- PromQL


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    checked = [
        (where, substitute(expr)) for path in dashboard_files() for where, expr in queries(path)
    ]
    assert len(checked) > 50
    rules = [
        {"record": f"dashboard:check:{number}", "expr": expr}
        for number, (_, expr) in enumerate(checked)
    ]
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard-check", "rules": rules}]}, width=10_000),
        encoding="utf-8",
    )
    legend = "\n".join(
        f"dashboard:check:{number} <- {where}" for number, (where, _) in enumerate(checked)
    )
    try:
        assert_promtool_ok("check", "rules", str(rule_file))
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- rules\n{legend}") from None


def test_queries_use_only_the_metric_contract() -> None:
    for path in dashboard_files():
        for where, expr in queries(path):
            assert not contract_violations(expr), f"{where}: {contract_violations(expr)}"
            assert "govflow:" not in expr, f"{where}: dashboards use raw metrics, not recordings"


# ---------------------------------------------------------------------------- structure


def test_uids_and_titles_are_unique(boards: dict[str, dict[str, Any]]) -> None:
    uids = [board["uid"] for board in boards.values()]
    titles = [board["title"] for board in boards.values()]
    assert all(uids) and all(titles)
    assert len(set(uids)) == len(uids), f"duplicate uids: {uids}"
    assert len(set(titles)) == len(titles), f"duplicate titles: {titles}"
    assert all(len(uid) <= 40 for uid in uids), "Grafana uids are at most 40 characters"


def test_expected_dashboards_exist(boards: dict[str, dict[str, Any]]) -> None:
    assert set(boards) == {"overview.json", "linked-transfers.json", "department.json"}


def test_one_department_dashboard_serves_every_department(
    boards: dict[str, dict[str, Any]],
) -> None:
    board = boards["department.json"]
    exprs = [
        expr
        for where, expr in queries(DASHBOARDS / "department.json")
        if "variable $department" not in where  # the one that lists the departments
    ]
    assert all("$department" in expr for expr in exprs), "every query selects the department"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    chosen = variables["department"]
    assert chosen["type"] == "query" and not chosen["multi"] and not chosen["includeAll"]
    assert "$department" in variables["county"]["definition"]  # counties of that department
    for dept in department_packages():  # the description names every department
        assert dept in board["description"], dept
    text = "\n".join(exprs)
    for metric in (
        "govflow_pending_work",
        "govflow_clerks_busy",
        "govflow_clerks{",
        "govflow_step_processing_seconds_bucket",
        "govflow_events_in_total",
        "govflow_events_out_total",
        "govflow_dead_letters_total",
    ):
        assert metric in text, f"{board['title']} shows no {metric}"


def test_thresholds_come_from_the_alert_rules(tmp_path: Path) -> None:
    """The red lines are where the alerts fire: read from alerts.yml, not copied."""
    sys.path.insert(0, str(GRAFANA))
    try:
        import build_dashboards
    finally:
        sys.path.remove(str(GRAFANA))
    rules = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    edited = tmp_path / "alerts.yml"
    edited.write_text(
        rules.replace(
            "sum by (service) (govflow_consumer_lag) > 1000",
            "sum by (service) (govflow_consumer_lag) > 250",
        ),
        encoding="utf-8",
    )
    pattern = r"consumer_lag\)\s*>\s*(\d+(?:\.\d+)?)"
    assert build_dashboards.alert_threshold("GovflowConsumerLagGrowing", pattern) == 1000
    assert build_dashboards.alert_threshold("GovflowConsumerLagGrowing", pattern, edited) == 250
    with pytest.raises(ValueError, match="no alert"):
        build_dashboards.alert_threshold("NoSuchAlert", pattern, edited)
    department = json.loads((DASHBOARDS / "department.json").read_text(encoding="utf-8"))
    lag = next(p for p in panels(department) if p.get("title") == "Consumer lag")
    steps = lag["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == build_dashboards.LAG_THRESHOLD


def test_overview_and_linked_transfers_cover_the_issue(
    boards: dict[str, dict[str, Any]],
) -> None:
    overview = "\n".join(expr for _, expr in queries(DASHBOARDS / "overview.json"))
    for needle in (
        "govflow_target_verdicts_total",
        "histogram_quantile(",
        "govflow_case_latency_working_days_bucket",
        "govflow_case_latency_hours_bucket",
        "govflow_case_latency_calendar_days_bucket",
        "govflow_events_in_total",
        "govflow_events_out_total",
        "govflow_dead_letters_total",
        "govflow_consumer_lag",
        "govflow_replay_cases_in_flight",
    ):
        assert needle in overview, f"overview lacks {needle}"
    linked = "\n".join(expr for _, expr in queries(DASHBOARDS / "linked-transfers.json"))
    for needle in (
        "govflow_linked_transfers_in_flight",
        "govflow_linked_transfer_oldest_open_working_days",
        'govflow_case_latency_working_days_bucket{matter="linked_transfer"',
        'govflow_target_value{matter="linked_transfer"',
        "govflow_target_verdicts_total",
        "govflow_pending_work",
    ):
        assert needle in linked, f"linked-transfers lacks {needle}"


def test_panels_are_well_formed(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        assert 36 <= board["schemaVersion"] <= 41, name
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in panels(board):
            where = f"{name}: {panel.get('title')!r}"
            assert panel["type"] in PANEL_TYPES, where
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == DATASOURCE_UID, where
            assert panel["targets"], f"{where}: no queries"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID, where
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == DATASOURCE_UID, name


# ------------------------------------------------------------------- generator, provision


def run_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILD), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_generated_dashboards_are_up_to_date() -> None:
    result = run_build("--check")
    assert result.returncode == 0, (
        f"dashboards out of date: run python {BUILD.relative_to(ROOT)}\n"
        f"{result.stdout}{result.stderr}"
    )


def test_check_mode_notices_drift(tmp_path: Path) -> None:
    assert run_build("--out", str(tmp_path)).returncode == 0
    assert run_build("--check", "--out", str(tmp_path)).returncode == 0
    edited = tmp_path / "overview.json"
    edited.write_text(edited.read_text(encoding="utf-8").replace("overview", "edited"), "utf-8")
    assert run_build("--check", "--out", str(tmp_path)).returncode == 1
    assert run_build("--out", str(tmp_path)).returncode == 0
    (tmp_path / "department-abolished.json").write_text("{}", encoding="utf-8")  # an old copy
    assert run_build("--check", "--out", str(tmp_path)).returncode == 1
    assert run_build("--out", str(tmp_path)).returncode == 0
    assert not (tmp_path / "department-abolished.json").exists()


def test_provisioning() -> None:
    datasources = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    (source,) = datasources["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(
        (PROVISIONING / "dashboards" / "govflow.yml").read_text(encoding="utf-8")
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
