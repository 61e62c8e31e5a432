"""A department's clock: its planned work, the due work of each county, and the unit of
work that publishes before it records.

* :class:`Schedule` — the pending actions.  The changelog-backed ``pending`` table is
  the truth (a crash loses nothing: the table is restored); a heap per county in memory
  says what falls due when, rebuilt from the table once its recovery is complete.
* :class:`CountyTick` — one county's due actions, in time order, through the rules
  (:class:`~services.core.department.DepartmentRules`).  A follow-up that falls due in the
  same tick is executed at once instead of being stored and deleted again.  An action
  that raises is dead-lettered with the reason and dropped: the county goes on.
* :class:`UnitOfWork` — what a tick did: the events to publish, the dead letters, and
  ``commit`` — the table writes that record the work as done, applied only after the
  broker has acknowledged the events.  A crash in between re-executes the actions after
  the restart, which republishes the same event ids (dropped by every reader): nothing
  is lost, nothing counted twice.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from services.core.department import Action, CaseRecord, DepartmentRules
from services.core.events import Event
from services.core.walk import NO_EFFECTS, Effects
from services.runtime.app import county_partition
from services.runtime.deadletter import DeadLetter
from services.runtime.state import DepartmentState
from services.runtime.topology import Keeping

log = logging.getLogger(__name__)


class Schedule:
    """Planned work: the ``pending`` table and, per county, a heap of (due, key).

    The heaps are a cache of the table.  They are rebuilt (:meth:`rebuild`) once the
    table's recovery from its changelog is complete — never from a table half restored,
    whose later changelog records would resurrect or hide entries — and ``synced`` is
    False from the start of a rebalance until then: the clock does not tick meanwhile.
    """

    def __init__(self, pending: MutableMapping[str, Any]) -> None:
        self.pending = pending
        self.heaps: dict[str, list[tuple[float, str]]] = {}
        self.heaped: set[str] = set()  # the pending keys that have an entry in the heaps
        self.synced = False  # the heaps hold every entry of the (recovered) table
        self.by_case: dict[str, set[str]] = {}  # "<county>|<case>" -> its pending keys

    @staticmethod
    def case_of(key: str) -> str:
        """``"<county>|<case>"`` of a pending key ``"<county>|<case>/<step>/<n>/<kind>"``."""
        return key.rsplit("/", 3)[0]

    def has_pending(self, case_key: str) -> bool:
        """Whether any work of the case is still planned (read through the table)."""
        keys = self.by_case.get(case_key)
        if not keys:
            return False
        keys.intersection_update({k for k in keys if self.pending.get(k) is not None})
        if not keys:
            del self.by_case[case_key]
            return False
        return True

    def _index(self, key: str) -> None:
        self.by_case.setdefault(self.case_of(key), set()).add(key)

    def drop(self, key: str) -> None:
        """An executed (or dropped) action leaves the table and the case's index."""
        self.pending.pop(key, None)
        case_key = self.case_of(key)
        keys = self.by_case.get(case_key)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.by_case[case_key]

    def plan(self, action: Action) -> None:
        key = f"{action.county}|{action.key}"
        self.pending[key] = action.to_dict()
        self._index(key)
        if key not in self.heaped:  # a replanned action (a redelivered event) is one entry
            self.heaped.add(key)
            heapq.heappush(self.heaps.setdefault(action.county, []), (action.at, key))

    def rebuild(self, owned: Callable[[str], bool] = lambda county: True) -> None:
        """The heaps from the table: every entry of the counties this worker ``owned``."""
        self.heaps, self.heaped, self.by_case = {}, set(), {}
        for key, data in list(self.pending.items()):
            if data is not None and owned(data["county"]):
                self.heaped.add(key)
                self._index(key)
                heapq.heappush(self.heaps.setdefault(data["county"], []), (data["at"], key))
        self.synced = True

    def forget(self, county: str) -> None:
        """Rebuild one county's heap from the table (its tick failed midway: the entries
        it took are still in the table and will be executed again)."""
        prefix = f"{county}|"
        self.heaped = {k for k in self.heaped if not k.startswith(prefix)}
        heap: list[tuple[float, str]] = []
        for key, data in list(self.pending.items()):
            if data is not None and key.startswith(prefix):
                self.heaped.add(key)
                self._index(key)
                heap.append((data["at"], key))
        heapq.heapify(heap)
        self.heaps[county] = heap

    def due_counties(self, horizon: float) -> list[str]:
        return [c for c, heap in self.heaps.items() if heap and heap[0][0] <= horizon]

    def backlog(self) -> dict[str, int]:
        """Planned actions per county (the queue)."""
        return {county: len(heap) for county, heap in self.heaps.items()}


