"""契税 — the deed tax of a transfer: the linked transfer's pivot.

Tax assesses and clears the deed tax of a property transfer (``clear`` effect) and
keeps the clearance (完税凭证) per unit: the case whose deed tax is paid.  It is the
pivot of the saga (attachment 4, "一链办理"):

* before it, a refusal is compensated — tax refuses (the scenario's ``reject``
  branch), the case is rejected, and property releases the lock it took;
* after it, nothing is: the registration follows, and the utilities' account
  transfers are retried until they succeed.

So no unit may be registered to a new owner without its deed tax cleared for that very
transfer: ``govflow verify`` checks it (``uncleared_transfers``) against these records.
Idempotent: a clearance repeated for the same case changes nothing.  Pure domain.
"""

from __future__ import annotations

from collections.abc import Hashable, MutableMapping
from typing import Any

from services.core.catalog import StepEffect
from services.core.closing import remember
from services.core.walk import ACCEPTED, Decision, Subject


class DeedTax:
    """The deed-tax clearances: unit → the transfer cases cleared for it (``cleared``
    may be a live table view; keys may be any hashable, as in the register)."""

    def __init__(self, cleared: MutableMapping[Any, tuple[Any, ...]] | None = None) -> None:
        self.cleared: MutableMapping[Any, tuple[Any, ...]] = cleared if cleared is not None else {}

    def cleared_for(self, unit: Hashable) -> tuple[Hashable, ...]:
        """The transfers whose deed tax is paid for ``unit``."""
        return self.cleared.get(unit, ())

    def apply(self, effect: StepEffect, department: str, subject: Subject) -> Decision:
        if effect != "clear":
            raise ValueError(f"{department} clears deed tax, it does not {effect!r}")
        if subject.unit is None:
            raise ValueError(f"case {subject.case}: a deed-tax clearance needs the unit code")
        done = self.cleared.get(subject.unit, ())
        if subject.case not in done:
            self.cleared[subject.unit] = remember(done, subject.case)
        return ACCEPTED

    def release(self, department: str, subject: Subject) -> bool:
        return False  # tax holds no lock: property releases its own
