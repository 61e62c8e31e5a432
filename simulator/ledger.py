"""A run's ledger (``ledger.jsonl``): the facts ``govflow verify`` audits.

One JSON object per line, ``fact`` =

* ``submitted`` ``{case}`` — every case the run submitted;
* ``terminal`` ``{case, outcome, id}`` — every terminal outcome observed (a case with
  two is a duplicate; one with none is lost);
* ``step`` ``{case, step, attempt, id}`` — every completed step attempt (one attempt
  under two event ids is a completion counted twice);
* ``unit`` ``{unit, owner, locked_by, transferred_by, linked}`` — the property register
  at the end;
* ``holder`` ``{utility, unit, holder}`` — each utility's account holders at the end;
* ``cleared`` ``{unit, case}`` — every transfer whose deed tax was cleared (tax's records);
* ``dead_letter`` ``{reason, field, topic, partition, offset}`` — every dead letter.

A simulation writes it from its end state (replication 0, beside ``events.csv``); a
replay from the events it observed: the register and the accounts are rebuilt by
applying the published facts (``property.*``, ``utility.transferred``) with the same
rules the services use (:mod:`services.property.register`, :mod:`services.utilities.accounts`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.core.catalog import Catalog
from services.core.errors import InputError
from services.core.events import Event, StepCompleted
from services.core.units import buyer, original_owner, unit_code
from services.core.walk import Subject
from services.property.register import UnitRegister, UnitState, owner_of
from services.utilities.accounts import UTILITIES
from simulator.demand import case_id
from simulator.effects import Keepers
from simulator.engine import Replication, key_case

FACTS = ("submitted", "terminal", "step", "unit", "holder", "cleared", "dead_letter")


def write_ledger(facts: Iterable[dict[str, Any]], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for fact in facts:
            out.write(json.dumps(fact, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


def read_ledger(path: Path) -> Iterator[dict[str, Any]]:
    """The facts of a ledger file; a malformed line is an :class:`InputError` naming it."""
    if not path.exists():
        raise InputError(
            str(path), "ledger.jsonl", "no ledger: run a simulation or replay with --out DIR first"
        )
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                fact = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}", "line", f"not JSON ({exc.msg})") from None
            if not isinstance(fact, dict) or fact.get("fact") not in FACTS:
                raise InputError(f"{path}:{number}", "fact", f"must be one of {', '.join(FACTS)}")
            yield fact


def simulation_facts(rep: Replication) -> Iterator[dict[str, Any]]:
    """The ledger of one simulated replication."""
    for matter_id, outcome in rep.outcomes.items():
        for seq in range(len(outcome.arrivals)):
            case = case_id(matter_id, seq)
            yield {"fact": "submitted", "case": case}
            if not np.isnan(outcome.completed[seq]):
                yield {"fact": "terminal", "case": case, "outcome": "completed", "id": case}
            elif outcome.rejected_at_step[seq] >= 0:
                yield {"fact": "terminal", "case": case, "outcome": "rejected", "id": case}
    cols = rep.columns()
    register_matters = {
        i for i, m in enumerate(rep.matters) if any(s.effect for s in rep.outcomes[m].matter.steps)
    }
    done = cols["outcome"] == 0
    for i in np.flatnonzero(np.isin(cols["matter"], list(register_matters)) & done).tolist():
        matter = rep.matters[cols["matter"][i]]
        step = rep.outcomes[matter].matter.steps[cols["step"][i]].id
        attempt = int(cols["attempt"][i])
        case = case_id(matter, int(cols["seq"][i]))
        yield {"fact": "step", "case": case, "step": step, "attempt": attempt, "id": f"{i}"}
    yield from _simulated_state(rep)


def _simulated_state(rep: Replication) -> Iterator[dict[str, Any]]:
    """The engine's register and accounts (compact keys) as unit codes and names."""
    counties: dict[int, int] = {}  # unit number -> county index
    for outcome in rep.outcomes.values():
        if outcome.arrivals.unit is not None:
            counties.update(
                zip(outcome.arrivals.unit.tolist(), outcome.arrivals.county.tolist(), strict=True)
            )

    def code(unit: int) -> str:
        return unit_code(counties[unit], unit)

    def case(key: Any) -> str | None:
        return None if key is None else key_case(rep.matters, key)

    register = {
        code(u): UnitState(
            owner=buyer(case(s.owner) or "") if s.owner is not None else None,
            locked_by=case(s.locked_by),
            seized_by=case(s.seized_by),
            transferred_by=case(s.transferred_by),
        )
        for u, s in rep.register.items()
    }
    accounts = {
        utility: {code(u): buyer(key_case(rep.matters, k)) for u, k in holders.items()}
        for utility, holders in rep.accounts.items()
    }
    cleared = {
        code(u): tuple(key_case(rep.matters, k) for k in ks) for u, ks in rep.cleared.items()
    }
    linked = {code(u) for u in rep.linked_units}
    yield from _state_facts(UnitRegister(register), accounts, cleared, linked)