class TableView(MutableMapping[str, Any]):
    """A county's slice of a table as the mapping a pure rules object expects (the
    property register's units, a utility's holders): reads on demand, writes back once
    a tick."""

    def __init__(self, table: Any, prefix: str, decode: Callable[[Any], Any]) -> None:
        self.table, self.prefix, self.decode = table, prefix, decode
        self.read: dict[str, Any] = {}
        self.deleted: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        if key in self.deleted:
            raise KeyError(key)
        if key not in self.read:
            stored = self.table.get(self.prefix + key)
            if stored is None:
                raise KeyError(key)
            self.read[key] = self.decode(stored)
        return self.read[key]

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __setitem__(self, key: str, value: Any) -> None:
        self.deleted.discard(key)
        self.read[key] = value

    def __delitem__(self, key: str) -> None:  # written back with the rest, not now
        self.read.pop(key, None)
        self.deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.read)

    def __len__(self) -> int:
        return len(self.read)

    def write_back(self, encode: Callable[[Any], Any]) -> None:
        for key in self.deleted:
            self.table.pop(self.prefix + key, None)
        for key, value in self.read.items():
            data = encode(value)
            if self.table.get(self.prefix + key) != data:
                self.table[self.prefix + key] = data


@dataclass
class UnitOfWork:
    """One county's tick: publish ``events`` and ``letters``, then ``commit``."""

    events: list[Event] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    commit: Callable[[], None] = lambda: None
    executed: int = 0


@dataclass
class Tables:
    """The tables a department's tick reads and writes."""

    state: DepartmentState  # whose units of work land whole
    cases: MutableMapping[str, Any]
    pools: MutableMapping[str, Any] | None
    kept: MutableMapping[str, Any] | None = None  # the keeper's state (Keeping.table)


