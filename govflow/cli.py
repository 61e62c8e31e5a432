"""The ``govflow`` command line: a thin face over the catalog, the engines and the twin.

Errors in input (files, fields, environment) print one line naming the file, the field
and the reason, and exit with code 2 — never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from services.core.calendar import CalendarRangeError
from services.core.catalog import (
    UNIT_ABBREVIATIONS,
    Catalog,
    Matter,
    Step,
    Target,
    load_catalog,
)
from services.core.errors import InputError
from services.core.scenario import Scenario, load_scenario
from services.runtime.settings import load_settings
from simulator.summary import Summary, TargetResult

if TYPE_CHECKING:
    from simulator.executors import ExecutorSpec
    from simulator.outputs import LogFormat

app = typer.Typer(
    name="govflow",
    help="Digital twin of Shangrao's cross-department business-environment workflows.",
    no_args_is_help=True,
    add_completion=False,
)
# emoji off: "step:accept:" and the like are domain text, not emoji codes
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

P = ParamSpec("P")
R = TypeVar("R")

UNIT_LEGEND = "wd = working days, wh = working hours, h = clock hours, d = calendar days"


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn input errors into one line on stderr and exit code 2."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return run


@app.callback()
def _root() -> None:
    """Digital twin of Shangrao's cross-department business-environment workflows."""


def _catalog_from(path: Path | None) -> Catalog:
    if path is None:
        path = load_settings().catalog_path
    return load_catalog(path)


def describe_bound(t: Target) -> str:
    """``≤ 3 wd``, ``≥ 90%``, ``immediate``, with ``(mean)`` / ``[2022]`` qualifiers."""
    if t.immediate:
        text = "immediate (即时)"
    else:
        op = "≤" if t.bound == "at_most" else "≥"
        unit = UNIT_ABBREVIATIONS[t.unit]
        text = f"{op} {t.value:g}{' ' + unit if unit and unit != '%' else unit}"
    if t.statistic != "each":
        text += f" ({t.statistic})"
    if t.year != 2021:
        text += f" [{t.year}]"
    return text


def _step_chain(m: Matter) -> str:
    """Steps grouped by dependency depth: ``a → b, c → d``."""
    depth: dict[str, int] = {}
    for s in m.ordered_steps:
        depth[s.id] = max((depth[d] + 1 for d in s.depends_on), default=0)
    levels: dict[int, list[str]] = {}
    for s in m.ordered_steps:
        levels.setdefault(depth[s.id], []).append(s.id)
    return " → ".join(", ".join(ids) for _, ids in sorted(levels.items()))


def _headline(m: Matter) -> str:
    time_targets = m.time_targets()
    if not time_targets:
        return describe_bound(m.targets[0]) + f" {m.targets[0].metric}"
    t = time_targets[0]
    return f"{t.metric} {describe_bound(t)}"


def render_catalog(catalog: Catalog, out: Console) -> None:
    matters = sorted(catalog.matters, key=lambda m: (m.attachment, m.id))
    summary = Table(title=catalog.title, caption=UNIT_LEGEND)
    summary.add_column("Att.", justify="right", no_wrap=True)
    summary.add_column("Matter")
    summary.add_column("id")
    summary.add_column("Lead")
    summary.add_column("Steps")
    summary.add_column("Headline target")
    summary.add_column("2020")
    for m in matters:
        base = m.baseline[0] if m.baseline else None
        summary.add_row(
            str(m.attachment),
            m.name + (" (24/7)" if m.calendar == "24x7" else ""),
            m.id,
            m.lead_department,
            _step_chain(m) or "—",
            _headline(m),
            describe_bound(base) if base else "—",
        )
    out.print(summary)

    targets = Table(title="Every target and its source (2021 unless marked)", caption=UNIT_LEGEND)
    targets.add_column("Matter")
    targets.add_column("Metric")
    targets.add_column("Scope")
    targets.add_column("Target", no_wrap=True)
    targets.add_column("Source (verbatim)")
    for m in matters:
        for group, label in ((m.targets, ""), (m.baseline, " (2020 baseline)")):
            for t in group:
                qualifier = f" — {t.applies_to}" if t.applies_to else ""
                targets.add_row(
                    m.id,
                    t.metric + label,
                    t.scope,
                    describe_bound(t),
                    t.source.replace("\n\n", " | ") + qualifier,
                )
    out.print(targets)

    unmodelled = Table(title="Attachments without a workflow target")
    unmodelled.add_column("Att.", justify="right")
    unmodelled.add_column("Title", no_wrap=True)
    unmodelled.add_column("Why not modelled")
    for u in catalog.unmodelled:
        unmodelled.add_row(str(u.attachment), u.title, u.reason)
    out.print(unmodelled)

    inconsistencies = Table(title="Where the plan contradicts itself", show_lines=True)
    inconsistencies.add_column("Att.", justify="right")
    inconsistencies.add_column("Matter")
    inconsistencies.add_column("Values")
    inconsistencies.add_column("Used", justify="right")
    inconsistencies.add_column("Why")
    for i in catalog.inconsistencies:
        values = ", ".join(f"{k} {v:g}" for k, v in i.values.items())
        inconsistencies.add_row(str(i.attachment), i.matter or "—", values, f"{i.used:g}", i.reason)
    out.print(inconsistencies)
    n_targets = sum(len(m.targets) for m in catalog.matters)
    out.print(
        f"{len(catalog.matters)} matters, {n_targets} targets, "
        f"{len(catalog.departments)} departments, {len(catalog.counties)} counties; "
        "every source is checked to quote the plan verbatim."
    )


