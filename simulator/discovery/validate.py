"""Scoring a run against a real log: the distances of :mod:`.distances` for every
matter, written to ``validation.json`` and as a section of the run's ``report.html``."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.core.catalog import Catalog
from services.core.errors import InputError
from simulator.discovery.distances import (
    CFLD_CASES,
    MatterDistances,
    cycle_time_svg,
    log_distances,
    only_in_one,
    summary_row,
)
from simulator.discovery.eventlog import EventLog, read_log

#: What the distances read of a log (besides case, activity, completion, matter, county).
VALIDATION_ROLES = frozenset({"start", "resource", "lifecycle"})


@dataclass
class Validation:
    real: EventLog
    simulated: EventLog
    results: list[MatterDistances]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "real": self.real.source,
            "simulated": self.simulated.source,
            "cfld_cases": CFLD_CASES,
            "rows": [summary_row(r) for r in self.results],
            **only_in_one(self.real, self.simulated),
            "excluded": {
                "real": self.real.exclusions.as_dict(),
                "simulated": self.simulated.exclusions.as_dict(),
            },
            "seconds": round(self.seconds, 2),
        }


def run_log(run: Path) -> Path:
    """The event log of a run folder (events.csv, else events.xes)."""
    for name in ("events.csv", "events.xes", "events.xes.gz"):
        if (run / name).is_file():
            return run / name
    raise InputError(str(run), "", "no events.csv or events.xes in this run folder")


def validate(
    real_path: Path,
    run: Path,
    catalog: Catalog,
    *,
    columns: Mapping[str, str] | None = None,
    matter: str | None = None,
    county: str | None = None,
    seed: int = 0,
) -> Validation:
    """Distances between ``real_path`` and the log of the run in ``run``."""
    started = time.perf_counter()
    # the two logs are read side by side: the real one in a forked process
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        real_job = pool.submit(
            read_log,
            real_path,
            catalog,
            columns=columns,
            matter=matter,
            county=county,
            roles=VALIDATION_ROLES,
        )
        simulated = read_log(run_log(run), catalog, roles=VALIDATION_ROLES)
        real = real_job.result()
    results = log_distances(real, simulated, seed)
    return Validation(real, simulated, results, time.perf_counter() - started)


def write_validation(validation: Validation, run: Path) -> list[Path]:
    """``validation.json`` in the run folder, and its section in ``report.html`` (the
    report is re-rendered from ``summary.json`` when the run has one)."""
    data = validation.as_dict()
    written = [run / "validation.json"]
    written[0].write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    summary_path = run / "summary.json"
    if summary_path.is_file():
        from simulator.report import write_report
        from simulator.summary import read_summary

        section = {
            **data,
            "svgs": [svg] if (svg := cycle_time_svg(validation.results, "ct")) else [],
        }
        written.append(
            write_report(read_summary(summary_path), run / "report.html", validation=section)
        )
    return written
