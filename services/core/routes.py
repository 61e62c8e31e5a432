"""Which path a case takes through its matter, and which targets it is measured against.

A scenario's segments split a matter's cases into shares; a segment may name one of the
matter's routes (:class:`~services.core.catalog.Route`: a shortcut of the plan).  This
module answers, for a case of a segment, the two questions every driver and every
measurer asks, in one place:

* its step graph (a :class:`MatterGraph` on the route);
* whether a target applies to it:

  - a target with ``applies_to`` applies to the cases of the segment, or of the route,
    of that name — or to every case if the scenario models no such segment or route;
  - a target without it applies to every case, except those on a route with
    ``own_targets`` (measured against their route's targets only);
  - either way a target whose scope names steps the case's route leaves out does not
    apply (``step:x`` — x left out; ``span:``/``sum:`` — all of them left out): a
    ``sum:`` or ``span:`` over the steps the route keeps is measured on those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from services.core.catalog import Matter, StepEffect, Target
from services.core.scenario import Scenario, Segment


class MatterGraph:
    """A matter's steps by index, on one route (None: the default path; see
    :meth:`~services.core.catalog.Matter.route_steps`): predecessors, successors, entry
    and final steps.  Indices are the matter's own, whatever the route: a step the route
    leaves out is not :attr:`present` and has neither predecessors nor successors."""

    def __init__(self, matter: Matter, route: str | None = None) -> None:
        self.matter = matter
        self.route = route
        steps = matter.steps
        self.index: dict[str, int] = {s.id: i for i, s in enumerate(steps)}
        on_route = {s.id: s for s in matter.route_steps(route)}
        self.present: tuple[bool, ...] = tuple(s.id in on_route for s in steps)
        self.predecessors: tuple[tuple[int, ...], ...] = tuple(
            tuple(self.index[d] for d in on_route[s.id].depends_on) if s.id in on_route else ()
            for s in steps
        )
        successors: list[list[int]] = [[] for _ in steps]
        for i, preds in enumerate(self.predecessors):
            for p in preds:
                successors[p].append(i)
        self.successors: tuple[tuple[int, ...], ...] = tuple(tuple(s) for s in successors)
        self.entry: tuple[int, ...] = tuple(
            i for i, p in enumerate(self.predecessors) if not p and self.present[i]
        )
        self.is_final: tuple[bool, ...] = tuple(
            not s and here for s, here in zip(successors, self.present, strict=True)
        )
        self.finals: tuple[int, ...] = tuple(i for i, f in enumerate(self.is_final) if f)
        #: how many steps a case on this route runs
        self.size = sum(self.present)
        self.effects: tuple[StepEffect | None, ...] = tuple(s.effect for s in steps)
        self.external: tuple[bool, ...] = tuple(s.kind == "external" for s in steps)
        self.departments: tuple[str, ...] = tuple(s.department for s in steps)
        self.has_effects = any(e is not None for e in self.effects)
        self._chain: tuple[int | None, ...] = tuple(
            s[0] if len(s) == 1 and len(self.predecessors[s[0]]) == 1 else None
            for s in self.successors
        )
        #: the step that locks the case's unit (released if the case is rejected)
        self.lock_step: int | None = next(
            (i for i, e in enumerate(self.effects) if e == "lock" and self.present[i]), None
        )

    def ready(self, done: Mapping[int, float], si: int) -> tuple[tuple[int, float], ...]:
        """Successors of ``si`` whose predecessors are all ``done``, each with its
        enabling time: the latest of its predecessors' completions."""
        chained = self._chain[si]
        if chained is not None:  # one successor, with one predecessor
            return ((chained, done[si]),)
        out = []
        for nxt in self.successors[si]:
            preds = self.predecessors[nxt]
            if len(preds) == 1:
                out.append((nxt, done[si]))
            elif all(p in done for p in preds):
                out.append((nxt, max(done[p] for p in preds)))
        return tuple(out)

    def completed(self, done: Mapping[int, float]) -> float | None:
        """When the case completed — all final steps done, at the latest — or None."""
        latest = -1.0e300
        for f in self.finals:
            at = done.get(f)
            if at is None:
                return None
            if at > latest:
                latest = at
        return latest


class MatterRoutes:
    """A matter's route graphs and target rules for one scenario's segments."""

    def __init__(self, matter: Matter, segments: Sequence[Segment] = ()) -> None:
        self.matter = matter
        self.segments = tuple(segments)
        self.default = MatterGraph(matter)
        by_route = {s.route: MatterGraph(matter, s.route) for s in segments if s.route}
        #: per segment: its route graph
        self.graphs: tuple[MatterGraph, ...] = tuple(
            by_route[s.route] if s.route else self.default for s in segments
        )
        #: every graph a case may take (the default first)
        self.every: tuple[MatterGraph, ...] = (self.default, *by_route.values())
        routes = {r.id: r for r in matter.routes}
        #: per segment: the names a target's ``applies_to`` may give it
        self.names: tuple[frozenset[str], ...] = tuple(
            frozenset({s.name, *s.part_of, *((routes[s.route].name,) if s.route else ())})
            for s in segments
        )
        #: per segment: whether its route has targets of its own
        self.own: tuple[bool, ...] = tuple(
            bool(s.route and routes[s.route].own_targets) for s in segments
        )
        self._modelled = frozenset().union(*self.names) if self.names else frozenset()

    @classmethod
    def of(cls, matter: Matter, scenario: Scenario) -> MatterRoutes:
        """The routes a scenario's segments of ``matter`` take (none without demand)."""
        demand = scenario.demand.get(matter.id)
        return cls(matter, demand.segments if demand else ())

    def graph_of(self, segment: int) -> MatterGraph:
        """The route graph of a segment's cases (-1: no segment, the default path)."""
        return self.graphs[segment] if 0 <= segment < len(self.graphs) else self.default

    def applies(self, target: Target, segment: int) -> bool:
        """Whether ``target`` applies to a case of ``segment`` (-1: none)."""
        known = 0 <= segment < len(self.graphs)
        if target.applies_to and target.applies_to in self._modelled:
            if not known or target.applies_to not in self.names[segment]:
                return False
        elif known and self.own[segment]:
            return False
        return self._scope_runs(target, self.graph_of(segment))

    def _scope_runs(self, target: Target, graph: MatterGraph) -> bool:
        steps = target.scope_steps()
        if not steps:
            return True
        here = [graph.present[graph.index[s]] for s in steps if s in graph.index]
        if not here:
            return True  # a process variant without the steps: measured as such
        return all(here) if target.scope.startswith("step:") else any(here)

    def mask(self, target: Target, segment: np.ndarray) -> np.ndarray | None:
        """Over cases (their segments): which the target applies to; None for all."""
        per = [self.applies(target, s) for s in range(-1, len(self.graphs))]
        if all(per):
            return None
        lookup = np.array(per[1:] + per[:1])  # index -1 reads the last entry
        return lookup[segment]
