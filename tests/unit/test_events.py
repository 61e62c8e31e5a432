"""Event contracts: JSON round trips, and malformed input named by field."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.calendar import SHANGHAI, at_shanghai
from services.core.catalog import default_catalog
from services.core.events import (
    MAX_EVENT_BYTES,
    CaseCompleted,
    CaseRejected,
    CaseSubmitted,
    Event,
    EventValidationError,
    PropertyTransferred,
    StepCompleted,
    UtilityTransferred,
    Verdict,
    decode_event,
)

T0 = at_shanghai(2021, 3, 8, 9)
UNIT = "361102001001GB00001F00010001"

CATALOG = default_catalog()


def submitted(**overrides) -> Event:
    fields = dict(
        type="case.submitted",
        case_id="c-000001",
        matter="linked_transfer",
        county="xinzhou",
        occurred_at=T0,
        correlation_id=uuid4(),
        payload=CaseSubmitted(applicant="张三", unit_code=UNIT, attributes={"buyer": "李四"}),
    )
    fields.update(overrides)
    return Event(**fields)


def step(kind=StepCompleted, **extra) -> StepCompleted:
    return kind(
        step=extra.pop("step", "register"),
        department=extra.pop("department", "property"),
        clerk="property/xinzhou/2",
        enabled_at=T0,
        started_at=T0 + timedelta(minutes=5),
        **extra,
    )


EXAMPLES = [
    submitted(),
    submitted().caused("property.locked", step(step="accept_lock"), T0 + timedelta(hours=1)),
    submitted().caused(
        "property.transferred", step(PropertyTransferred, unit_code=UNIT, owner="李四"), T0
    ),
    submitted().caused(
        "utility.transferred",
        step(
            UtilityTransferred,
            step="gas_transfer",
            department="gas",
            utility="gas",
            unit_code=UNIT,
            holder="李四",
        ),
        T0,
    ),
    submitted().caused(
        "tax.rejected",
        step(step="tax_clearance", department="tax", outcome="rejected", reason="契税未缴"),
        T0,
    ),
    submitted().caused(
        "case.completed",
        CaseCompleted(
            submitted_at=T0,
            latency={"working_days": 2.5},
            verdicts=[
                Verdict(
                    metric="registration_duration",
                    scope="span:accept_lock,register",
                    target=3,
                    unit="working_days",
                    measured=2.5,
                    attained=True,
                )
            ],
        ),
        T0,
    ),
    submitted().caused(
        "case.rejected", CaseRejected(submitted_at=T0, step="tax_clearance", reason="契税未缴"), T0
    ),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.type)
def test_json_round_trip(event):
    decoded = decode_event(event.to_bytes(), catalog=CATALOG)
    assert decoded == event
    assert type(decoded.payload) is type(event.payload)


def test_follow_up_events_carry_causation():
    first = submitted()
    second = first.caused("property.locked", step(step="accept_lock"), T0)
    assert second.causation_id == first.event_id
    assert second.correlation_id == first.correlation_id
    assert second.case_id == first.case_id and second.event_id != first.event_id


@settings(max_examples=100, deadline=None)
@given(
    case_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,40}", fullmatch=True),
    county=st.sampled_from(["xinzhou", "guangfeng", "dexing", "wuyuan"]),
    applicant=st.text(min_size=1, max_size=40),
    minutes=st.integers(0, 10**6),
    attributes=st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.one_of(
            st.integers(-(10**9), 10**9),
            st.booleans(),
            st.text(max_size=20),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=5,
    ),
)
def test_round_trip_property(case_id, county, applicant, minutes, attributes):
    event = submitted(
        case_id=case_id,
        county=county,
        occurred_at=T0 + timedelta(minutes=minutes),
        payload=CaseSubmitted(applicant=applicant, attributes=attributes),
    )
    assert decode_event(event.to_bytes(), catalog=CATALOG) == event


def mutate(change) -> bytes:
    data = json.loads(submitted().to_bytes())
    change(data)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b"{not json", "", "invalid JSON"),
        (b"[1, 2]", "", "JSON object"),
        (mutate(lambda d: d.pop("case_id")), "case_id", "Field required"),
        (mutate(lambda d: d.update(occurred_at="yesterday")), "occurred_at", "datetime"),
        (mutate(lambda d: d.update(occurred_at="2021-03-08T09:00:00")), "occurred_at", "timezone"),
        (mutate(lambda d: d.update(type="case.exploded")), "type", "unknown event type"),
        (mutate(lambda d: d.update(county="beijing")), "county", "unknown county"),
        (mutate(lambda d: d.update(matter="moon_landing")), "matter", "unknown matter"),
        (mutate(lambda d: d.update(schema_version=7)), "schema_version", "unsupported"),
        (
            mutate(lambda d: d.update(occurred_at="1999-01-01T09:00:00+08:00")),
            "occurred_at",
            "outside the calendar",
        ),
        (
            mutate(lambda d: d.update(occurred_at="2199-01-01T09:00:00+08:00")),
            "occurred_at",
            "outside the calendar",
        ),
        (mutate(lambda d: d["payload"].pop("applicant")), "payload.applicant", "Field required"),
        (
            mutate(lambda d: d["payload"].update(unit_code="not a code")),
            "payload.unit_code",
            "should match",
        ),
        (mutate(lambda d: d["payload"].update(channel=3)), "payload.channel", "Input should be"),
        (mutate(lambda d: d.update(surprise=1)), "surprise", "Extra inputs"),
        (mutate(lambda d: d.update(event_id="not-a-uuid")), "event_id", "UUID"),
    ],
)
def test_malformed_input_names_the_field(raw, field, reason):
    with pytest.raises(EventValidationError) as info:
        decode_event(raw, source="govflow.submissions@0:17", catalog=CATALOG)
    assert info.value.field == field
    assert reason in info.value.reason
    assert str(info.value).startswith("govflow.submissions@0:17: ")


def test_step_events_must_match_the_catalog():
    ok = submitted().caused("property.locked", step(step="accept_lock"), T0)
    data = json.loads(ok.to_bytes())
    data["payload"]["step"] = "fly"
    with pytest.raises(EventValidationError, match="has no step 'fly'") as info:
        decode_event(json.dumps(data), catalog=CATALOG)
    assert info.value.field == "payload.step"
    data["payload"]["step"] = "tax_clearance"  # a tax step claimed by the property registry
    with pytest.raises(EventValidationError, match="belongs to tax") as info:
        decode_event(json.dumps(data), catalog=CATALOG)
    assert info.value.field == "payload.department"


def test_rejected_step_needs_a_reason():
    with pytest.raises(ValueError, match="needs a reason"):
        step(outcome="rejected")


def test_oversized_message_is_refused_unread():
    raw = mutate(lambda d: d["payload"].update(applicant="x" * MAX_EVENT_BYTES))
    with pytest.raises(EventValidationError, match="exceeds"):
        decode_event(raw, catalog=CATALOG)


def test_payload_must_match_the_type():
    with pytest.raises(ValueError, match="must be CaseSubmitted"):
        submitted(payload=step())


def test_times_are_kept_with_offset():
    event = submitted(occurred_at=T0.astimezone(SHANGHAI))
    assert '"occurred_at":"2021-03-08T09:00:00+08:00"' in event.to_bytes().decode()
