"""A department's state: one changelog-backed table, and units of work that land whole.

A department keeps several kinds of state — the cases it has heard of, its planned work
(``pending``), its clerk pools, the state its effects change (the register, account
holders).  They used to be separate Faust tables, each with its own changelog topic.
The producer keeps the order of writes only *within* a topic-partition, so after a
crash a unit of work could be durable in part: the case record that says "this event is
handled" without the action it planned, or a tick's results without the deletion of
the actions it executed.  Seen on the embedded broker (one record per batch, a full
producer buffer at the kill): the redelivered event was dropped as seen, and its case
was never finished.

Here every kind lives in **one** table (:class:`DepartmentState`), keyed
``"<county>|<kind>|<rest>"``, so a county's whole state is in one changelog
topic-partition, written in order.  A unit of work (:meth:`DepartmentState.atomic`) is
written as a **redo journal**: first one record that holds every write of the unit,
then the writes, then the journal's deletion.  Any prefix of that sequence that the
broker kept is either nothing of the unit (it is redone: the input is redelivered, the
tick re-executes its actions), or contains the journal, which
:meth:`DepartmentState.replay_journals` applies again when the table is recovered — so
the unit is there entirely or not at all, on any broker.

:class:`StateSlice` is one kind's view (keys ``"<county>|<rest>"``), the mapping the
schedule and the tick already use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

JOURNAL = "~journal"  # the kind of a county's redo journal entry


class _Deleted:
    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()
_UNWRITTEN: Any = object()  # a key the open unit had not written before its savepoint


def state_key(county: str, kind: str, rest: str) -> str:
    return f"{county}|{kind}|{rest}"


def split_key(key: str) -> tuple[str, str, str] | None:
    """``(county, kind, rest)`` of a state key, or None if it is not one."""
    county, sep, tail = key.partition("|")
    kind, sep2, rest = tail.partition("|")
    if not (sep and sep2):
        return None
    return county, kind, rest


class DepartmentState:
    """Every kind of a department's state in one table (see the module doc)."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self.open: dict[str, dict[str, Any]] = {}  # county -> its unit's buffered writes
        self.undo: dict[str, dict[str, Any]] = {}  # county -> writes since its savepoint
        self.journals_replayed = 0

    def slice(self, kind: str) -> StateSlice:
        if "|" in kind or kind == JOURNAL:
            raise ValueError(f"not a state kind: {kind!r}")
        return StateSlice(self, kind)

    # -- reads and writes (through a unit of work when one is open) -------------------------

    def get(self, key: str) -> Any:
        county = key.partition("|")[0]
        buffered = self.open.get(county)
        if buffered is not None and key in buffered:
            value = buffered[key]
            return None if value is DELETED else value
        return self.table.get(key)

    def set(self, key: str, value: Any) -> None:
        county = key.partition("|")[0]
        buffered = self.open.get(county)
        if buffered is not None:
            self._buffer(buffered, county, key, value)
        else:
            self.table[key] = value

    def delete(self, key: str) -> None:
        county = key.partition("|")[0]
        buffered = self.open.get(county)
        if buffered is not None:
            self._buffer(buffered, county, key, DELETED)
        else:
            self.table.pop(key, None)

    def keys_of(self, kind: str) -> Iterator[str]:
        """Every stored key of ``kind`` (a unit's buffered writes included)."""
        seen: set[str] = set()
        for buffered in self.open.values():
            for key, value in buffered.items():
                parts = split_key(key)
                if parts and parts[1] == kind and value is not DELETED:
                    seen.add(key)
                    yield key
        for key in list(self.table.keys()):
            parts = split_key(str(key))
            if parts and parts[1] == kind and key not in seen and self.get(key) is not None:
                yield key

    # -- units of work ------------------------------------------------------------------

    @contextmanager
    def atomic(self, county: str) -> Iterator[None]:
        """Buffer every write to ``county``'s state in the block; on a normal exit write
        them as one unit (journal, writes, journal deleted); on an exception, none."""
        if county in self.open:
            raise RuntimeError(f"a unit of work of {county} is open already")
        buffered: dict[str, Any] = {}
        self.open[county] = buffered
        try:
            yield
        finally:
            del self.open[county]
            self.undo.pop(county, None)
        self._write_unit(county, buffered)

    def savepoint(self, county: str) -> None:
        """Mark the open unit's writes so far: :meth:`rollback` forgets the later ones."""
        if county not in self.open:
            raise RuntimeError(f"no unit of work of {county} is open")
        self.undo[county] = {}

    def rollback(self, county: str) -> None:
        """Forget the open unit's writes made since its last :meth:`savepoint`."""
        buffered, undo = self.open[county], self.undo.get(county) or {}
        for key, before in undo.items():
            if before is _UNWRITTEN:
                buffered.pop(key, None)
            else:
                buffered[key] = before
        self.undo[county] = {}

    def _buffer(self, buffered: dict[str, Any], county: str, key: str, value: Any) -> None:
        undo = self.undo.get(county)
        if undo is not None and key not in undo:
            undo[key] = buffered.get(key, _UNWRITTEN)
        buffered[key] = value

    def _write_unit(self, county: str, writes: dict[str, Any]) -> None:
        changed = {k: v for k, v in writes.items() if self.table.get(k) != _stored(v)}
        if not changed:
            return
        if len(changed) == 1:  # one record is atomic by itself
            self._apply(changed)
            return
        journal = state_key(county, JOURNAL, "")
        self.table[journal] = [[k, _stored(v)] for k, v in changed.items()]
        self._apply(changed)
        self.table.pop(journal, None)

    def _apply(self, writes: dict[str, Any]) -> None:
        for key, value in writes.items():
            if value is DELETED or value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value

    def replay_journals(self, owned: Callable[[str], bool] = lambda county: True) -> int:
        """After recovery: finish every unit whose journal the changelog kept (the crash
        came between the journal and its deletion).  Returns how many were replayed."""
        replayed = 0
        for key in list(self.table.keys()):
            parts = split_key(str(key))
            if parts is None or parts[1] != JOURNAL or not owned(parts[0]):
                continue
            entries = self.table.get(key)
            if entries:
                self._apply({k: (DELETED if v is None else v) for k, v in entries})
                replayed += 1
            self.table.pop(key, None)
        self.journals_replayed += replayed
        return replayed


