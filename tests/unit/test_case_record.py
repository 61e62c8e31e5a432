"""A department's per-case record: concurrent writers merge without losing anything."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.core.department import CaseRecord

ids = st.lists(st.sampled_from(["e1", "e2", "e3", "e4"]), unique=True, max_size=4)
done = st.dictionaries(st.sampled_from(["accept", "review", "tax"]), st.floats(0, 1e9), max_size=3)
records = st.builds(CaseRecord, seen=ids, done=done, rejected=st.booleans())


@given(records, records)
def test_a_merge_keeps_what_either_writer_knew(a, b):
    merged = a.merged(b)
    assert set(merged.seen) == set(a.seen) | set(b.seen)
    assert set(merged.done) == set(a.done) | set(b.done)
    assert merged.rejected == (a.rejected or b.rejected)
    assert len(merged.seen) == len(set(merged.seen))  # no id twice


def test_the_timer_and_the_inputs_agent_both_count():
    before = CaseRecord(seen=["submitted"])
    by_agent = CaseRecord(seen=["submitted", "tax-done"], done={"tax": 5.0})
    by_timer = CaseRecord(seen=["submitted"], done={"accept": 2.0})
    merged = by_agent.merged(by_timer)
    assert merged.done == {"tax": 5.0, "accept": 2.0}
    assert merged.seen == ["submitted", "tax-done"]
    assert before.merged(before) == before
