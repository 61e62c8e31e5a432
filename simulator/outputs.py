"""A run's step attempts as process-mining logs.

* ``events.csv`` — one row per step attempt, with PM4Py's column names (the default);
* ``events.xes`` — the same attempts as an XES log (IEEE 1849): one trace per case, a
  ``start`` and a ``complete`` event per attempt (``--log-format xes``);
* ``ocel.json`` — the linked transfers (房电水气网联动过户: the matters whose steps move a
  utility's account holder) as an OCEL 2.0 object-centric log: each attempt an event
  related to its case, the case's 不动产单元 and, for a utility's step, that utility's
  account of the unit.

All three are written with the standard library from one row computation
(:func:`event_rows`), streamed: a city-year (about a million attempts) is never held as a
document in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, NamedTuple, TextIO
from xml.sax.saxutils import escape

import numpy as np

from services.core.catalog import Step
from services.core.units import buyer, original_owner, unit_code
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
    "case:segment",
    "attempt",
    "outcome",
)
#: The engine's outcome codes as the logs write them (services.core.walk.Outcome).
OUTCOME_NAMES = ("done", "rework", "rejected", "retry")

LogFormat = Literal["csv", "xes"]
LOG_FORMATS: tuple[LogFormat, ...] = ("csv", "xes")


class EventRow(NamedTuple):
    """One step attempt: the fields of :data:`EVENT_COLUMNS`, in their order."""

    case: str
    step: str
    completed: str  # ISO-8601, Asia/Shanghai
    started: str
    enabled: str
    resource: str
    department: str
    matter: str
    county: str
    segment: str
    attempt: int
    outcome: str


def iso_shanghai(posix: np.ndarray) -> np.ndarray:
    """POSIX seconds → ISO-8601 strings in Asia/Shanghai with their offset."""
    local = np.rint((np.asarray(posix, dtype=float) + 8 * 3600) * 1e6).astype("datetime64[us]")
    text = np.datetime_as_string(local, unit="s")
    return np.char.add(text.astype(str), "+08:00")


def event_rows(rep: Replication, matters: Collection[str] | None = None) -> Iterator[EventRow]:
    """The step attempts of one replication (of ``matters`` only, when given), ordered
    by case, then completion — then the order the engine finished them in, which is
    causal: an attempt never comes before one whose completion enabled it."""
    cols = rep.columns()
    if len(cols["seq"]) == 0:
        return
    order = np.lexsort((cols["done"], cols["seq"], cols["matter"]))
    if matters is not None:
        wanted = [i for i, m in enumerate(rep.matters) if m in matters]
        order = order[np.isin(cols["matter"][order], wanted)]
    n = len(order)
    ids = rep.matters
    steps = [[s.id for s in rep.outcomes[m].matter.steps] for m in ids]
    departments = [[s.department for s in rep.outcomes[m].matter.steps] for m in ids]
    segment_names = [rep.segment_names(m) for m in ids]
    seq_sorted = cols["seq"][order]
    matter_sorted = cols["matter"][order]
    segment_index = np.full(n, -1, dtype=np.int64)
    for mi, matter_id in enumerate(ids):
        rows = matter_sorted == mi
        if rows.any():
            segment_index[rows] = rep.outcomes[matter_id].arrivals.segment[seq_sorted[rows]]
    columns = zip(
        matter_sorted.tolist(),
        seq_sorted.tolist(),
        segment_index.tolist(),
        cols["step"][order].tolist(),
        cols["county"][order].tolist(),
        cols["clerk"][order].tolist(),
        cols["attempt"][order].tolist(),
        cols["outcome"][order].tolist(),
        iso_shanghai(cols["done"][order]).tolist(),
        iso_shanghai(cols["start"][order]).tolist(),
        iso_shanghai(cols["enabled"][order]).tolist(),
        strict=True,
    )
    for mi, seq, segment, si, county, clerk, attempt, outcome, done, started, enabled in columns:
        department = departments[mi][si]
        county_id = rep.counties[county]
        yield EventRow(
            case_id(ids[mi], seq),
            steps[mi][si],
            done,
            started,
            enabled,
            f"{department}/{county_id}/{clerk + 1}" if clerk >= 0 else "external",
            department,
            ids[mi],
            county_id,
            segment_names[mi][segment] if segment >= 0 else "",
            attempt,
            OUTCOME_NAMES[outcome],
        )


def write_events(rep: Replication, path: Path) -> int:
    """``events.csv``: one row per step attempt (:func:`event_rows`); returns the rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(EVENT_COLUMNS)
        for row in event_rows(rep):
            writer.writerow(row)
            n += 1
    return n


