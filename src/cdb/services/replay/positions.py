"""Where a replay starts and stops: stream offsets and times, parsed and checked against a stream.

An OFFSET is a stream entry id (``1730443200000-0``), ``0`` or ``-`` (the first entry) or ``$``
(the last entry, the head). A TIME is ISO-8601 in UTC (``2025-03-03T19:35:00Z``; no offset means
UTC, any other offset is refused) and is compared with the events' own timestamps (market time),
never with the entry ids (the time of the append). Everything here is pure: the caller reads the
stream and hands over its entry ids and event timestamps.

A value that does not name a position of the stream is a :class:`ContractError` naming the
option, the value and the stream's valid range (first and last entry id, first and last time).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cdb.errors import ContractError

_ENTRY_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")
_FORMS = (
    "an entry id such as 1730443200000-0, 0 or - (the first entry), $ (the head), "
    "or an ISO-8601 UTC time such as 2025-03-03T19:35:00Z"
)


@dataclass(frozen=True, order=True, slots=True)
class EntryId:
    """A Redis stream entry id; orders as Redis does (milliseconds, then sequence)."""

    ms: int
    seq: int

    @classmethod
    def parse(cls, text: str) -> EntryId:
        match = _ENTRY_ID.match(text)
        if match is None:
            raise ValueError(f"not a stream entry id: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


class Edge(StrEnum):
    """The two ends of a stream."""

    FIRST = "first"
    HEAD = "head"


Bound = EntryId | Edge | datetime
"""A parsed OFFSET or TIME: an entry id, an end of the stream, or an aware UTC time."""


def parse_time(text: str, option: str) -> datetime:
    """An ISO-8601 time in UTC (``Z``, ``+00:00`` or no offset); anything else names the rule."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ContractError(
            "replay", [(option, text, "must be an ISO-8601 UTC time such as 2025-03-03T19:35:00Z")]
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    if parsed.utcoffset() != timedelta(0):
        raise ContractError("replay", [(option, text, "must be in UTC (end it with Z or +00:00)")])
    return parsed.astimezone(UTC)


def parse_bound(text: str, option: str) -> Bound:
    """An OFFSET or a TIME as given on the command line."""
    value = text.strip()
    if value in ("0", "-", "0-0"):
        return Edge.FIRST
    if value in ("$", "+"):
        return Edge.HEAD
    if _ENTRY_ID.match(value):
        return EntryId.parse(value)
    if _DATE_PREFIX.match(value):
        return parse_time(value, option)
    raise ContractError("replay", [(option, text, f"must be {_FORMS}")])


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Position:
    """One entry of a stream as a replay sees it: its id and its event's timestamp."""

    entry_id: EntryId
    timestamp: datetime


def valid_range(name: str, positions: Sequence[Position]) -> str:
    """``topic market_data: entries 1-0 .. 9-0, times 2025-03-01T00:00:00Z .. ...``."""
    if not positions:
        return f"{name} is empty"
    first, last = positions[0], positions[-1]
    low = min(p.timestamp for p in positions)
    high = max(p.timestamp for p in positions)
    return (
        f"{name} has {len(positions)} entries, ids {first.entry_id} .. {last.entry_id}, "
        f"times {_iso(low)} .. {_iso(high)}"
    )


def _refuse(option: str, value: str, rule: str) -> ContractError:
    return ContractError("replay", [(option, value, rule)])


def _index_of_entry(
    entry: EntryId, positions: Sequence[Position], option: str, value: str, name: str
) -> int:
    first, last = positions[0].entry_id, positions[-1].entry_id
    if entry < first or entry > last:
        raise _refuse(option, value, f"is outside the stream: {valid_range(name, positions)}")
    low, high = 0, len(positions)
    while low < high:  # positions are in stream order, so entry ids ascend
        mid = (low + high) // 2
        if positions[mid].entry_id < entry:
            low = mid + 1
        else:
            high = mid
    if positions[low].entry_id != entry:
        raise _refuse(
            option,
            value,
            f"is no entry of the stream (nearest after it: {positions[low].entry_id}); "
            f"{valid_range(name, positions)}",
        )
    return low


