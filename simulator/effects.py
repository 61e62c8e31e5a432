"""Which department keeps which effect state, for the drivers that run every department
in one process (the capacity engine and the virtual twin).

Property keeps the register (:mod:`services.property.register`), tax the deed-tax
clearances (:mod:`services.tax.pivot`), each utility its account holders
(:mod:`services.utilities.accounts`).  A live department service is
given its own keeper by its entry point (``services/<department>/app.py``).
"""

from __future__ import annotations

from typing import Any

from services.core.catalog import StepEffect
from services.core.walk import NO_EFFECTS, Decision, Effects, Subject
from services.property.register import UnitRegister
from services.tax.pivot import DeedTax
from services.utilities.accounts import UTILITIES, UtilityAccounts


def keeper_for(department: str) -> Effects:
    """A fresh keeper of ``department``'s effect state (none for most departments)."""
    if department == "property":
        return UnitRegister()
    if department == "tax":
        return DeedTax()
    if department in UTILITIES:
        return UtilityAccounts()
    return NO_EFFECTS


class Keepers:
    """Every department's keeper in one run, each created when first needed; the walk's
    :class:`~services.core.walk.Effects`, routed by the step's department."""

    def __init__(self) -> None:
        self.by_department: dict[str, Effects] = {}

    def of(self, department: str) -> Effects:
        keeper = self.by_department.get(department)
        if keeper is None:
            keeper = self.by_department[department] = keeper_for(department)
        return keeper

    def apply(self, effect: StepEffect, department: str, subject: Subject) -> Decision:
        return self.of(department).apply(effect, department, subject)

    def release(self, department: str, subject: Subject) -> bool:
        return self.of(department).release(department, subject)

    @property
    def register(self) -> UnitRegister:
        keeper = self.of("property")
        assert isinstance(keeper, UnitRegister)
        return keeper

    def cleared(self) -> dict[Any, Any]:
        """The deed-tax clearances (unit → transfer case)."""
        keeper = self.by_department.get("tax")
        return dict(keeper.cleared) if isinstance(keeper, DeedTax) else {}

    def holders(self) -> dict[str, dict[Any, Any]]:
        """Each utility's account holders (utilities that transferred any)."""
        return {
            d: dict(k.holders)
            for d, k in sorted(self.by_department.items())
            if isinstance(k, UtilityAccounts) and k.holders
        }
