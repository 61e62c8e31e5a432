"""The property register (不动产登记簿): owner, transfer lock, seizure, encumbrances.

Kept by property per 不动产单元代码 (unit code, "一码关联").  Its rules are the linked
transfer's (房电水气网联动过户, attachment 4 "一链办理") and the register family's:

* ``lock`` — property accepts a transfer and locks the unit.  A unit under 查封
  (seizure) or locked by another transfer cannot be accepted: the case is refused;
* ``transfer`` — property registers the new owner and releases the lock.  A seizure
  registered while the transfer is in flight (after acceptance, before registration)
  wins: the registration is refused, the lock released, the unit keeps its owner.  A
  seizure registered after the transfer binds the new owner and changes nothing for it;
* ``seize`` (查封), ``mortgage`` (抵押: adds an encumbrance), ``discharge`` (注销: removes
  one), ``object`` (异议: recorded, not blocking);
* a rejected transfer's lock is released (:meth:`UnitRegister.release`, the saga's
  compensation when the tax pivot refuses).

Every operation is idempotent for the same case: repeating it changes nothing and gives
the same decision.  Pure domain: the walk (:mod:`services.core.walk`) calls it through its
:class:`~services.core.walk.Effects` interface, in every driver.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from services.core.catalog import StepEffect
from services.core.closing import remember
from services.core.units import original_owner
from services.core.walk import ACCEPTED, Decision, Subject

#: The effects the register carries out (a property step's ``effect``).
REGISTER_EFFECTS: frozenset[str] = frozenset(
    {"lock", "transfer", "seize", "mortgage", "discharge", "object"}
)


@dataclass(slots=True)
class UnitState:
    """One unit in the register.  ``owner`` None: the unit's original owner."""

    owner: Hashable | None = None
    locked_by: Hashable | None = None  # the transfer case holding the lock
    seized_by: Hashable | None = None  # the 查封 case
    encumbrances: tuple[Hashable, ...] = ()  # mortgage cases
    objections: tuple[Hashable, ...] = ()
    closed: tuple[Hashable, ...] = ()  # transfers that ended (registered or released)
    transferred_by: Hashable | None = None  # the transfer that registered the owner

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "locked_by": self.locked_by,
            "seized_by": self.seized_by,
            "encumbrances": list(self.encumbrances),
            "objections": list(self.objections),
            "closed": list(self.closed),
            "transferred_by": self.transferred_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitState:
        return cls(
            data.get("owner"),
            data.get("locked_by"),
            data.get("seized_by"),
            tuple(data.get("encumbrances", ())),
            tuple(data.get("objections", ())),
            tuple(data.get("closed", ())),
            data.get("transferred_by"),
        )


def owner_of(code: str, state: UnitState | None) -> str:
    """The owner's name of a unit with string keys (the live register, a ledger)."""
    if state is None or state.owner is None:
        return original_owner(code)
    return str(state.owner)


class UnitRegister:
    """The register for a set of units; a pure state machine.  ``units`` may be any
    mapping (a live service's view of its table); keys and case ids may be any hashable
    (the capacity engine uses integers and formats them only for a ledger)."""

    def __init__(self, units: MutableMapping[Any, UnitState] | None = None) -> None:
        self.units: MutableMapping[Any, UnitState] = units if units is not None else {}

    def unit(self, code: Hashable) -> UnitState:
        state = self.units.get(code)
        if state is None:
            state = self.units[code] = UnitState()
        return state

    # -- the walk's Effects interface -----------------------------------------------------

    def apply(self, effect: StepEffect, department: str, subject: Subject) -> Decision:
        if subject.unit is None:
            raise ValueError(f"case {subject.case}: a register effect needs the unit code")
        return self.decide(effect, subject.unit, subject.case, subject.owner)

    def release(self, department: str, subject: Subject) -> bool:
        return subject.unit is not None and self.unlock(subject.unit, subject.case)

    # -- the rules --------------------------------------------------------------------------

    def decide(
        self, effect: str, code: Hashable, case: Hashable, new_owner: Hashable | None = None
    ) -> Decision:
        """The register side of a completed step with ``effect``."""
        state = self.unit(code)
        if effect == "lock":
            return self._lock(state, code, case)
        if effect == "transfer":
            return self._transfer(state, code, case, new_owner)
        if effect == "seize":
            if state.seized_by is None:
                state.seized_by = case
        elif effect == "mortgage":
            if case not in state.encumbrances:
                state.encumbrances += (case,)
        elif effect == "discharge":
            state.encumbrances = state.encumbrances[1:]
        elif effect == "object":
            if case not in state.objections:
                state.objections += (case,)
        else:
            raise ValueError(f"unknown register effect {effect!r}")
        self.units[code] = state  # a mapping view (a live table) sees the change
        return ACCEPTED

    def _lock(self, state: UnitState, code: Hashable, case: Hashable) -> Decision:
        if state.locked_by == case or case in state.closed:
            return ACCEPTED  # a repeated acceptance: nothing to do
        if state.seized_by is not None:
            return Decision(False, f"查封: unit {code} is seized ({state.seized_by})")
        if state.locked_by is not None:
            return Decision(False, f"unit {code} is locked by {state.locked_by}")
        state.locked_by = case
        self.units[code] = state
        return ACCEPTED

    def _transfer(
        self, state: UnitState, code: Hashable, case: Hashable, new_owner: Hashable | None
    ) -> Decision:
        if case in state.closed:
            return Decision(state.owner == new_owner)  # a repeated completion
        if state.seized_by is not None:
            released = self.unlock(code, case)
            return Decision(False, f"查封: unit {code} seized by {state.seized_by}", released)
        if state.locked_by not in (None, case):
            return Decision(False, f"unit {code} is locked by {state.locked_by}")
        if new_owner is not None:
            state.owner = new_owner
        state.transferred_by = case
        state.locked_by = None
        state.closed = remember(state.closed, case)
        self.units[code] = state
        return Decision(True, released=True)

    def unlock(self, code: Hashable, case: Hashable) -> bool:
        """Release ``case``'s lock on the unit (the pivot refused); True if it held one."""
        state = self.unit(code)
        if state.locked_by == case:
            state.locked_by = None
            state.closed = remember(state.closed, case)
            self.units[code] = state
            return True
        return False
