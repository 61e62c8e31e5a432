"""A finite housing stock: register matters draw their units from it, so the register
and tax's deed-tax records stay bounded however long the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.core.catalog import default_catalog
from services.core.closing import CLOSED_KEPT, remember
from services.core.errors import InputError
from services.core.scenario import read_scenario_data, scenario_from_dict
from services.core.walk import Subject
from services.property.register import UnitRegister
from services.tax.pivot import DeedTax
from simulator.demand import county_stock, generate_demand

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
PLAIN = ("property_transfer", "mortgage_registration", "cancellation_registration")


def demo(**changes: object) -> dict:
    data = read_scenario_data(SCENARIOS / "demo.yaml")
    data.update(changes)
    return data


def test_without_a_stock_every_case_has_a_unit_of_its_own():
    scenario = scenario_from_dict(demo(), default_catalog())
    units = generate_demand(scenario, 1)["property_transfer"].unit
    assert units is not None and len(set(units.tolist())) == len(units)


def test_cases_of_a_stock_draw_from_its_county_shares_and_share_units():
    stock = {"units": 100, "matters": list(PLAIN)}
    scenario = scenario_from_dict(demo(housing=[stock]), default_catalog())
    arrivals = generate_demand(scenario, 1)
    drawn = np.concatenate([arrivals[m].unit for m in PLAIN])
    assert len(drawn) > 100 and len(set(drawn.tolist())) <= 100
    transfers = set(arrivals["property_transfer"].unit.tolist())
    assert transfers & set(arrivals["mortgage_registration"].unit.tolist())  # one register
    # a unit belongs to one county: its cases all come from there
    county_of: dict[int, int] = {}
    for m in PLAIN:
        for unit, county in zip(
            arrivals[m].unit.tolist(), arrivals[m].county.tolist(), strict=True
        ):
            assert county_of.setdefault(unit, county) == county
    # other matters keep their own units, out of the stock's range
    assert not set(arrivals["seizure_registration"].unit.tolist()) & set(drawn.tolist())


def test_the_stock_changes_no_other_draw():
    plain = generate_demand(scenario_from_dict(demo(), default_catalog()), 3)
    housed = generate_demand(
        scenario_from_dict(
            demo(housing=[{"units": 50, "matters": list(PLAIN)}]), default_catalog()
        ),
        3,
    )
    for m in PLAIN:
        assert np.array_equal(plain[m].submitted, housed[m].submitted)
        assert np.array_equal(plain[m].county, housed[m].county)


def test_county_stock_follows_the_demand_shares():
    sizes = county_stock(1000, np.array([0.5, 0.3, 0.2, 0.0001]))
    assert sizes.tolist() == [500, 300, 200, 1]


@pytest.mark.parametrize(
    ("housing", "reason"),
    [
        (
            [
                {"units": 10, "matters": ["property_transfer"]},
                {"units": 5, "matters": ["property_transfer"]},
            ],
            "one stock",
        ),
        ([{"units": 10, "matters": ["linked_transfer", "property_transfer"]}], "stock of its own"),
        ([{"units": 10, "matters": ["no_such_matter"]}], "unknown matter"),
        ([{"units": 0, "matters": ["property_transfer"]}], "greater than 0"),
    ],
)
def test_a_bad_stock_is_an_error_naming_the_field(housing: list, reason: str):
    with pytest.raises(InputError) as error:
        scenario_from_dict(demo(housing=housing), default_catalog(), source="s.yaml")
    assert reason in str(error.value) and "housing" in str(error.value)


def test_a_unit_remembers_its_latest_ended_transfers_only():
    register = UnitRegister()
    for n in range(CLOSED_KEPT + 5):
        case = f"t{n}"
        assert register.decide("lock", "u", case).ok
        assert register.decide("transfer", "u", case, f"buyer{n}").ok
    state = register.units["u"]
    assert len(state.closed) == CLOSED_KEPT and state.closed[-1] == f"t{CLOSED_KEPT + 4}"
    oldest_kept = state.closed[0]
    assert oldest_kept == "t5"
    assert register.decide("lock", "u", oldest_kept).ok  # a late redelivery: dropped
    assert register.units["u"].locked_by is None
    # the bound's price: a redelivery older than the last CLOSED_KEPT would lock again
    assert register.decide("lock", "u", "t0").ok and register.units["u"].locked_by == "t0"


def test_deed_tax_keeps_a_units_latest_clearances_only():
    tax = DeedTax()
    for n in range(CLOSED_KEPT + 3):
        tax.apply("clear", "tax", Subject(f"t{n}", "u", f"b{n}"))
    assert len(tax.cleared_for("u")) == CLOSED_KEPT
    assert tax.cleared_for("u")[-1] == f"t{CLOSED_KEPT + 2}"
    assert remember(("a",), "b") == ("a", "b")