def render_matter(catalog: Catalog, m: Matter, out: Console) -> None:
    """One matter, vertically: readable at 80 columns, nothing cut off."""
    from rich.padding import Padding
    from rich.text import Text

    def block(text: str | Text, indent: int = 4) -> None:
        out.print(Padding(text, (0, 0, 0, indent)))

    out.print(f"[bold]{m.name}[/] — {m.id} (attachment {m.attachment})", highlight=False)
    block(f"{m.name_en}; lead department {m.lead_department}; {m.calendar} calendar", 2)
    if m.description:
        block(m.description, 2)
    out.print("[bold]Steps[/] (in order; → after)", highlight=False)
    for i, step in enumerate(m.ordered_steps, 1):
        head = Text.assemble((f"{i}. {step.id}", "bold"), f"  {step.name}")
        block(head, 2)
        block(_step_facts(step), 5)
    _render_routes(m, block)
    for group, label in ((m.targets, "Targets (2021 unless marked)"), (m.baseline, "Baseline")):
        if not group:
            continue
        out.print(f"[bold]{label}[/]", highlight=False)
        for t in group:
            scope = t.scope + (f", applies to {t.applies_to}" if t.applies_to else "")
            scope += ", agency clock" if t.clock == "agency" else ""
            block(Text.assemble((t.metric, "bold"), f"  {describe_bound(t)}  ({scope})"), 2)
            block(Text(f"“{t.source}”", style="dim"), 5)
    notes = [i for i in catalog.inconsistencies if i.matter == m.id]
    if notes:
        out.print("[bold]Where the plan contradicts itself[/]", highlight=False)
        for i in notes:
            values = ", ".join(f"{k} {v:g}" for k, v in i.values.items())
            block(f"{i.description}: {values}; used {i.used:g} — {i.reason}", 2)
    out.print(UNIT_LEGEND, style="dim", highlight=False)


def _step_facts(step: Step) -> str:
    """A step's department, kind, channel, event and what else the catalog says."""
    facts = [step.department, step.kind, step.channel, f"emits {step.emits}"]
    if step.effect:
        facts.append(f"effect {step.effect}")
    if step.depends_on:
        facts.append("after " + ", ".join(step.depends_on))
    if step.actor:
        facts.append(f"by {step.actor}")
    if step.on_routes:
        facts.append("only on route " + ", ".join(step.on_routes))
    return " · ".join(facts)


def _render_routes(m: Matter, block: Callable[[str | Text, int], None]) -> None:
    """A matter's routes: the steps each runs, and its source."""
    if not m.routes:
        return
    block(Text("Routes (a share of the cases, as a scenario's segments say)", "bold"), 0)
    for route in m.routes:
        steps = " → ".join(s.id for s in m.route_steps(route.id))
        own = "; its own targets" if route.own_targets else ""
        block(Text.assemble((route.id, "bold"), f"  {route.name}{own}"), 2)
        block(f"steps: {steps}", 5)
        block(Text(f"“{route.source}”", style="dim"), 5)


