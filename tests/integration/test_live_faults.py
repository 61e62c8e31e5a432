"""The live twin on fault paths, with a catalog of its own (GOVFLOW_CATALOG_PATH).

* every worker uses the injected catalog: its external step emits an event type the
  shipped catalog does not know, which any worker on the shipped catalog would
  dead-letter;
* an external step that is corrected (补正) and fails is attempted again and completes;
* an action that raises (a correction that would return after the calendar's data
  ends) is dead-lettered with the reason, and its county goes on with the other cases.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from services.core.catalog import DEFAULT_CATALOG_PATH
from services.runtime.processes import process_alive
from tests.integration.conftest import BROKER_PARAMS
from tests.integration.test_live_twin import ROOT, govflow

pytestmark = pytest.mark.integration
NEW_TYPE = "tender.consultation_ended"


def custom_catalog(folder: Path) -> Path:
    data = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))
    matter = next(m for m in data["matters"] if m["id"] == "rule_consultation")
    matter["steps"][0]["emits"] = NEW_TYPE
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def scenario(folder: Path, name: str, demand: dict[str, object], **changes: object) -> Path:
    """A scenario of the city year with demand for the given matters only."""
    others = yaml.safe_load((ROOT / "scenarios" / "demo.yaml").read_text(encoding="utf-8"))
    data = {
        "base": str(ROOT / "scenarios" / "shangrao-2021.yaml"),
        "name": name,
        "demand": {**{m: {"per_year": 0} for m in others["demand"]}, **demand},
        **changes,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=BROKER_PARAMS)
def twin(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    data = tmp_path_factory.mktemp(f"faults-twin-{request.param}")
    env = {"GOVFLOW_DATA_DIR": str(data), "GOVFLOW_CATALOG_PATH": str(custom_catalog(data))}
    started = govflow(env, "up", "--broker", request.param, timeout=240)
    assert started.returncode == 0, started.stdout + started.stderr
    state = json.loads((data / "state.json").read_text())
    yield env, data
    stopped = govflow(env, "down", timeout=240)
    assert stopped.returncode == 0, stopped.stderr
    assert "every process has exited" in stopped.stdout
    pids = [p["pid"] for p in state["services"].values()] + [state["broker_pid"]]
    assert [p for p in pids if process_alive(p)] == []  # right away: down waited


def attempts(out: Path) -> list[dict[str, str]]:
    with (out / "events.csv").open(encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


def test_the_injected_catalog_reaches_every_worker_and_external_steps_try_again(twin, tmp_path):
    env, _ = twin
    path = scenario(
        tmp_path,
        "external-faults",
        horizon={"start": "2021-03-01", "end": "2021-03-03"},
        demand={"rule_consultation": {"per_year": 12_000, "profile": "office"}},
        timing={
            "rule_consultation": {
                "consultation": {
                    "duration": {"kind": "uniform", "low": 1, "high": 2, "unit": "calendar_days"},
                    "rework": {
                        "probability": 0.3,
                        "delay": {"kind": "fixed", "value": 1, "unit": "working_days"},
                    },
                    "fault": {"probability": 0.3},
                }
            }
        },
    )
    out = tmp_path / "out"
    replayed = govflow(
        env, "replay", "--scenario", str(path), "--speed", "86400", "--out", str(out)
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    system = summary["system"]
    assert system["cases_submitted"] == system["cases_terminal"] > 40
    assert system["dead_letters"] == 0  # nobody refused the catalog's new event type
    rows = attempts(out)
    outcomes = Counter(r["outcome"] for r in rows)
    assert outcomes["rework"] > 3 and outcomes["retry"] > 3, outcomes
    again = {r["case:concept:name"] for r in rows if int(r["attempt"]) > 0}
    done = {r["case:concept:name"] for r in rows if r["outcome"] == "done"}
    assert again and again <= done  # every case tried again finished
    verified = govflow(env, "verify", "--run", str(out))
    assert verified.returncode == 0, verified.stdout


def test_an_action_that_raises_is_dead_lettered_and_its_county_goes_on(twin, tmp_path):
    """Corrections due after the calendar's last day cannot be scheduled (the holiday
    data ends with 2026, the provisional run-out 366 days later; a 补正 delay of 300
    working days from late December 2026 lands past both): each such completion is
    parked with the reason; every other case completes."""
    env, _ = twin
    path = scenario(
        tmp_path,
        "calendar-end",
        horizon={"start": "2026-12-28", "end": "2026-12-30"},
        demand={"tax_handling": {"per_year": 20_000}},
        timing={
            "tax_handling": {
                "handle": {
                    "service": {"kind": "fixed", "value": 10},
                    "rework": {
                        "probability": 0.3,
                        "delay": {"kind": "fixed", "value": 300, "unit": "working_days"},
                    },
                }
            }
        },
    )
    out = tmp_path / "out"
    replayed = govflow(
        env, "replay", "--scenario", str(path), "--speed", "86400", "--out", str(out),
        "--timeout", "90",
    )  # fmt: skip
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "unfinished" in replayed.stderr
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    letters = [f for f in ledger if f["fact"] == "dead_letter"]
    assert letters and all("past this calendar's last day" in f["reason"] for f in letters)
    assert all(f["field"].startswith("pending[") and f["service"] == "tax" for f in letters)
    stuck = {f["field"].split("[", 1)[1].split("/", 1)[0] for f in letters}  # their cases
    terminal = {f["case"] for f in ledger if f["fact"] == "terminal"}
    submitted = {f["case"] for f in ledger if f["fact"] == "submitted"}
    assert submitted - terminal == stuck  # exactly the parked ones are unfinished
    assert len(terminal) > 2 * len(stuck)  # the counties went on with the others
    # parked in several counties, and every county completed cases all the same
    assert len({f["partition"] for f in letters}) >= 3
    counties = {r["case:county"] for r in attempts(out) if r["outcome"] == "done"}
    assert len(counties) >= 10
