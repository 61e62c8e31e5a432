"""Topic names, in one place.

Choreography: every department publishes the events of its own steps on its own
topic and subscribes to the topics that carry its steps' predecessors (derived from
the catalog DAG).  Submissions come in on one topic, the tracker's verdicts go out on
another, and anything malformed goes to the dead-letter topic.  All topics are keyed
by county, so one county's clerk pool lives in exactly one worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.core.catalog import Catalog

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
        """Topics a department must read: submissions if it runs an entry step, plus the
        topics of every department that runs a predecessor of one of its steps."""
        topics: set[str] = set()
        for matter, step in catalog.steps_of(department_id):
            if not step.depends_on:
                topics.add(self.submissions)
            for dep in step.depends_on:
                topics.add(self.department(matter.step(dep).department))
        return tuple(sorted(topics))

    def all(self, catalog: Catalog) -> tuple[str, ...]:
        """Every topic the twin uses."""
        names = {self.submissions, self.cases, self.dead_letters, self.control}
        names.update(self.department(d.id) for d in catalog.departments)
        return tuple(sorted(names))