@app.command("catalog")
@friendly_errors
def catalog_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="A catalog YAML other than the shipped one."),
    ] = None,
    matter: Annotated[
        str | None, typer.Option("--matter", "-m", help="Show one matter only.")
    ] = None,
) -> None:
    """The plan's matters, steps and targets (with their sources), validated."""
    catalog = _catalog_from(file)
    if matter is not None:
        try:
            chosen = catalog.matter(matter)
        except KeyError as exc:
            raise InputError("--matter", matter, str(exc.args[0])) from None
        if not as_json:
            render_matter(catalog, chosen, console)
            return
        catalog = catalog.model_copy(update={"matters": (chosen,)})
    if as_json:
        sys.stdout.write(json.dumps(catalog.to_public(), ensure_ascii=False, indent=2) + "\n")
        return
    render_catalog(catalog, console)


# --- capacity engine ------------------------------------------------------------------

ScenarioOption = Annotated[
    Path, typer.Option("--scenario", "-s", help="Scenario YAML (see scenarios/).")
]
ReplicationsOption = Annotated[
    int, typer.Option("--replications", "-r", min=1, help="Monte Carlo replications.")
]
SeedOption = Annotated[
    int | None, typer.Option("--seed", help="Base seed (default: the scenario's).")
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", "-w", min=1, help="Processes for replications [default: cores, ≤4]."),
]


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


LogFormatOption = Annotated[
    str,
    typer.Option(
        "--log-format",
        metavar="csv|xes",
        help="The step log: events.csv (PM4Py columns) or events.xes (XES, IEEE 1849).",
    ),
]
OcelOption = Annotated[
    bool | None,
    typer.Option(
        "--ocel/--no-ocel",
        help="Write ocel.json, the linked transfers as an OCEL 2.0 log "
        "[default: when the run has linked transfers].",
        show_default=False,
    ),
]


ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        metavar="local|dask://HOST:PORT",
        help="Where the replications run: this machine's processes (local, --workers of "
        "them) or an existing Dask scheduler [default: GOVFLOW_EXECUTOR, else local].",
        show_default=False,
    ),
]


def _executor(value: str | None, workers: int | None) -> ExecutorSpec:
    """--executor, else GOVFLOW_EXECUTOR, else local (with --workers processes)."""
    from simulator.executors import parse_executor

    if value is None:
        return parse_executor(
            load_settings().executor, _default_workers_or(workers), "GOVFLOW_EXECUTOR"
        )
    return parse_executor(value, _default_workers_or(workers))


def _default_workers_or(workers: int | None) -> int:
    return workers or _default_workers()


def _log_format(value: str) -> LogFormat:
    """The --log-format value, checked (an unknown one is an input error)."""
    from simulator.outputs import LOG_FORMATS

    if value not in LOG_FORMATS:
        raise InputError("--log-format", value, f"must be one of {', '.join(LOG_FORMATS)}")
    return LOG_FORMATS[LOG_FORMATS.index(value)]


def _load(scenario_path: Path, catalog_file: Path | None = None) -> tuple[Catalog, Scenario]:
    catalog = _catalog_from(catalog_file)
    return catalog, load_scenario(scenario_path, catalog)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _attainment(target: TargetResult) -> str:
    if target.attainment is None:
        return "n/a"
    text = f"{100 * target.attainment:.1f}%"
    if target.ci95:
        lo, hi = target.ci95
        text += f" [{100 * lo:.1f}–{100 * hi:.1f}]"
    return text


def _target_text(t: TargetResult) -> str:
    """A run's target as ``scope ≤ 3 wd`` (same wording as ``govflow catalog``)."""
    fields = ("metric", "value", "unit", "scope", "statistic", "bound", "year")
    bound = describe_bound(Target.model_construct(**{k: getattr(t, k) for k in fields}))
    return f"{t.scope} {bound}"