def _state_facts(
    register: UnitRegister,
    accounts: Mapping[str, Mapping[str, str]],
    cleared: Mapping[str, tuple[str, ...]],
    linked: set[str],
) -> Iterator[dict[str, Any]]:
    for code, state in sorted(register.units.items()):
        yield {
            "fact": "unit",
            "unit": code,
            "owner": owner_of(code, state),
            "locked_by": state.locked_by,
            "transferred_by": state.transferred_by,
            "linked": code in linked,
        }
    for utility, holders in sorted(accounts.items()):
        for code, holder in sorted(holders.items()):
            yield {"fact": "holder", "utility": utility, "unit": code, "holder": holder}
    for code, cases in sorted(cleared.items()):
        for case in cases:
            yield {"fact": "cleared", "unit": code, "case": case}


def replay_facts(
    catalog: Catalog,
    submitted: list[Event],
    steps: list[Event],
    verdicts: list[Event],
    dead_letters: list[dict[str, Any]],
) -> Iterator[dict[str, Any]]:
    """The ledger of a replay, from every event it observed (duplicates included)."""
    linked: set[str] = set()
    for event in submitted:
        yield {"fact": "submitted", "case": event.case_id}
        unit = getattr(event.payload, "unit_code", None)
        if unit and any(s.effect == "account" for s in catalog.matter(event.matter).steps):
            linked.add(unit)
    seen: set[str] = set()
    for event in verdicts:
        if str(event.event_id) in seen:
            continue  # the same verdict delivered twice (at least once): one outcome
        seen.add(str(event.event_id))
        outcome = "completed" if event.type == "case.completed" else "rejected"
        yield {
            "fact": "terminal",
            "case": event.case_id,
            "outcome": outcome,
            "id": str(event.event_id),
        }
    keepers = Keepers()
    applied: set[str] = set()
    # in the order the services decided (emission), not by sim time: a late arrival that
    # a clerk pool backfilled can complete earlier in sim time than work decided before it
    for event in sorted(steps, key=lambda e: (e.emitted_at, e.occurred_at)):
        payload = event.payload
        if not isinstance(payload, StepCompleted) or str(event.event_id) in applied:
            continue
        applied.add(str(event.event_id))
        if payload.outcome == "done":
            yield {
                "fact": "step",
                "case": event.case_id,
                "step": payload.step,
                "attempt": payload.attempt,
                "id": str(event.event_id),
            }
        unit = payload.unit_code
        if unit is None:
            continue
        matter = catalog.matter(event.matter)
        effect = next((s.effect for s in matter.steps if s.id == payload.step), None)
        subject = Subject(event.case_id, unit, payload.owner)
        if payload.outcome == "done" and effect is not None:
            keepers.apply(effect, payload.department, subject)
        elif payload.outcome in ("rejected", "released"):
            keepers.release("property", subject)
    holders = {u: {k: str(v) for k, v in h.items()} for u, h in keepers.holders().items()}
    yield from _state_facts(keepers.register, holders, keepers.cleared(), linked)
    for letter in dead_letters:
        yield {"fact": "dead_letter", **letter}


# -- the audit ---------------------------------------------------------------------------


@dataclass
class AuditReport:
    cases: int = 0
    terminal: int = 0
    lost: int = 0
    duplicates: int = 0
    mismatched_units: int = 0
    locked_units: int = 0
    uncleared_transfers: int = 0
    dead_letters: int = 0
    units: int = 0
    lost_cases: list[str] = field(default_factory=list)
    duplicate_keys: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    locked: list[str] = field(default_factory=list)
    uncleared: list[str] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicates
            or self.mismatched_units
            or self.locked_units
            or self.uncleared_transfers
        )

    def counts(self) -> dict[str, int]:
        keys = (
            "cases",
            "lost",
            "duplicates",
            "mismatched_units",
            "locked_units",
            "uncleared_transfers",
            "dead_letters",
        )
        return {k: getattr(self, k) for k in keys}


