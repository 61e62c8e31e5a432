"""``govflow discover`` and ``govflow validate``: a scenario from an event log, and the
distances between a run and a real log (registered on the main app by govflow.cli)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from govflow.cli import _catalog_from, app, console, err_console, friendly_errors
from services.core.catalog import Catalog
from services.core.errors import InputError
from services.core.scenario import read_scenario_data

LogOption = Annotated[
    Path,
    typer.Option(
        "--log",
        help="Event log: CSV with PM4Py's column names (as govflow's events.csv) or XES.",
    ),
]
ColumnOption = Annotated[
    list[str] | None,
    typer.Option(
        "--column",
        help="ROLE=NAME: the log's column for a role (case, activity, end, start, enable, "
        "resource, matter, county, segment, outcome, lifecycle); repeatable.",
    ),
]
MatterOption = Annotated[
    str | None, typer.Option("--matter", help="The matter of every case (a log without one).")
]
CountyOption = Annotated[
    str | None, typer.Option("--county", help="The county of every case (a log without one).")
]
CatalogOption = Annotated[
    Path | None, typer.Option("--catalog", help="Catalog file (default: the built-in one).")
]


def parse_columns(items: list[str] | None) -> dict[str, str]:
    """``["end=end_time", …]`` → ``{"end": "end_time", …}``; a malformed item is an input error."""
    out: dict[str, str] = {}
    for item in items or []:
        role, sep, name = item.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise InputError("--column", item, "expected ROLE=NAME, e.g. end=end_time")
        out[role.strip()] = name.strip()
    return out


def _print_exclusions(lines: list[str], label: str) -> None:
    for line in lines[:20]:
        err_console.print(f"[yellow]{label}:[/] {line}", highlight=False, soft_wrap=True)
    if len(lines) > 20:
        err_console.print(f"[yellow]{label}:[/] … {len(lines) - 20} more reasons", highlight=False)


@app.command("discover")
@friendly_errors
def discover_command(
    log: LogOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Scenario file to write.")],
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Where discovery.json goes (default: beside --out)."),
    ] = None,
    column: ColumnOption = None,
    matter: MatterOption = None,
    county: CountyOption = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Scenario name (default: from --out).")
    ] = None,
    holidays_from: Annotated[
        Path | None,
        typer.Option(
            "--holidays-from",
            help="A scenario whose holiday_years (or holiday_file) the discovered one "
            "keeps: a log past chinese-calendar's data needs them.",
        ),
    ] = None,
    catalog_file: CatalogOption = None,
) -> None:
    """Discover a scenario from an event log: volumes, arrival profiles, county shares,
    segments and routes, service times, lags, branch probabilities, clerks and hours.

    Writes the scenario (which `govflow simulate` runs unchanged) and discovery.json:
    for every parameter what it was inferred from, its observations and uncertainty,
    and what had to be assumed.  Rows that cannot be used are left out and counted.
    """
    from simulator.discovery.discover import discover
    from simulator.discovery.eventlog import read_log

    started = time.perf_counter()
    catalog = _catalog_from(catalog_file)
    holiday_years = None
    if holidays_from is not None:
        holiday_years = read_scenario_data(holidays_from).get("holiday_years") or None
    events = read_log(log, catalog, columns=parse_columns(column), matter=matter, county=county)
    _print_exclusions(events.exclusions.lines(), "excluded")
    try:
        found = discover(events, catalog, name=name or out.stem, holiday_years=holiday_years)
    except ValueError as exc:
        raise InputError(str(log), "", str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Discovered by `govflow discover --log {log}` ({time.strftime('%Y-%m-%d')}).\n"
        "# Every figure's source, observations and uncertainty: the discovery report.\n"
    )
    out.write_text(
        header + yaml.safe_dump(found.scenario, allow_unicode=True, sort_keys=False, width=100),
        encoding="utf-8",
    )
    found.validated(catalog, str(out))  # the engines must run it unchanged
    report_path = report or out.parent / "discovery.json"
    found.report["seconds"] = round(time.perf_counter() - started, 2)
    report_path.write_text(json.dumps(found.report, ensure_ascii=False, indent=1), encoding="utf-8")
    table = Table(title=f"discovered from {log.name}", show_lines=False)
    for heading in ("Matter", "Cases", "Per year", "Segments / routes", "Steps timed"):
        table.add_column(heading, justify="right" if heading in ("Cases", "Per year") else "left")
    for matter_id, demand in found.scenario["demand"].items():
        facts = found.report["demand"][matter_id]
        segments = ", ".join(
            f"{s['name']} {s['share']:.0%}" + (f" ({s['route']})" if s.get("route") else "")
            for s in demand.get("segments", [])
        )
        table.add_row(
            matter_id,
            f"{facts['cases']:,}",
            f"{demand['per_year']:,.0f}",
            segments or "—",
            str(len(found.scenario["timing"][matter_id])),
        )
    console.print(table)
    for note in found.notes[:30]:
        console.print(f"[dim]note:[/] {note}", highlight=False, soft_wrap=True)
    excluded = events.exclusions.total
    console.print(
        f"{len(events.attempts):,} attempts used, {excluded:,} rows excluded; "
        f"wrote {out} and {report_path} in {found.report['seconds']:.1f} s",
        highlight=False,
    )


def print_distances(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    headings = (
        ("Matter", "matter"),
        ("Real", "real_cases"),
        ("Sim", "simulated_cases"),
        ("Cycle-time EMD h", "cycle_time_emd_h"),
        ("Abs. hourly EMD h", "absolute_hourly_emd_h"),
        ("Circadian EMD h", "circadian_emd_h"),
        ("CFLD", "cfld"),
        ("3-gram", "ngram_3"),
    )
    for heading, _ in headings:
        table.add_column(heading, justify="left" if heading == "Matter" else "right")
    for row in rows:
        table.add_row(
            *(
                str(row[key])
                if key in ("matter", "real_cases", "simulated_cases")
                else f"{row[key]:.3f}"
                for _, key in headings
            )
        )
    console.print(table)


@app.command("validate")
@friendly_errors
def validate_command(
    log: LogOption,
    run: Annotated[
        Path, typer.Option("--run", help="A run folder (govflow simulate/replay --out).")
    ],
    column: ColumnOption = None,
    matter: MatterOption = None,
    county: CountyOption = None,
    catalog_file: CatalogOption = None,
) -> None:
    """Score a run against a real log: per matter, cycle-time, absolute-hourly and
    circadian EMD and control-flow distances (CFLD, 3-gram).  Writes validation.json
    in the run folder and adds the section (with both cycle-time distributions) to its
    report.html."""
    report_validation(
        log,
        run,
        _catalog_from(catalog_file),
        columns=parse_columns(column),
        matter=matter,
        county=county,
    )


def report_validation(
    log: Path,
    run: Path,
    catalog: Catalog,
    *,
    columns: dict[str, str] | None = None,
    matter: str | None = None,
    county: str | None = None,
) -> None:
    """Validate a run folder against a log: print the distances, write validation.json
    and the report's section (``govflow validate``, ``govflow simulate --compare-log``)."""
    from simulator.discovery.validate import validate, write_validation

    result = validate(log, run, catalog, columns=columns, matter=matter, county=county)
    _print_exclusions(result.real.exclusions.lines(), "excluded (real)")
    _print_exclusions(result.simulated.exclusions.lines(), "excluded (simulated)")
    data = result.as_dict()
    print_distances(data["rows"], f"{log.name} vs {run}")
    if data["only_real"]:
        console.print(f"only in the real log: {', '.join(data['only_real'])}", highlight=False)
    if data["only_simulated"]:
        console.print(
            f"only in the simulation: {', '.join(data['only_simulated'])}", highlight=False
        )
    written = write_validation(result, run)
    console.print(
        f"wrote {', '.join(str(p) for p in written)} in {result.seconds:.1f} s", highlight=False
    )
