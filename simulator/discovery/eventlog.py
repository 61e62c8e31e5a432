"""Reading an event log for discovery and validation: CSV (PM4Py's column names, or
mapped ones) or XES, one completion per step attempt or start/complete pairs.

The result is one table of step attempts (:class:`EventLog`) in the catalog's terms —
matter id, step id, county id — with POSIX timestamps.  Nothing in a log is trusted:
a row with a missing field, a timestamp that does not parse, a matter or a step the
catalog does not know, a start after its completion, is left out and counted with its
reason (:class:`Exclusions`), never raised.  Only a log that cannot be read at all (no
such file, no case or activity column) is an :class:`InputError`.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from services.core.catalog import Catalog
from services.core.errors import InputError

#: The roles a log's columns play, and the names they have by default: PM4Py's, then
#: govflow's own (as simulator/outputs.py writes events.csv).
DEFAULT_COLUMNS: dict[str, str] = {
    "case": "case:concept:name",
    "activity": "concept:name",
    "end": "time:timestamp",
    "start": "start_timestamp",
    "enable": "enable_timestamp",
    "resource": "org:resource",
    "matter": "case:matter",
    "county": "case:county",
    "segment": "case:segment",
    "outcome": "outcome",
    "lifecycle": "lifecycle:transition",
}
#: Roles without which no row can be used.
REQUIRED_ROLES = ("case", "activity", "end")
#: Outcomes an attempt may have (services.core.walk.Outcome, as events.csv names them).
OUTCOMES = ("done", "rework", "rejected", "retry")
#: Examples of excluded rows kept per reason (all are counted).
EXAMPLES_PER_REASON = 5


@dataclass
class Exclusions:
    """Rows (and cases) left out, counted by reason, with the first few row numbers."""

    source: str
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, rows: pd.Series, detail: pd.Series | None = None) -> None:
        """Count ``rows`` (their row numbers) under ``reason``; ``detail`` per row."""
        n = len(rows)
        if n == 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + n
        shown = self.examples.setdefault(reason, [])
        head = rows.head(EXAMPLES_PER_REASON - len(shown)).tolist()
        details = detail.head(len(head)).tolist() if detail is not None else [None] * len(head)
        for row, extra in zip(head, details, strict=True):
            shown.append(f"{self.source} row {row}: {reason}" + (f" ({extra})" if extra else ""))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """One line per reason: the count and the first row it happened on."""
        out = []
        for reason, n in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            first = self.examples.get(reason, [""])[0]
            out.append(f"{n:,} excluded — {first}")
        return out

    def as_dict(self) -> dict[str, object]:
        return {"total": self.total, "by_reason": dict(self.counts), "examples": self.examples}


@dataclass
class EventLog:
    """Step attempts, one row each, in the catalog's terms.

    Columns: ``row`` (the source's row or event number), ``case``, ``matter``, ``step``,
    ``county``, ``segment`` ("" for none), ``resource`` ("" unknown), ``outcome``
    ("" unknown), ``end``, ``start``, ``enable`` (POSIX seconds, NaN unknown), and
    ``case_ok`` (False: some row of the case was unusable, so its path and cycle time
    are not trusted)."""

    attempts: pd.DataFrame
    source: str
    exclusions: Exclusions
    has: frozenset[str]  # the roles the log had columns for

    @property
    def has_start(self) -> bool:
        return "start" in self.has

    def matters(self) -> list[str]:
        return sorted(self.attempts["matter"].unique().tolist())


def read_log(
    path: Path,
    catalog: Catalog,
    *,
    columns: Mapping[str, str] | None = None,
    matter: str | None = None,
    county: str | None = None,
    roles: frozenset[str] | None = None,
) -> EventLog:
    """Read ``path`` (CSV, or XES when it ends in .xes / .xes.gz) into an :class:`EventLog`.

    ``columns`` maps roles (:data:`DEFAULT_COLUMNS`) to the log's own column names;
    ``matter`` / ``county`` give every case that matter / county when the log has no
    column for it; ``roles``, when given, are the only optional roles read from a CSV
    (the others are treated as absent: faster when they are not needed)."""
    source = str(path)
    if not path.is_file():
        raise InputError(source, "", "no such file")
    names = {**DEFAULT_COLUMNS, **(columns or {})}
    unknown_roles = sorted(set(columns or {}) - set(DEFAULT_COLUMNS))
    if unknown_roles:
        raise InputError(
            source,
            "--column",
            f"unknown role {unknown_roles[0]!r} (roles: {', '.join(DEFAULT_COLUMNS)})",
        )
    if path.name.endswith((".xes", ".xes.gz")):
        raw = _read_xes(path)
    else:
        try:
            usecols = None
            if roles is not None:
                header = pd.read_csv(path, dtype=str, nrows=0).columns
                wanted = {names[r] for r in (*REQUIRED_ROLES, *roles, "matter", "county")}
                usecols = [c for c in header if c in wanted]
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], usecols=usecols)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise InputError(source, "", f"not a readable CSV file: {exc}") from None
        raw.insert(0, "_row", np.arange(2, len(raw) + 2))  # line numbers (header is 1)
    return _normalise(raw, source, names, catalog, matter=matter, county=county)


def _read_xes(path: Path) -> pd.DataFrame:
    """An XES file's events, one row each; trace attributes as ``case:<key>`` columns,
    the trace's ``concept:name`` as ``case:concept:name`` (PM4Py's convention)."""
    rows: list[dict[str, str]] = []
    try:
        with path.open("rb") as raw:
            if path.name.endswith(".gz"):
                rows = list(_xes_events(gzip.GzipFile(fileobj=raw)))
            else:
                rows = list(_xes_events(raw))
    except (ET.ParseError, OSError, EOFError) as exc:
        raise InputError(str(path), "", f"not a readable XES file: {exc}") from None
    frame = pd.DataFrame(rows, dtype=str).fillna("")
    frame.insert(0, "_row", np.arange(1, len(frame) + 1))  # event numbers in file order
    return frame


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xes_events(stream: IO[bytes] | gzip.GzipFile) -> Iterator[dict[str, str]]:
    trace: dict[str, str] = {}
    depth_event = False
    event: dict[str, str] = {}
    for kind, element in ET.iterparse(stream, events=("start", "end")):
        tag = _local(element.tag)
        if kind == "start":
            if tag == "trace":
                trace = {}
            elif tag == "event":
                depth_event = True
                event = {}
            continue
        key = element.get("key")
        if tag == "event":
            depth_event = False
            yield {**trace, **event}
            element.clear()
        elif tag == "trace":
            element.clear()
        elif key is not None and tag in ("string", "date", "int", "float", "boolean", "id"):
            value = element.get("value", "")
            if depth_event:
                event[key] = value
            else:
                trace[key if key.startswith("case:") else f"case:{key}"] = value


def _normalise(  # noqa: C901, PLR0915 — one pass of checks, each a few lines
    raw: pd.DataFrame,
    source: str,
    names: Mapping[str, str],
    catalog: Catalog,
    *,
    matter: str | None,
    county: str | None,
) -> EventLog:
    """The checks, as masks over the raw rows; the rows kept are copied once at the end."""
    exclusions = Exclusions(source)
    has = frozenset(role for role, name in names.items() if name in raw.columns)
    for role in REQUIRED_ROLES:
        if role not in has:
            raise InputError(
                source,
                names[role],
                f"no such column (the {role}; map another with --column {role}=NAME)",
            )
    if "matter" not in has and matter is None:
        raise InputError(
            source, names["matter"], "no such column: name the matter of every case with --matter"
        )
    if "county" not in has and county is None:
        raise InputError(
            source, names["county"], "no such column: name the county of every case with --county"
        )
    n = len(raw)

    def col(role: str, default: str = "") -> pd.Series:
        if role in has:
            return raw[names[role]]
        return pd.Series(np.full(n, default, dtype=object), index=raw.index)

    row = raw["_row"]
    case = col("case")
    activity = col("activity")
    keep = np.ones(n, dtype=bool)
    broken = np.zeros(n, dtype=bool)  # the row's case is not trusted

    def drop(mask: np.ndarray, reason: str, detail: pd.Series | None = None) -> None:
        mask = mask & keep
        if mask.any():
            exclusions.add(reason, row[mask], detail[mask] if detail is not None else None)
            keep[mask] = False

    drop((case == "").to_numpy(), f"{names['case']}: missing")
    for role, values in (("activity", activity), ("end", col("end"))):
        missing = (values == "").to_numpy() & keep
        broken |= missing
        drop(missing, f"{names[role]}: missing")
    times = {}
    for role in ("end", "start", "enable"):
        text = col(role)
        parsed = _parse_times(text).to_numpy()
        unparsable = np.isnan(parsed) & (text != "").to_numpy() & keep
        if role == "end":
            broken |= unparsable
            drop(unparsable, f"{names[role]}: not a timestamp", text)
        elif unparsable.any():
            exclusions.add(
                f"{names[role]}: not a timestamp (the row is kept without it)",
                row[unparsable],
                text[unparsable],
            )
        times[role] = parsed
    matter_name = col("matter", matter or "")
    matter_id = matter_name.map(_matter_lookup(catalog))
    drop(matter_id.isna().to_numpy(), "matter not in the catalog", matter_name)
    county_name = col("county", county or "")
    lookup = {c.id: c.id for c in catalog.counties} | {c.name: c.id for c in catalog.counties}
    county_id = county_name.map(lookup)
    unknown = county_id.isna().to_numpy() & keep
    broken |= unknown
    drop(unknown, "county not in the catalog", county_name)
    step = _steps(matter_id, activity, keep, catalog)
    drop(
        step.isna().to_numpy(),
        "activity is not a step of the matter in the catalog",
        matter_name + ": " + activity,
    )
    outcome = col("outcome").str.lower() if "outcome" in has else col("outcome")
    if "outcome" in has:
        odd = (~outcome.isin(OUTCOMES) & (outcome != "")).to_numpy() & keep
        if odd.any():
            exclusions.add(
                f"{names['outcome']}: not one of {', '.join(OUTCOMES)} (kept as unknown)",
                row[odd],
                outcome[odd],
            )
            outcome = outcome.where(~odd, "")
    frame = pd.DataFrame(
        {
            "row": row.to_numpy()[keep],
            "case": case.to_numpy()[keep],
            "matter": matter_id.to_numpy()[keep],
            "step": step.to_numpy()[keep],
            "county": county_id.to_numpy()[keep],
            "segment": col("segment").to_numpy()[keep],
            "resource": col("resource").to_numpy()[keep],
            "outcome": outcome.to_numpy()[keep],
            "end": times["end"][keep],
            "start": times["start"][keep],
            "enable": times["enable"][keep],
            "broken": broken[keep],
        }
    )
    broken_cases = set(case.to_numpy()[broken].tolist())
    if "lifecycle" in has:
        frame["lifecycle"] = col("lifecycle").str.lower().to_numpy()[keep]
        frame = _pair_lifecycle(frame, exclusions, names["lifecycle"])
    backwards = (frame["start"] > frame["end"]).to_numpy()
    if backwards.any():
        exclusions.add(
            "impossible ordering: the step starts after it completes", frame["row"][backwards]
        )
        broken_cases |= set(frame["case"][backwards].tolist())
        frame = frame[~backwards]
    early = (frame["enable"] > frame["start"].fillna(frame["end"])).to_numpy()
    if early.any():
        exclusions.add(
            "impossible ordering: the step is enabled after it starts (enable dropped)",
            frame["row"][early],
        )
        frame.loc[early, "enable"] = np.nan
    first_matter = frame.groupby("case", sort=False)["matter"].transform("first")
    mixed = (frame["matter"] != first_matter).to_numpy()
    if mixed.any():
        cases_mixed = set(frame["case"][mixed].tolist())
        rows_mixed = frame["case"].isin(cases_mixed).to_numpy()
        exclusions.add("the case has rows of two matters", frame["row"][rows_mixed])
        frame = frame[~rows_mixed]
    frame["case_ok"] = ~frame["case"].isin(broken_cases) if broken_cases else True
    out = frame.drop(columns=["broken"]).sort_values(["matter", "case", "end"], kind="stable")
    return EventLog(out.reset_index(drop=True), source, exclusions, has)


def _parse_times(text: pd.Series) -> pd.Series:
    """ISO-8601 text → POSIX seconds (NaN where empty or unparsable); a timestamp without
    an offset is Shangrao local time (+08:00, no daylight saving since 1991).

    The common layout (``2021-01-04T09:44:21+08:00``, as govflow writes it) is parsed
    by numpy in one pass; anything else by pandas, value by value."""
    values = text.to_numpy(dtype=str)
    out = np.full(len(values), np.nan)
    filled = values != ""
    try:
        present = values[filled]
        seconds = present.astype("U19").astype("datetime64[s]").astype(np.int64)
        suffix = np.strings.slice(present, 19, None)
        alike = len(suffix) == 0 or bool((suffix == suffix[0]).all())
        kinds = suffix[:1] if alike else np.unique(suffix)
        offsets = {str(u): _offset_seconds(str(u)) for u in kinds}
        if any(v is None for v in offsets.values()):
            raise ValueError("another layout")
        if alike:
            shift: np.ndarray | float = (offsets[str(suffix[0])] or 0.0) if len(suffix) else 0.0
        else:
            shift = np.vectorize(offsets.__getitem__, otypes=[np.float64])(suffix)
        out[filled] = seconds - shift
    except ValueError:
        out = _parse_times_slowly(text)
    return pd.Series(out, index=text.index)


def _offset_seconds(suffix: str) -> float | None:
    """``""`` (local time), ``Z``, ``+08:00`` or ``+0800`` → seconds east of UTC."""
    if suffix == "":
        return 8 * 3600.0
    if suffix == "Z":
        return 0.0
    body = suffix[1:].replace(":", "")
    if suffix[0] not in "+-" or len(body) != 4 or not body.isdigit():
        return None
    sign = 1 if suffix[0] == "+" else -1
    return sign * (int(body[:2]) * 3600 + int(body[2:]) * 60.0)


def _parse_times_slowly(text: pd.Series) -> np.ndarray:
    out = pd.Series(np.nan, index=text.index, dtype="float64")
    blank = text == ""
    naive = ~text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True)
    aware = ~blank & ~naive
    if aware.any():
        parsed = pd.to_datetime(text[aware], errors="coerce", utc=True, format="ISO8601")
        out[aware] = (parsed - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    local = ~blank & naive
    if local.any():
        parsed = pd.to_datetime(text[local], errors="coerce", format="ISO8601")
        out[local] = (parsed - pd.Timestamp(0)) / pd.Timedelta(seconds=1) - 8 * 3600
    return out.to_numpy()


def _matter_lookup(catalog: Catalog) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in catalog.matters:
        if m.kind == "workflow":
            out[m.name] = m.id
            out[m.id] = m.id
    return out


def _steps(
    matter_id: pd.Series, activity: pd.Series, keep: np.ndarray, catalog: Catalog
) -> pd.Series:
    """The catalog step id of each row's activity (by id or by name), NaN if unknown."""
    step = pd.Series(np.nan, index=activity.index, dtype=object)
    kept = matter_id[keep]
    for matter, rows in kept.groupby(kept).groups.items():
        found = catalog.matter(str(matter))
        lookup = {s.id: s.id for s in found.steps} | {s.name: s.id for s in found.steps}
        step.loc[rows] = activity.loc[rows].map(lookup)
    return step


