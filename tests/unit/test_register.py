"""The property register, the utility accounts — through the walk's Effects interface as
well as directly — and the audit of a run's ledger."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.units import original_owner, unit_code
from services.core.walk import Subject
from services.property.register import UnitRegister, owner_of
from services.utilities.accounts import UTILITIES, UtilityAccounts
from simulator.ledger import audit

UNIT = unit_code(0, 42)
BUYER = "买受人-linked_transfer-0000001"


def test_unit_codes_are_stable_and_shaped_like_the_national_code():
    assert unit_code(3, 1234) == unit_code(3, 1234)
    assert unit_code(3, 1234) != unit_code(4, 1234) != unit_code(3, 1235)
    code = unit_code(11, 10**7 + 5)
    assert len(code) == 28 and code.startswith("3611") and code[12:14] == "GB"


# (operations, expected decisions, owner, locked_by) — each op: (effect, case)
SAGA_CASES = [
    pytest.param([("lock", "T1"), ("transfer", "T1")], [True, True], BUYER, None, id="transfer"),
    pytest.param(
        [("lock", "T1"), ("lock", "T1"), ("transfer", "T1"), ("transfer", "T1")],
        [True, True, True, True],
        BUYER,
        None,
        id="duplicates change nothing",
    ),
    pytest.param(
        [("lock", "T1"), ("lock", "T2")], [True, False], None, "T1", id="second transfer refused"
    ),
    pytest.param(
        [("seize", "S1"), ("lock", "T1")], [True, False], None, None, id="seized unit refused"
    ),
    pytest.param(
        [("lock", "T1"), ("seize", "S1"), ("transfer", "T1")],
        [True, True, False],
        None,
        None,
        id="seizure in flight wins, lock released",
    ),
    pytest.param(
        [("lock", "T1"), ("transfer", "T1"), ("seize", "S1")],
        [True, True, True],
        BUYER,
        None,
        id="seizure after registration binds the new owner",
    ),
    pytest.param(
        [("mortgage", "M1"), ("lock", "T1"), ("transfer", "T1")],
        [True, True, True],
        BUYER,
        None,
        id="a mortgage does not lock",
    ),
    pytest.param(
        [("object", "O1"), ("lock", "T1"), ("transfer", "T1")],
        [True, True, True],
        BUYER,
        None,
        id="an objection is recorded, not blocking",
    ),
]


@pytest.mark.parametrize(("operations", "decisions", "owner", "locked_by"), SAGA_CASES)
def test_register_transitions(operations, decisions, owner, locked_by):
    register = UnitRegister()
    got = [register.decide(effect, UNIT, case, BUYER).ok for effect, case in operations]
    assert got == decisions
    state = register.unit(UNIT)
    assert owner_of(UNIT, state) == (owner or original_owner(UNIT))
    assert state.locked_by == locked_by


@pytest.mark.parametrize(("operations", "decisions", "owner", "locked_by"), SAGA_CASES)
def test_the_walk_drives_the_same_transitions_through_its_interface(
    operations, decisions, owner, locked_by
):
    """What the walk calls (``apply`` with a Subject) decides as ``decide`` does."""
    register = UnitRegister()
    got = [
        register.apply(effect, "property", Subject(case, UNIT, BUYER)).ok
        for effect, case in operations
    ]
    assert got == decisions
    assert owner_of(UNIT, register.unit(UNIT)) == (owner or original_owner(UNIT))
    assert register.unit(UNIT).locked_by == locked_by


def test_the_pivot_releases_only_its_own_lock():
    register = UnitRegister()
    register.decide("lock", UNIT, "T1")
    assert not register.release("property", Subject("T2", UNIT))
    assert register.release("property", Subject("T1", UNIT))
    assert not register.release("property", Subject("T1", UNIT))  # twice: nothing more
    assert register.unit(UNIT).locked_by is None


def test_mortgage_and_discharge():
    register = UnitRegister()
    register.decide("mortgage", UNIT, "M1")
    register.decide("mortgage", UNIT, "M1")
    assert register.unit(UNIT).encumbrances == ("M1",)
    register.decide("discharge", UNIT, "C1")
    assert register.unit(UNIT).encumbrances == ()
    with pytest.raises(ValueError, match="unknown register effect"):
        register.decide("demolish", UNIT, "X")


def test_a_unit_round_trips_through_its_table_form():
    from services.property.register import UnitState

    register = UnitRegister()
    register.decide("mortgage", UNIT, "M1")
    register.decide("lock", UNIT, "T1")
    state = register.unit(UNIT)
    assert UnitState.from_dict(state.to_dict()) == state


def test_accounts_move_the_holder_and_hold_no_lock():
    accounts = UtilityAccounts()
    assert accounts.holder(UNIT) == original_owner(UNIT)
    assert accounts.apply("account", "gas", Subject("T1", UNIT, BUYER)).ok
    assert accounts.holder(UNIT) == BUYER
    assert not accounts.release("gas", Subject("T1", UNIT, BUYER))
    with pytest.raises(ValueError, match="keeps accounts"):
        accounts.apply("lock", "gas", Subject("T1", UNIT, BUYER))


# -- any order, any duplicates: the invariant holds once every event has been seen ------


# One linked transfer's events: lock, (tax refusal | register), then the four accounts.
def _saga_events(refused: bool) -> list[tuple[str, str]]:
    if refused:
        return [("lock", "accept"), ("release", "tax")]
    return [("lock", "accept"), ("transfer", "register")] + [("account", u) for u in UTILITIES]


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.data())
def test_any_delivery_order_with_duplicates_keeps_the_invariant(refused, data):
    events = _saga_events(refused)
    delivered = data.draw(st.lists(st.sampled_from(events), max_size=8)) + events
    delivered = data.draw(st.permutations(delivered))
    # a department acts on an event only once its predecessors' events are in (the join);
    # everything else waits in its inbox — so deliver by causality, in any order otherwise
    register, accounts = UnitRegister(), {u: UtilityAccounts() for u in UTILITIES}
    done: set[str] = set()
    pending = list(delivered)
    while pending:
        progressed = False
        for event in list(pending):
            effect, source = event
            ready = effect == "lock" or (
                "lock" in done and (effect != "account" or "transfer" in done)
            )
            if not ready:
                continue
            pending.remove(event)
            progressed = True
            if effect == "release":
                register.unlock(UNIT, "T1")
            elif effect == "account":
                accounts[source].transfer(UNIT, BUYER)
            else:
                register.decide(effect, UNIT, "T1", BUYER)
            done.add(effect)
        assert progressed
    state = register.unit(UNIT)
    assert state.locked_by is None
    assert all(accounts[u].holder(UNIT) == owner_of(UNIT, state) for u in UTILITIES)
    assert owner_of(UNIT, state) == (original_owner(UNIT) if refused else BUYER)


# -- the audit ---------------------------------------------------------------------------


def _ledger(**changes):
    facts = [
        {"fact": "submitted", "case": "a"},
        {"fact": "submitted", "case": "b"},
        {"fact": "terminal", "case": "a", "outcome": "completed", "id": "1"},
        {"fact": "terminal", "case": "b", "outcome": "rejected", "id": "2"},
        {"fact": "step", "case": "a", "step": "register", "attempt": 1, "id": "e1"},
        {
            "fact": "unit",
            "unit": UNIT,
            "owner": BUYER,
            "locked_by": None,
            "transferred_by": "a",
            "linked": True,
        },
        {"fact": "cleared", "unit": UNIT, "case": "a"},
    ] + [{"fact": "holder", "utility": u, "unit": UNIT, "holder": BUYER} for u in UTILITIES]
    return facts + changes.get("extra", [])


def test_a_clean_ledger_passes():
    report = audit(_ledger())
    assert report.ok
    assert report.counts() == {
        "cases": 2,
        "lost": 0,
        "duplicates": 0,
        "mismatched_units": 0,
        "locked_units": 0,
        "uncleared_transfers": 0,
        "dead_letters": 0,
    }


@pytest.mark.parametrize(
    ("extra", "count"),
    [
        ([{"fact": "submitted", "case": "c"}], "lost"),
        ([{"fact": "terminal", "case": "a", "outcome": "completed", "id": "3"}], "duplicates"),
        (
            [{"fact": "step", "case": "a", "step": "register", "attempt": 1, "id": "e2"}],
            "duplicates",
        ),
        (
            [{"fact": "holder", "utility": "gas", "unit": UNIT, "holder": "someone"}],
            "mismatched_units",
        ),
        (
            [{"fact": "unit", "unit": UNIT, "owner": BUYER, "locked_by": "a", "linked": True}],
            "locked_units",
        ),
    ],
)
def test_each_violation_is_counted(extra, count):
    report = audit(_ledger(extra=extra))
    assert getattr(report, count) == 1
    assert not report.ok


def test_a_transfer_registered_without_its_deed_tax_cleared_fails_the_pivot():
    facts = [f for f in _ledger() if f["fact"] != "cleared"]
    facts.append({"fact": "cleared", "unit": UNIT, "case": "another transfer"})
    report = audit(facts)
    assert report.uncleared_transfers == 1 and not report.ok
    assert "registered by a" in report.uncleared[0]


def test_deed_tax_clearances_are_recorded_once_per_transfer():
    from services.tax.pivot import DeedTax

    tax = DeedTax()
    for case in ("T1", "T1", "T2"):
        assert tax.apply("clear", "tax", Subject(case, UNIT)).ok
    assert tax.cleared_for(UNIT) == ("T1", "T2")
    assert not tax.release("tax", Subject("T1", UNIT))
    with pytest.raises(ValueError, match="clears deed tax"):
        tax.apply("lock", "tax", Subject("T1", UNIT))


def test_a_linked_unit_missing_a_utility_transfer_is_a_mismatch():
    facts = [f for f in _ledger() if not (f["fact"] == "holder" and f["utility"] == "telecom")]
    report = audit(facts)
    assert report.mismatched_units == 1 and "telecom" in report.mismatches[0]


def test_dead_letters_are_listed_but_do_not_fail_the_audit():
    letter = {"fact": "dead_letter", "reason": "not JSON", "source_topic": "govflow.dept.tax"}
    report = audit(_ledger(extra=[letter]))
    assert report.dead_letters == 1 and report.ok
