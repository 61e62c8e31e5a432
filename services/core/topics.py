"""Topic names, in one place.

Choreography: every department publishes the events of its own steps on its own
topic and subscribes to the topics that carry its steps' predecessors (derived from
the catalog DAG).  Rejections go to one topic of their own, read by the departments
that may still have work for a rejected case (a step running in parallel with the one
that rejected it, or a lock to release).  Submissions come in on one topic, the
tracker's verdicts go out on another, and anything malformed goes to the dead-letter
topic.  All topics are keyed by county, so one county's clerk pool lives in exactly one
worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.core.catalog import Catalog, Step, check_step_graph

_PREFIX = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Topics:
    """Topic names under a prefix (``GOVFLOW_TOPIC_PREFIX``, default ``govflow``)."""

    prefix: str = "govflow"

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"topic prefix {self.prefix!r} must match {_PREFIX.pattern}")

    @property
    def submissions(self) -> str:
        """``case.submitted`` events from the demand replay."""
        return f"{self.prefix}.submissions"

    def department(self, department_id: str) -> str:
        """Events a department emits (its steps' completions)."""
        return f"{self.prefix}.dept.{department_id}"

    @property
    def rejections(self) -> str:
        """Every department's ``<department>.rejected`` events."""
        return f"{self.prefix}.rejections"

    @property
    def cases(self) -> str:
        """The tracker's ``case.completed`` / ``case.rejected`` verdicts."""
        return f"{self.prefix}.cases"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def control(self) -> str:
        """Run announcements (scenario, seed, sim clock), read by every worker."""
        return f"{self.prefix}.control"

    def inputs_of(self, catalog: Catalog, department_id: str) -> tuple[str, ...]:
        """Topics a department must read: submissions if it runs an entry step, the
        topics of every other department that runs a predecessor of one of its steps,
        and the rejections if it may hear of one (:func:`hears_rejections`).  Its own
        successors it enables itself."""
        topics: set[str] = set()
        for matter in catalog.matters:
            for path in matter.paths():  # a route may bridge a left-out step
                for step in path:
                    if step.department != department_id:
                        continue
                    if not step.depends_on:
                        topics.add(self.submissions)
                    for dep in step.depends_on:
                        other = matter.step(dep).department
                        if other != department_id:
                            topics.add(self.department(other))
        if hears_rejections(catalog, department_id):
            topics.add(self.rejections)
        return tuple(sorted(topics))

    def all(self, catalog: Catalog) -> tuple[str, ...]:
        """Every topic the twin uses."""
        names = {self.submissions, self.rejections, self.cases, self.dead_letters, self.control}
        names.update(self.department(d.id) for d in catalog.departments)
        return tuple(sorted(names))


def _ancestors(path: tuple[Step, ...]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for step in check_step_graph(path):
        out[step.id] = set(step.depends_on).union(*(out[d] for d in step.depends_on))
    return out


def hears_rejections(catalog: Catalog, department_id: str) -> bool:
    """Whether a department must hear of rejections made elsewhere: when another
    department's step may reject a case while one of its own steps of that case is still
    under way (the two are parallel: neither precedes the other), or when it locked the
    case's unit (the lock is released)."""
    for path in (p for matter in catalog.matters for p in matter.paths()):
        mine = [s for s in path if s.department == department_id]
        others = [s for s in path if s.department != department_id]
        if not mine or not others:
            continue
        before = _ancestors(path)
        for step in mine:
            if step.effect == "lock":
                return True
            for other in others:
                if other.id not in before[step.id] and step.id not in before[other.id]:
                    return True
    return False
