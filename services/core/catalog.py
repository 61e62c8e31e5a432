"""The catalog: the plan's matters, their steps and targets, as validated data.

The catalog is data (``services/core/data/catalog.yaml``), never code branches.  Every
target carries the attachment it comes from and the plan's own wording (``source``),
which must be a verbatim substring of the plan text shipped beside it
(``services/core/data/plan.txt``).  Where the plan contradicts itself the catalog
records both numbers, the one it uses and why (``inconsistencies``).

Target ``scope`` grammar (what is measured):

``case``
    from submission to the completion of the matter's last step;
``step:<id>``
    one step, from the moment it is enabled (all predecessors done) to its completion;
``span:<id>,<id>,…``
    elapsed time from the earliest enabling among those steps to the latest completion;
``sum:<id>,<id>,…``
    the sum of those steps' durations (e.g. "供电企业合计办理时间": the utility's own
    steps, excluding administrative approval and the applicant's works);
``service_steps``
    the number of steps of kind ``service`` (the 环节 an applicant deals with);
``stages``
    the number of sequential stages: service steps on the longest dependency chain
    (parallel steps count once);
``annual``
    a per-enterprise yearly figure (not a single case; reported, not simulated).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.core.errors import InputError, from_validation_error

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_CATALOG_PATH = DATA_DIR / "catalog.yaml"
PLAN_TEXT_PATH = DATA_DIR / "plan.txt"
ATTACHMENTS = range(1, 18)  # the plan has 17 attachments

Unit = Literal["working_days", "working_hours", "hours", "calendar_days", "count", "percent"]
TIME_UNITS: frozenset[str] = frozenset({"working_days", "working_hours", "hours", "calendar_days"})
#: How units are abbreviated in tables and reports.
UNIT_ABBREVIATIONS: dict[str, str] = {
    "working_days": "wd",
    "working_hours": "wh",
    "hours": "h",
    "calendar_days": "d",
    "count": "",
    "percent": "%",
}
#: Comparisons allow for floating-point noise of this size.
TOLERANCE = 1e-9
#: how the applicant takes part in a step: online; offline — in person at a hall or
#: window (a visit, 跑一次); onsite — the department's staff at the applicant's premises
#: (survey, meter fitting: no trip for the applicant)
Channel = Literal["online", "offline", "onsite"]
StepKind = Literal["service", "approval", "external", "window"]
Statistic = Literal["each", "mean", "share"]
Bound = Literal["at_most", "at_least"]

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=48)]


def _must_be_quoted(source: str, info: ValidationInfo) -> str:
    """With the plan text in the validation context, a source must quote it verbatim."""
    plan = (info.context or {}).get("plan_text")
    if plan is not None and source not in plan:
        raise ValueError(f"source {source!r} is not a verbatim quote of the plan text")
    return source


#: A verbatim quote of the plan text.
Quote = Annotated[str, Field(min_length=4), AfterValidator(_must_be_quoted)]
_SCOPE = re.compile(
    r"^(case|annual|service_steps|stages|step:[a-z][a-z0-9_]*"
    r"|(span|sum):[a-z][a-z0-9_]*(,[a-z][a-z0-9_]*)+)$"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Model):
    """One measurable target (or a 2020 baseline value) and its source in the plan."""

    metric: Identifier
    value: float = Field(ge=0)
    unit: Unit
    scope: str
    source: Quote
    statistic: Statistic = "each"
    bound: Bound = "at_most"
    year: int = Field(default=2021, ge=2019, le=2025)
    applies_to: str | None = None
    note: str | None = None
    #: which clock a time target runs on: ``elapsed`` — every moment from start to end;
    #: ``agency`` — the agency's own time: the clock stops while the applicant corrects
    #: the materials (补正, from the step sending them away to its next attempt)
    clock: Literal["elapsed", "agency"] = "elapsed"
    #: the catalog's scope, when a process variant measures the target on another
    #: (:meth:`Matter.with_steps`); None: ``scope`` is the catalog's own
    catalog_scope: str | None = None

    @field_validator("scope")
    @classmethod
    def _scope_grammar(cls, scope: str) -> str:
        if not _SCOPE.match(scope):
            raise ValueError(
                f"scope {scope!r} is not one of case, step:<id>, span:<ids>, sum:<ids>, "
                "service_steps, stages, annual"
            )
        return scope

    @model_validator(mode="after")
    def _unit_fits(self) -> Target:
        if self.unit == "percent" and self.value > 100:
            raise ValueError(f"a percentage cannot exceed 100 (got {self.value})")
        counting = self.scope in ("service_steps", "stages")
        if counting and self.unit != "count":
            raise ValueError(f"scope {self.scope} counts steps: unit must be 'count'")
        if self.clock == "agency" and not self.is_time:
            raise ValueError("clock: agency applies to time targets only")
        return self

    @property
    def is_time(self) -> bool:
        return self.unit in TIME_UNITS

    def meets(self, value: Any) -> Any:
        """Whether a measured value (a number or a numpy array) is within the bound."""
        if self.bound == "at_most":
            return value <= self.value + TOLERANCE
        return value >= self.value - TOLERANCE

    @property
    def immediate(self) -> bool:
        """即时办结: a time target of zero — done within the visit."""
        return self.is_time and self.value == 0

    def scope_steps(self) -> tuple[str, ...]:
        """Step ids the scope names (empty for case-wide and counting scopes)."""
        kind, _, rest = self.scope.partition(":")
        if kind in ("step", "span", "sum"):
            return tuple(rest.split(","))
        return ()


#: What a step does to the state a department keeps (see :mod:`services.core.walk`):
#: the property register (lock, transfer, seize, mortgage, discharge, object), the
#: deed-tax clearances (clear), a utility's account holders (account).
StepEffect = Literal[
    "lock", "transfer", "seize", "mortgage", "discharge", "object", "clear", "account"
]


class Step(_Model):
    """One step (环节) of a matter, performed by one department."""

    id: Identifier
    name: str
    department: Identifier
    depends_on: tuple[Identifier, ...] = ()
    channel: Channel = "offline"
    kind: StepKind = "service"
    emits: str = Field(default="step.completed", pattern=r"^[a-z_]+\.[a-z_]+$")
    actor: str | None = None
    note: str | None = None
    #: what the step does to the state a department keeps (:data:`StepEffect`)
    effect: StepEffect | None = None
    #: the step is on these routes only (empty: on every route but those that skip it)
    on_routes: tuple[Identifier, ...] = ()


class Route(_Model):
    """Another path through a matter's step graph, taken by a share of its cases (the
    scenario's segments name it): the plan's shortcuts — 直接装表, 告知承诺, 备案 instead
    of approval, no inspection, 分时办理, an online or bank-window channel.

    A route leaves out the steps it ``skips`` and the steps that are on other routes
    only (:attr:`Step.on_routes`); a kept step then waits for its nearest kept
    predecessors.  With ``own_targets`` the route's cases are measured against the
    targets whose ``applies_to`` is the route's name, not the matter's others."""

    id: Identifier
    name: str = Field(min_length=1)
    source: Quote
    skips: tuple[Identifier, ...] = ()
    own_targets: bool = False
    note: str | None = None


class Cost(_Model):
    item: str
    yuan: float = Field(ge=0)
    source: Quote


class Eligibility(_Model):
    description: str
    source: Quote


class Matter(_Model):
    """A matter (事项): a case type with its step DAG and targets."""

    id: Identifier
    name: str
    name_en: str
    attachment: int = Field(ge=1, le=17)
    lead_department: Identifier
    kind: Literal["workflow", "indicator"] = "workflow"
    calendar: Literal["office", "24x7"] = "office"
    description: str = ""
    steps: tuple[Step, ...] = ()
    targets: tuple[Target, ...] = Field(min_length=1)
    baseline: tuple[Target, ...] = ()
    costs: tuple[Cost, ...] = ()
    eligibility: tuple[Eligibility, ...] = ()
    routes: tuple[Route, ...] = ()

    @model_validator(mode="after")
    def _dag_is_sound(self) -> Matter:
        if self.kind == "workflow" and not self.steps:
            raise ValueError("a workflow matter needs at least one step")
        check_step_graph(self.steps)
        known = {s.id for s in self.steps}
        for group in (self.targets, self.baseline):
            for target in group:
                for ref in target.scope_steps():
                    if ref not in known:
                        raise ValueError(
                            f"target scope {target.scope!r} names unknown step {ref!r}"
                        )
        self._check_routes()
        # A step-count target must agree with the matter's own (2021) step DAG.
        for target in self.targets:
            counted = {"service_steps": self.service_step_count, "stages": self.stage_count}
            if (
                target.scope in counted
                and target.bound == "at_most"
                and counted[target.scope] > target.value
            ):
                raise ValueError(
                    f"target {target.scope} <= {target.value:g} but the steps give "
                    f"{counted[target.scope]}"
                )
        return self

    def _check_routes(self) -> None:
        route_ids = [r.id for r in self.routes]
        if len(set(route_ids)) != len(route_ids):
            raise ValueError(f"routes: a route id is given twice ({route_ids})")
        for step in self.steps:
            for route_id in step.on_routes:
                if route_id not in route_ids:
                    raise ValueError(f"step {step.id}: on_routes names unknown route {route_id!r}")
        names = {t.applies_to for t in self.targets}
        for route in self.routes:
            if route.own_targets and route.name not in names:
                raise ValueError(
                    f"route {route.id}: own_targets, but no target applies_to {route.name!r}"
                )
            self.route_steps(route.id)  # raises naming an unknown or emptied step graph
        self.route_steps(None)

    def route(self, route_id: str) -> Route:
        for r in self.routes:
            if r.id == route_id:
                return r
        known = ", ".join(r.id for r in self.routes) or "none"
        raise KeyError(f"matter {self.id} has no route {route_id!r} (known: {known})")

    def on_route(self, route_id: str | None) -> tuple[bool, ...]:
        """Per step (in :attr:`steps` order): whether a case on the route runs it."""
        skips = set(self.route(route_id).skips) if route_id is not None else set()
        known = {s.id for s in self.steps}
        unknown = sorted(skips - known)
        if unknown:
            raise ValueError(f"route {route_id}: skips unknown step {unknown[0]!r}")
        return tuple(
            s.id not in skips and (not s.on_routes or route_id in s.on_routes) for s in self.steps
        )

    def paths(self) -> tuple[tuple[Step, ...], ...]:
        """The steps of every route (the default path first), dependencies bridged."""
        return tuple(self.route_steps(r) for r in (None, *(r.id for r in self.routes)))

    def route_steps(self, route_id: str | None) -> tuple[Step, ...]:
        """The steps a case on the route runs (None: the matter's default path), each
        depending on its nearest predecessors on the route (left-out steps bridged)."""
        kept = dict(zip((s.id for s in self.steps), self.on_route(route_id), strict=True))
        if not any(kept.values()):
            raise ValueError(f"route {route_id}: leaves no step")
        bridged: dict[str, tuple[str, ...]] = {}
        ancestors: dict[str, set[str]] = {}  # of the kept steps, on the route
        out: list[Step] = []
        for step in self._topological_order():
            deps: list[str] = []
            for dep in step.depends_on:
                for d in (dep,) if kept[dep] else bridged[dep]:
                    if d not in deps:
                        deps.append(d)
            if len(deps) > 1:  # a bridged dependency another one already waits for
                deps = [d for d in deps if not any(d in ancestors[o] for o in deps)]
            bridged[step.id] = tuple(deps)
            if kept[step.id]:
                ancestors[step.id] = set(deps).union(*(ancestors[d] for d in deps))
            if kept[step.id]:
                out.append(
                    step
                    if tuple(deps) == step.depends_on
                    else step.model_copy(update={"depends_on": tuple(deps)})
                )
        order = {s.id: i for i, s in enumerate(self.steps)}
        return tuple(sorted(out, key=lambda s: order[s.id]))

    def _topological_order(self) -> tuple[Step, ...]:
        return check_step_graph(self.steps)

    @cached_property
    def ordered_steps(self) -> tuple[Step, ...]:
        """Steps in a topological order (predecessors first)."""
        return self._topological_order()

    def with_steps(
        self, steps: tuple[Step, ...], scopes: Mapping[str, str] | None = None
    ) -> Matter:
        """The same matter and targets run through another step graph (a process
        variant, e.g. the 2020 serial process).  Step-count targets are *not* enforced:
        a baseline process may well miss them — that is what a comparison shows.

        ``scopes`` maps a target scope to the one it has in this graph (the 2020
        connection's own utility steps for the 2021 ``sum:``), for targets and baseline
        alike; each must be a valid scope over the variant's steps."""
        check_step_graph(steps)
        known = {s.id for s in steps}
        scopes = dict(scopes or {})

        def rescoped(target: Target) -> Target:
            scope = scopes.get(target.scope)
            if scope is None:
                return target
            data = {**target.model_dump(), "scope": scope, "catalog_scope": target.scope}
            moved = Target.model_validate(data)  # the grammar; no plan text in context
            unknown = [ref for ref in moved.scope_steps() if ref not in known]
            if unknown:
                raise ValueError(f"scope {scope!r} names unknown step {unknown[0]!r}")
            return moved

        unused = sorted(set(scopes) - {t.scope for t in (*self.targets, *self.baseline)})
        if unused:
            raise ValueError(f"scopes: no target of {self.id} has the scope {unused[0]!r}")
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        fields["steps"] = tuple(steps)
        fields["targets"] = tuple(rescoped(t) for t in self.targets)
        fields["baseline"] = tuple(rescoped(t) for t in self.baseline)
        return type(self).model_construct(**fields)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"matter {self.id} has no step {step_id!r}")

    def successors(self, step_id: str) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if step_id in s.depends_on)

    @property
    def entry_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if not s.depends_on)

    @property
    def final_steps(self) -> tuple[Step, ...]:
        """Steps nothing depends on: the case is complete when all of them are."""
        needed = {d for s in self.steps for d in s.depends_on}
        return tuple(s for s in self.steps if s.id not in needed)

    def time_targets(self) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t.is_time)

    @property
    def service_step_count(self) -> int:
        """Service steps on the default route (the 环节 an applicant deals with)."""
        return self.route_service_steps(None)

    @property
    def stage_count(self) -> int:
        """Service steps on the default route's longest dependency chain (parallel steps
        count once)."""
        return self.route_stages(None)

    def route_service_steps(self, route_id: str | None) -> int:
        return sum(1 for s in self.route_steps(route_id) if s.kind == "service")

    def route_stages(self, route_id: str | None) -> int:
        depth: dict[str, int] = {}
        for s in check_step_graph(self.route_steps(route_id)):
            before = max((depth[d] for d in s.depends_on), default=0)
            depth[s.id] = before + (1 if s.kind == "service" else 0)
        return max(depth.values(), default=0)


