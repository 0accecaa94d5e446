"""Comparing the events a replay produced with the events that were recorded.

Two events are the same when they have the same id and agree on every field a replay must
reproduce: type, aggregate stream, timestamp, schema version, every payload field, and the
causal metadata (correlation, causation, producer). The W3C ``traceparent`` is left out: trace
ids belong to a run, not to the logic. Sequence numbers are left out too: a sandbox starts its
aggregate streams empty, so the replayed results of a recorded order do not land at the same
position; what the logic decides is in the fields above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cdb.domain.envelope import NewEvent

COMPARED_METADATA = ("correlation_id", "causation_id", "producer")


class Kind(StrEnum):
    CHANGED = "changed"
    """Both have the event; ``field`` differs."""
    MISSING = "missing"
    """Recorded, but the replay did not produce it."""
    EXTRA = "extra"
    """Produced by the replay, but never recorded."""


@dataclass(frozen=True, slots=True)
class Difference:
    event_id: str
    kind: Kind
    field: str
    recorded: str | None
    replayed: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "event_id": self.event_id,
            "kind": self.kind.value,
            "field": self.field,
            "recorded": self.recorded,
            "replayed": self.replayed,
        }


@dataclass(frozen=True, slots=True)
class Compared:
    """An event as the diff sees it: the aggregate stream it belongs to and the event."""

    stream_id: str
    event: NewEvent


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        if not value:
            out[prefix] = "{}"
        for key in sorted(value):
            _flat(f"{prefix}.{key}", value[key], out)
    elif isinstance(value, list | tuple):
        if not value:
            out[prefix] = "[]"
        for i, item in enumerate(value):
            _flat(f"{prefix}[{i}]", item, out)
    else:
        out[prefix] = "null" if value is None else str(value)


def flatten(item: Compared) -> dict[str, str]:
    """Every compared field of an event as ``dotted.path -> text`` (JSON forms of values)."""
    event = item.event
    out: dict[str, str] = {
        "event_type": event.event_type.value,
        "stream_id": item.stream_id,
        "timestamp": event.timestamp.isoformat(),
        "schema_version": event.schema_version,
    }
    _flat("payload", event.payload.model_dump(mode="json"), out)
    metadata = event.metadata
    for name in COMPARED_METADATA:
        value = getattr(metadata, name)
        out[f"metadata.{name}"] = "null" if value is None else str(value)
    return out


def compare(recorded: Compared, replayed: Compared) -> list[Difference]:
    """The fields on which two events with the same id disagree (in a stable order)."""
    event_id = str(recorded.event.event_id)
    ours, theirs = flatten(recorded), flatten(replayed)
    return [
        Difference(event_id, Kind.CHANGED, name, ours.get(name), theirs.get(name))
        for name in sorted(ours.keys() | theirs.keys(), key=_field_order)
        if ours.get(name) != theirs.get(name)
    ]


def _field_order(name: str) -> tuple[int, str]:
    # Type and stream first (a different kind of event explains everything after it).
    head = ("event_type", "stream_id", "timestamp", "schema_version")
    return (head.index(name), name) if name in head else (len(head), name)


def diff_events(recorded: Sequence[Compared], replayed: Sequence[Compared]) -> list[Difference]:
    """Every difference, in recorded order: changed fields and missing events, then extras.

    Events are matched by id. An id that occurs twice on one side counts once (the first):
    a recorded duplicate is the store's business, not the logic's.
    """
    theirs: dict[str, Compared] = {}
    for item in replayed:
        theirs.setdefault(str(item.event.event_id), item)
    seen: set[str] = set()
    out: list[Difference] = []
    for item in recorded:
        event_id = str(item.event.event_id)
        if event_id in seen:
            continue
        seen.add(event_id)
        other = theirs.get(event_id)
        if other is None:
            out.append(Difference(event_id, Kind.MISSING, "event", _describe(item), None))
        else:
            out.extend(compare(item, other))
    for event_id, item in theirs.items():
        if event_id not in seen:
            out.append(Difference(event_id, Kind.EXTRA, "event", None, _describe(item)))
    return out


def _describe(item: Compared) -> str:
    return (
        f"{item.event.event_type.value} on {item.stream_id} at {item.event.timestamp.isoformat()}"
    )
