"""A department's state: one table, units of work that land whole (services/runtime/state).

The crash model: the broker keeps a *prefix* of the writes a worker sent to one
changelog partition (the producer keeps their order within it).  For every prefix, the
table recovered from it and its journals replayed must hold the unit entirely or not at
all.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.runtime.state import DepartmentState, StateSlice


class Changelog(MutableMapping[str, Any]):
    """A dict that records every write in order, as a changelog partition would."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(data or {})
        self.log: list[tuple[str, Any]] = []

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.log.append((key, value))

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.log.append((key, None))

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def recovered(before: dict[str, Any], log: list[tuple[str, Any]]) -> dict[str, Any]:
    """The table a worker recovers from ``before`` and a prefix ``log`` of the changelog,
    after it replayed the journals."""
    table = Changelog(before)
    for key, value in log:
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
    DepartmentState(table).replay_journals()
    return table.data


def slices(state: DepartmentState) -> tuple[StateSlice, StateSlice]:
    return state.slice("cases"), state.slice("pending")


def test_an_input_handled_lands_whole_at_every_crash_point():
    """The lost case of the embedded broker: the record that says "event seen" must
    never be durable without the action the event planned."""
    before = {"xinzhou|cases|c1": {"seen": ["e0"]}, "xinzhou|pending|c1/review/0/arrive": {"at": 1}}
    table = Changelog(before)
    state = DepartmentState(table)
    cases, pending = slices(state)
    with state.atomic("xinzhou"):
        pending["xinzhou|c1/register/0/arrive"] = {"at": 2}
        pending.pop("xinzhou|c1/review/0/arrive")
        cases["xinzhou|c1"] = {"seen": ["e0", "e1"]}
    after = dict(table.data)
    assert after != before
    assert len(table.log) == 5  # journal, three writes, the journal's deletion
    outcomes = [recovered(before, table.log[:n]) for n in range(len(table.log) + 1)]
    assert all(o in (before, after) for o in outcomes), outcomes
    assert outcomes[0] == before and outcomes[-1] == after
    assert outcomes[1] == after  # the journal alone is enough: replayed on recovery


@given(
    st.dictionaries(
        st.sampled_from(
            [f"{c}|{k}|{i}" for c in ("a", "b") for k in ("cases", "pools") for i in range(3)]
        ),
        st.integers(0, 5),
        max_size=6,
    ),
    st.lists(
        st.tuples(
            st.sampled_from(["cases", "pools"]),
            st.integers(0, 3),
            st.one_of(st.none(), st.integers(0, 5)),
        ),
        max_size=8,
    ),
)
def test_any_unit_is_all_or_nothing_after_any_prefix(before, writes):
    table = Changelog(before)
    state = DepartmentState(table)
    with state.atomic("a"):
        for kind, i, value in writes:
            view = state.slice(kind)
            if value is None:
                view.pop(f"a|{i}")
            else:
                view[f"a|{i}"] = value
    after = dict(table.data)
    for n in range(len(table.log) + 1):
        assert recovered(before, table.log[:n]) in (before, after)


def test_reads_in_a_unit_see_its_own_writes_and_nothing_lands_before_it_ends():
    table = Changelog()
    state = DepartmentState(table)
    cases, pending = slices(state)
    with state.atomic("xinzhou"):
        pending["xinzhou|k1"] = {"at": 1}
        assert pending.get("xinzhou|k1") == {"at": 1}
        assert list(pending) == ["xinzhou|k1"] and len(pending) == 1
        assert table.log == []
        del pending["xinzhou|k1"]
        assert "xinzhou|k1" not in pending
        cases["xinzhou|c"] = {"seen": []}
    assert table.data == {"xinzhou|cases|c": {"seen": []}}
    assert len(table.log) == 1  # one write: no journal needed


def test_a_unit_that_raises_writes_nothing():
    table = Changelog({"xinzhou|cases|c": 1})
    state = DepartmentState(table)
    cases, _ = slices(state)
    with pytest.raises(ZeroDivisionError), state.atomic("xinzhou"):
        cases["xinzhou|c"] = 2
        cases["xinzhou|d"] = 3
        _ = 1 / 0
    assert table.data == {"xinzhou|cases|c": 1} and table.log == []
    assert state.open == {}  # the next unit may start


def test_a_rollback_forgets_only_the_writes_since_the_savepoint():
    """A batch's events share one unit; one that fails leaves nothing of itself."""
    table = Changelog({"xinzhou|cases|c": 1, "xinzhou|pending|p": {"at": 1}})
    state = DepartmentState(table)
    cases, pending = slices(state)
    with state.atomic("xinzhou"):
        state.savepoint("xinzhou")
        cases["xinzhou|c"] = 2  # the first event: kept
        state.savepoint("xinzhou")
        cases["xinzhou|c"] = 3  # the second event, which fails
        cases["xinzhou|d"] = 4
        del pending["xinzhou|p"]
        state.rollback("xinzhou")
        assert cases.get("xinzhou|c") == 2 and cases.get("xinzhou|d") is None
        assert pending.get("xinzhou|p") == {"at": 1}
        state.savepoint("xinzhou")
        cases["xinzhou|e"] = 5  # the third event: kept
    assert table.data == {
        "xinzhou|cases|c": 2,
        "xinzhou|pending|p": {"at": 1},
        "xinzhou|cases|e": 5,
    }
    with pytest.raises(RuntimeError, match="no unit"):
        state.savepoint("xinzhou")


def test_journals_are_replayed_only_for_owned_counties():
    journal = [["a|cases|1", 7], ["a|pending|x", None]]
    table = Changelog(
        {"a|~journal|": journal, "a|pending|x": {"at": 1}, "b|~journal|": [["b|cases|1", 8]]}
    )
    state = DepartmentState(table)
    assert state.replay_journals(lambda county: county == "a") == 1
    assert table.data == {"a|cases|1": 7, "b|~journal|": [["b|cases|1", 8]]}


def test_kinds_are_kept_apart_and_keys_name_their_county():
    state = DepartmentState(Changelog())
    cases, pending = slices(state)
    cases["a|1"] = "case"
    pending["a|1"] = "action"
    assert cases["a|1"] == "case" and pending["a|1"] == "action"
    assert list(cases) == ["a|1"] and list(pending) == ["a|1"]
    with pytest.raises(KeyError, match="county"):
        cases["no-county"] = 1
    with pytest.raises(ValueError):
        state.slice("~journal")
    with pytest.raises(RuntimeError), state.atomic("a"), state.atomic("a"):
        pass
