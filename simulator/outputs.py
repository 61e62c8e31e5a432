"""``events.csv``: a run's step attempts as a process-mining log (PM4Py's column names)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from simulator.demand import case_id
from simulator.engine import Replication

#: PM4Py's column names, then govflow's own.
EVENT_COLUMNS = (
    "case:concept:name",
    "concept:name",
    "time:timestamp",
    "start_timestamp",
    "enable_timestamp",
    "org:resource",
    "org:group",
    "case:matter",
    "case:county",
    "attempt",
    "outcome",
)
#: The engine's outcome codes as events.csv writes them (services.core.walk.Outcome).
OUTCOME_NAMES = ("done", "rework", "rejected", "retry")


def iso_shanghai(posix: np.ndarray) -> np.ndarray:
    """POSIX seconds → ISO-8601 strings in Asia/Shanghai with their offset."""
    local = np.rint((np.asarray(posix, dtype=float) + 8 * 3600) * 1e6).astype("datetime64[us]")
    text = np.datetime_as_string(local, unit="s")
    return np.char.add(text.astype(str), "+08:00")


def write_events(rep: Replication, path: Path) -> int:
    """One row per step attempt of one replication, ordered by case then completion."""
    cols = rep.columns()
    n = len(cols["seq"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if n == 0:
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerow(EVENT_COLUMNS)
        return 0
    start = cols["start"]
    order = np.lexsort((cols["done"], cols["seq"], cols["matter"]))
    matters = rep.matters
    steps = [[s.id for s in rep.outcomes[m].matter.steps] for m in matters]
    departments = [[s.department for s in rep.outcomes[m].matter.steps] for m in matters]
    done_iso = iso_shanghai(cols["done"][order])
    start_iso = iso_shanghai(start[order])
    enable_iso = iso_shanghai(cols["enabled"][order])
    rows = zip(
        cols["matter"][order].tolist(),
        cols["seq"][order].tolist(),
        cols["step"][order].tolist(),
        cols["county"][order].tolist(),
        cols["clerk"][order].tolist(),
        cols["attempt"][order].tolist(),
        cols["outcome"][order].tolist(),
        done_iso.tolist(),
        start_iso.tolist(),
        enable_iso.tolist(),
        strict=True,
    )
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(EVENT_COLUMNS)
        for mi, seq, si, county, clerk, attempt, outcome, done, started, enabled in rows:
            department = departments[mi][si]
            county_id = rep.counties[county]
            resource = f"{department}/{county_id}/{clerk + 1}" if clerk >= 0 else "external"
            writer.writerow(
                (
                    case_id(matters[mi], seq),
                    steps[mi][si],
                    done,
                    started,
                    enabled,
                    resource,
                    department,
                    matters[mi],
                    county_id,
                    attempt,
                    OUTCOME_NAMES[outcome],
                )
            )
    return n
