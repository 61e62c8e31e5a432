"""The ``govflow`` command line: a thin face over the catalog, the engines and the twin.

Errors in input (files, fields, environment) print one line naming the file, the field
and the reason, and exit with code 2 — never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from services.core.catalog import Catalog, Matter, Target, load_catalog
from services.core.errors import InputError
from services.runtime.settings import load_settings

app = typer.Typer(
    name="govflow",
    help="Digital twin of Shangrao's cross-department business-environment workflows.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

UNIT_SHORT = {
    "working_days": "wd",
    "working_hours": "wh",
    "hours": "h",
    "calendar_days": "d",
    "count": "",
    "percent": "%",
}
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
        unit = UNIT_SHORT[t.unit]
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
        catalog = catalog.model_copy(update={"matters": (chosen,)})
    if as_json:
        sys.stdout.write(json.dumps(catalog.to_public(), ensure_ascii=False, indent=2) + "\n")
        return
    render_catalog(catalog, console)


def main() -> None:  # pragma: no cover - console-script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
