"""The property register and the utility accounts: the state the linked transfer
(房电水气网联动过户) saga keeps consistent, and the audit that checks it.

The saga (attachment 4, "一链办理"), keyed by the 不动产单元代码 (unit code):

1. property accepts the transfer and takes a *lock* on the unit (``lock``). A unit under
   查封 (seizure) or locked by another transfer cannot be accepted: the case is rejected;
2. tax assesses and clears the deed tax — the pivot. A tax rejection *releases* the lock
   and the case is rejected;
3. property registers the new owner (``transfer``) and releases the lock. **A seizure
   registered while the transfer is in flight** (after acceptance, before registration)
   wins: the registration is refused, the lock released and the case rejected — the
   seized unit keeps its owner. A seizure registered after the transfer binds the new
   owner and changes nothing for the transfer;
4. power, water, gas and telecom each set the unit's account holder to the new owner
   (``account``). These steps never compensate the registration: arrears block them
   until settled, transient faults and outages retry them with capped exponential
   backoff, until they succeed.

Mortgages (抵押) add an encumbrance, 注销 removes one, 异议 records an objection; none of
them lock the unit. Invariant after any run: for every unit the owner in the register
equals the holder at every utility, and no unit is locked.

Pure domain: no Kafka, no SimPy. The capacity engine and the property and utility
services apply the same :class:`UnitRegister` / :class:`UtilityAccounts` rules; ``govflow
verify`` audits a run's ledger with :func:`audit`.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

UTILITIES: tuple[str, ...] = ("power", "water", "gas", "telecom")


def unit_code(county_index: int, unit: int) -> str:
    """A 28-character 不动产单元代码-shaped id for unit number ``unit`` in a county
    (6-digit district code, 6-digit cadastral zone, GB + 5-digit parcel, F + 8-digit
    building unit); stable across processes."""
    district = 361100 + county_index + 1  # 上饶市 3611xx
    zone = zlib.crc32(f"{county_index}/{unit}".encode()) % 10**6
    return f"{district:06d}{zone:06d}GB{unit % 10**5:05d}F{unit:08d}"[:28]


def original_owner(unit: str) -> str:
    """Who owns (and holds every account of) a unit before the run."""
    return f"业主-{unit[-8:]}"


@dataclass
class UnitState:
    owner: str
    locked_by: str | None = None  # the transfer case holding the lock
    seized_by: str | None = None  # the 查封 case
    encumbrances: list[str] = field(default_factory=list)  # mortgage cases
    objections: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)  # transfers that ended (registered/released)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnitState:
        return cls(**data)


@dataclass(frozen=True)
class Decision:
    """The register's answer to a step: go ahead, or refuse the case (with why)."""

    ok: bool
    reason: str = ""
    released: bool = False  # a lock was released (publish it)


class UnitRegister:
    """The property register (不动产登记簿) for a set of units; pure state machine.

    Every operation is idempotent for the same case: repeating it changes nothing and
    gives the same decision.
    """

    def __init__(self, units: dict[str, UnitState] | None = None) -> None:
        self.units: dict[str, UnitState] = units if units is not None else {}

    def unit(self, code: str) -> UnitState:
        if code not in self.units:
            self.units[code] = UnitState(owner=original_owner(code))
        return self.units[code]

    def apply(self, effect: str, code: str, case: str, new_owner: str | None = None) -> Decision:
        """The register side of a completed step with ``effect``."""
        state = self.unit(code)
        if effect == "lock":
            if state.locked_by == case or case in state.closed:
                return Decision(True)  # a repeated acceptance: nothing to do
            if state.seized_by is not None:
                return Decision(False, f"查封: unit {code} is seized ({state.seized_by})")
            if state.locked_by is not None:
                return Decision(False, f"unit {code} is locked by {state.locked_by}")
            state.locked_by = case
            return Decision(True)
        if effect == "transfer":
            if case in state.closed:
                return Decision(state.owner == new_owner)  # a repeated completion
            if state.seized_by is not None:
                released = self.release(code, case)
                return Decision(False, f"查封: unit {code} seized by {state.seized_by}", released)
            if state.locked_by not in (None, case):
                return Decision(False, f"unit {code} is locked by {state.locked_by}")
            state.owner = new_owner or state.owner
            state.locked_by = None
            state.closed.append(case)
            return Decision(True, released=True)
        if effect == "seize":
            if state.seized_by is None:
                state.seized_by = case
            return Decision(True)
        if effect == "mortgage":
            if case not in state.encumbrances:
                state.encumbrances.append(case)
            return Decision(True)
        if effect == "discharge":
            if state.encumbrances:
                state.encumbrances.pop(0)
            return Decision(True)
        if effect == "object":
            if case not in state.objections:
                state.objections.append(case)
            return Decision(True)
        raise ValueError(f"unknown register effect {effect!r}")

    def release(self, code: str, case: str) -> bool:
        """Release ``case``'s lock on the unit (the pivot refused); True if it held one."""
        state = self.unit(code)
        if state.locked_by == case:
            state.locked_by = None
            state.closed.append(case)
            return True
        return False