# --- XES (IEEE 1849) -----------------------------------------------------------------

_XES_EXTENSIONS = (
    ("Concept", "concept", "http://www.xes-standard.org/concept.xesext"),
    ("Time", "time", "http://www.xes-standard.org/time.xesext"),
    ("Lifecycle", "lifecycle", "http://www.xes-standard.org/lifecycle.xesext"),
    ("Organizational", "org", "http://www.xes-standard.org/org.xesext"),
)
_QUOTE = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _attr(value: str) -> str:
    """A string as an XML attribute value, quotes included."""
    return '"' + escape(value, _QUOTE) + '"'


def _xes_header(name: str) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    lines.append('<log xes.version="1.0" xmlns="http://www.xes-standard.org/">')
    for ext_name, prefix, uri in _XES_EXTENSIONS:
        lines.append(f'  <extension name="{ext_name}" prefix="{prefix}" uri="{uri}"/>')
    lines.append('  <global scope="trace">')
    for key in ("concept:name", "matter", "county", "segment"):
        lines.append(f'    <string key="{key}" value=""/>')
    lines.append("  </global>")
    lines.append('  <global scope="event">')
    lines.append('    <string key="concept:name" value=""/>')
    lines.append('    <string key="lifecycle:transition" value="complete"/>')
    lines.append('    <date key="time:timestamp" value="1970-01-01T00:00:00+00:00"/>')
    lines.append('    <string key="org:resource" value=""/>')
    lines.append('    <string key="org:group" value=""/>')
    lines.append('    <int key="attempt" value="0"/>')
    lines.append('    <string key="outcome" value=""/>')
    lines.append("  </global>")
    lines.append('  <classifier name="Activity" keys="concept:name"/>')
    lines.append(
        '  <classifier name="Activity and transition" keys="concept:name lifecycle:transition"/>'
    )
    lines.append(f'  <string key="concept:name" value={_attr(name)}/>')
    lines.append('  <string key="lifecycle:model" value="standard"/>')
    return "\n".join(lines) + "\n"


def _write_trace(out: TextIO, case: str, rows: list[EventRow], quoted: dict[str, str]) -> None:
    def q(text: str) -> str:
        found = quoted.get(text)
        if found is None:
            found = quoted[text] = _attr(text)
        return found

    first = rows[0]
    parts = [
        "  <trace>\n",
        f'    <string key="concept:name" value={_attr(case)}/>\n',
        f'    <string key="matter" value={q(first.matter)}/>\n',
        f'    <string key="county" value={q(first.county)}/>\n',
        f'    <string key="segment" value={q(first.segment)}/>\n',
    ]
    # each attempt's start and completion, by time; at equal times (the log has whole
    # seconds) in the engine's causal order, a start before its own completion
    events = [(r.started, i, 0) for i, r in enumerate(rows)]
    events += [(r.completed, i, 1) for i, r in enumerate(rows)]
    events.sort()
    for time, i, complete in events:
        r = rows[i]
        parts.append(
            "    <event>\n"
            f'      <string key="concept:name" value={q(r.step)}/>\n'
            '      <string key="lifecycle:transition" value='
            + ('"complete"' if complete else '"start"')
            + "/>\n"
            f'      <date key="time:timestamp" value="{time}"/>\n'
            f'      <string key="org:resource" value={q(r.resource)}/>\n'
            f'      <string key="org:group" value={q(r.department)}/>\n'
            f'      <int key="attempt" value="{r.attempt}"/>\n'
            f'      <string key="outcome" value="{r.outcome}"/>\n'
            "    </event>\n"
        )
    parts.append("  </trace>\n")
    out.write("".join(parts))


