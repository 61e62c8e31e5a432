"""The clerk pool: FIFO for arrivals in order, backfilling for late ones."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.clerks import Assignment, ClerkPool

HOUR = 3_600_000_000

jobs = st.lists(
    st.tuples(st.integers(0, 200 * HOUR), st.integers(0, 5 * HOUR)), min_size=1, max_size=60
)


def schedule(pool: ClerkPool, work: list[tuple[int, int]]) -> list[Assignment]:
    return [pool.assign(arrival, length) for arrival, length in work]


@given(jobs, st.integers(1, 4))
def test_in_order_arrivals_are_served_exactly_fifo(work, clerks):
    ordered = sorted(work)
    fifo = schedule(ClerkPool(clerks), ordered)
    backfilling = ClerkPool(clerks, backfill=1000 * HOUR)
    assert schedule(backfilling, ordered) == fifo
    assert backfilling.backfilled == 0


@given(jobs, st.integers(1, 4), st.randoms(use_true_random=False))
def test_any_order_never_double_books_a_clerk(work, clerks, random):
    random.shuffle(work)
    pool = ClerkPool(clerks, backfill=1000 * HOUR)
    given_out = schedule(pool, work)
    for (arrival, length), got in zip(work, given_out, strict=True):
        assert got.start >= arrival and got.done - got.start == length
    for clerk in range(clerks):
        spans = sorted(
            (g.start, g.done) for g in given_out if g.clerk == clerk and g.done > g.start
        )
        assert all(a[1] <= b[0] for a, b in pairwise(spans))
    assert pool.busy_us == sum(length for _, length in work)


def test_a_late_arrival_takes_the_idle_gap_it_arrived_in():
    pool = ClerkPool(1, backfill=100 * HOUR)
    pool.assign(0, HOUR)  # busy 0–1 h
    pool.assign(10 * HOUR, HOUR)  # busy 10–11 h; idle 1–10 h
    late = pool.assign(2 * HOUR, 3 * HOUR)
    assert (late.start, late.done) == (2 * HOUR, 5 * HOUR)
    assert pool.backfilled == 1
    strict = ClerkPool(1)
    strict.assign(0, HOUR)
    strict.assign(10 * HOUR, HOUR)
    assert strict.assign(2 * HOUR, 3 * HOUR).start == 11 * HOUR  # behind later work


def test_work_longer_than_the_gap_waits_for_the_clerk():
    pool = ClerkPool(1, backfill=100 * HOUR)
    pool.assign(0, HOUR)
    pool.assign(3 * HOUR, HOUR)  # idle 1–3 h: two hours
    assert pool.assign(HOUR, 3 * HOUR).start == 4 * HOUR
    assert pool.assign(HOUR, 2 * HOUR).start == HOUR  # fits exactly


def test_gaps_older_than_the_horizon_are_forgotten():
    pool = ClerkPool(1, backfill=5 * HOUR)
    pool.assign(0, HOUR)
    for k in range(1, 200):  # idle gaps of an hour, far behind the latest arrival
        pool.assign(2 * k * HOUR, HOUR)
    assert pool.gaps() and all(end > pool._latest - 5 * HOUR for _, end, _ in pool.gaps())
    # its own gap (1–2 h) is forgotten: it gets the earliest one still remembered
    assert pool.assign(HOUR, HOUR).start == 393 * HOUR


@given(jobs, jobs, st.integers(1, 3))
def test_a_restored_pool_continues_like_the_original(before, after, clerks):
    pool = ClerkPool(clerks, "tax/xinzhou", backfill=50 * HOUR)
    schedule(pool, before)
    restored = ClerkPool.restore(pool.snapshot(), "tax/xinzhou")
    assert schedule(restored, after) == schedule(pool, after)
    assert restored.snapshot() == pool.snapshot()


@given(jobs, st.integers(1, 40), st.sampled_from([0, 50 * HOUR]), st.booleans())
def test_clerks_taken_on_when_first_needed_serve_as_a_full_heap_would(
    work, clerks, backfill, in_order
):
    """A pool keeps in its heap only the clerks who have worked; a restored pool starts
    with all of them there (every one free since 0): both give the same schedule."""
    work = sorted(work) if in_order else work
    lazy = ClerkPool(clerks, backfill=backfill)
    full = ClerkPool.restore(ClerkPool(clerks, backfill=backfill).snapshot())
    assert len(full._free) == clerks and len(lazy._free) == 1
    assert schedule(lazy, work) == schedule(full, work)
    assert lazy.snapshot() == full.snapshot()
    assert len(lazy._free) <= min(clerks, len(work))


def test_a_pool_needs_clerks_and_a_sane_horizon():
    with pytest.raises(ValueError, match="at least one clerk"):
        ClerkPool(0, "power/yushan")
    with pytest.raises(ValueError, match="negative backfill"):
        ClerkPool(1, "power/yushan", backfill=-1)
    with pytest.raises(ValueError, match="negative work"):
        ClerkPool(1).assign(0, -1)
