"""The capacity engine runs the same saga: `govflow verify` on a simulation's ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from services.core.catalog import default_catalog
from services.core.scenario import load_scenario
from simulator.engine import run_replication
from simulator.ledger import audit, simulation_facts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def faulty():
    catalog = default_catalog()
    scenario = load_scenario(ROOT / "scenarios" / "linked-faults.yaml", catalog)
    return catalog, scenario, run_replication(catalog, scenario, 11)


def test_every_fault_happens_and_the_invariant_holds(faulty):
    _, _, rep = faulty
    linked = rep.outcomes["linked_transfer"]
    steps = [s.id for s in linked.matter.steps]
    refused = Counter(steps[i] for i in linked.rejected_at_step if i >= 0)
    assert refused["tax_clearance"] > 5  # the pivot
    assert refused["register"] > 0  # a seizure landed in flight
    assert sum(1 for u in rep.register.values() if u.seized_by) > 10
    cols = rep.columns()
    index = rep.matters.index("linked_transfer")
    utility_steps = [i for i, s in enumerate(linked.matter.steps) if s.effect == "account"]
    retried = (
        (cols["matter"] == index) & (cols["attempt"] > 0) & np.isin(cols["step"], utility_steps)
    )
    assert retried.sum() > 20  # transient faults and the gas outage, retried
    report = audit(simulation_facts(rep))
    assert report.ok, report.counts()
    assert report.cases == rep.cases and report.lost == 0


def test_rejected_transfers_keep_the_old_owner_and_no_lock(faulty):
    _, _, rep = faulty
    units = [f for f in simulation_facts(rep) if f["fact"] == "unit"]
    owners = {f["owner"] for f in units}
    assert any(o.startswith("业主-") for o in owners)  # refused: still the original owner
    assert any(o.startswith("买受人-linked_transfer-") for o in owners)
    assert all(f["locked_by"] is None for f in units)
    assert all(s.locked_by is None for s in rep.register.values())


def test_holds_delay_work_until_the_outage_ends(faulty):
    _, scenario, rep = faulty
    hold = next(o for o in scenario.faults.outages if o.mode == "hold")
    start, end = hold.window()
    cols = rep.columns()
    department = rep.departments().index(hold.department)
    arrivals = cols["arrival"][cols["department"] == department]
    assert arrivals.size and not ((arrivals >= start) & (arrivals < end)).any()


def test_verify_command_on_a_simulation(tmp_path):
    out = tmp_path / "lfs"
    command = [sys.executable, "-m", "govflow.cli"]
    scenario = str(ROOT / "scenarios" / "linked-faults.yaml")
    ran = subprocess.run(
        [*command, "simulate", "--scenario", scenario, "--replications", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ran.returncode == 0, ran.stderr
    verified = subprocess.run(
        [*command, "verify", "--run", str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert verified.returncode == 0, verified.stdout
    counts = json.loads(verified.stdout.strip().splitlines()[-1])
    assert counts["lost"] == counts["duplicates"] == counts["mismatched_units"] == 0
    # a tampered ledger fails, naming the unit
    ledger = out / "ledger.jsonl"
    lines = ledger.read_text(encoding="utf-8").splitlines()
    holder = next(line for line in lines if '"fact":"holder"' in line)
    ledger.write_text("\n".join([*lines, holder.replace("买受人", "冒名")]) + "\n")
    failed = subprocess.run(
        [*command, "verify", "--run", str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert failed.returncode == 1
    assert json.loads(failed.stdout.strip().splitlines()[-1])["mismatched_units"] == 1
    assert "冒名" in failed.stdout
    # a malformed ledger is an input error naming the file and line
    ledger.write_text('{"fact": "submitted", "case": "a"}\nnot json\n')
    broken = subprocess.run(
        [*command, "verify", "--run", str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert broken.returncode == 2 and "ledger.jsonl:2" in broken.stderr
