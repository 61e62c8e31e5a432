"""A log made by another engine: discover a govflow scenario from a Prosimos log.

Prosimos 2.1.0 simulates the water connection (用水报装, catalog matter
``water_connection``) on its default route, apply → survey_design → permits →
construction → acceptance (``bench/prosimos/water_connection.bpmn`` + ``.json``; the
activities are the catalog's step ids).  Three water clerks (water_1..3) serve apply,
survey_design and acceptance, two approval clerks (approval_1..2) the permits, both
Monday–Friday 08:30–12:00 and 14:00–17:30; construction is the applicant's contractor,
a pool of 200 on a 24/7 calendar, so it never queues.  Durations (seconds in the JSON,
on the resource's working clock): apply lognormal 20 min cv 0.5, survey_design gamma
40 min cv 0.5, permits lognormal 45 min cv 0.6, construction gamma 2.5 calendar days
cv 0.5, acceptance exponential 15 min.  Arrivals: exponential inter-arrivals, mean 40 min,
on the same office calendar — with Prosimos' rule that an inter-arrival ending while the
office is closed moves the arrival to the next opening (so about one case arrives at
08:30:00 and 14:00:00 each day, besides the Poisson stream): expected 12.45 cases per
working day, load 0.74 on the water clerks, 0.67 on the approval clerks.  Prosimos knows
no Chinese public holiday, so the log starts on 2021-03-01 (no holiday in March 2021) and
has 200 cases: arrivals to about 22 March, the last completions about 29 March, before
Qingming (3–5 April; in about 1 seed in 200 a long construction still reaches it, which
the figures count: ``events_from_qingming``).

Prosimos writes ``case_id, activity, enable_time, start_time, end_time, resource`` with
timestamps like ``2021-03-01 08:47:22.470594+08:00`` (``str(datetime)``: a space, six
decimals and the offset of ``starting_at``), which govflow reads as they are: only the
column names are mapped (``--column case=case_id`` …, ``--matter``, ``--county``).

The round trip: ``govflow discover`` on the log (seed ``s``) → ``govflow simulate`` of the
discovered scenario (seed 7, one replication) → ``govflow validate`` of the log against
that run.  The reference: a second Prosimos log (seed ``s + 1``), its columns renamed to
govflow's (``prosimos_b/events.csv``), validated against the first: the distance between
two logs of the *same* model.  ``factor`` = govflow-sim distance ÷ that reference, per
measure.  The discovered scenario is fitted to this very log (its sampling noise included)
and simulated over the log's own horizon, whereas the reference is an independent draw
of the true model with the same case count, so over a horizon of its own: a factor near
(or below) 1 means the discovered model is as close to the log as the true one.  Then
the discovered parameters beside the true ones (the model's JSON) and the ones realised
in the log (cases per working day between the first and the last arrival; each step's
mean on the clock Prosimos draws it on): volume, each step's mean, clerks, office hours.

Prosimos lives in ``.venv-prosimos`` (``make bench``; click pins conflict with
faust-streaming): this script re-invokes itself with that interpreter and ``--worker``.

    .venv/bin/python bench/prosimos_log.py [--out out/prosimos_log] [--seed 1]

Last line: one JSON object (:func:`prosimos_round_trip`'s figures).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import ROOT, emit_json, last_json_line, rounded

HERE = Path(__file__).resolve().parent
BPMN = HERE / "prosimos" / "water_connection.bpmn"
PARAMS = HERE / "prosimos" / "water_connection.json"
PROSIMOS_PYTHON = ROOT / ".venv-prosimos" / "bin" / "python"
GOVFLOW = ROOT / ".venv" / "bin" / "govflow"
START = "2021-03-01T00:00:00+08:00"  # a Monday; no public holiday until 3 April
HOLIDAY_FROM = "2021-04-03"  # Qingming 3–5 April: no event may fall on or after it
OFFSET = "+08:00"
CASES = 200
MATTER = "water_connection"
COUNTY = "xinzhou"
SIM_SEED = 7
STEPS = ("apply", "survey_design", "permits", "construction", "acceptance")
EXTERNAL = {"construction"}
#: Prosimos resource pools → govflow departments (the contractors are no department).
POOLS = {"water": "water", "approval": "approval"}
#: The log's column for each role govflow reads.
MAPPING = {
    "case": "case_id",
    "activity": "activity",
    "enable": "enable_time",
    "start": "start_time",
    "end": "end_time",
    "resource": "resource",
}
#: govflow's events.csv names for the same roles (simulator/discovery/eventlog.py).
GOVFLOW_NAMES = {
    "case_id": "case:concept:name",
    "activity": "concept:name",
    "end_time": "time:timestamp",
    "start_time": "start_timestamp",
    "enable_time": "enable_timestamp",
    "resource": "org:resource",
}
MEASURES = ("cycle_time_emd_h", "absolute_hourly_emd_h", "circadian_emd_h", "cfld", "ngram_3")
#: Minutes per unit of a scenario's duration spec (the office calendar's day is 7 h).
MINUTES_PER = {"minutes": 1.0, "hours": 60.0, "working_days": 420.0, "calendar_days": 1440.0}


class ProsimosMissing(RuntimeError):
    """``.venv-prosimos`` is not there (``make bench`` creates it)."""


# --- the Prosimos side (runs under .venv-prosimos; imports nothing from govflow) ---


def worker(seeds: list[int], logs: list[Path], cases: int) -> int:
    try:
        import importlib.metadata
        import random

        import numpy as np
        from prosimos.simulation_engine import run_simulation
        from prosimos.warning_logger import warning_logger
    except ImportError as exc:
        print(f"cannot import Prosimos ({exc}): run `make bench`", file=sys.stderr)
        return 2
    runs = []
    for seed, log in zip(seeds, logs, strict=True):
        random.seed(seed)  # gateway choices (none here)
        np.random.seed(seed)  # arrivals and durations (scipy .rvs on numpy's global RNG)
        warning_logger.clear_warnings()
        t0 = time.perf_counter()
        run_simulation(str(BPMN), str(PARAMS), cases, log_out_path=str(log), starting_at=START)
        wall = time.perf_counter() - t0
        warnings = [str(w) for w in warning_logger.get_all_warnings()]
        runs.append({"seed": seed, "log": str(log), "wall_s": rounded(wall), "warnings": warnings})
    emit_json({"engine": f"prosimos {importlib.metadata.version('prosimos')}", "runs": runs})
    return 0


def require_prosimos() -> None:
    if not PROSIMOS_PYTHON.exists():
        raise ProsimosMissing(
            f"Prosimos' virtualenv is missing ({PROSIMOS_PYTHON} not found).\n"
            "Run `make bench`: it creates .venv-prosimos with prosimos==2.1.0 "
            "(Prosimos cannot be installed into .venv: click pins conflict with faust-streaming)."
        )


def run_prosimos(seeds: list[int], logs: list[Path], cases: int = CASES) -> dict[str, Any]:
    """The Prosimos logs, one per seed, written by the worker under .venv-prosimos."""
    require_prosimos()
    command = [
        str(PROSIMOS_PYTHON),
        str(Path(__file__).resolve()),
        "--worker",
        "--cases",
        str(cases),
        "--seeds",
        *map(str, seeds),
        "--logs",
        *map(str, logs),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the Prosimos worker failed ({done.returncode}):\n{done.stderr}")
    return last_json_line(done.stdout)


# --- the true model (the Prosimos JSON) ---


def true_model(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the Prosimos model says: per step the distribution, mean (min) and cv; clerks
    per pool; office hours; arrivals (expected per working day, by Prosimos' rule)."""
    params = params or json.loads(PARAMS.read_text(encoding="utf-8"))
    steps: dict[str, dict[str, Any]] = {}
    for task in params["task_resource_distribution"]:
        dist = task["resources"][0]
        values = [p["value"] for p in dist["distribution_params"]]
        name = dist["distribution_name"]
        mean = values[0]
        cv = 1.0 if name == "expon" else math.sqrt(values[1]) / mean
        kind = {"expon": "exponential", "lognorm": "lognormal"}.get(name, name)
        steps[task["task_id"]] = {"kind": kind, "mean_min": mean / 60, "cv": cv}
    clerks = {
        POOLS[pool["id"]]: sum(r["amount"] for r in pool["resource_list"])
        for pool in params["resource_profiles"]
        if pool["id"] in POOLS
    }
    calendars = {c["id"]: c["time_periods"] for c in params["resource_calendars"]}
    office = [[p["beginTime"][:5], p["endTime"][:5]] for p in calendars["office"]]
    arrival = params["arrival_time_distribution"]
    assert arrival["distribution_name"] == "expon", arrival
    per_hour = 3600 / arrival["distribution_params"][0]["value"]
    per_week, open_hours, days = _arrivals_per_week(params["arrival_time_calendar"], per_hour)
    per_day = per_week / days
    work_min = {d: 0.0 for d in clerks}
    for step, spec in steps.items():
        if step not in EXTERNAL:
            work_min[_department(params, step)] += spec["mean_min"]
    day_min = open_hours / days * 60
    load = {d: per_day * work_min[d] / (clerks[d] * day_min) for d in clerks}
    return {
        "steps": steps,
        "clerks": clerks,
        "office_hours": office,
        "arrivals_per_open_hour": per_hour,
        "arrivals_per_working_day": per_day,
        "arrivals_at_openings_per_week": per_week - per_hour * open_hours,
        "load": load,
    }


