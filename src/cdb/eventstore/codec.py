"""How an event is laid out in a Redis stream entry, both ways.

Every entry, in an aggregate stream or a topic partition, has the same six fields::

    id  event_id (UUID)          t  event_type
    n   sequence number          v  schema_version
    s   stream id (aggregate)    d  JSON body: timestamp, payload, metadata

``n`` and ``s`` are plain fields rather than part of ``d`` because the append script sets ``n``
itself (it is the only place that knows the next sequence number). Everything that is not
needed to route or order an event lives in ``d``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cdb.domain.envelope import EventEnvelope, EventMetadata, NewEvent
from cdb.errors import ContractError

FIELDS = ("id", "n", "s", "t", "v", "d")
_BODY = {"timestamp", "payload", "metadata"}
_BODY_NO_METADATA = {"timestamp", "payload"}
_CONTRACT = "stream entry"
# Metadata fields that read back as None when left out; only these may be dropped when None.
_OPTIONAL_METADATA = tuple(
    name for name, info in EventMetadata.model_fields.items() if info.default is None
)
_ALL_METADATA_OPTIONAL = len(_OPTIONAL_METADATA) == len(EventMetadata.model_fields)


def encode_body(event: NewEvent) -> str:
    """The ``d`` field: everything except the routing fields, as JSON.

    Metadata fields that are None are left out (they read back as None): most events carry
    one or two of them, and every stored byte is kept forever in two streams. The payload is
    written whole, nulls included, exactly as its contract serialises it.
    """
    metadata = event.metadata
    unset = [name for name in _OPTIONAL_METADATA if getattr(metadata, name) is None]
    if not unset:
        return event.model_dump_json(include=_BODY)
    if _ALL_METADATA_OPTIONAL and len(unset) == len(_OPTIONAL_METADATA):
        return event.model_dump_json(include=_BODY_NO_METADATA)
    return event.model_dump_json(
        include={"timestamp": True, "payload": True, "metadata": True},
        exclude={"metadata": set(unset)},
    )


def encode_fields(event: NewEvent, stream_id: str, seq: int) -> dict[str, str | bytes]:
    """All six fields of one entry (the append script builds the same entry from the parts)."""
    return {
        "id": str(event.event_id),
        "n": str(seq),
        "s": stream_id,
        "t": event.event_type.value,
        "v": event.schema_version,
        "d": encode_body(event),
    }


RawFields = Mapping[bytes, bytes] | Mapping[str, str] | Mapping[bytes | str, bytes | str]
"""An entry's fields as redis-py returns them (bytes, or str with ``decode_responses``)."""


def decode_fields(fields: RawFields) -> EventEnvelope:
    """The envelope stored in one entry; a malformed entry raises :class:`ContractError`."""
    raw = {_text(key): value for key, value in fields.items()}
    missing = [name for name in FIELDS if name not in raw]
    if missing:
        raise ContractError(
            _CONTRACT,
            [(name, None, "required field of a cdb stream entry is missing") for name in missing],
        )
    values = {name: _text(raw[name]) for name in FIELDS}
    try:
        body = json.loads(values["d"])
    except ValueError as exc:
        raise ContractError(_CONTRACT, [("d", values["d"], f"must be JSON: {exc}")]) from None
    if not isinstance(body, dict):
        raise ContractError(_CONTRACT, [("d", values["d"], "must be a JSON object")])
    unknown = body.keys() - _BODY
    if unknown:
        raise ContractError(
            _CONTRACT,
            [(f"d.{key}", body[key], "unknown key in the entry body") for key in sorted(unknown)],
        )
    try:
        seq = int(values["n"])
    except ValueError:
        raise ContractError(_CONTRACT, [("n", values["n"], "must be an integer")]) from None
    data: dict[str, Any] = {
        "event_id": values["id"],
        "event_type": values["t"],
        "schema_version": values["v"],
        "stream_id": values["s"],
        "sequence_number": seq,
        **body,
    }
    try:
        return EventEnvelope.model_validate(data)
    except ValidationError as exc:
        raise ContractError("EventEnvelope", _problems(exc)) from None


def _problems(exc: ValidationError) -> list[tuple[str, Any, str]]:
    return [
        (".".join(str(part) for part in err["loc"]) or "(entry)", err.get("input"), err["msg"])
        for err in exc.errors()
    ]


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ContractError(_CONTRACT, [("(bytes)", value, "must be UTF-8")]) from None
    return value
