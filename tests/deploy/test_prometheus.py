"""The compose stack's Prometheus config and alert rules pass promtool and cover the issue.

Runs ``promtool check config``, ``promtool check rules`` and ``promtool test rules`` on
deploy/prometheus/, and checks the alerts the observability issue asks for exist, are
well formed, are unit tested both ways and use only the services' metric contract.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yml"
SERVICES = ROOT / "services"

PROMTOOL_MISSING = "promtool missing: make test installs Debian's prometheus package"

#: The alerts the observability issue requires, by name.
REQUIRED_ALERTS = {
    "GovflowTargetAttainmentLow",  # share of met verdicts per matter/target below 95% (1h)
    "GovflowDeadLetters",  # dead letters appearing
    "GovflowConsumerLagGrowing",  # summed lag per service rising and above a threshold
    "GovflowServiceDown",  # up{job=~"govflow.*"} == 0
    "GovflowLinkedTransferStuck",  # oldest open linked transfer above 10 working days
}
SEVERITIES = {"warning", "critical"}

#: The services' metric contract: the only metric names PromQL here may use (plus `up`).
HISTOGRAMS = {
    "govflow_step_processing_seconds",
    "govflow_case_latency_working_days",
    "govflow_case_latency_hours",
    "govflow_case_latency_calendar_days",
}
CONTRACT_METRICS = {
    "up",
    "govflow_build_info",
    "govflow_events_in_total",
    "govflow_events_out_total",
    "govflow_dead_letters_total",
    "govflow_consumer_lag",
    "govflow_pending_work",
    "govflow_clerks_busy",
    "govflow_clerks",
    "govflow_cases_total",
    "govflow_target_verdicts_total",
    "govflow_target_value",
    "govflow_linked_transfers_in_flight",
    "govflow_linked_transfer_oldest_open_working_days",
    "govflow_replay_cases_submitted_total",
    "govflow_replay_cases_terminal_total",
    "govflow_replay_cases_in_flight",
} | {f"{name}_{suffix}" for name in HISTOGRAMS for suffix in ("bucket", "count", "sum")}
_METRIC_NAME = re.compile(r"\bgovflow_[a-z0-9_]+")


def contract_violations(expr: str) -> set[str]:
    """``govflow_*`` metric names in ``expr`` that are not in the contract."""
    return set(_METRIC_NAME.findall(expr)) - CONTRACT_METRICS


def service_packages() -> list[str]:
    """Service packages: those whose app.py defines the Faust worker's ``app``.

    (services/runtime/app.py is the app factory, not a worker.)
    """
    return sorted(
        path.parent.name
        for path in SERVICES.glob("*/app.py")
        if re.search(r"^app\s*=", path.read_text(encoding="utf-8"), re.MULTILINE)
    )


def department_packages() -> list[str]:
    return [name for name in service_packages() if name != "tracker"]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip(PROMTOOL_MISSING)
    return subprocess.run(
        [exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def assert_promtool_ok(*args: str) -> None:
    result = promtool(*args)
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of alerts.yml of ``kind`` ("alert" or "record")."""
    return [
        rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if kind in rule
    ]


# ------------------------------------------------------------------------------ promtool


def test_promtool_check_config() -> None:
    """Also checks the rule files the config names, relative to it."""
    assert_promtool_ok("check", "config", str(CONFIG.relative_to(ROOT)))


def test_promtool_check_rules() -> None:
    assert_promtool_ok("check", "rules", str(ALERTS.relative_to(ROOT)))


def test_promtool_unit_tests() -> None:
    assert_promtool_ok("test", "rules", str(ALERTS_TEST.relative_to(ROOT)))


# --------------------------------------------------------------------------------- rules


def test_required_alerts_exist() -> None:
    names = [rule["alert"] for rule in rules("alert")]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    missing = REQUIRED_ALERTS - set(names)
    assert not missing, f"alerts.yml lacks {sorted(missing)}"


@pytest.mark.parametrize("alert", sorted(REQUIRED_ALERTS))
def test_alert_is_well_formed(alert: str) -> None:
    rule = next(rule for rule in rules("alert") if rule["alert"] == alert)
    assert rule.get("for"), f"{alert} has no `for`"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{alert}: severity label"
    annotations = rule.get("annotations", {})
    assert annotations.get("summary"), f"{alert}: no summary annotation"
    assert len(annotations.get("description", "")) > 80, f"{alert}: say what to do"


def test_rules_use_only_the_metric_contract() -> None:
    recorded = {rule["record"] for rule in rules("record")}
    for rule in rules("record") + rules("alert"):
        name = rule.get("record") or rule.get("alert")
        assert not contract_violations(rule["expr"]), (
            f"{name} uses metrics outside the contract: {contract_violations(rule['expr'])}"
        )
        used = set(re.findall(r"\bgovflow:[a-z0-9_:]+", rule["expr"]))
        assert used <= recorded, f"{name} uses unknown recordings {used - recorded}"


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    """alerts_test.yml makes each alert fire somewhere and stay quiet somewhere."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in rules("alert")}
    assert alerts - fires == set(), f"never shown firing: {sorted(alerts - fires)}"
    assert alerts - quiet == set(), f"never shown quiet: {sorted(alerts - quiet)}"


# ------------------------------------------------------------------------- scrape config


def test_scrape_config_targets_every_service() -> None:
    config = load_yaml(CONFIG)
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"govflow", "govflow-replay", "prometheus"}

    # every replica of every service, found by DNS (scaled departments included), with
    # the `service` label taken from the DNS name
    govflow = jobs["govflow"]
    scraped: dict[str, str] = {}
    for dns in govflow["dns_sd_configs"]:
        assert dns["type"] == "A" and dns["port"] == 9300, dns
        scraped |= {name: f"{name}:{dns['port']}" for name in dns["names"]}
    assert {"source_labels": ["__meta_dns_name"], "target_label": "service"} in govflow[
        "relabel_configs"
    ]
    expected = {service: f"{service}:9300" for service in service_packages()}
    assert "tracker" in expected and len(expected) == len(department_packages()) + 1
    assert scraped == expected

    replay = [t for s in jobs["govflow-replay"]["static_configs"] for t in s["targets"]]
    assert replay == ["replay:9300"]
    own = [t for s in jobs["prometheus"]["static_configs"] for t in s["targets"]]
    assert own == ["localhost:9090"]
