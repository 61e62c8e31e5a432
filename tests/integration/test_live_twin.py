"""The live twin end to end on the embedded broker: up, replay, dead letters, down."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import yaml

from services.runtime.processes import process_alive
from simulator.agreement import compare
from simulator.summary import read_summary
from tests.integration.conftest import BROKER_PARAMS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def govflow(
    env: dict[str, str], *args: str, timeout: float = 400
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govflow.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
        timeout=timeout,
    )


@pytest.fixture(scope="module", params=BROKER_PARAMS)
def twin(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    data = tmp_path_factory.mktemp(f"twin-{request.param}")
    env = {"GOVFLOW_DATA_DIR": str(data)}
    started = govflow(env, "up", "--broker", request.param, "--prometheus", timeout=240)
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads((data / "state.json").read_text())
    yield env, data, state
    stopped = govflow(env, "down", timeout=240)
    assert stopped.returncode == 0, stopped.stderr
    assert "every process has exited" in stopped.stdout
    # right away: `down` returns only once what it stopped has exited
    leftovers = [p["pid"] for p in state["services"].values() if process_alive(p["pid"])]
    assert leftovers == [] and not process_alive(state["broker_pid"])
    assert not process_alive(state["prometheus"]["pid"])


def test_status_shows_every_service_joined(twin):
    env, _, state = twin
    result = govflow(env, "status")
    assert result.returncode == 0, result.stdout
    for name in state["services"]:
        assert name in result.stdout


def test_replay_completes_every_case(twin, tmp_path):
    env, _, _ = twin
    scenario = tmp_path / "short.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "base": str(ROOT / "scenarios" / "shangrao-2021.yaml"),
                "name": "short",
                "horizon": {"start": "2021-03-01", "end": "2021-03-02"},
                "demand": {
                    m: {"per_year": 0}
                    for m in (
                        "power_low_voltage",
                        "power_high_voltage_single",
                        "power_high_voltage_dual",
                        "power_high_voltage_single_critical",
                        "power_high_voltage_dual_critical",
                        "water_connection",
                        "gas_connection",
                        "procurement_award",
                        "procurement_complaint",
                        "procurement_challenge",
                        "rule_consultation",
                        "export_tax_rebate",
                        "enterprise_deregistration",
                        "water_complaint",
                        "gas_complaint",
                        "tender_objection",
                        "seizure_registration",
                        "objection_registration",
                        "import_clearance",
                        "export_clearance",
                        "cancellation_registration",
                    )
                },
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = govflow(
        env,
        "replay",
        "--scenario",
        str(scenario),
        "--speed",
        "86400",
        "--cases",
        "40",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    system = summary["system"]
    assert system["cases_submitted"] == system["cases_terminal"] == 40
    assert sum(m["cases"] for m in summary["matters"].values()) == 40
    assert (out / "events.csv").read_text(encoding="utf-8").count("\n") > 40
    assert (out / "report.html").exists()


def test_replay_agrees_with_the_simulation(twin, tmp_path):
    """The demo scenario live against `govflow simulate` with the same seed: equal case
    counts, and per-matter p50 and p95 latency within 5 % (or 0.05 working days).

    At half the demo's speed (43,200x): with 16 department workers, the tracker and the
    broker on two cores, a submission can reach a department a wall second late — a
    sim day at 86,400x, enough to put a late arrival behind work that arrived after it
    (2026-12-05: a procurement complaint 13.17 wd live vs 12.35 simulated, its finance
    clerk taken by a later step; the pool's backfill cannot place 8 hours of work in the
    shorter gap).  The agreement is the twin's, at a speed the machine keeps up with."""
    env, _, _ = twin
    scenario = str(ROOT / "scenarios" / "demo.yaml")
    live, simulated = tmp_path / "live", tmp_path / "sim"
    replayed = govflow(  # the default wait is for 86,400x: procurement runs ~80 sim days
        env,
        "replay",
        "--scenario",
        scenario,
        "--speed",
        "43200",
        "--timeout",
        "600",
        "--out",
        str(live),
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    ran = govflow(
        env, "simulate", "--scenario", scenario, "--replications", "1", "--out", str(simulated)
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    a = json.loads((live / "summary.json").read_text(encoding="utf-8"))
    b = json.loads((simulated / "summary.json").read_text(encoding="utf-8"))
    assert a["seed"] == b["seed"]
    assert a["system"]["cases_submitted"] == a["system"]["cases_terminal"]
    assert set(a["matters"]) == set(b["matters"])
    compared, differing = compare(
        read_summary(live / "summary.json"), read_summary(simulated / "summary.json")
    )
    assert compared >= 20, "the demo scenario should exercise (almost) every matter"
    assert differing == []


def test_linked_transfers_survive_every_fault_and_verify(twin, tmp_path):
    """scenarios/linked-faults.yaml injects tax rejections, arrears, transient faults,
    seizures in flight and utility outages; afterwards `govflow verify` passes."""
    env, _, _ = twin
    out = tmp_path / "lf"
    scenario = str(ROOT / "scenarios" / "linked-faults.yaml")
    replayed = govflow(env, "replay", "--scenario", scenario, "--speed", "86400", "--out", str(out))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    verified = govflow(env, "verify", "--run", str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    counts = json.loads(verified.stdout.strip().splitlines()[-1])
    assert counts["cases"] > 300
    assert counts["lost"] == counts["duplicates"] == 0
    assert counts["mismatched_units"] == counts["locked_units"] == 0
    assert counts["uncleared_transfers"] == 0
    # the faults did happen: refusals at the pivot and by seizures, retried utility steps
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["matters"]["linked_transfer"]["rejected"] > 5
    with (out / "events.csv").open(encoding="utf-8") as rows:
        linked = [r for r in csv.DictReader(rows) if r["case:matter"] == "linked_transfer"]
    refused = Counter(r["concept:name"] for r in linked if r["outcome"] == "rejected")
    # the pivot; and 查封 landing before the lock (the window's intake comes first) or
    # before the registration
    assert refused["tax_clearance"] > 5, refused
    assert refused["accept_lock"] + refused["register"] >= 1, refused
    retried = Counter(r["concept:name"] for r in linked if r["outcome"] == "retry")
    assert sum(retried[u] for u in ("power_transfer", "water_transfer", "gas_transfer")) > 10
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    again = [f for f in ledger if f["fact"] == "step" and f["attempt"] > 1]
    assert len(again) > 10  # retried attempts that then succeeded


def prometheus_query(state: dict, query: str) -> list[dict]:
    url = f"{state['prometheus_url']}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = json.loads(reply.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def scalar(state: dict, query: str) -> float:
    result = prometheus_query(state, query)
    return float(result[0]["value"][1]) if result else 0.0


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1.0)


def test_prometheus_sees_the_services_and_the_replay(twin, tmp_path):
    """`govflow up --prometheus` scrapes every service; after a replay the tracker's
    case counters have grown by exactly what the replay submitted."""
    env, _, state = twin
    services = len(state["services"])
    up = wait_for(lambda: scalar(state, 'sum(up{job="govflow"})') == services)
    assert up, prometheus_query(state, 'up{job="govflow"}')
    assert scalar(state, "count(govflow_build_info)") == services
    before = scalar(state, "sum(govflow_cases_total)")
    out = tmp_path / "out"
    replayed = govflow(
        env,
        "replay",
        "--scenario",
        str(ROOT / "scenarios" / "demo.yaml"),
        "--speed",
        "864000",
        "--cases",
        "60",
        "--out",
        str(out),
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    submitted = summary["system"]["cases_submitted"]
    assert submitted == 60
    grown = wait_for(lambda: scalar(state, "sum(govflow_cases_total)") - before == submitted)
    assert grown, scalar(state, "sum(govflow_cases_total)") - before
    # the replay's own counters were scraped while it ran
    # (its last sample: earlier replays of this module scraped the same target)
    assert scalar(state, "last_over_time(govflow_replay_cases_submitted_total[5m])") == submitted
    # latency histograms in the targets' units, verdicts, department gauges, processing time
    assert scalar(state, "sum(govflow_case_latency_working_days_count)") > 0
    assert scalar(state, "sum(govflow_target_verdicts_total)") > 0
    assert scalar(state, "count(govflow_clerks)") > 12
    assert scalar(state, "sum(govflow_step_processing_seconds_count)") > submitted
    assert scalar(state, "sum(govflow_events_in_total)") > submitted
    targets = prometheus_query(state, 'govflow_target_value{matter="property_transfer"}')
    assert any(float(t["value"][1]) == 3 for t in targets)  # 一般不动产登记 3 working days
    rules = json.loads(
        urllib.request.urlopen(f"{state['prometheus_url']}/api/v1/rules", timeout=10).read()
    )
    assert rules["data"]["groups"], "the alert rules from deploy/prometheus are loaded"


def test_malformed_flood_is_dead_lettered_while_cases_complete(twin, tmp_path):
    """Every family of malformed message, on every service input topic, interleaved
    with a replay (and exact duplicates of its events): each reader parks each one with
    a reason, the cases still complete, verify passes and no service restarts."""
    from services.core.catalog import default_catalog
    from simulator.malformed import FAMILIES, flood_during_replay

    _, _, state = twin
    pids = {name: p["pid"] for name, p in state["services"].items()}
    report = flood_during_replay(
        state["broker_url"],
        default_catalog(),
        list(state["services"]),
        ROOT / "scenarios" / "linked-faults.yaml",
        86400.0,
        tmp_path / "flooded",
        per_family=2,
        tag=f"flood{uuid.uuid4().hex[:8]}",
        letters_timeout=180.0,
    )
    assert report["replay_error"] is None, report
    assert report["terminal"] == report["submitted"] > 300
    # the submissions, the rejections and the topic of every department
    departments = len(default_catalog().departments)
    assert report["topics"] == 2 + departments and report["per_topic"] == 2 * len(FAMILIES)
    assert report["letters"] == report["letters_expected"] > 0, report["mismatched_readers"]
    assert report["mismatched_readers"] == [] and report["letters_without_reason"] == 0
    assert report["duplicates_resent"] > 20
    verify = report["verify"]
    assert verify["lost"] == verify["duplicates"] == 0, verify
    assert verify["mismatched_units"] == verify["locked_units"] == 0, verify
    assert all(process_alive(pid) for pid in pids.values())  # nobody restarted
    now = json.loads((twin[1] / "state.json").read_text())["services"]
    assert {name: p["pid"] for name, p in now.items()} == pids