def _stored(value: Any) -> Any:
    return None if value is DELETED else value


class StateSlice(MutableMapping[str, Any]):
    """One kind of a department's state, keyed ``"<county>|<rest>"`` as before."""

    def __init__(self, state: DepartmentState, kind: str) -> None:
        self.state, self.kind = state, kind

    def _key(self, key: str) -> str:
        county, sep, rest = key.partition("|")
        if not sep:
            raise KeyError(f"state keys start with their county: {key!r}")
        return state_key(county, self.kind, rest)

    def __getitem__(self, key: str) -> Any:
        value = self.state.get(self._key(key))
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.state.get(self._key(key))
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.state.set(self._key(key), value)

    def __delitem__(self, key: str) -> None:
        if self.get(key) is None:
            raise KeyError(key)
        self.state.delete(self._key(key))

    def pop(self, key: str, default: Any = None) -> Any:
        value = self.get(key)
        if value is None:
            return default
        self.state.delete(self._key(key))
        return value

    def __iter__(self) -> Iterator[str]:
        for key in self.state.keys_of(self.kind):
            county, _, rest = split_key(key)  # type: ignore[misc]
            yield f"{county}|{rest}"

    def __len__(self) -> int:
        return sum(1 for _ in self.state.keys_of(self.kind))

    # the Faust table behind it, for what concerns the whole table (its changelog, recovery)
    @property
    def changelog_topic(self) -> Any:
        return self.state.table.changelog_topic  # type: ignore[attr-defined]

    def on_recover(self, callback: Any) -> Any:
        return self.state.table.on_recover(callback)  # type: ignore[attr-defined]
