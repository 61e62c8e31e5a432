"""A run's ledger (``ledger.jsonl``): the facts ``govflow verify`` audits.

One JSON object per line, ``fact`` =

* ``submitted`` ``{case}`` — every case the run submitted;
* ``terminal`` ``{case, outcome, id}`` — every terminal outcome observed (a case with
  two is a duplicate; one with none is lost);
* ``step`` ``{case, step, attempt, id}`` — every completed step attempt (one attempt
  under two event ids is a completion counted twice);
* ``unit`` ``{unit, owner, locked_by, linked}`` — the property register at the end;
* ``holder`` ``{utility, unit, holder}`` — each utility's account holders at the end;
* ``dead_letter`` ``{reason, field, topic, partition, offset}`` — every dead letter.

A simulation writes it from its end state (replication 0, beside ``events.csv``); a
replay from the events it observed: the register and the accounts are rebuilt by
applying the published facts (``property.*``, ``utility.transferred``) with the same
rules the services use (:mod:`services.core.saga`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from services.core.catalog import Catalog
from services.core.errors import InputError
from services.core.events import Event, StepCompleted
from services.core.saga import UnitRegister, UtilityAccounts
from simulator.demand import case_id
from simulator.engine import Replication

FACTS = ("submitted", "terminal", "step", "unit", "holder", "dead_letter")


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
    for i in np.flatnonzero(np.isin(cols["matter"], list(register_matters))).tolist():
        matter = rep.matters[cols["matter"][i]]
        step = rep.outcomes[matter].matter.steps[cols["step"][i]].id
        attempt = int(cols["attempt"][i])
        case = case_id(matter, int(cols["seq"][i]))
        yield {"fact": "step", "case": case, "step": step, "attempt": attempt, "id": f"{i}"}
    yield from _state_facts(UnitRegister(rep.register), rep.accounts, rep.linked_units)


def _state_facts(
    register: UnitRegister, accounts: dict[str, dict[str, str]], linked: set[str]
) -> Iterator[dict[str, Any]]:
    for code, state in sorted(register.units.items()):
        yield {
            "fact": "unit",
            "unit": code,
            "owner": state.owner,
            "locked_by": state.locked_by,
            "linked": code in linked,
        }
    for utility, holders in sorted(accounts.items()):
        for code, holder in sorted(holders.items()):
            yield {"fact": "holder", "utility": utility, "unit": code, "holder": holder}


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
    register, accounts = UnitRegister(), {}
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
        if payload.outcome == "done" and effect == "account":
            accounts.setdefault(payload.department, UtilityAccounts()).transfer(
                unit, payload.owner or ""
            )
        elif payload.outcome == "done" and effect is not None:
            register.apply(effect, unit, event.case_id, payload.owner)
        elif payload.outcome in ("rejected", "released"):
            register.release(unit, event.case_id)
    yield from _state_facts(register, {u: a.holders for u, a in accounts.items()}, linked)
    for letter in dead_letters:
        yield {"fact": "dead_letter", **letter}
