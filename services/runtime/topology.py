"""Which topics and tables each service needs — and only those.

Derived from the catalog: a department reads the topics that carry its steps'
predecessors (and submissions, and rejections where it may hear of one; see
:mod:`services.core.topics`), writes its own topic and the rejections topic, and keeps
the kinds of state its work needs: the cases it has heard of and its planned work always,
its clerk pools if any of its steps is served by clerks, and the state its steps' effects
change (property's register, a utility's account holders) if its entry point gives one.
All kinds share one table and changelog (:mod:`services.runtime.state`).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from services.core.catalog import Catalog
from services.core.topics import Topics
from services.core.walk import Effects

#: One partition per county (Shangrao has 12): a county's clerk pool lives in exactly
#: one worker, and a department scales up to 12 workers.
PARTITIONS = 12


@dataclass(frozen=True)
class Keeping:
    """How a department keeps the state its steps' effects change, in a table of its
    own: the keeper over a mapping view of the table, and how values are stored."""

    table: str
    keeper: Callable[[MutableMapping[str, Any]], Effects]
    decode: Callable[[Any], Any]
    encode: Callable[[Any], Any]


@dataclass(frozen=True)
class DepartmentTopology:
    department: str
    inputs: tuple[str, ...]
    output: str  # the department's own topic
    rejections: str  # where its rejections go
    tables: tuple[str, ...]


def service_names(catalog: Catalog) -> list[str]:
    """Every department that performs a step, and the tracker."""
    used = {s.department for m in catalog.matters for s in m.steps}
    return [*sorted(used), "tracker"]


def department_topology(
    catalog: Catalog, topics: Topics, department: str, keeping: Keeping | None = None
) -> DepartmentTopology:
    steps = [s for _, s in catalog.steps_of(department)]
    tables = ["cases", "pending"]
    if any(s.kind != "external" for s in steps):
        tables.append("pools")
    if keeping is not None:
        tables.append(keeping.table)
    return DepartmentTopology(
        department=department,
        inputs=topics.inputs_of(catalog, department),
        output=topics.department(department),
        rejections=topics.rejections,
        tables=tuple(tables),
    )


def tracker_inputs(catalog: Catalog, topics: Topics) -> tuple[str, ...]:
    """The tracker follows every case: submissions, every department, the rejections."""
    return (
        topics.submissions,
        topics.rejections,
        *(topics.department(d) for d in service_names(catalog)[:-1]),
    )


def keeping_of(department: str) -> Keeping | None:
    """How ``department`` keeps the state its steps' effects change (None: it keeps none)."""
    if department == "property":
        from services.property.service import REGISTER

        return REGISTER
    if department == "tax":
        from services.tax.service import CLEARANCES

        return CLEARANCES
    from services.utilities.accounts import UTILITIES

    if department in UTILITIES:
        from services.utilities.service import ACCOUNTS

        return ACCOUNTS
    return None


TRACKER_TABLES = ("cases",)

#: The one table a department keeps all its kinds of state in (:mod:`services.runtime.state`)
STATE_TABLE = "state"


def app_id(service: str) -> str:
    """A service's Faust app id: its consumer group and the prefix of its own topics."""
    return f"govflow-{service}"


def changelog_topic(service: str, table: str) -> str:
    """The changelog Faust keeps a service's table in."""
    return f"{app_id(service)}-{table}-changelog"


def changelog_topics(catalog: Catalog, topics: Topics) -> list[str]:
    """Every service's table changelogs.  ``govflow up`` creates them (compacted, one
    partition per county) before any worker starts, so that no worker finds its
    changelog missing from the broker's metadata while Faust is still creating it."""
    names: list[str] = []
    for service in service_names(catalog):
        tables = TRACKER_TABLES if service == "tracker" else (STATE_TABLE,)
        names.extend(changelog_topic(service, table) for table in tables)
    return names


def assignor_topics(catalog: Catalog) -> list[str]:
    """Every service's Faust leader-assignor topic (one partition).  Faust creates it
    itself, after its consumer has joined; a group leader whose assignment saw the topic
    missing rejoined at its first periodic metadata refresh (5 minutes: the Kafka soaks of
    2026-12-02 and 12-03, several groups rebalancing at once).  ``govflow up`` creates them
    beforehand, with the changelogs."""
    return [f"{app_id(service)}-__assignor-__leader" for service in service_names(catalog)]


def topic_partitions(catalog: Catalog, topics: Topics) -> dict[str, int]:
    """Every topic the twin uses, with its partitions (the control topic has one)."""
    return {t: 1 if t == topics.control else PARTITIONS for t in topics.all(catalog)}
