"""`replay aggregate`: an aggregate's state at a point of its history, and the events behind it.

Signal, order and position streams are folded with their aggregate's fold
(:mod:`cdb.domain.aggregates`), so an illegal history fails loudly here too. The other
aggregates (risk, portfolio, alert) have no fold of their own: their state is shown as the
version and the last event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel

from cdb.domain import aggregates
from cdb.domain.envelope import EventEnvelope
from cdb.domain.event_types import aggregate_type_of
from cdb.eventstore.store import EventStore
from cdb.services.replay.positions import resolve_version

Fold = Callable[[Any, EventEnvelope], Any]

FOLDS: Mapping[str, tuple[Fold, object]] = {
    "signal": (aggregates.fold_signal, aggregates.SIGNAL_INITIAL),
    "order": (aggregates.fold_order, aggregates.ORDER_INITIAL),
    "position": (aggregates.fold_position, aggregates.POSITION_INITIAL),
}


@dataclass(frozen=True)
class AggregateReplay:
    stream_id: str
    aggregate_type: str
    version: int
    """The sequence number folded up to."""
    head: int
    """The stream's current version."""
    folded: bool
    """True when the aggregate has a fold; False: ``state`` is the generic version/last event."""
    state: dict[str, Any]
    events: list[EventEnvelope]
    """The events folded (1..version), in order."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "aggregate_type": self.aggregate_type,
            "version": self.version,
            "head": self.head,
            "folded": self.folded,
            "state": self.state,
            "events": [event_dict(e) for e in self.events],
        }


def event_dict(event: EventEnvelope) -> dict[str, Any]:
    return {
        "sequence_number": event.sequence_number,
        "event_id": str(event.event_id),
        "event_type": event.event_type.value,
        "timestamp": event.timestamp.isoformat(),
        "schema_version": event.schema_version,
        "payload": event.payload.model_dump(mode="json"),
        "metadata": event.metadata.model_dump(mode="json", exclude_none=True),
    }


def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses and models as objects, decimals as text."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value) if isinstance(value, Decimal) else value


def replay_aggregate(
    store: EventStore,
    stream_id: str,
    *,
    to_seq: int | None = None,
    at: str | None = None,
) -> AggregateReplay:
    """The state of ``stream_id`` after sequence number ``to_seq``, or at time ``at``
    (the last event with timestamp <= at), or now."""
    events = store.read_aggregate(stream_id)
    version = resolve_version(
        [e.timestamp for e in events], stream_id=stream_id, to_seq=to_seq, at=at
    )
    chosen = events[:version]
    kind = aggregate_type_of(stream_id)
    if kind in FOLDS:
        fold, state = FOLDS[kind]
        for event in chosen:
            state = fold(state, event)
        return AggregateReplay(stream_id, kind, version, len(events), True, jsonable(state), chosen)
    last = chosen[-1]
    generic = {
        "version": version,
        "last_event_id": str(last.event_id),
        "last_event_type": last.event_type.value,
        "last_timestamp": last.timestamp.isoformat(),
        "last_payload": last.payload.model_dump(mode="json"),
    }
    return AggregateReplay(stream_id, kind, version, len(events), False, generic, chosen)