class County(_Model):
    id: Identifier
    name: str


def check_step_graph(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """Validate a step graph (unique ids, known dependencies, no cycle); return it in a
    topological order (predecessors first, otherwise in the given order)."""
    ids = [s.id for s in steps]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate step id(s) {duplicates}")
    known = set(ids)
    for step in steps:
        for dep in step.depends_on:
            if dep not in known:
                raise ValueError(f"step {step.id!r} depends on unknown step {dep!r}")
            if dep == step.id:
                raise ValueError(f"step {step.id!r} depends on itself")
    by_id = {s.id: s for s in steps}
    indegree = {s.id: len(s.depends_on) for s in steps}
    ready = [s.id for s in steps if not s.depends_on]
    order: list[Step] = []
    while ready:
        sid = ready.pop(0)
        order.append(by_id[sid])
        for other in steps:
            if sid in other.depends_on:
                indegree[other.id] -= 1
                if indegree[other.id] == 0:
                    ready.append(other.id)
    if len(order) != len(steps):
        stuck = sorted(set(by_id) - {s.id for s in order})
        raise ValueError(f"steps {stuck} form a dependency cycle")
    return tuple(order)


class Department(_Model):
    id: Identifier
    name: str
    name_en: str


class Unmodelled(_Model):
    attachment: int = Field(ge=1, le=17)
    title: str
    reason: str


class Inconsistency(_Model):
    attachment: int = Field(ge=1, le=17)
    matter: Identifier | None = None
    description: str
    values: dict[str, float]
    used: float
    reason: str

    @model_validator(mode="after")
    def _used_is_one_of_them(self) -> Inconsistency:
        if self.used not in self.values.values():
            raise ValueError(f"used value {self.used} is not among the recorded values")
        return self


class Indicator(_Model):
    """A numeric goal of the plan that is not a case workflow (reported, not simulated)."""

    attachment: int = Field(ge=1, le=17)
    description: str
    value: float
    unit: str
    source: Quote


class Catalog(_Model):
    title: str
    counties: tuple[County, ...] = Field(min_length=1)
    departments: tuple[Department, ...]
    matters: tuple[Matter, ...]
    unmodelled: tuple[Unmodelled, ...]
    inconsistencies: tuple[Inconsistency, ...] = ()
    indicators: tuple[Indicator, ...] = ()

    @model_validator(mode="after")
    def _references_resolve(self) -> Catalog:
        departments = {d.id for d in self.departments}
        matter_ids = [m.id for m in self.matters]
        duplicates = sorted({i for i in matter_ids if matter_ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate matter id(s) {duplicates}")
        for m in self.matters:
            if m.lead_department not in departments:
                raise ValueError(f"matter {m.id}: unknown lead_department {m.lead_department!r}")
            for s in m.steps:
                if s.department not in departments:
                    raise ValueError(
                        f"matter {m.id} step {s.id}: unknown department {s.department!r}"
                    )
        modelled = {m.attachment for m in self.matters}
        unmodelled = {u.attachment for u in self.unmodelled}
        both = sorted(modelled & unmodelled)
        if both:
            raise ValueError(f"attachment(s) {both} are both modelled and listed as unmodelled")
        missing = sorted(set(ATTACHMENTS) - modelled - unmodelled)
        if missing:
            raise ValueError(f"attachment(s) {missing} appear neither under matters nor unmodelled")
        for inc in self.inconsistencies:
            if inc.matter is not None and inc.matter not in matter_ids:
                raise ValueError(f"inconsistency names unknown matter {inc.matter!r}")
        return self

    def matter(self, matter_id: str) -> Matter:
        for m in self.matters:
            if m.id == matter_id:
                return m
        known = ", ".join(m.id for m in self.matters)
        raise KeyError(f"unknown matter {matter_id!r} (known: {known})")

    @cached_property
    def county_ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.counties)

    @cached_property
    def emitted_event_types(self) -> frozenset[str]:
        """Every event type some step emits on completion."""
        return frozenset(s.emits for m in self.matters for s in m.steps)

    def department(self, department_id: str) -> Department:
        for d in self.departments:
            if d.id == department_id:
                return d
        raise KeyError(f"unknown department {department_id!r}")

    @property
    def workflows(self) -> tuple[Matter, ...]:
        return tuple(m for m in self.matters if m.kind == "workflow")

    def steps_of(self, department_id: str) -> Iterator[tuple[Matter, Step]]:
        """Every (matter, step) a department performs."""
        for m in self.matters:
            for s in m.steps:
                if s.department == department_id:
                    yield m, s

    def to_public(self) -> dict[str, Any]:
        """The documented JSON shape of ``govflow catalog --json`` (extra keys allowed)."""

        def target(t: Target) -> dict[str, Any]:
            return t.model_dump(mode="json", exclude_none=True)

        return {
            "title": self.title,
            "counties": [c.model_dump(mode="json") for c in self.counties],
            "departments": [d.model_dump(mode="json") for d in self.departments],
            "matters": [
                {
                    "id": m.id,
                    "name": m.name,
                    "name_en": m.name_en,
                    "attachment": m.attachment,
                    "lead_department": m.lead_department,
                    "kind": m.kind,
                    "calendar": m.calendar,
                    "targets": [target(t) for t in m.targets],
                    "baseline": [target(t) for t in m.baseline],
                    "steps": [
                        {
                            "id": s.id,
                            "name": s.name,
                            "department": s.department,
                            "depends_on": list(s.depends_on),
                            "channel": s.channel,
                            "kind": s.kind,
                            "emits": s.emits,
                            **({"on_routes": list(s.on_routes)} if s.on_routes else {}),
                        }
                        for s in m.steps
                    ],
                    "routes": [
                        {
                            **r.model_dump(mode="json", exclude_none=True),
                            "steps": [s.id for s in m.route_steps(r.id)],
                        }
                        for r in m.routes
                    ],
                    "costs": [c.model_dump(mode="json") for c in m.costs],
                }
                for m in self.matters
            ],
            "unmodelled": [u.model_dump(mode="json") for u in self.unmodelled],
            "inconsistencies": [
                i.model_dump(mode="json", exclude_none=True) for i in self.inconsistencies
            ],
            "indicators": [i.model_dump(mode="json") for i in self.indicators],
        }


def plan_text() -> str:
    """The source text of the plan (Shangrao's implementation opinions, 17 attachments)."""
    return _read_plan_text()


@lru_cache(maxsize=1)
def _read_plan_text() -> str:
    return PLAN_TEXT_PATH.read_text(encoding="utf-8")


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(str(path), "", f"cannot read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(str(path), where, f"invalid YAML: {problem}") from None


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Load and validate a catalog file (default: the shipped one).

    Raises :class:`InputError` naming the file, the field path and the reason.
    """
    path = Path(path) if path is not None else DEFAULT_CATALOG_PATH
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise InputError(
            str(path), "", "a catalog must be a mapping with 'matters', 'departments', …"
        )
    try:
        return Catalog.model_validate(data, context={"plan_text": plan_text()})
    except ValidationError as exc:
        raise from_validation_error(str(path), exc) from None


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The shipped catalog, loaded once per process."""
    return load_catalog()
