"""Replications on a Dask cluster (a ``LocalCluster`` here): the same results as local
processes for a seed, whatever the number of workers; a worker killed mid-run does not
lose a replication; a scheduler that does not answer is one line, exit code 2."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from govflow.cli import app
from services.core.catalog import load_catalog
from services.core.scenario import load_scenario
from simulator.executors import ExecutorSpec, parse_executor
from simulator.montecarlo import RepStats, run_replications
from simulator.planner import plan, restrict

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog()
SCENARIO = load_scenario(ROOT / "scenarios" / "demo.yaml", CATALOG)


def _comparable(reps: list[RepStats]) -> list[str]:
    """Everything a replication measured, without its wall time, as JSON text (arrays
    as lists; NaN written as NaN, so equal runs give equal text)."""
    out = []
    for rep in reps:
        data = dataclasses.asdict(rep)
        data.pop("wall_seconds")
        out.append(json.dumps(data, default=_plain, sort_keys=True))
    return out


def _plain(value: object) -> object:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return str(value)


@pytest.fixture(scope="module")
def cluster() -> LocalCluster:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


@pytest.fixture(scope="module")
def local_reps() -> list[RepStats]:
    return run_replications(
        CATALOG, SCENARIO, replications=6, seed=11, executor=ExecutorSpec("local")
    )


def test_the_same_results_locally_in_processes_and_on_dask(
    cluster: LocalCluster, local_reps: list[RepStats]
) -> None:
    two_processes = run_replications(
        CATALOG, SCENARIO, replications=6, seed=11, executor=ExecutorSpec("local", workers=2)
    )
    ticks: list[int] = []
    on_dask = run_replications(
        CATALOG,
        SCENARIO,
        replications=6,
        seed=11,
        executor=parse_executor(cluster.scheduler_address.replace("tcp://", "dask://")),
        progress=ticks.append,
    )
    assert len(ticks) == 6  # the progress bar hears every replication
    assert [r.seed for r in on_dask] == [r.seed for r in local_reps]
    assert _comparable(on_dask) == _comparable(local_reps) == _comparable(two_processes)
    assert len({r.cases for r in local_reps}) > 1  # the seeds differ, so the runs differ


def test_the_same_plan_locally_in_processes_and_on_dask(cluster: LocalCluster) -> None:
    """The planner splits a round into parts by county (one a part on a cluster, one per
    process locally) and decides some trims on a first replication: the plan is the
    same however the parts run."""
    scenario = restrict(
        load_scenario(ROOT / "scenarios" / "fault-paths.yaml", CATALOG), "water_connection"
    )
    dask = parse_executor(cluster.scheduler_address.replace("tcp://", "dask://"))
    plans = [
        plan(CATALOG, scenario, seed=5, executor=spec)
        for spec in (ExecutorSpec("local"), ExecutorSpec("local", workers=2), dask)
    ]
    assert any(r.phase == "trim" for r in plans[0].rounds)
    for other in plans[1:]:
        assert other.clerks == plans[0].clerks
        assert [(r.phase, r.clerks, r.misses, r.counties, r.cases) for r in other.rounds] == [
            (r.phase, r.clerks, r.misses, r.counties, r.cases) for r in plans[0].rounds
        ]
        assert [(m.matter, m.county, m.measured) for m in other.unfixable] == [
            (m.matter, m.county, m.measured) for m in plans[0].unfixable
        ]


def test_a_worker_killed_mid_run_loses_no_replication(
    cluster: LocalCluster, local_reps: list[RepStats]
) -> None:
    spec = parse_executor(cluster.scheduler_address.replace("tcp://", "dask://"))
    killed = threading.Event()
    done: list[int] = []

    def kill_one_worker(_: int) -> None:
        done.append(1)
        if not killed.is_set():
            killed.set()
            with Client(cluster.scheduler_address, timeout=10) as client:
                victim = sorted(client.scheduler_info()["workers"])[0]
                with contextlib.suppress(OSError):  # the worker dies mid-call
                    client.run(os._exit, 1, workers=[victim])  # its nanny starts another

    reps = run_replications(
        CATALOG, SCENARIO, replications=6, seed=11, executor=spec, progress=kill_one_worker
    )
    assert killed.is_set() and len(done) == 6
    assert _comparable(reps) == _comparable(local_reps)


def test_an_unreachable_scheduler_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--scenario",
            str(ROOT / "scenarios" / "demo.yaml"),
            "--replications",
            "2",
            "--executor",
            "dask://127.0.0.1:9",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "--executor: dask://127.0.0.1:9: no Dask scheduler answers there" in result.output
    result = CliRunner().invoke(
        app, ["plan", "--scenario", "x.yaml", "--executor", "spark://h:1"], env={}
    )
    assert result.exit_code == 2


def test_the_environment_names_the_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVFLOW_EXECUTOR", "dask://scheduler:8786")
    from govflow.cli import _executor

    spec = _executor(None, 2)
    assert (spec.kind, spec.address) == ("dask", "tcp://scheduler:8786")
    assert _executor("local", 3) == ExecutorSpec("local", workers=3)
    monkeypatch.setenv("GOVFLOW_EXECUTOR", "nonsense")
    with pytest.raises(Exception, match="GOVFLOW_EXECUTOR: nonsense: expected local"):
        _executor(None, 1)