def render_summary(summary: Summary, out: Console) -> None:
    table = Table(
        title=f"{summary.scenario} — {summary.replications} replication(s), seed {summary.seed}",
        caption=UNIT_LEGEND + "; attainment with 95% CI",
    )
    table.add_column("Matter")
    table.add_column("Cases/rep", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("Target")
    table.add_column("Attainment", justify="right")
    for matter_id, m in summary.matters.items():
        lat = m.latency
        unit = UNIT_ABBREVIATIONS.get(lat.unit, lat.unit)
        target = m.headline()
        style = ""
        if target and target.attainment is not None:
            style = (
                "green"
                if target.attainment >= 0.95
                else ("yellow" if target.attainment >= 0.8 else "red")
            )
        table.add_row(
            f"{m.name} [dim]{matter_id}[/]",
            f"{m.cases_per_replication:.0f}",
            f"{_fmt(lat.p50)} {unit}",
            f"{_fmt(lat.p95)} {unit}",
            _target_text(target) if target else "—",
            f"[{style}]{_attainment(target)}[/]" if target else "—",
        )
    out.print(table)


@app.command("simulate")
@friendly_errors
def simulate_command(
    scenario: ScenarioOption,
    replications: ReplicationsOption = 4,
    seed: SeedOption = None,
    workers: WorkersOption = None,
    executor: ExecutorOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    events: Annotated[
        bool,
        typer.Option("--events/--no-events", help="Write the event logs (replication 0)."),
    ] = True,
    log_format: LogFormatOption = "csv",
    ocel: OcelOption = None,
    compare_log: Annotated[
        Path | None,
        typer.Option(
            "--compare-log",
            help="A real event log (govflow's events.csv columns, or XES) to score the run "
            "against: the distances of `govflow validate`, printed and added to report.html.",
        ),
    ] = None,
) -> None:
    """Simulate a scenario: latency and target attainment per matter, clerk utilisation.

    Writes summary.json, the step log of replication 0 (events.csv, a PM4Py-style log,
    or events.xes), ocel.json for linked transfers and a self-contained report.html to
    --out (default: out/<scenario name>).
    """
    from simulator.run import simulate

    chosen = _log_format(log_format)
    if compare_log is not None and not events:
        raise InputError("--compare-log", "", "needs the run's event log: drop --no-events")
    if compare_log is not None and not compare_log.is_file():
        raise InputError(str(compare_log), "", "no such file (--compare-log)")
    catalog, loaded = _load(scenario)
    out = out or Path("out") / loaded.name
    with _progress() as progress:
        task = progress.add_task(f"simulating {loaded.name}", total=replications)
        try:
            result = simulate(
                catalog,
                loaded,
                replications=replications,
                seed=seed,
                executor=_executor(executor, workers),
                out=out,
                events=events,
                log_format=chosen,
                ocel=ocel,
                progress=lambda n: progress.advance(task, n),
            )
        except CalendarRangeError as exc:
            raise InputError(str(scenario), "horizon", str(exc)) from None
    render_summary(result.summary, console)
    console.print(
        f"wrote {out / 'summary.json'}, {out / 'report.html'}"
        + "".join(f", {path}" for path in result.logs)
    )
    if compare_log is not None:
        from govflow.discovery_cli import report_validation

        report_validation(compare_log, out, catalog)


@app.command("plan")
@friendly_errors
def plan_command(
    scenario: ScenarioOption,
    attainment: Annotated[
        float,
        typer.Option(
            "--attainment",
            "-a",
            min=0.01,
            max=1.0,
            help="Required share of cases within each target.",
        ),
    ] = 0.95,
    matter: Annotated[
        str | None, typer.Option("--matter", "-m", help="Plan for one matter only.")
    ] = None,
    replications: ReplicationsOption = 2,
    seed: SeedOption = None,
    workers: WorkersOption = None,
    executor: ExecutorOption = None,
    slack: Annotated[
        float,
        typer.Option(
            "--slack",
            min=0.0,
            max=0.5,
            help="For a target missed even with unlimited clerks: how much attainment "
            "queueing may cost below the no-queue result.",
        ),
    ] = 0.01,
    max_utilisation: Annotated[
        float,
        typer.Option(
            "--max-utilisation",
            min=0.05,
            max=1.0,
            help="No pool is planned above this expected utilisation (clerk time "
            "offered ÷ clerk time available); 1: only what a stable queue needs.",
        ),
    ] = 0.85,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
) -> None:
    """The fewest clerks per department and county that meet every target.

    Prints the staffing table and writes plan.json and planned-scenario.yaml (the
    scenario with the planned staffing, runnable with `govflow simulate`).
    """
    from simulator.planner import plan, plan_document, restrict

    catalog, loaded = _load(scenario)
    every_matter = list(loaded.demand)
    if matter is not None:
        try:
            catalog.matter(matter)
            loaded = restrict(loaded, matter)
        except KeyError as exc:
            raise InputError("--matter", matter, str(exc.args[0])) from None
    out = out or Path("out") / (f"{loaded.name}-plan" + ("" if matter is None else f"-{matter}"))
    with _progress() as progress:
        task = progress.add_task("planning (simulate, adjust, repeat)", total=None)
        result = plan(
            catalog,
            loaded,
            attainment=attainment,
            replications=replications,
            seed=seed,
            executor=_executor(executor, workers),
            slack=slack,
            max_utilisation=max_utilisation,
            on_round=lambda r: progress.update(
                task, description=f"{r.phase}: {r.clerks} clerks, {r.misses} misses"
            ),
        )
    document = plan_document(result, attainment, loaded)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(
        json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    planned = {
        "base": os.path.relpath(scenario.resolve(), out.resolve()),
        "name": f"{loaded.name}-planned",
        "departments": {
            dept: {"clerks": {c: v["clerks"] for c, v in counties.items()}}
            for dept, counties in document["departments"].items()
        },
    }
    if matter is not None:
        planned["demand"] = {m: {"per_year": 0} for m in every_matter if m != matter}
    (out / "planned-scenario.yaml").write_text(
        yaml.safe_dump(planned, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    render_plan(document, console)
    console.print(f"wrote {out / 'plan.json'} and {out / 'planned-scenario.yaml'}")


def render_plan(document: dict[str, Any], out: Console) -> None:
    departments = document["departments"]
    table = Table(
        title=f"Fewest clerks meeting {100 * document['attainment']:.0f}% attainment "
        f"({document['scenario']})",
        caption="planned / scenario's current staffing",
    )
    table.add_column("Department")
    table.add_column("Total", justify="right", no_wrap=True)
    table.add_column("Per county")
    for dept, cs in departments.items():
        total = sum(v["clerks"] for v in cs.values())
        current = sum(v["scenario_clerks"] for v in cs.values())
        per_county = " · ".join(f"{c} {v['clerks']}/{v['scenario_clerks']}" for c, v in cs.items())
        table.add_row(dept, f"{total}/{current}", per_county)
    out.print(table)
    out.print(
        f"total {document['total_clerks']} clerks "
        f"(scenario: {document['scenario_total_clerks']}), "
        f"{len(document['rounds'])} simulations "
        f"({sum(r['seconds'] for r in document['rounds']):.0f} s)"
    )
    unfixable = document["not_fixable_by_staffing"]
    if unfixable:
        seen = sorted({(m["matter"], m["metric"], m["scope"]) for m in unfixable})
        out.print(
            "[yellow]missed even with unlimited clerks (rework, lags or external time "
            "cause them; staffing keeps them no worse):[/]"
        )
        for matter_id, metric, scope in seen:
            counties_missed = sorted(
                m["county"]
                for m in unfixable
                if (m["matter"], m["metric"], m["scope"]) == (matter_id, metric, scope)
            )
            out.print(f"  {matter_id} {metric} {scope}: {len(counties_missed)} counties")
    if document["still_missing"]:
        out.print(
            f"[red]{len(document['still_missing'])} (matter, target, county) still "
            "missing after the round limit[/]"
        )


@app.command("compare")
@friendly_errors
def compare_command(
    scenario_a: Annotated[Path, typer.Argument(help="Scenario A (e.g. the 2020 baseline).")],
    scenario_b: Annotated[Path, typer.Argument(help="Scenario B (e.g. the 2021 reform).")],
    replications: ReplicationsOption = 4,
    seed: SeedOption = None,
    workers: WorkersOption = None,
    executor: ExecutorOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
) -> None:
    """Run two scenarios with the same seeds and report them side by side."""
    from simulator.run import compare, simulate

    catalog, a = _load(scenario_a)
    b = load_scenario(scenario_b, catalog)
    out = out or Path("out") / f"compare-{a.name}-vs-{b.name}"
    runs = []
    with _progress() as progress:
        for label, scenario in (("A", a), ("B", b)):
            task = progress.add_task(f"{label}: {scenario.name}", total=replications)
            runs.append(
                simulate(
                    catalog,
                    scenario,
                    replications=replications,
                    seed=seed if seed is not None else a.seed,
                    executor=_executor(executor, workers),
                    out=out / label,
                    events=False,
                    progress=lambda n, task=task: progress.advance(task, n),
                )
            )
    path = compare(runs[0], runs[1], out, labels=(a.name, b.name))
    render_comparison(runs[0].summary, runs[1].summary, console)
    markdown = out / "comparison.md"
    markdown.write_text(comparison_markdown(runs[0].summary, runs[1].summary), encoding="utf-8")
    console.print(
        f"wrote {path}, {markdown} (and each side's summary.json, report.html in {out}/A, {out}/B)"
    )


def comparison_rows(a: Summary, b: Summary) -> list[tuple[str, ...]]:
    """Per matter: id (and name), headline target, A and B p50 / p95, A and B attainment."""
    rows = []
    for matter_id in sorted(set(a.matters) | set(b.matters)):
        ma, mb = a.matters.get(matter_id), b.matters.get(matter_id)
        ref = mb or ma
        assert ref is not None
        target = ref.headline()
        cells = []
        for m in (ma, mb):
            if m is None:
                cells.append("—")
                continue
            unit = UNIT_ABBREVIATIONS.get(m.latency.unit, "")
            cells.append(f"{_fmt(m.latency.p50)} / {_fmt(m.latency.p95)} {unit}")
        attain = []
        for m in (ma, mb):
            match = m.target_like(target) if m is not None and target is not None else None
            attain.append(_attainment(match) if match else "—")
        label = _target_text(target) if target else "—"
        if target is not None and target.applies_to:
            label += f" ({target.applies_to})"
        rows.append((matter_id, ref.name, label, *cells, *attain))
    return rows


def render_comparison(a: Summary, b: Summary, out: Console) -> None:
    table = Table(title=f"A = {a.scenario}  vs  B = {b.scenario}", caption=UNIT_LEGEND)
    table.add_column("Matter")
    table.add_column("Target")
    table.add_column("A p50 / p95", justify="right")
    table.add_column("B p50 / p95", justify="right")
    table.add_column("A attainment", justify="right")
    table.add_column("B attainment", justify="right")
    for matter_id, _, *cells in comparison_rows(a, b):
        table.add_row(matter_id, *cells)
    out.print(table)


def comparison_markdown(a: Summary, b: Summary) -> str:
    """The same table in Markdown (``comparison.md``, for reports and the README)."""
    lines = [
        f"A = {a.scenario}, B = {b.scenario}; {b.replications} replications, seed {b.seed}",
        "",
        "| matter | headline target | A p50 / p95 | B p50 / p95 | A attainment | B attainment |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for matter_id, name, target, *cells in comparison_rows(a, b):
        attainments = [c.split(" [")[0].replace("%", " %") for c in cells[2:]]
        lines.append(
            f"| {name} `{matter_id}` | `{target}` | {cells[0]} | {cells[1]} | "
            f"{attainments[0]} | {attainments[1]} |"
        )
    return "\n".join(lines) + "\n"


# --- the live twin ------------------------------------------------------------------


@app.command("up")
@friendly_errors
def up_command(
    prometheus: Annotated[
        bool,
        typer.Option("--prometheus", help="Also start a Prometheus server scraping every service."),
    ] = False,
    broker: Annotated[
        str | None,
        typer.Option(
            "--broker",
            help="embedded (Tansu, the default) or kafka (Apache Kafka from `make kafka`, "
            "needs Java 17) [GOVFLOW_BROKER]; ignored when GOVFLOW_BROKER_URL is set.",
        ),
    ] = None,
) -> None:
    """Start the broker (embedded unless --broker kafka or GOVFLOW_BROKER_URL) and every
    service."""
    from services.runtime import supervisor

    settings = load_settings()
    if broker is not None:
        if broker not in ("embedded", "kafka"):
            raise InputError("--broker", broker, "must be embedded or kafka")
        settings = settings.model_copy(update={"broker": broker})
    with _progress() as progress:
        progress.add_task("starting the broker and the department services", total=None)
        state = supervisor.up(settings, _catalog_from(None), prometheus=prometheus)
    console.print(
        f"up: {len(state.services)} services on {state.broker_url} "
        f"(logs in {settings.data_dir / 'logs'}); `govflow status`, `govflow down`"
    )
    if state.prometheus_url:
        console.print(f"Prometheus: {state.prometheus_url} (alert rules from deploy/prometheus)")


@app.command("status")
@friendly_errors
def status_command() -> None:
    """Each service's health: process, consumer-group membership, partitions."""
    from services.runtime import supervisor
    from services.runtime.processes import process_alive

    settings = load_settings()
    state, rows = supervisor.status(settings)
    if state is None:
        console.print(f"down (no twin recorded in {supervisor.state_path(settings)})")
        raise typer.Exit(code=1)
    broker_alive = state.broker_pid is None or process_alive(state.broker_pid)
    console.print(
        f"broker: {state.broker_kind} {state.broker_url}"
        + (f" pid {state.broker_pid}" if state.broker_pid else "")
        + (" [green]alive[/]" if broker_alive else " [red]dead[/]")
        + (f", log {state.broker_log}" if state.broker_log else "")
    )
    table = Table(title=f"govflow twin on {state.broker_url}")
    table.add_column("Service")
    table.add_column("PID", justify="right")
    table.add_column("Process")
    table.add_column("Joined")
    table.add_column("Partitions", justify="right")
    table.add_column("Metrics")
    table.add_column("Log")
    for r in rows:
        table.add_row(
            r.name,
            str(r.pid),
            "[green]alive[/]" if r.alive else "[red]dead[/]",
            "yes" if r.ready else "[yellow]no[/]",
            str(r.partitions),
            f":{r.metrics_port}/metrics" if r.metrics_port else "-",
            r.log,
        )
    console.print(table)
    if state.replay_metrics_port:
        console.print(f"replay metrics (while a replay runs): :{state.replay_metrics_port}/metrics")
    if state.prometheus_url:
        console.print(f"Prometheus: {state.prometheus_url}")
    if not broker_alive or not all(r.alive and r.ready for r in rows):
        raise typer.Exit(code=1)


@app.command("down")
@friendly_errors
def down_command() -> None:
    """Stop exactly what `govflow up` started."""
    from services.runtime import supervisor

    stopped = supervisor.down(load_settings())
    if stopped.still_running:
        names = ", ".join(stopped.still_running)
        raise InputError("govflow down", names, "still running after SIGKILL")
    if not stopped.names:
        console.print("nothing up")
        return
    killed = [n for n, o in stopped.outcomes.items() if o == "killed"]
    console.print(
        f"stopped {len(stopped.names)}: {', '.join(stopped.names)} — every process has exited"
        + (f" ({', '.join(killed)} after SIGKILL)" if killed else ""),
        soft_wrap=True,  # one line, whatever the width: scripts and tests read it
    )


@app.command("replay")
@friendly_errors
def replay_command(
    scenario: ScenarioOption,
    speed: Annotated[
        float | None,
        typer.Option("--speed", min=1.0, help="Sim seconds per wall second [GOVFLOW_SPEED]."),
    ] = None,
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Replay the first D days of demand.")
    ] = None,
    cases: Annotated[
        int | None, typer.Option("--cases", min=1, help="Replay the first N cases only.")
    ] = None,
    seed: SeedOption = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Wall seconds to wait for every case.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    log_format: LogFormatOption = "csv",
    ocel: OcelOption = None,
) -> None:
    """Replay a scenario's demand in real time into the running services.

    Writes the same summary.json, events.csv (or events.xes), ocel.json and report.html
    as `govflow simulate`, with system figures; exits 1 listing the unfinished cases if
    the timeout passes.
    """
    from services.runtime import supervisor
    from services.runtime.broker import require_broker
    from services.runtime.health import ReplayMetrics
    from simulator.replay import ReplayOptions, replay

    chosen = _log_format(log_format)
    settings = load_settings()
    state = supervisor.TwinState.load(supervisor.state_path(settings))
    catalog = _catalog_from(None)
    loaded = load_scenario(scenario, catalog)  # a bad file is named before the broker is asked
    url = settings.broker_url or (state.broker_url if state else None)
    if url is None:
        raise InputError("GOVFLOW_BROKER_URL", "", "no broker: run `govflow up` first")
    require_broker(url)
    out = out or Path("out") / f"{loaded.name}-replay"
    metrics = ReplayMetrics()
    port = state.replay_metrics_port if state and state.replay_metrics_port else None
    try:
        metrics.serve(port if port is not None else settings.metrics_port)
    except OSError as exc:  # metrics are for watching; the replay goes on without them
        err_console.print(f"[yellow]replay metrics not served:[/] {exc}")
    with _progress() as progress:
        task = progress.add_task(f"replaying {loaded.name}", total=None)
        options = ReplayOptions(
            speed=speed or settings.speed,
            days=days,
            cases=cases,
            seed=seed,
            timeout=timeout,
            topic_prefix=settings.topic_prefix,
            log_format=chosen,
            ocel=ocel,
        )
        result = replay(
            catalog,
            scenario,
            url,
            options,
            out=out,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            metrics=metrics,
        )
    render_summary(result.summary, console)
    system = result.summary.system
    assert system is not None
    latency = system.processing_latency_seconds
    console.print(
        "latency p50 in the departments "
        f"{_fmt(system.latency_in_department_seconds.p50)} s, "
        f"in transit {_fmt(system.latency_in_transit_seconds.p50)} s"
    )
    console.print(
        f"{result.terminal}/{result.submitted} cases terminal, "
        f"{system.events_per_second:.0f} events/s, processing latency p50 "
        f"{_fmt(latency.p50)} s p99 {_fmt(latency.p99)} s, {system.dead_letters} dead letters"
    )
    overhead = system.case_overhead_seconds
    console.print(
        f"{system.cases_per_second:.1f} cases/s; wall-clock overhead per case "
        f"p50 {_fmt(overhead.p50)} s p99 {_fmt(overhead.p99)} s"
    )
    console.print(
        f"wrote {out / 'summary.json'}, {out / 'report.html'}"
        + "".join(f", {path}" for path in result.logs)
    )
    if result.unfinished:
        shown = ", ".join(result.unfinished[:20])
        more = f" (+{len(result.unfinished) - 20} more)" if len(result.unfinished) > 20 else ""
        err_console.print(f"[red]{len(result.unfinished)} case(s) unfinished:[/] {shown}{more}")
        raise typer.Exit(code=1)


@app.command("verify")
@friendly_errors
def verify_command(
    run: Annotated[
        Path, typer.Option("--run", help="Output directory of a replay or a simulation.")
    ],
    show: Annotated[int, typer.Option(help="How many of each problem to list.")] = 20,
) -> None:
    """Audit a run: every case has one terminal outcome, no completion counted twice,
    every unit's owner equals its holder at power, water, gas and telecom, no unit left
    locked, no transfer registered without its deed tax cleared, dead letters listed.
    Exit 0 when all hold, 1 otherwise; the last line is JSON."""
    from simulator.ledger import audit, read_ledger

    if not run.is_dir():
        raise InputError(str(run), "--run", "not a directory")
    report = audit(read_ledger(run / "ledger.jsonl"))
    checks = [
        ("cases submitted", report.cases, None),
        ("cases without a terminal outcome (lost)", report.lost, report.lost_cases),
        (
            "duplicates (two outcomes, or an attempt under two ids)",
            report.duplicates,
            report.duplicate_keys,
        ),
        (
            "units whose owner differs from a utility holder",
            report.mismatched_units,
            report.mismatches,
        ),
        ("units left locked", report.locked_units, report.locked),
        (
            "transfers registered without their deed tax cleared",
            report.uncleared_transfers,
            report.uncleared,
        ),
        (
            "dead letters",
            report.dead_letters,
            [
                f"{d.get('service', '?')}: {d.get('reason', '?')} (field {d.get('field', '?')}, "
                f"{d.get('source_topic', '?')}[{d.get('partition', '?')}]@{d.get('offset', '?')})"
                for d in report.letters
            ],
        ),
    ]
    for label, count, items in checks:
        console.print(f"{count:>8}  {label}", highlight=False)
        for item in (items or [])[:show]:
            console.print(f"          {item}", highlight=False)
        if items and len(items) > show:
            console.print(f"          … {len(items) - show} more", highlight=False)
    console.print(f"{report.units:>8}  units in the register", highlight=False)
    verdict = "[green]verified[/]" if report.ok else "[red]FAILED[/]"
    console.print(f"{run}: {verdict}")
    print(json.dumps(report.counts()))
    if not report.ok:
        raise typer.Exit(code=1)


# the discovery commands register themselves on ``app`` (kept in a module of their own)
from govflow import discovery_cli  # noqa: E402, F401


def main() -> None:  # pragma: no cover - console-script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