def _pair_lifecycle(frame: pd.DataFrame, exclusions: Exclusions, column: str) -> pd.DataFrame:
    """Start/complete pairs → one attempt: the k-th start of a step in a case goes with
    its k-th completion; other transitions are left out (counted)."""
    kind = frame["lifecycle"]
    other = ~kind.isin(("start", "complete"))
    exclusions.add(
        f"{column}: neither start nor complete (not an attempt)",
        frame.loc[other, "row"],
        kind[other],
    )
    starts = frame[kind == "start"].sort_values("end", kind="stable")
    ends = frame[kind == "complete"].sort_values("end", kind="stable")
    starts = starts.assign(k=starts.groupby(["case", "step"]).cumcount())
    ends = ends.assign(k=ends.groupby(["case", "step"]).cumcount())
    paired = ends.merge(
        starts[["case", "step", "k", "end", "row"]].rename(
            columns={"end": "start_time", "row": "start_row"}
        ),
        on=["case", "step", "k"],
        how="outer",
        indicator=True,
    )
    lone = paired["_merge"] == "right_only"
    exclusions.add("a start without its complete", paired.loc[lone, "start_row"].astype(int))
    paired = paired[~lone].copy()
    has_pair = paired["_merge"] == "both"
    paired.loc[has_pair, "start"] = paired.loc[has_pair, "start_time"]
    return paired.drop(columns=["k", "start_time", "start_row", "_merge", "lifecycle"])
