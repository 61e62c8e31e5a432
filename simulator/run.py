"""Run a scenario end to end: replications → summary.json, report.html and the event logs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.core.catalog import Catalog
from services.core.scenario import Scenario
from simulator.executors import LOCAL, ExecutorSpec
from simulator.montecarlo import RepStats, run_replications, summarise
from simulator.outputs import EventLogs, LogFormat
from simulator.report import write_comparison_report, write_report
from simulator.summary import Summary


@dataclass
class RunResult:
    summary: Summary
    reps: list[RepStats]
    out: Path | None
    #: the event logs written (replication 0's)
    logs: tuple[Path, ...] = ()


def simulate(
    catalog: Catalog,
    scenario: Scenario,
    *,
    replications: int,
    seed: int | None = None,
    executor: ExecutorSpec = LOCAL,
    out: Path | None = None,
    events: bool = True,
    log_format: LogFormat = "csv",
    ocel: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunResult:
    """Simulate ``replications`` runs; with ``out``, write summary.json and report.html
    there and, with ``events``, replication 0's logs (:class:`EventLogs`: events.csv or
    events.xes by ``log_format``; ocel.json — with ``ocel`` None, when the run has linked
    transfers) and ledger.jsonl."""
    if replications < 1:
        raise ValueError("replications must be at least 1")
    seed = scenario.seed if seed is None else seed
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    reps = run_replications(
        catalog,
        scenario,
        replications=replications,
        seed=seed,
        executor=executor,
        logs=EventLogs(out, log_format, ocel) if out is not None and events else None,
        progress=progress,
    )
    summary = summarise(catalog, scenario, reps, seed=seed)
    if out is not None:
        summary.write(out / "summary.json")
        write_report(summary, out / "report.html")
    return RunResult(summary, reps, out, reps[0].logs)


def compare(a: RunResult, b: RunResult, out: Path, labels: tuple[str, str] | None = None) -> Path:
    """Side-by-side report of two runs."""
    out.mkdir(parents=True, exist_ok=True)
    return write_comparison_report(a.summary, b.summary, out / "compare.html", labels=labels)