@dataclass
class _Facts:
    """A ledger's facts, gathered for the audit."""

    submitted: set[str] = field(default_factory=set)
    terminal: Counter[str] = field(default_factory=Counter)
    attempts: dict[str, set[str]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    holders: dict[str, dict[str, str]] = field(default_factory=lambda: {u: {} for u in UTILITIES})
    linked: set[str] = field(default_factory=set)  # units whose accounts must follow
    locked: list[str] = field(default_factory=list)
    transferred: dict[str, str] = field(default_factory=dict)  # unit -> registering case
    cleared: set[tuple[str, str]] = field(default_factory=set)  # (unit, case): tax paid
    letters: list[dict[str, Any]] = field(default_factory=list)

    def take(self, fact: Mapping[str, Any]) -> None:
        kind = fact["fact"]
        if kind == "submitted":
            self.submitted.add(fact["case"])
        elif kind == "terminal":
            self.terminal[fact["case"]] += 1
        elif kind == "step":
            key = f"{fact['case']}/{fact['step']}/{fact['attempt']}"
            self.attempts.setdefault(key, set()).add(str(fact["id"]))
        elif kind == "unit":
            self._unit(fact)
        elif kind == "cleared":
            self.cleared.add((fact["unit"], fact["case"]))
        elif kind == "holder":
            self.holders[fact["utility"]][fact["unit"]] = fact["holder"]
        elif kind == "dead_letter":
            self.letters.append(dict(fact))
        else:
            raise ValueError(f"unknown ledger fact {kind!r}")

    def _unit(self, fact: Mapping[str, Any]) -> None:
        unit = fact["unit"]
        self.owners[unit] = fact["owner"]
        if fact.get("linked"):
            self.linked.add(unit)
        if fact.get("locked_by"):
            self.locked.append(f"{unit} locked by {fact['locked_by']}")
        if fact.get("transferred_by"):
            self.transferred[unit] = fact["transferred_by"]


def audit(ledger: Iterable[Mapping[str, Any]]) -> AuditReport:
    """Check a run's ledger (one JSON object per line; the facts are listed above).

    * every submitted case has exactly one terminal outcome (``lost``: none;
      ``duplicates``: more than one, or one step attempt completed under two ids);
    * every unit a linked transfer touched (``linked``) or a utility transferred has the
      register owner as its holder at each utility (``mismatched_units``);
    * no unit is locked (``locked_units``);
    * no unit was registered to a new owner without that transfer's deed tax cleared —
      the saga's pivot (``uncleared_transfers``).
    """
    facts = _Facts()
    for fact in ledger:
        facts.take(fact)
    report = AuditReport(locked=facts.locked, letters=facts.letters)
    submitted, terminal = facts.submitted, facts.terminal
    report.cases = len(submitted)
    report.terminal = sum(1 for c in submitted if terminal[c] >= 1)
    report.lost_cases = sorted(c for c in submitted if terminal[c] == 0)
    report.lost = len(report.lost_cases)
    report.duplicate_keys = sorted(
        [f"{c} has {n} terminal outcomes" for c, n in terminal.items() if n > 1]
        + [
            f"{k} completed under {len(ids)} ids"
            for k, ids in facts.attempts.items()
            if len(ids) > 1
        ]
    )
    report.duplicates = len(report.duplicate_keys)
    held = {u for by_unit in facts.holders.values() for u in by_unit}
    report.units = len(set(facts.owners) | held)
    for code in sorted(facts.linked | held):
        owner = facts.owners.get(code, original_owner(code))
        for utility in UTILITIES:
            holder = facts.holders[utility].get(code, original_owner(code))
            if holder != owner:
                report.mismatches.append(f"{code}: owner {owner}, {utility} holder {holder}")
    report.mismatched_units = len({m.split(":")[0] for m in report.mismatches})
    report.locked_units = len(report.locked)
    report.uncleared = sorted(
        f"{unit} registered by {case} without its deed tax cleared"
        for unit, case in facts.transferred.items()
        if (unit, case) not in facts.cleared
    )
    report.uncleared_transfers = len(report.uncleared)
    report.dead_letters = len(report.letters)
    return report
