"""A department's per-case record: concurrent writers merge without losing anything."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.core.department import CaseRecord

ids = st.lists(st.sampled_from(["e1", "e2", "e3", "e4"]), unique=True, max_size=4)
joins = st.dictionaries(
    st.sampled_from(["register", "review"]),
    st.dictionaries(st.sampled_from(["accept", "tax"]), st.floats(0, 1e9), max_size=2),
    max_size=2,
)
records = st.builds(
    CaseRecord,
    seen=ids,
    joins=joins,
    enabled=st.lists(st.sampled_from(["a/0", "a/1", "b/0"]), unique=True, max_size=3),
    rejected=st.booleans(),
)


@given(records, records)
def test_a_merge_keeps_what_either_writer_knew(a, b):
    merged = a.merged(b)
    assert set(merged.seen) == set(a.seen) | set(b.seen)
    assert set(merged.enabled) == set(a.enabled) | set(b.enabled)
    assert merged.rejected == (a.rejected or b.rejected)
    for record in (a, b):
        for step, preds in record.joins.items():
            assert set(preds) <= set(merged.joins[step])
    assert len(merged.seen) == len(set(merged.seen))  # no id twice


def test_the_timer_and_the_inputs_agent_both_count():
    before = CaseRecord(seen=["submitted"])
    by_agent = CaseRecord(seen=["submitted", "tax-done"], joins={"register": {"tax": 5.0}})
    by_timer = CaseRecord(seen=["submitted"], enabled=["accept/0", "accept/1"])
    merged = by_agent.merged(by_timer)
    assert merged.joins == {"register": {"tax": 5.0}}
    assert merged.enabled == ["accept/0", "accept/1"]
    assert merged.seen == ["submitted", "tax-done"]
    assert before.merged(before) == before