def write_xes(rep: Replication, path: Path) -> int:
    """``events.xes``: the attempts of :func:`write_events` as an XES log — a trace per
    case (``concept:name`` the case id; ``matter``, ``county``, ``segment``), a ``start``
    and a ``complete`` event per attempt, ordered by time.  Returns the attempts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    quoted: dict[str, str] = {}  # steps, resources, counties: a few thousand strings
    with path.open("w", encoding="utf-8") as out:
        out.write(_xes_header(rep.scenario))
        for case, rows in groupby(event_rows(rep), key=itemgetter(0)):
            attempts = list(rows)
            _write_trace(out, case, attempts, quoted)
            n += len(attempts)
        out.write("</log>\n")
    return n


# --- OCEL 2.0 (the linked transfers) ----------------------------------------------------

#: The object type of each utility's account (户号) of a unit; a utility not named here
#: gets "<department>账户".
ACCOUNT_TYPES = {"power": "电力户号", "water": "供水户号", "gas": "燃气户号", "telecom": "宽带账户"}
CASE_TYPE = "case"
UNIT_TYPE = "不动产单元"
#: OCEL 2.0's time of an object attribute's initial value
_EPOCH = "1970-01-01T00:00:00Z"


def account_type(department: str) -> str:
    return ACCOUNT_TYPES.get(department, f"{department}账户")


def linked_matters(rep: Replication) -> list[str]:
    """The run's matters with cases whose steps move a utility's account holder (the
    linked transfers, 房电水气网联动过户)."""
    return [
        m
        for m in rep.matters
        if len(rep.outcomes[m].arrivals) > 0
        and rep.outcomes[m].arrivals.unit is not None
        and any(s.effect == "account" for s in rep.outcomes[m].matter.steps)
    ]


class _Case(NamedTuple):
    matter: str
    county: str
    segment: str
    unit: str  # its unit's code


@dataclass
class _Unit:
    county: str
    #: (time, value) changes after the initial owner / holders
    owners: list[tuple[str, str]]
    holders: dict[str, list[tuple[str, str]]]  # utility department → changes


def _attribute(name: str, value: Any, time: str = _EPOCH) -> dict[str, Any]:
    return {"name": name, "time": time, "value": value}


def _dump(out: TextIO, items: Iterator[dict[str, Any]]) -> None:
    """A JSON array, one item a line."""
    out.write("[")
    for i, item in enumerate(items):
        out.write(("\n" if i == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
    out.write("\n]")


def write_ocel(rep: Replication, path: Path) -> int:
    """``ocel.json``: the linked transfers as an OCEL 2.0 log (JSON).  Objects: each
    case (``case``), its 不动产单元 (id the unit code; ``owner`` over time) and one
    account per utility of the matter and unit (id ``<unit code>/<utility>``;
    ``holder`` over time).  Each step attempt is an event of its step's type at its
    completion (``resource``, ``group``, ``attempt``, ``outcome``) related to the case,
    the unit (qualifier: the step's effect on it, else ``unit``) and, for a utility's
    step, the unit's account there.  Returns the events."""
    matters = linked_matters(rep)
    steps: dict[str, dict[str, Step]] = {
        m: {s.id: s for s in rep.outcomes[m].matter.steps} for m in matters
    }
    utilities = sorted(
        {s.department for m in matters for s in steps[m].values() if s.effect == "account"}
    )
    units: dict[str, _Unit] = {}
    cases: dict[str, _Case] = {}
    for m in matters:
        arrivals = rep.outcomes[m].arrivals
        assert arrivals.unit is not None
        segments = rep.segment_names(m)
        for seq, (county, segment, unit) in enumerate(
            zip(
                arrivals.county.tolist(),
                arrivals.segment.tolist(),
                arrivals.unit.tolist(),
                strict=True,
            )
        ):
            code = unit_code(county, unit)
            name = segments[segment] if segment >= 0 else ""
            cases[case_id(m, seq)] = _Case(m, rep.counties[county], name, code)
            if code not in units:
                units[code] = _Unit(rep.counties[county], [], {u: [] for u in utilities})
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as out:
        out.write('{\n"objectTypes": ')
        _dump(out, iter(_object_types(utilities)))
        out.write(',\n"eventTypes": ')
        _dump(out, iter(_event_types(matters, steps)))
        out.write(',\n"events": [')
        for row in event_rows(rep, matters):
            step = steps[row.matter][row.step]
            code = cases[row.case].unit
            relationships = [
                {"objectId": row.case, "qualifier": "case"},
                {"objectId": code, "qualifier": _unit_qualifier(step)},
            ]
            if step.effect == "account":
                relationships.append(
                    {"objectId": f"{code}/{step.department}", "qualifier": "account"}
                )
            if row.outcome == "done":  # an effect applies when its attempt is done
                if step.effect == "transfer":
                    units[code].owners.append((row.completed, buyer(row.case)))
                elif step.effect == "account":
                    units[code].holders[step.department].append((row.completed, buyer(row.case)))
            event = {
                "id": f"{row.case}/{row.step}/{row.attempt}",
                "type": row.step,
                "time": row.completed,
                "attributes": [
                    {"name": "resource", "value": row.resource},
                    {"name": "group", "value": row.department},
                    {"name": "attempt", "value": row.attempt},
                    {"name": "outcome", "value": row.outcome},
                ],
                "relationships": relationships,
            }
            out.write(("\n" if n == 0 else ",\n") + json.dumps(event, ensure_ascii=False))
            n += 1
        out.write("\n],\n" + '"objects": ')
        _dump(out, _objects(cases, units))
        out.write("\n}\n")
    return n


def _unit_qualifier(step: Step) -> str:
    """How a step's event relates to the case's unit: what it does to it, if anything."""
    return step.effect if step.effect not in (None, "account") else "unit"


def _object_types(utilities: list[str]) -> list[dict[str, Any]]:
    def typed(name: str, *attributes: str) -> dict[str, Any]:
        return {"name": name, "attributes": [{"name": a, "type": "string"} for a in attributes]}

    return [
        typed(CASE_TYPE, "matter", "county", "segment"),
        typed(UNIT_TYPE, "county", "owner"),
        *(typed(account_type(u), "utility", "holder") for u in utilities),
    ]


def _event_types(matters: list[str], steps: dict[str, dict[str, Step]]) -> list[dict[str, Any]]:
    attributes = [
        {"name": "resource", "type": "string"},
        {"name": "group", "type": "string"},
        {"name": "attempt", "type": "integer"},
        {"name": "outcome", "type": "string"},
    ]
    names = dict.fromkeys(s for m in matters for s in steps[m])
    return [{"name": name, "attributes": attributes} for name in names]


def _objects(cases: dict[str, _Case], units: dict[str, _Unit]) -> Iterator[dict[str, Any]]:
    for case, c in cases.items():
        yield {
            "id": case,
            "type": CASE_TYPE,
            "attributes": [
                _attribute("matter", c.matter),
                _attribute("county", c.county),
                _attribute("segment", c.segment),
            ],
            "relationships": [{"objectId": c.unit, "qualifier": "transfers"}],
        }
    for code, unit in units.items():
        owners = [_attribute("owner", original_owner(code))]
        owners += [_attribute("owner", who, time) for time, who in sorted(unit.owners)]
        yield {
            "id": code,
            "type": UNIT_TYPE,
            "attributes": [_attribute("county", unit.county), *owners],
            "relationships": [
                {"objectId": f"{code}/{u}", "qualifier": "一码关联"} for u in unit.holders
            ],
        }
        for utility, changes in unit.holders.items():
            holders = [_attribute("holder", original_owner(code))]
            holders += [_attribute("holder", who, time) for time, who in sorted(changes)]
            yield {
                "id": f"{code}/{utility}",
                "type": account_type(utility),
                "attributes": [_attribute("utility", utility), *holders],
                "relationships": [{"objectId": code, "qualifier": "account of"}],
            }


# --- what a run writes -----------------------------------------------------------------


@dataclass(frozen=True)
class EventLogs:
    """Which logs a run writes to ``folder``: ``events.csv`` or ``events.xes``, and
    ``ocel.json`` — always (True), never (False) or when the run has linked transfers
    (None)."""

    folder: Path
    format: LogFormat = "csv"
    ocel: bool | None = None

    def write(self, rep: Replication) -> tuple[Path, ...]:
        """Write the logs of ``rep``; returns the files written."""
        if self.format not in LOG_FORMATS:
            raise ValueError(f"log format {self.format!r} is not one of {', '.join(LOG_FORMATS)}")
        events = self.folder / f"events.{self.format}"
        (write_xes if self.format == "xes" else write_events)(rep, events)
        written = [events]
        if self.ocel or (self.ocel is None and linked_matters(rep)):
            write_ocel(rep, self.folder / "ocel.json")
            written.append(self.folder / "ocel.json")
        return tuple(written)
