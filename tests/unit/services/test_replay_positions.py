"""OFFSET / TIME parsing and range checks: a clear error naming the value and the valid range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdb.errors import ContractError
from cdb.services.replay.positions import (
    Edge,
    EntryId,
    Position,
    parse_bound,
    parse_time,
    resolve_version,
    resolve_window,
)

T0 = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
# Ten entries, one a minute; ids 1000-0, 1000-1, 1002-0, ... (two per millisecond).
STREAM = [Position(EntryId(1000 + 2 * (i // 2), i % 2), T0 + i * MINUTE) for i in range(10)]


def window(start: str, end: str | None = None) -> tuple[int, int]:
    found = resolve_window(
        STREAM, ("--from", start), None if end is None else ("--to", end), name="topic t"
    )
    return found.first, found.last


def refused(start: str, end: str | None = None) -> str:
    with pytest.raises(ContractError) as caught:
        window(start, end)
    return str(caught.value)


def test_offsets_and_times_parse() -> None:
    assert parse_bound("1730443200000-0", "--from") == EntryId(1730443200000, 0)
    assert parse_bound("0", "--from") is Edge.FIRST
    assert parse_bound("-", "--from") is Edge.FIRST
    assert parse_bound("$", "--to") is Edge.HEAD
    assert parse_bound("2025-03-03T19:35:00Z", "--from") == datetime(2025, 3, 3, 19, 35, tzinfo=UTC)
    assert parse_time("2025-03-03T19:35:00", "--at") == datetime(2025, 3, 3, 19, 35, tzinfo=UTC)
    assert parse_time("2025-03-03T19:35:00+00:00", "--at").tzinfo is UTC
    assert EntryId(5, 1) > EntryId(5, 0)
    assert EntryId(5, 0) > EntryId(4, 9)
    assert str(EntryId(17, 3)) == "17-3"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("12", "entry id such as"),
        ("abc", "entry id such as"),
        ("1-2-3", "entry id such as"),
        ("2025-02-30T00:00:00Z", "ISO-8601 UTC"),
        ("2025-03-03T19:35:00+01:00", "must be in UTC"),
    ],
)
def test_malformed_values_name_the_option_the_value_and_the_rule(text: str, rule: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_bound(text, "--from")
    message = str(caught.value)
    assert "'--from'" in message
    assert repr(text) in message
    assert rule in message


def test_a_range_by_entry_ids_edges_and_times() -> None:
    assert window("0") == (0, 9)
    assert window("-", "$") == (0, 9)
    assert window("1002-1", "1006-0") == (3, 6)
    assert window("$") == (9, 9)
    # A TIME starts at the first event at or after it and ends at the last at or before it.
    assert window("2025-03-03T00:02:30Z", "2025-03-03T00:05:30Z") == (3, 5)
    assert window("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z") == (0, 9)


def test_offsets_outside_the_stream_name_its_range() -> None:
    message = refused("999-0")
    assert "'999-0'" in message
    assert "outside the stream" in message
    assert "ids 1000-0 .. 1008-1" in message
    assert "times 2025-03-03T00:00:00Z .. 2025-03-03T00:09:00Z" in message
    assert "outside the stream" in refused("0", "2000-0")


def test_an_unknown_entry_id_inside_the_range_is_refused() -> None:
    message = refused("1002-7")
    assert "is no entry of the stream" in message
    assert "nearest after it: 1004-0" in message


def test_times_with_no_event_and_empty_ranges_are_refused() -> None:
    assert "after the last event" in refused("2025-03-03T01:00:00Z")
    assert "before the first event" in refused("0", "2025-03-02T00:00:00Z")
    assert "range is empty" in refused("1006-0", "1002-0")


def test_an_empty_stream_has_nothing_to_replay() -> None:
    with pytest.raises(ContractError, match="topic t is empty"):
        resolve_window([], ("--from", "0"), None, name="topic t")


def test_an_aggregate_version_by_sequence_number_or_time() -> None:
    stamps = [T0, T0 + MINUTE, T0 + MINUTE, T0 + 3 * MINUTE]
    assert resolve_version(stamps, stream_id="order-x") == 4
    assert resolve_version(stamps, stream_id="order-x", to_seq=2) == 2
    assert resolve_version(stamps, stream_id="order-x", at="2025-03-03T00:01:00Z") == 3
    assert resolve_version(stamps, stream_id="order-x", at="2025-03-03T00:02:59Z") == 3
    assert resolve_version(stamps, stream_id="order-x", at="2030-01-01T00:00:00Z") == 4
    for kwargs, rule in [
        ({"to_seq": 5}, "sequence numbers 1 .. 4"),
        ({"to_seq": 0}, "outside the stream"),
        ({"at": "2025-03-02T23:59:59Z"}, "before the first event"),
        ({"at": "now"}, "ISO-8601"),
        ({"to_seq": 1, "at": "2025-03-03T00:00:00Z"}, "not both"),
    ]:
        with pytest.raises(ContractError, match=rule):
            resolve_version(stamps, stream_id="order-x", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="has no events"):
        resolve_version([], stream_id="order-x")
