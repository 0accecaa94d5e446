"""Which part of a split rebuild an entry belongs to (pure: no servers)."""

from __future__ import annotations

from collections import Counter

from cdb.projections.split import part_name, part_of


def test_every_entry_of_a_stream_goes_to_the_same_part_whether_read_as_bytes_or_text() -> None:
    for stream in ("order-o1", "signal-s1", "position-momentum0:BTC_USDT"):
        as_bytes = part_of({b"s": stream.encode(), b"d": b"{}"}, 3)
        assert as_bytes == part_of({"s": stream, "d": "{}"}, 3)
        assert 0 <= as_bytes < 3


def test_streams_spread_over_the_parts() -> None:
    parts = Counter(part_of({b"s": f"order-o{i}".encode()}, 2) for i in range(1000))
    assert set(parts) == {0, 1}
    assert min(parts.values()) > 400


def test_an_entry_without_a_stream_id_goes_to_the_first_part_only() -> None:
    # Malformed (it is dead-lettered): exactly one part must see it.
    assert part_of({b"d": b"{}"}, 4) == 0


def test_part_names_count_from_one() -> None:
    assert [part_name("trading", i, 2) for i in range(2)] == ["trading/1of2", "trading/2of2"]
