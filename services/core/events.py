"""Event contracts: one pydantic envelope for every event, typed payloads, strict decoding.

Every message on every topic is an :class:`Event` serialised as UTF-8 JSON.  The
``type`` selects the payload model: the core types below, or any completion event a
catalog step declares in ``emits`` (``registration.completed``, ``tax.cleared``, …),
which carries a :class:`StepCompleted` payload.

:func:`decode_event` is the only way bytes become an event.  It raises
:class:`EventValidationError` — naming the field and the reason — for anything that is
not a well-formed, known, plausible event: invalid JSON, wrong types, unknown type,
matter, county or step, missing fields, oversized messages, timestamps outside the
calendar's data range.  Services send such messages to the dead-letter topic.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4, uuid5

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    model_validator,
)

from services.core.calendar import EVENT_DATES_LAST, HOLIDAY_DATA_FIRST
from services.core.catalog import Catalog, Channel, Matter, Unit
from services.core.errors import InputError, from_validation_error

SCHEMA_VERSION: Literal[1] = 1
#: Largest message a service accepts; larger ones are dead-lettered unread.
MAX_EVENT_BYTES = 64 * 1024

CaseId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=64)]
UnitCode = Annotated[str, Field(pattern=r"^[0-9A-Z]{19,28}$")]
AttributeValue = str | int | float | bool


class EventValidationError(InputError):
    """A message that is not a valid event; ``field`` names the offending field."""


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseSubmitted(Payload):
    """An applicant submits a case of a matter (published by the demand replay)."""

    channel: Channel = "offline"
    applicant: str = Field(min_length=1, max_length=128)
    unit_code: UnitCode | None = None  # 不动产单元代码, for property matters
    attributes: dict[str, AttributeValue] = Field(default_factory=dict, max_length=32)


class StepCompleted(Payload):
    """A department finished one attempt at one step of a case.

    ``outcome``: ``done`` (successors may start), ``rework`` (补正: the applicant must
    complete the materials; another attempt follows), ``retry`` (a transient fault or an
    outage: the same step is tried again after a backoff), ``rejected`` (the case ends)
    or ``released`` (property released the unit's lock after the tax pivot refused).
    ``seq`` and ``segment`` identify the case's draws (see :mod:`services.core.timing`)
    and travel with the case from department to department.
    """

    step: str
    department: str
    clerk: str | None = None
    enabled_at: AwareDatetime
    arrived_at: AwareDatetime | None = None  # at the clerks, after a block (default: enabled)
    started_at: AwareDatetime
    outcome: Literal["done", "rework", "retry", "rejected", "released"] = "done"
    reason: str | None = None
    attempt: int = Field(default=1, ge=1)
    seq: int | None = Field(default=None, ge=0)
    segment: int = Field(default=-1, ge=-1)
    work_seconds: float | None = Field(default=None, ge=0)  # the clerk's working time
    unit_code: UnitCode | None = None  # property matters: the unit the case is about
    owner: str | None = Field(default=None, min_length=1, max_length=128)  # its buyer

    @model_validator(mode="after")
    def _ordered(self) -> StepCompleted:
        if self.started_at < (self.arrived_at or self.enabled_at):
            raise ValueError("started_at is before the case arrived")
        if self.arrived_at is not None and self.arrived_at < self.enabled_at:
            raise ValueError("arrived_at is before enabled_at")
        if self.outcome == "rejected" and not self.reason:
            raise ValueError("a rejected step needs a reason")
        return self


class PropertyTransferred(StepCompleted):
    """The registry recorded a new owner for a unit (不动产单元)."""

    unit_code: UnitCode
    owner: str = Field(min_length=1, max_length=128)


Utility = Literal["power", "water", "gas", "telecom"]


class UtilityTransferred(StepCompleted):
    """A utility moved an account to the unit's new owner."""

    utility: Utility
    unit_code: UnitCode
    holder: str = Field(min_length=1, max_length=128)


class Verdict(Payload):
    """One target checked against one case."""

    metric: str
    scope: str
    target: float
    unit: Unit
    measured: float
    attained: bool


class CaseCompleted(Payload):
    """The tracker's verdict on a finished case."""

    submitted_at: AwareDatetime
    latency: dict[str, float]  # in each unit the matter's targets use
    verdicts: list[Verdict]


class CaseRejected(Payload):
    """A case ended without completion (e.g. the tax pivot rejected a transfer)."""

    submitted_at: AwareDatetime
    step: str
    reason: str


#: Core event types and their payloads.  Step completion types come from the catalog.
CORE_EVENT_TYPES: dict[str, type[Payload]] = {
    "case.submitted": CaseSubmitted,
    "case.completed": CaseCompleted,
    "case.rejected": CaseRejected,
    "step.completed": StepCompleted,
    "step.reworked": StepCompleted,
    "step.retried": StepCompleted,  # a transient fault or an outage: tried again later
    "property.released": StepCompleted,  # the pivot refused: the unit's lock is released
    "property.transferred": PropertyTransferred,
    "utility.transferred": UtilityTransferred,
}


def payload_model(event_type: str, catalog: Catalog) -> type[Payload]:
    """The payload model for an event type under ``catalog`` (whose steps declare the
    completion types); ``KeyError`` for a type it does not know."""
    if event_type in CORE_EVENT_TYPES:
        return CORE_EVENT_TYPES[event_type]
    if event_type in catalog.emitted_event_types or event_type.endswith(".rejected"):
        return StepCompleted
    raise KeyError(event_type)


#: Namespace of completion event ids (uuid5 of case, step and attempt).
COMPLETIONS = UUID("6b7c3f0e-7a53-5f0a-9d55-0c1f4c2e6a11")


def completion_id(case_id: str, step: str, attempt: int, *, released: bool = False) -> UUID:
    """The id of the event that reports attempt ``attempt`` (0-based) of a case's step
    (or the release of its lock): the same whoever computes it, however often."""
    return uuid5(COMPLETIONS, f"{case_id}/{step}/{attempt}" + ("/released" if released else ""))


def verdict_id(case_id: str) -> UUID:
    """The id of a case's verdict (case.completed / case.rejected): one per case, so a
    verdict sent again after a crash is a duplicate every reader drops."""
    return uuid5(COMPLETIONS, f"{case_id}/verdict")


class Event(BaseModel):
    """The envelope every event travels in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(default_factory=uuid4)
    type: str = Field(pattern=r"^[a-z_]+\.[a-z_]+$")
    schema_version: Literal[1] = SCHEMA_VERSION
    case_id: CaseId
    matter: str
    county: str
    occurred_at: AwareDatetime  # sim time (Asia/Shanghai)
    emitted_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))  # wall time
    causation_id: UUID | None = None
    correlation_id: UUID
    payload: SerializeAsAny[Payload]

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Event:
        # a core type has its own payload; any other type (a completion a catalog step
        # declares) carries a step's completion.  Whether a catalog knows the type is for
        # decode_event, which is given the catalog.
        expected = CORE_EVENT_TYPES.get(self.type, StepCompleted)
        if not isinstance(self.payload, expected):
            raise ValueError(
                f"payload of a {self.type} event must be {expected.__name__}, "
                f"not {type(self.payload).__name__}"
            )
        return self

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    def caused(
        self,
        event_type: str,
        payload: Payload,
        occurred_at: datetime,
        event_id: UUID | None = None,
    ) -> Event:
        """A follow-up event in the same case: causation and correlation carried on."""
        return Event(
            event_id=event_id or uuid4(),
            type=event_type,
            case_id=self.case_id,
            matter=self.matter,
            county=self.county,
            occurred_at=occurred_at,
            causation_id=self.event_id,
            correlation_id=self.correlation_id,
            payload=payload,
        )


class _EnvelopeIn(BaseModel):
    """The envelope as it arrives, before the payload's type is known."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    type: str = Field(pattern=r"^[a-z_]+\.[a-z_]+$")
    schema_version: int
    case_id: CaseId
    matter: str
    county: str
    occurred_at: AwareDatetime
    emitted_at: AwareDatetime
    causation_id: UUID | None = None
    correlation_id: UUID
    payload: dict[str, Any]


def _plausible(field: str, t: datetime, source: str) -> None:
    # a plausibility bound only: the run's own calendar (with any holiday years its
    # scenario supplies) is what says whether a date can be worked with
    if not (HOLIDAY_DATA_FIRST <= t.date() <= EVENT_DATES_LAST):
        raise EventValidationError(
            source,
            field,
            f"{t.isoformat()} is outside the calendar's range "
            f"{HOLIDAY_DATA_FIRST}–{EVENT_DATES_LAST}",
        )


def _envelope(raw: bytes | str, source: str) -> _EnvelopeIn:
    """The envelope of a message (size, JSON, shape, schema version), payload untyped."""
    size = len(raw)
    if size > MAX_EVENT_BYTES:
        raise EventValidationError(source, "", f"message of {size} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventValidationError(source, "", f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventValidationError(
            source, "", f"an event is a JSON object, not {type(data).__name__}"
        )
    try:
        envelope = _EnvelopeIn.model_validate(data)
    except ValidationError as exc:
        err = from_validation_error(source, exc)
        raise EventValidationError(err.source, err.field, err.reason) from None
    if envelope.schema_version != SCHEMA_VERSION:
        raise EventValidationError(
            source, "schema_version", f"unsupported schema version {envelope.schema_version}"
        )
    return envelope


def _check_step(payload: StepCompleted, matter: Matter, source: str) -> None:
    """A step completion names a step of its matter, at that step's department."""
    step = next((s for s in matter.steps if s.id == payload.step), None)
    if step is None:
        raise EventValidationError(
            source, "payload.step", f"matter {matter.id} has no step {payload.step!r}"
        )
    if step.department != payload.department:
        raise EventValidationError(
            source,
            "payload.department",
            f"step {step.id} of {matter.id} belongs to {step.department}, "
            f"not {payload.department!r}",
        )


def decode_event(raw: bytes | str, *, catalog: Catalog, source: str = "") -> Event:
    """Bytes → a valid :class:`Event` under ``catalog``, or :class:`EventValidationError`
    saying why not."""
    envelope = _envelope(raw, source)
    try:
        model = payload_model(envelope.type, catalog)
    except KeyError:
        raise EventValidationError(
            source, "type", f"unknown event type {envelope.type!r}"
        ) from None
    if envelope.county not in catalog.county_ids:
        raise EventValidationError(source, "county", f"unknown county {envelope.county!r}")
    try:
        matter = catalog.matter(envelope.matter)
    except KeyError:
        raise EventValidationError(
            source, "matter", f"unknown matter {envelope.matter!r}"
        ) from None
    _plausible("occurred_at", envelope.occurred_at, source)
    try:
        payload = model.model_validate(envelope.payload)
    except ValidationError as exc:
        err = from_validation_error(source, exc, prefix="payload")
        raise EventValidationError(err.source, err.field, err.reason) from None
    if isinstance(payload, StepCompleted):
        _check_step(payload, matter, source)
    fields = envelope.model_dump()
    fields["payload"] = payload
    return Event.model_validate(fields)


def encode_event(event: Event) -> bytes:
    return event.to_bytes()
