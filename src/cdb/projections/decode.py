"""Decoding topic entries for projections: the payload is always validated by its contract.

:func:`cdb.eventstore.codec.decode_fields` validates the whole envelope with pydantic, which
validates the payload a second time on the way. Projections decode millions of entries during a
rebuild, so this module takes a narrower fast path for entries that look exactly like what the
store writes: the JSON body is parsed and validated in one pydantic pass by a model whose
payload is the registered contract (every field rule applies) and whose metadata is
``EventMetadata``; the routing fields are converted by hand. Anything else (missing or extra
fields, a non-UTC timestamp, a payload breaking its contract ...) goes through
``decode_fields``, which raises the precise ContractError.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, create_model

from cdb.domain.envelope import Contract, EventEnvelope, EventMetadata
from cdb.domain.event_types import EventType
from cdb.domain.registry import contract_for
from cdb.errors import CdbError
from cdb.eventstore.codec import RawFields, decode_fields

_FIELDS = frozenset({"id", "n", "s", "t", "v", "d"})


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """The parts of a stored event a projection reads (the payload fully validated)."""

    event_id: uuid.UUID
    event_type: EventType
    timestamp: datetime
    schema_version: str
    payload: Contract
    stream_id: str
    sequence_number: int


def decode_entry(fields: RawFields) -> StoredEvent | EventEnvelope:
    """The event of one entry; raises ContractError for a malformed one."""
    fast = _fast(fields)
    return fast if fast is not None else decode_fields(fields)


class _Unusual(Exception):
    """The entry does not look exactly like what the store writes: use the full decoder."""


def _body_model(event_type: EventType, version: str) -> type[BaseModel]:
    """The entry body of one event type: parsed and validated from JSON in one pydantic pass."""
    key = (event_type, version)
    model = _BODIES.get(key)
    if model is None:
        model = create_model(
            f"Body_{event_type.value}_{version}",
            __config__=ConfigDict(extra="forbid", frozen=True),
            timestamp=(AwareDatetime, ...),
            payload=(contract_for(event_type.value, version), ...),
            metadata=(EventMetadata | None, None),
        )
        _BODIES[key] = model
    return model


_BODIES: dict[tuple[EventType, str], type[BaseModel]] = {}


def _fast(fields: RawFields) -> StoredEvent | None:
    try:
        raw = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        if raw.keys() != _FIELDS:
            raise _Unusual
        sequence_number = int(raw["n"])
        stream_id = raw["s"]
        version = raw["v"]
        if not (sequence_number >= 0 and 0 < len(stream_id) <= 200 and version.isdigit()):
            raise _Unusual
        event_type = EventType(raw["t"])
        event_id = uuid.UUID(raw["id"])
        # Body, payload (every rule of its contract) and metadata in one pass; any problem goes
        # to the full decoder, which raises the ContractError naming field, value and rule.
        body: Any = _body_model(event_type, version).model_validate_json(raw["d"])
        offset = body.timestamp.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            raise _Unusual
    except (_Unusual, ValueError, TypeError, KeyError, UnicodeDecodeError, CdbError):
        return None
    return StoredEvent(
        event_id=event_id,
        event_type=event_type,
        timestamp=body.timestamp.astimezone(UTC),
        schema_version=version,
        payload=body.payload,
        stream_id=stream_id,
        sequence_number=sequence_number,
    )