class CountyTick:
    """One county's due work in one tick: :meth:`run` executes every action due by the
    horizon, in time order; nothing is written to a table until its unit of work is
    committed.  The caller holds the county's lock from :meth:`run` to the commit, so no
    event of the county is handled in between (a join would see neither completion)."""

    def __init__(
        self,
        *,
        service: str,
        rules: DepartmentRules,
        schedule: Schedule,
        tables: Tables,
        keeping: Keeping | None,
        county: str,
        run_id: str,
        observe: Callable[[float], None],
    ) -> None:
        self.service, self.rules, self.schedule, self.tables = service, rules, schedule, tables
        self.keeping, self.county, self.observe = keeping, county, observe
        self.heap = schedule.heaps.get(county, [])
        self.pool_key = f"{county}|{run_id}"  # a run's own clerks
        stored = tables.pools.get(self.pool_key) if tables.pools is not None else None
        self.pool = rules.pool(county, stored)
        self.view: TableView | None = None
        self.effects: Effects = NO_EFFECTS
        if keeping is not None and tables.kept is not None:
            self.view = TableView(tables.kept, f"{county}|{run_id}|", keeping.decode)
            self.effects = keeping.keeper(self.view)
        self.records: dict[str, tuple[CaseRecord, dict[str, Any]]] = {}  # now, as read
        self.matters: dict[str, str] = {}  # case key -> its matter
        self.in_memory: list[tuple[float, int, Action]] = []  # follow-ups due in this tick
        self.order = 0
        self.taken: list[str] = []  # pending entries executed (or dropped) in this tick
        self.later: list[Action] = []  # follow-ups for later ticks
        self.work = UnitOfWork()

    def run(self, horizon: float) -> UnitOfWork:
        while (action := self._next(horizon)) is not None:
            self._execute(action, horizon)
        self.work.commit = self._commit
        return self.work

    def _next(self, horizon: float) -> Action | None:
        """The next action due by ``horizon``: a follow-up of this tick or a stored one."""
        heap, in_memory = self.heap, self.in_memory
        while True:
            stored_due = bool(heap) and heap[0][0] <= horizon
            if not stored_due and not in_memory:
                return None
            if in_memory and (not stored_due or in_memory[0][0] <= heap[0][0]):
                return heapq.heappop(in_memory)[2]
            _, key = heapq.heappop(heap)
            self.schedule.heaped.discard(key)
            data = self.schedule.pending.get(key)
            if data is None or key in self.taken:  # executed already (a duplicate entry)
                continue
            self.taken.append(key)
            try:
                return Action.from_dict(data)
            except (TypeError, ValueError) as exc:
                self.work.letters.append(_letter(self.service, self.county, key, data, exc))

    def _record(self, case_id: str) -> CaseRecord:
        case_key = f"{self.county}|{case_id}"
        if case_key not in self.records:
            read = self.tables.cases.get(case_key)
            self.records[case_key] = (CaseRecord.from_dict(read), read or {})
        return self.records[case_key][0]

    def _execute(self, action: Action, horizon: float) -> None:
        record = self._record(action.case_id)
        self.matters[f"{self.county}|{action.case_id}"] = action.matter
        started = time.perf_counter()
        try:
            follow, event = self.rules.execute(action, self.pool, record, self.effects)
        except Exception as exc:  # an action may not wedge its county: park it
            log.exception("action %s of %s failed; dead-lettered", action.key, self.county)
            letter = _letter(self.service, self.county, action.key, action.to_dict(), exc)
            self.work.letters.append(letter)
            return
        self.observe(time.perf_counter() - started)
        self.work.executed += 1
        for nxt in follow:
            if nxt.at <= horizon:
                self.order += 1
                heapq.heappush(self.in_memory, (nxt.at, self.order, nxt))
            else:
                self.later.append(nxt)
        if event is not None:
            self.work.events.append(event)

    def _commit(self) -> None:
        """Record the tick's work (after its events are delivered) as one unit of work."""
        with self.tables.state.atomic(self.county):
            self._record_work()

    def _record_work(self) -> None:
        tables = self.tables
        for nxt in self.later:
            self.schedule.plan(nxt)
        for key in self.taken:
            self.schedule.drop(key)
        wall = time.time()
        for case_key, (record, read) in self.records.items():
            matter = self.matters[case_key]
            close_case(self.rules, self.schedule, case_key, matter, record, wall)
            now = record.to_dict()
            if now == read:
                continue
            tables.cases[case_key] = now  # nobody wrote it since: the county was locked
        if self.work.executed and tables.pools is not None:
            tables.pools[self.pool_key] = self.pool.snapshot()
        if self.view is not None and self.keeping is not None:
            self.view.write_back(self.keeping.encode)


def close_case(
    rules: DepartmentRules,
    schedule: Schedule,
    case_key: str,
    matter: str,
    record: CaseRecord,
    wall: float,
) -> None:
    """Close a case the department is done with and none of whose work is planned (its
    record becomes a marker, :mod:`services.core.closing`)."""
    if (
        record.closed is None
        and rules.finished(matter, record)
        and not schedule.has_pending(case_key)
    ):
        record.close(wall)


def _letter(service: str, county: str, key: str, data: Any, exc: BaseException) -> DeadLetter:
    import json

    return DeadLetter.of(
        service,
        f"action could not be executed: {exc!r}",
        f"pending[{key}]",
        f"{service}.pending",
        county_partition(county),
        -1,
        json.dumps(data, ensure_ascii=False, default=str).encode(),
    )
