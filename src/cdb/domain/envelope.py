"""The event envelope (DESIGN §3) and deterministic event ids.

A producer builds a :class:`NewEvent`; the store assigns ``stream_id`` and ``sequence_number``
on append and hands back :class:`EventEnvelope` values. The payload is a typed contract chosen
by ``(event_type, schema_version)`` through :mod:`cdb.domain.registry`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator

from cdb.domain.event_types import EventType

# uuid5 namespace for every id cdb derives; changing it changes every event id ever produced.
CDB_NAMESPACE = uuid.UUID("5b0c1d2e-8f4a-4c7e-9a1b-2d3c4e5f6a7b")

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def derive_id(*parts: str) -> uuid.UUID:
    """A UUID derived from what caused it, so a retried or replayed producer emits the same id."""
    if not parts:
        raise ValueError("derive_id needs at least one part")
    return uuid.uuid5(CDB_NAMESPACE, "\x1f".join(parts))


class Contract(BaseModel):
    """Base of every payload contract: frozen, no extra fields, validated on assignment."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class EventMetadata(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str | None = None
    causation_id: str | None = None
    producer: str | None = None
    traceparent: str | None = None

    @field_validator("traceparent")
    @classmethod
    def _w3c(cls, value: str | None) -> str | None:
        if value is not None and not _TRACEPARENT.match(value):
            raise ValueError("must be a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>")
        return value


def _utc(value: datetime) -> datetime:
    if value.utcoffset() != UTC.utcoffset(None):
        raise ValueError("must be in UTC (offset +00:00)")
    return value.astimezone(UTC)


