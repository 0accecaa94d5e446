"""XAUTOCLAIM replies of Redis 6.2 and 7, as redis-py hands them over."""

from __future__ import annotations

from cdb.runtime.claim import parse_autoclaim


def test_redis_7_reply_names_deleted_entries_in_a_third_element() -> None:
    reply = [b"5-0", [(b"1-0", {b"s": b"alert-a"})], [b"2-0", b"3-0"]]
    cursor, entries, deleted = parse_autoclaim(reply)
    assert cursor == "5-0"
    assert entries == [("1-0", {"s": "alert-a"})]
    assert deleted == ["2-0", "3-0"]


def test_redis_6_2_reply_has_two_elements_and_nil_entries_for_deleted_ones() -> None:
    reply = [b"0-0", [(None, None), (b"1-0", {b"s": b"alert-a"})]]
    cursor, entries, deleted = parse_autoclaim(reply)
    assert cursor == "0-0"
    assert entries == [("", None), ("1-0", {"s": "alert-a"})]
    assert deleted == []
