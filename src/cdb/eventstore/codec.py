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

import itertools
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json

from cdb.domain.envelope import (
    EventEnvelope,
    EventMetadata,
    NewEvent,
    stored_envelope,
    stored_reader,
)
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
    metadata = event.metadata.__dict__
    unset = tuple(metadata[name] is None for name in _OPTIONAL_METADATA)
    include, exclude = _BODY_FILTERS[unset]
    # What model_dump_json does, minus its per-call argument handling (the hot path of appends).
    return (
        type(event)
        .__pydantic_serializer__.to_json(event, include=include, exclude=exclude)
        .decode()
    )


def _body_filter(unset: tuple[bool, ...]) -> tuple[Any, Any]:
    names = {name for name, none in zip(_OPTIONAL_METADATA, unset, strict=True) if none}
    if not names:
        return _BODY, None
    if _ALL_METADATA_OPTIONAL and len(names) == len(_OPTIONAL_METADATA):
        return _BODY_NO_METADATA, None
    return {"timestamp": True, "payload": True, "metadata": True}, {"metadata": names}


# include/exclude for every combination of None metadata fields, built once.
_BODY_FILTERS = {
    unset: _body_filter(unset)
    for unset in itertools.product((False, True), repeat=len(_OPTIONAL_METADATA))
}


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
    envelope = _read(fields)
    return envelope if envelope is not None else _decode_checked(fields)


def _read(fields: RawFields) -> EventEnvelope | None:
    """The usual entry (exactly the six fields, all bytes or all str) read in one native pass;
    None for anything else, valid or not: :func:`_decode_checked` decides and words the error."""
    if len(fields) != len(FIELDS):
        return None
    raw: Any = fields
    try:
        if b"d" in raw:
            reader = stored_reader(raw[b"t"], raw[b"v"])
            if reader is None:
                return None
            # int() of the ASCII bytes gives what int() of the decoded text gives; other bytes
            # raise here and go the checked way.
            return reader.read(raw[b"id"].decode(), raw[b"s"].decode(), int(raw[b"n"]), raw[b"d"])
        event_id, n, stream_id, event_type, version, d = (
            raw["id"],
            raw["n"],
            raw["s"],
            raw["t"],
            raw["v"],
            raw["d"],
        )
        if not (
            type(event_id) is str
            and type(n) is str
            and type(stream_id) is str
            and type(event_type) is str
            and type(version) is str
            and type(d) is str
        ):
            return None
        reader = stored_reader(event_type, version)
        return None if reader is None else reader.read(event_id, stream_id, int(n), d)
    except (KeyError, AttributeError, UnicodeDecodeError, TypeError, ValueError):
        return None


def _decode_checked(fields: RawFields) -> EventEnvelope:
    values = _six(fields)
    if values is None:  # not exactly the six fields as bytes or str: check everything
        values = _six_checked(fields)
    event_id, n, stream_id, event_type, schema_version, d = values
    body = parse_json(d)
    if not isinstance(body, dict):
        raise ContractError(_CONTRACT, [("d", d, "must be a JSON object")])
    if not body.keys() <= _BODY:
        unknown = body.keys() - _BODY
        raise ContractError(
            _CONTRACT,
            [(f"d.{key}", body[key], "unknown key in the entry body") for key in sorted(unknown)],
        )
    try:
        seq = int(n)
    except ValueError:
        raise ContractError(_CONTRACT, [("n", n, "must be an integer")]) from None
    data: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": schema_version,
        "stream_id": stream_id,
        "sequence_number": seq,
        **body,
    }
    try:
        return stored_envelope(data)
    except ValidationError as exc:
        raise ContractError("EventEnvelope", _problems(exc)) from None


def parse_json(text: str | bytes) -> Any:
    """An entry body as Python values: what ``json.loads`` gives, parsed by pydantic's faster
    parser; a document that parser refuses goes to ``json.loads`` (which may still accept it,
    e.g. a lone surrogate escape, or refuse it with its usual message)."""
    try:
        return from_json(text, cache_strings=False)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ContractError(_CONTRACT, [("d", text, f"must be JSON: {exc}")]) from None


_BYTE_FIELDS = tuple(name.encode() for name in FIELDS)


def _six(fields: RawFields) -> list[str] | None:
    """The six values when ``fields`` holds exactly them, all bytes or all str (the usual)."""
    if len(fields) != len(FIELDS):
        return None
    raw: Any = fields
    try:
        if b"d" in raw:
            return [raw[key].decode() for key in _BYTE_FIELDS]
        values: list[Any] = [raw["id"], raw["n"], raw["s"], raw["t"], raw["v"], raw["d"]]
    except (KeyError, AttributeError, UnicodeDecodeError, TypeError):
        return None
    for value in values:
        if type(value) is not str:
            return None
    return values


def _six_checked(fields: RawFields) -> list[str]:
    raw = {_text(key): value for key, value in fields.items()}
    missing = [name for name in FIELDS if name not in raw]
    if missing:
        raise ContractError(
            _CONTRACT,
            [(name, None, "required field of a cdb stream entry is missing") for name in missing],
        )
    return [_text(raw[name]) for name in FIELDS]


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
