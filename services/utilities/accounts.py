"""A utility's account holders per unit code: the last leg of the linked transfer.

Power, water, gas and telecom each set the unit's account holder to the new owner
(``account`` effect).  These steps never compensate the registration: arrears block them
until settled and transient faults or outages retry them (the walk's rules), until they
succeed.  Invariant after any run: every unit's register owner is its holder at every
utility (``govflow verify``).
"""

from __future__ import annotations

from collections.abc import Hashable, MutableMapping
from typing import Any

from services.core.catalog import StepEffect
from services.core.units import original_owner
from services.core.walk import ACCEPTED, Decision, Subject

UTILITIES: tuple[str, ...] = ("power", "water", "gas", "telecom")


class UtilityAccounts:
    """One utility's account holders per unit (``holders`` may be a live table view;
    keys may be any hashable, as in the register)."""

    def __init__(self, holders: MutableMapping[Any, Any] | None = None) -> None:
        self.holders: MutableMapping[Any, Any] = holders if holders is not None else {}

    def holder(self, code: str) -> str:
        """The holder's name of a unit with string keys (the live accounts, a ledger)."""
        held = self.holders.get(code)
        return original_owner(code) if held is None else str(held)

    def transfer(self, code: Hashable, new_holder: Hashable) -> None:
        self.holders[code] = new_holder

    # -- the walk's Effects interface -----------------------------------------------------

    def apply(self, effect: StepEffect, department: str, subject: Subject) -> Decision:
        if effect != "account":
            raise ValueError(f"{department} keeps accounts, not {effect!r}")
        if subject.unit is None or subject.owner is None:
            raise ValueError(f"case {subject.case}: an account transfer needs unit and owner")
        self.transfer(subject.unit, subject.owner)
        return ACCEPTED

    def release(self, department: str, subject: Subject) -> bool:
        return False  # accounts hold no lock