class NewEvent(BaseModel):
    """An event a producer wants stored; the store gives it a stream position."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: EventType
    timestamp: AwareDatetime
    schema_version: str = Field(default="1", pattern=r"^[0-9]+(\.[0-9]+)?$")
    payload: SerializeAsAny[Contract]
    metadata: EventMetadata = EventMetadata()

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="before")
    @classmethod
    def _typed_payload(cls, data: Any) -> Any:
        # A payload given as a mapping (read back from Redis, or a script) is parsed by the
        # contract registered for its event type, never accepted as a loose dict.
        if isinstance(data, dict) and isinstance(data.get("payload"), dict):
            from cdb.domain.registry import parse_payload

            data = dict(data)
            data["payload"] = parse_payload(
                str(data.get("event_type")), str(data.get("schema_version", "1")), data["payload"]
            )
        return data

    @model_validator(mode="after")
    def _payload_matches_type(self) -> NewEvent:
        from cdb.domain.registry import contract_for

        expected = contract_for(self.event_type, self.schema_version)
        if not isinstance(self.payload, expected):
            raise ValueError(
                f"payload is {type(self.payload).__name__}, "
                f"but {self.event_type}@{self.schema_version} needs {expected.__name__}"
            )
        return self


class EventEnvelope(NewEvent):
    """A stored event: its aggregate stream and its gapless 1-based position there.

    ``sequence_number`` is 0 only for topic-only events (market ticks), which have no
    aggregate stream.
    """

    stream_id: Annotated[str, Field(min_length=1, max_length=200)]
    sequence_number: Annotated[int, Field(ge=0)]


StreamId = str


# -- the read path: one validation per part, then assembly ---------------------------------------
#
# Validating a stored entry as ``EventEnvelope`` runs the payload contract twice (the before-
# validator parses it, pydantic calls the contract's own ``__init__`` inside that) and calls
# back into Python for every model validator. :func:`stored_envelope` runs the same rules once
# each: the payload through its contract's own schema, every envelope field through a model made
# of EventEnvelope's own field definitions, then assembles the envelope without re-validating.
# Any failure re-runs the normal ``EventEnvelope`` validation, so errors are exactly the same.


def _head_validator() -> SchemaValidator:
    """EventEnvelope's own fields and rules, with the payload taken as it is (checked apart).

    It validates a mapping into ``(values, extra, fields_set)`` without building a model, and
    keeps the envelope's field order, so the values become the envelope's ``__dict__``.
    """
    fields: dict[str, Any] = {
        name: (Any, info) if name == "payload" else (info.annotation, info)
        for name, info in EventEnvelope.model_fields.items()
    }

    def utc(value: datetime) -> datetime:
        return _utc(value)

    head = create_model(
        "StoredEnvelopeHead",
        __config__=EventEnvelope.model_config,
        __validators__={"timestamp_utc": field_validator("timestamp")(utc)},
        **fields,
    )
    schema: Any = head.__pydantic_core_schema__
    return SchemaValidator(schema["schema"], schema.get("config"))


_HEAD = _head_validator()
# The validators the head and stored_envelope reproduce. Should EventEnvelope gain another,
# the read path falls back to the normal validation (slower, never weaker) until this is updated.
_KNOWN_VALIDATORS = (
    {"_timestamp_utc": ("timestamp",)},
    {"_typed_payload", "_payload_matches_type"},
)
_DECORATORS = EventEnvelope.__pydantic_decorators__
FAST_READ = (
    {name: d.info.fields for name, d in _DECORATORS.field_validators.items()},
    set(_DECORATORS.model_validators),
) == _KNOWN_VALIDATORS and not (_DECORATORS.validators or _DECORATORS.root_validators)
"""True when :func:`stored_envelope` takes its fast path (EventEnvelope has no unknown rules)."""
_CONTRACTS: dict[tuple[str, str], type[Contract]] = {}


def _contract(event_type: EventType, schema_version: str) -> type[Contract]:
    # Registrations are never replaced (the registry refuses it), so a found one stays valid.
    key = (event_type.value, schema_version)
    contract = _CONTRACTS.get(key)
    if contract is None:
        from cdb.domain.registry import contract_for

        contract = _CONTRACTS[key] = contract_for(event_type, schema_version)
    return contract


_PayloadValidator = Callable[[dict[str, Any]], Contract]
_PAYLOAD_VALIDATORS: dict[type[Contract], _PayloadValidator] = {}


def _payload_validator(contract: type[Contract]) -> _PayloadValidator:
    """The contract's own field schema, without pydantic's call into a custom ``__init__``.

    Contracts translate pydantic's error in ``__init__``, and pydantic calls that ``__init__``
    on every validation, which validates again. The fields, their rules and validators are the
    contract's own (its ``model-fields`` schema); only a contract with none of the model-level
    hooks that live outside that schema takes this path. The normal path reports any error.
    """
    validator = _PAYLOAD_VALIDATORS.get(contract)
    if validator is None:
        validator = _fields_validator(contract) or contract.model_validate
        _PAYLOAD_VALIDATORS[contract] = validator
    return validator


def _fields_validator(contract: type[Contract]) -> _PayloadValidator | None:
    schema: Any = contract.__pydantic_core_schema__
    decorators = contract.__pydantic_decorators__
    if (
        schema.get("type") != "model"
        or schema.get("cls") is not contract
        or schema.get("root_model")
        or schema["schema"].get("type") != "model-fields"
        or decorators.model_validators
        or decorators.root_validators
        or contract.__pydantic_post_init__ is not None
        or contract.__private_attributes__
    ):
        return None
    fields = SchemaValidator(schema["schema"], schema.get("config"))
    new = contract.__new__
    setattr_ = object.__setattr__

    def validate(data: dict[str, Any]) -> Contract:
        values, _extra, fields_set = fields.validate_python(data)
        model: Contract = new(contract)
        setattr_(model, "__dict__", values)
        setattr_(model, "__pydantic_fields_set__", fields_set)
        setattr_(model, "__pydantic_extra__", None)
        setattr_(model, "__pydantic_private__", None)
        return model

    return validate


def stored_envelope(data: dict[str, Any]) -> EventEnvelope:
    """``EventEnvelope.model_validate(data)``, faster, for ``data`` read back from a store.

    The result equals the normal validation's; anything the normal validation refuses is
    refused here too, with the same error (the normal validation raises it).
    """
    if not FAST_READ:
        return EventEnvelope.model_validate(data)
    try:
        values, _extra, fields_set = _HEAD.validate_python(data)
        payload = values["payload"]
        if type(payload) is not dict:  # not the stored shape: the normal path decides
            raise TypeError("payload is not a mapping")
        # Looked up by the validated values, as the normal path's after-validator does.
        values["payload"] = _payload_validator(
            _contract(values["event_type"], values["schema_version"])
        )(payload)
    except Exception:  # the normal path reports it (or, never, accepts it)
        return EventEnvelope.model_validate(data)
    envelope = EventEnvelope.__new__(EventEnvelope)
    setattr_ = object.__setattr__
    setattr_(envelope, "__dict__", values)
    setattr_(envelope, "__pydantic_fields_set__", fields_set)
    setattr_(envelope, "__pydantic_extra__", None)
    setattr_(envelope, "__pydantic_private__", None)
    return envelope