def _department(params: dict[str, Any], step: str) -> str:
    for pool in params["resource_profiles"]:
        for resource in pool["resource_list"]:
            if step in resource["assigned_tasks"] and pool["id"] in POOLS:
                return POOLS[pool["id"]]
    raise KeyError(step)


def _arrivals_per_week(periods: list[dict[str, str]], per_hour: float) -> tuple[float, float, int]:
    """Expected arrivals a week under Prosimos' arrival rule, the open hours a week and the
    days with opening hours.  An exponential inter-arrival that ends while closed puts the
    arrival at the next opening (SimulationSetup.next_arrival_time); the clock restarts
    there.  By memorylessness the open time carries a Poisson stream, and each closure of
    c hours adds one arrival at its end with probability 1 − exp(−λc)."""
    week = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")

    def hours(text: str) -> float:
        h, m = text[:5].split(":")
        return int(h) + int(m) / 60

    intervals = []
    for p in periods:
        first, last = week.index(p["from"]), week.index(p["to"])
        for day in range(first, last + 1):
            intervals.append((24 * day + hours(p["beginTime"]), 24 * day + hours(p["endTime"])))
    intervals.sort()
    open_hours = sum(b - a for a, b in intervals)
    closures = [
        (intervals[(i + 1) % len(intervals)][0] - b) % (7 * 24)
        for i, (_, b) in enumerate(intervals)
    ]
    at_openings = sum(1 - math.exp(-per_hour * c) for c in closures if c > 0)
    days = len({int(a // 24) for a, _ in intervals})
    return per_hour * open_hours + at_openings, open_hours, days


# --- what the Prosimos log itself holds ---


def realised(log: Path) -> dict[str, Any]:
    """The log's own figures: cases per working day, each step's mean on the clock the
    model draws it on, arrivals at an opening instant, waits at construction."""
    from datetime import datetime, timedelta
    from datetime import time as dtime

    import numpy as np
    import pandas as pd

    from services.core.calendar import OfficeCalendar

    frame = pd.read_csv(log, dtype=str)
    stamps = frame[["enable_time", "start_time", "end_time"]]
    if not stamps.apply(lambda c: c.str.endswith(OFFSET)).all().all():
        raise ValueError(f"{log}: a timestamp without the {OFFSET} offset")
    posix = {
        c: (pd.to_datetime(frame[c], format="ISO8601", utc=True) - pd.Timestamp(0, tz="UTC"))
        / pd.Timedelta(seconds=1)
        for c in stamps.columns
    }
    frame = frame.assign(**{f"{c}_s": v for c, v in posix.items()})
    params = json.loads(PARAMS.read_text(encoding="utf-8"))
    office = {c["id"]: c["time_periods"] for c in params["resource_calendars"]}["office"]
    shifts = [
        (dtime.fromisoformat(p["beginTime"][:8]), dtime.fromisoformat(p["endTime"][:8]))
        for p in office
    ]
    clock = OfficeCalendar(shifts, observe_public_holidays=False)  # Prosimos' Mon–Fri
    steps: dict[str, float] = {}
    for step in STEPS:
        rows = frame[frame["activity"] == step]
        a, b = rows["start_time_s"].to_numpy(), rows["end_time_s"].to_numpy()
        if step in EXTERNAL:
            steps[step] = float(np.mean(b - a)) / 60
        else:
            steps[step] = float(np.mean(clock.clock_at_many(b) - clock.clock_at_many(a))) / 60e6
    arrivals = frame.groupby("case_id")["enable_time_s"].min().to_numpy()
    local = pd.to_datetime(arrivals + 8 * 3600, unit="s")
    first, last = local.min().date(), local.max().date()
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    working_days = sum(d.weekday() < 5 for d in span)
    # Prosimos' float seconds put some of them 1 µs either side of the opening
    openings = np.array([dtime.fromisoformat(p["beginTime"][:8]) for p in office])
    opening_s = np.array([3600 * t.hour + 60 * t.minute + t.second for t in openings])
    time_of_day = (arrivals + 8 * 3600) % 86400
    near = np.abs(time_of_day[:, None] - opening_s[None, :]).min(axis=1) < 1e-3
    at_opening = int(near.sum())
    built = frame[frame["activity"].isin(EXTERNAL)]
    last_event = pd.to_datetime(frame["end_time_s"].max() + 8 * 3600, unit="s")
    holiday = datetime.fromisoformat(f"{HOLIDAY_FROM}T00:00:00{OFFSET}").timestamp()
    seconds = "%Y-%m-%d %H:%M:%S"  # local time
    return {
        "rows": len(frame),
        "cases": len(arrivals),
        "first_arrival": local.min().strftime(seconds),
        "last_arrival": local.max().strftime(seconds),
        "last_event": last_event.strftime(seconds),
        "working_days": working_days,
        "arrivals_per_working_day": len(arrivals) / working_days,
        "arrivals_at_openings": at_opening,
        "events_from_qingming": int((frame["end_time_s"] >= holiday).sum()),
        "construction_max_wait_s": float((built["start_time_s"] - built["enable_time_s"]).max()),
        "step_mean_min": steps,
        "timestamp_example": str(frame["end_time"].iloc[0]),
    }


def to_govflow_columns(log: Path, events: Path) -> int:
    """The Prosimos log with govflow's events.csv column names (timestamps untouched), the
    matter and county as case columns; the rows written."""
    import pandas as pd

    frame = pd.read_csv(log, dtype=str, keep_default_na=False)
    frame = frame.rename(columns=GOVFLOW_NAMES)[list(GOVFLOW_NAMES.values())]
    frame = frame.assign(**{"case:matter": MATTER, "case:county": COUNTY})
    events.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(events, index=False)
    return len(frame)


# --- govflow, as a user runs it ---


def govflow(workdir: Path, name: str, *args: str | Path) -> float:
    """``govflow ARGS`` (a subprocess); its output goes to ``workdir/<name>.txt``; seconds."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(GOVFLOW), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    wall = time.perf_counter() - t0
    (workdir / f"{name}.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise RuntimeError(
            f"{name} failed ({done.returncode}): govflow {' '.join(map(str, args))}\n"
            f"{done.stdout}{done.stderr}"
        )
    return wall


def _mapping_args() -> list[str]:
    out = ["--matter", MATTER, "--county", COUNTY]
    for role, column in MAPPING.items():
        out += ["--column", f"{role}={column}"]
    return out


def _distances(run: Path) -> dict[str, Any]:
    data = json.loads((run / "validation.json").read_text(encoding="utf-8"))
    rows = [r for r in data["rows"] if r["matter"] == MATTER]
    if not rows:
        raise RuntimeError(f"{run}/validation.json has no row for {MATTER}: {data}")
    row = rows[0]
    return {
        **{m: row[m] for m in MEASURES},
        "real_cases": row["real_cases"],
        "simulated_cases": row["simulated_cases"],
        "cycle_time_mean_h": row["cycle_time_mean_h"],
        "excluded": {k: v["total"] for k, v in data["excluded"].items()},
    }


def _minutes(spec: dict[str, Any]) -> float:
    mean = spec["value"] if spec["kind"] == "fixed" else spec["mean"]
    return float(mean) * MINUTES_PER[spec.get("unit", "minutes")]


def _working_days_in_year(year: int) -> int:
    """Days govflow's office calendar works in ``year`` (weekdays and 调休 make-up days,
    public holidays off): what a discovered yearly volume is spread over."""
    from datetime import date, timedelta

    from services.core.calendar import OfficeCalendar

    calendar = OfficeCalendar()
    first = date(year, 1, 1)
    days = (date(year + 1, 1, 1) - first).days
    kinds = [calendar.day_kind(first + timedelta(days=i)) for i in range(days)]
    return sum(k in ("workday", "makeup") for k in kinds)


def compare(
    truth: dict[str, Any], log: dict[str, Any], scenario: dict[str, Any], report: dict[str, Any]
) -> dict[str, Any]:
    """True, realised and discovered, parameter by parameter."""
    demand = scenario["demand"][MATTER]
    year = int(str(scenario["horizon"]["start"])[:4])
    per_day = demand["per_year"] / _working_days_in_year(year)
    volume = {
        "true": rounded(truth["arrivals_per_working_day"], 3),
        "realised": rounded(log["arrivals_per_working_day"], 3),
        "discovered": rounded(per_day, 3),
        "discovered_per_year": demand["per_year"],
        "rel_error": rounded(per_day / truth["arrivals_per_working_day"] - 1, 4),
        "rel_error_vs_realised": rounded(per_day / log["arrivals_per_working_day"] - 1, 4),
    }
    steps: dict[str, Any] = {}
    timing = scenario["timing"][MATTER]
    facts = report["timing"][MATTER]
    for step in STEPS:
        true = truth["steps"][step]
        purpose = "duration" if step in EXTERNAL else "service"
        spec = timing.get(step, {}).get(purpose)
        row: dict[str, Any] = {
            "kind_true": true["kind"],
            "mean_min_true": rounded(true["mean_min"], 3),
            "cv_true": rounded(true["cv"], 3),
            "mean_min_realised": rounded(log["step_mean_min"][step], 3),
        }
        if spec is None:
            row["discovered"] = None
        else:
            found = _minutes(spec)
            per = MINUTES_PER[spec.get("unit", "minutes")]
            ci = facts[step][purpose].get("ci95_mean")
            row.update(
                {
                    "kind_discovered": spec["kind"],
                    "mean_min_discovered": rounded(found, 3),
                    "cv_discovered": spec.get("cv", 1.0 if spec["kind"] == "exponential" else None),
                    "unit_discovered": spec.get("unit", "minutes"),
                    "ci95_min": [rounded(c * per, 3) for c in ci] if ci else None,
                    "rel_error": rounded(found / true["mean_min"] - 1, 4),
                    "rel_error_vs_realised": rounded(found / log["step_mean_min"][step] - 1, 4),
                }
            )
        for extra in ("lag", "duration" if purpose == "service" else "service"):
            if extra in timing.get(step, {}):  # Prosimos has no such part: true 0
                row[f"{extra}_min_discovered"] = rounded(_minutes(timing[step][extra]), 3)
        steps[step] = row
    departments = scenario.get("departments", {})
    clerks = {
        d: {"true": n, "discovered": departments.get(d, {}).get("clerks", {}).get(COUNTY)}
        for d, n in truth["clerks"].items()
    }
    hours = {
        d: [["24x7"]]
        if departments.get(d, {}).get("calendar") == "24x7"
        else departments.get(d, {}).get("office_hours", scenario["office_hours"])
        for d in truth["clerks"]
    }
    return {
        "volume_per_working_day": volume,
        "steps": steps,
        "clerks": clerks,
        "office_hours": {
            "true": truth["office_hours"],
            "discovered": {d: [list(map(str, p)) for p in h] for d, h in hours.items()},
        },
    }


def prosimos_round_trip(workdir: Path, seed: int = 1) -> dict[str, Any]:
    """Prosimos log (``seed``) → govflow discover → simulate (seed 7) → validate against
    the log, with a second Prosimos log (``seed + 1``) as the reference distance; the
    figures (see the module docstring).  Raises :class:`ProsimosMissing` without
    .venv-prosimos, RuntimeError when a step fails (its output in the message)."""
    import yaml

    require_prosimos()
    started = time.perf_counter()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_a, log_b = workdir / "prosimos.csv", workdir / "prosimos_b.csv"
    sim, reference = workdir / "sim", workdir / "prosimos_b"
    for folder in (sim, reference):  # this function's own output folders only
        shutil.rmtree(folder, ignore_errors=True)
    engine = run_prosimos([seed, seed + 1], [log_a, log_b])
    timings: dict[str, Any] = {"prosimos_s": [r["wall_s"] for r in engine["runs"]]}
    scenario_path = workdir / "discovered.yaml"
    mapping = _mapping_args()
    timings["discover_s"] = govflow(
        workdir, "discover", "discover", "--log", log_a, *mapping, "--out", scenario_path
    )
    timings["simulate_s"] = govflow(
        workdir,
        "simulate",
        "simulate",
        "--scenario",
        scenario_path,
        "--seed",
        str(SIM_SEED),
        "--replications",
        "1",
        "--out",
        sim,
    )
    timings["validate_s"] = govflow(
        workdir, "validate", "validate", "--log", log_a, *mapping, "--run", sim
    )
    to_govflow_columns(log_b, reference / "events.csv")
    timings["validate_reference_s"] = govflow(
        workdir, "validate_reference", "validate", "--log", log_a, *mapping, "--run", reference
    )
    ours, theirs = _distances(sim), _distances(reference)
    factor = {m: (rounded(ours[m] / theirs[m], 3) if theirs[m] > 0 else None) for m in MEASURES}
    scenario = yaml.safe_load(scenario_path.read_text(encoding="utf-8"))
    report = json.loads((workdir / "discovery.json").read_text(encoding="utf-8"))
    truth = true_model()
    log = realised(log_a)
    figures: dict[str, Any] = {
        "benchmark": "prosimos_log",
        "engine": engine["engine"],
        "matter": MATTER,
        "seed": seed,
        "reference_seed": seed + 1,
        "sim_seed": SIM_SEED,
        "workdir": str(workdir),
        "log": {
            k: log[k]
            for k in (
                "rows",
                "cases",
                "first_arrival",
                "last_arrival",
                "last_event",
                "events_from_qingming",
                "arrivals_at_openings",
                "construction_max_wait_s",
                "timestamp_example",
            )
        },
        "prosimos_warnings": sum(len(r["warnings"]) for r in engine["runs"]),
        "true_load": {d: rounded(v, 3) for d, v in truth["load"].items()},
        "true_arrivals_at_openings_per_week": rounded(truth["arrivals_at_openings_per_week"], 3),
        **compare(truth, log, scenario, report),
        "discovery_excluded_rows": report["log"]["excluded"]["total"],
        "distances": {"govflow_sim": ours, "prosimos_reference": theirs, "factor": factor},
    }
    timings["total_s"] = time.perf_counter() - started
    figures["timings"] = {
        k: [rounded(x, 3) for x in v] if isinstance(v, list) else rounded(v, 3)
        for k, v in timings.items()
    }
    return figures


# --- the summary ---


def _cv_text(cv: float | None) -> str:
    return "?" if cv is None else f"{cv:.2f}"


def print_summary(f: dict[str, Any]) -> None:
    log = f["log"]
    print(
        f"{f['engine']} log of {MATTER} (seed {f['seed']}): {log['cases']} cases, "
        f"{log['rows']} rows; arrivals {log['first_arrival'][:16]} – {log['last_arrival'][:16]}, "
        f"last event {log['last_event'][:16]}; timestamps like {log['timestamp_example']!r}"
    )
    print(
        f"  {log['arrivals_at_openings']} arrivals at 08:30:00 or 14:00:00 (± 1 µs; Prosimos "
        f"moves an arrival due while closed to the opening; expected "
        f"{f['true_arrivals_at_openings_per_week']:.2f} a week); construction's longest wait "
        f"{log['construction_max_wait_s']:.0f} s; true load "
        + ", ".join(f"{d} {v:.2f}" for d, v in f["true_load"].items())
    )
    if log["events_from_qingming"]:
        print(
            f"  WARNING: {log['events_from_qingming']} events on or after {HOLIDAY_FROM} "
            "(Qingming: a holiday to govflow, a working day to Prosimos)"
        )
    v = f["volume_per_working_day"]
    print(
        f"{'parameter':<26}{'true':>9}{'realised':>10}{'discovered':>12}{'vs true':>9}"
        f"{'vs real.':>9}  95% CI"
    )
    print(
        f"{'cases / working day':<26}{v['true']:>9.2f}{v['realised']:>10.2f}"
        f"{v['discovered']:>12.2f}{v['rel_error']:>+9.1%}{v['rel_error_vs_realised']:>+9.1%}"
        f"  ({v['discovered_per_year']:,.0f}/year)"
    )
    for step, row in f["steps"].items():
        per, unit = (1440.0, "d") if step in EXTERNAL else (1.0, "min")
        label = f"{step} mean ({unit})"
        if row.get("mean_min_discovered") is None:
            print(f"{label:<26}{row['mean_min_true'] / per:>9.2f}  not discovered")
            continue
        ci = row["ci95_min"]
        ci_text = f"[{ci[0] / per:.2f}, {ci[1] / per:.2f}]" if ci else "?"
        print(
            f"{label:<26}{row['mean_min_true'] / per:>9.2f}{row['mean_min_realised'] / per:>10.2f}"
            f"{row['mean_min_discovered'] / per:>12.2f}{row['rel_error']:>+9.1%}"
            f"{row['rel_error_vs_realised']:>+9.1%}  {ci_text}  "
            f"{row['kind_true']} cv {row['cv_true']:.2f} → {row['kind_discovered']} cv "
            f"{_cv_text(row['cv_discovered'])}"
        )
        for purpose in ("lag", "service", "duration"):
            extra = row.get(f"{purpose}_min_discovered")
            if extra is not None:
                print(f"  {step}: also a {purpose} of {extra} min (the model has none)")
    for d, c in f["clerks"].items():
        print(f"{'clerks ' + d:<26}{c['true']:>9}{'':>10}{c['discovered']!s:>12}")
    hours = f["office_hours"]
    text = lambda h: ", ".join("–".join(p) for p in h)  # noqa: E731
    print(
        f"office hours: true {text(hours['true'])}; discovered "
        + "; ".join(f"{d} {text(h)}" for d, h in hours["discovered"].items())
    )
    dist = f["distances"]
    print(f"{'distance to the log':<24}{'govflow sim':>13}{'prosimos ref':>14}{'factor':>9}")
    for m in MEASURES:
        factor = dist["factor"][m]
        print(
            f"{m:<24}{dist['govflow_sim'][m]:>13.4f}{dist['prosimos_reference'][m]:>14.4f}"
            f"{'—' if factor is None else f'{factor:.2f}':>9}"
        )
    t = f["timings"]
    print(
        "time: prosimos "
        + " + ".join(f"{x:.2f}" for x in t["prosimos_s"])
        + f" s, discover {t['discover_s']:.1f} s, simulate {t['simulate_s']:.1f} s, validate "
        f"{t['validate_s']:.1f} + {t['validate_reference_s']:.1f} s; total {t['total_s']:.1f} s"
        f" (outputs in {f['workdir']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "prosimos_log")
    parser.add_argument("--seed", type=int, default=1, help="Prosimos seed (reference: seed + 1)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--logs", type=Path, nargs="*", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=int, default=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.seeds, args.logs, args.cases)
    try:
        figures = prosimos_round_trip(args.out, args.seed)
    except ProsimosMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    print_summary(figures)
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
