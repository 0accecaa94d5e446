"""Bounded idempotency memories forget the oldest first and never grow past their limit."""

from __future__ import annotations

from cdb.domain.services.recent import RecentIds, RecentMap


def test_recent_ids_forget_the_oldest_beyond_the_limit() -> None:
    ids = RecentIds(RecentMap(limit=3))
    for key in "abcd":
        ids = ids.add(key)
    assert len(ids) == 3
    assert "a" not in ids
    assert all(k in ids for k in "bcd")


def test_adding_returns_a_new_value_and_leaves_the_old_one_alone() -> None:
    empty = RecentIds()
    one = empty.add("x")
    assert "x" in one
    assert "x" not in empty
    assert one.add("x") is one


def test_a_re_put_counts_as_recent_again() -> None:
    m = RecentMap[int](limit=2).put("a", 1).put("b", 2).put("a", 3).put("c", 4)
    assert list(m) == ["a", "c"]
    assert m.get("a") == 3