def _fixed_index(
    bound: Bound, positions: Sequence[Position], option: str, value: str, name: str
) -> int | datetime:
    """The index an edge or an entry id names (the same for both ends of a range), or the TIME
    itself, which each end resolves its own way."""
    if not positions:
        raise _refuse(option, value, f"{name} is empty: nothing to replay")
    if bound is Edge.FIRST:
        return 0
    if bound is Edge.HEAD:
        return len(positions) - 1
    if isinstance(bound, EntryId):
        return _index_of_entry(bound, positions, option, value, name)
    return bound


def resolve_start(
    bound: Bound, positions: Sequence[Position], *, option: str, value: str, name: str
) -> int:
    """Index of the first entry of the range: a TIME picks the first event at or after it."""
    at = _fixed_index(bound, positions, option, value, name)
    if isinstance(at, int):
        return at
    for i, p in enumerate(positions):
        if p.timestamp >= at:
            return i
    raise _refuse(option, value, f"is after the last event: {valid_range(name, positions)}")


def resolve_end(
    bound: Bound, positions: Sequence[Position], *, option: str, value: str, name: str
) -> int:
    """Index of the last entry of the range: a TIME picks the last event at or before it."""
    at = _fixed_index(bound, positions, option, value, name)
    if isinstance(at, int):
        return at
    found = [i for i, p in enumerate(positions) if p.timestamp <= at]
    if not found:
        raise _refuse(option, value, f"is before the first event: {valid_range(name, positions)}")
    return found[-1]


@dataclass(frozen=True, slots=True)
class Window:
    """Indexes ``first..last`` (inclusive) of the positions a replay covers."""

    first: int
    last: int


def resolve_window(
    positions: Sequence[Position],
    start: tuple[str, str],
    end: tuple[str, str] | None,
    *,
    name: str,
) -> Window:
    """The range ``--from start [--to end]`` names; ``start``/``end`` are (option, text)."""
    from_option, from_text = start
    first = resolve_start(
        parse_bound(from_text, from_option),
        positions,
        option=from_option,
        value=from_text,
        name=name,
    )
    last = len(positions) - 1
    if end is not None:
        to_option, to_text = end
        last = resolve_end(
            parse_bound(to_text, to_option), positions, option=to_option, value=to_text, name=name
        )
        if last < first:
            raise _refuse(
                to_option,
                to_text,
                f"ends before {from_option} {from_text} starts "
                f"(entry {positions[last].entry_id} < {positions[first].entry_id}): the range "
                f"is empty; {valid_range(name, positions)}",
            )
    return Window(first, last)


def resolve_version(
    timestamps: Sequence[datetime],
    *,
    stream_id: str,
    to_seq: int | None = None,
    at: str | None = None,
) -> int:
    """The sequence number an aggregate is folded up to: ``--to-seq N`` or ``--at TIME``.

    ``timestamps[i]`` is the timestamp of sequence number ``i + 1``. Without either option, the
    whole stream. A time after the last event is the state now; one before the first is refused.
    """
    head = len(timestamps)
    name = f"stream {stream_id}"
    if head == 0:
        raise _refuse("stream_id", stream_id, "has no events (no such aggregate stream)")
    span = (
        f"{name} has sequence numbers 1 .. {head}, times {_iso(timestamps[0])} .. "
        f"{_iso(timestamps[-1])}"
    )
    if to_seq is not None and at is not None:
        raise _refuse("--to-seq/--at", f"{to_seq} / {at}", "give one of them, not both")
    if to_seq is not None:
        if not 1 <= to_seq <= head:
            raise _refuse("--to-seq", str(to_seq), f"is outside the stream: {span}")
        return to_seq
    if at is not None:
        moment = parse_time(at, "--at")
        found = [i + 1 for i, ts in enumerate(timestamps) if ts <= moment]
        if not found:
            raise _refuse("--at", at, f"is before the first event: {span}")
        return found[-1]
    return head