class UtilityAccounts:
    """One utility's account holders per unit code."""

    def __init__(self, holders: dict[str, str] | None = None) -> None:
        self.holders: dict[str, str] = holders if holders is not None else {}

    def holder(self, code: str) -> str:
        return self.holders.get(code, original_owner(code))

    def transfer(self, code: str, new_holder: str) -> None:
        self.holders[code] = new_holder


# -- the audit ---------------------------------------------------------------------------


@dataclass
class AuditReport:
    cases: int = 0
    terminal: int = 0
    lost: int = 0
    duplicates: int = 0
    mismatched_units: int = 0
    locked_units: int = 0
    dead_letters: int = 0
    units: int = 0
    lost_cases: list[str] = field(default_factory=list)
    duplicate_keys: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.mismatched_units or self.locked_units)

    def counts(self) -> dict[str, int]:
        keys = ("cases", "lost", "duplicates", "mismatched_units", "locked_units", "dead_letters")
        return {k: getattr(self, k) for k in keys}


def audit(ledger: Iterable[Mapping[str, Any]]) -> AuditReport:
    """Check a run's ledger (see ``docs``: one JSON object per line, ``fact`` =
    ``submitted`` | ``terminal`` | ``step`` | ``unit`` | ``holder`` | ``dead_letter``).

    * every submitted case has exactly one terminal outcome (``lost``: none;
      ``duplicates``: more than one, or one step attempt completed under two ids);
    * every unit a linked transfer touched (``linked``) or a utility transferred has the
      register owner as its holder at each utility (``mismatched_units``);
    * no unit is locked (``locked_units``).
    """
    report = AuditReport()
    submitted: set[str] = set()
    terminal: Counter[str] = Counter()
    attempts: dict[str, set[str]] = {}
    owners: dict[str, str] = {}
    holders: dict[str, dict[str, str]] = {u: {} for u in UTILITIES}
    linked: set[str] = set()  # units a linked transfer touched: their accounts must follow
    for fact in ledger:
        kind = fact["fact"]
        if kind == "submitted":
            submitted.add(fact["case"])
        elif kind == "terminal":
            terminal[fact["case"]] += 1
        elif kind == "step":
            key = f"{fact['case']}/{fact['step']}/{fact['attempt']}"
            attempts.setdefault(key, set()).add(str(fact["id"]))
        elif kind == "unit":
            owners[fact["unit"]] = fact["owner"]
            if fact.get("linked"):
                linked.add(fact["unit"])
            if fact.get("locked_by"):
                report.locked.append(f"{fact['unit']} locked by {fact['locked_by']}")
        elif kind == "holder":
            holders[fact["utility"]][fact["unit"]] = fact["holder"]
        elif kind == "dead_letter":
            report.letters.append(dict(fact))
        else:
            raise ValueError(f"unknown ledger fact {kind!r}")
    report.cases = len(submitted)
    report.terminal = sum(1 for c in submitted if terminal[c] >= 1)
    report.lost_cases = sorted(c for c in submitted if terminal[c] == 0)
    report.lost = len(report.lost_cases)
    report.duplicate_keys = sorted(
        [f"{c} has {n} terminal outcomes" for c, n in terminal.items() if n > 1]
        + [f"{k} completed under {len(ids)} ids" for k, ids in attempts.items() if len(ids) > 1]
    )
    report.duplicates = len(report.duplicate_keys)
    held = {u for by_unit in holders.values() for u in by_unit}
    report.units = len(set(owners) | held)
    for code in sorted(linked | held):
        owner = owners.get(code, original_owner(code))
        for utility in UTILITIES:
            held = holders[utility].get(code, original_owner(code))
            if held != owner:
                report.mismatches.append(f"{code}: owner {owner}, {utility} holder {held}")
    report.mismatched_units = len({m.split(":")[0] for m in report.mismatches})
    report.locked_units = len(report.locked)
    report.dead_letters = len(report.letters)
    return report
