"""Reading XRANGE replies unparsed: the stream id of an entry (pure: no servers)."""

from __future__ import annotations

from cdb.projections.source import _stream_field
from cdb.projections.split import part_of, part_of_stream


def test_the_stream_id_is_found_in_a_flat_field_list_by_name_only() -> None:
    assert _stream_field([b"id", b"x", b"s", b"order-o1", b"d", b"{}"]) == b"order-o1"
    # A value that reads "s" is not the field: the field after it is.
    assert _stream_field([b"id", b"s", b"s", b"order-o2"]) == b"order-o2"
    assert _stream_field(["t", "s", "s", "order-o3"]) == "order-o3"
    assert _stream_field([b"id", b"s", b"d", b"{}"]) is None
    assert _stream_field([b"s"]) is None  # cut short: no value
    assert _stream_field(None) is None
    assert part_of_stream(None, 3) == 0
    assert part_of_stream(b"order-o1", 3) == part_of({b"s": b"order-o1"}, 3)
