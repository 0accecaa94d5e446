"""The event envelope (DESIGN §3) and deterministic event ids.

A producer builds a :class:`NewEvent`; the store assigns ``stream_id`` and ``sequence_number``
on append and hands back :class:`EventEnvelope` values. The payload is a typed contract chosen
by ``(event_type, schema_version)`` through :mod:`cdb.domain.registry`.
"""

from __future__ import annotations

import re
import sys
import threading
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
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator, core_schema

from cdb.domain.event_types import EventType
from cdb.errors import CdbError

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


# -- the read path from JSON: one native pass per entry ------------------------------------------
#
# A stored entry's body is JSON, so its rules can run where pydantic parses it: for each
# (event type, schema version), one validator takes the body bytes and checks timestamp,
# payload (every rule of the registered contract) and metadata in one pass. The Python field
# validators of the contracts and of the envelope are swapped for native equivalents (see
# ``JSON_READ_RULES`` in :mod:`cdb.domain.contracts.fields`) that accept no more than they do;
# the contracts' error-translating ``__init__`` is not called, as in :func:`_fields_validator`.
# Whatever this path does not accept returns None, and the caller runs the normal validation,
# which accepts it or raises its precise error.


def _inner(node: Any, kind: str) -> Any:
    """The first node of type ``kind`` down the ``schema`` chain of ``node``."""
    while node.get("type") != kind:
        node = node["schema"]
    return node


# EventEnvelope's model node and its fields, under the wrappers of its model validators.
_ENVELOPE_MODEL: Any = _inner(EventEnvelope.__pydantic_core_schema__, "model")
_ENVELOPE_FIELDS: dict[str, Any] = _inner(_ENVELOPE_MODEL, "model-fields")["fields"]
_ENVELOPE_ORDER = (
    "event_id",
    "event_type",
    "timestamp",
    "schema_version",
    "payload",
    "metadata",
    "stream_id",
    "sequence_number",
)
_ROUTING = ("event_id", "event_type", "schema_version", "stream_id", "sequence_number")
_BODY_FIELDS = ("timestamp", "payload", "metadata")
# Schema nodes that are values, not schemas: never rewritten (a default stays the same object).
_NOT_SCHEMAS = frozenset({"default", "metadata", "config", "serialization", "cls", "members"})
_BUILD_LOCK = threading.Lock()


def _routing_rule(name: str, kind: str) -> dict[str, Any] | None:
    """The constraints of a plain routing field, when they are only ``kind`` and its bounds."""
    schema: dict[str, Any] = _ENVELOPE_FIELDS[name]["schema"]
    bounds = {"str": {"min_length", "max_length"}, "int": {"ge"}}[kind]
    if schema.get("type") != kind or not schema.keys() - {"type"} <= bounds:
        return None
    return schema


_STREAM_ID_RULE = _routing_rule("stream_id", "str")
_SEQUENCE_RULE = _routing_rule("sequence_number", "int")
JSON_READ = (
    FAST_READ
    and tuple(EventEnvelope.model_fields) == _ENVELOPE_ORDER
    and _STREAM_ID_RULE is not None
    and _SEQUENCE_RULE is not None
)
"""True when :class:`StoredReader` is used (the envelope's shape is the one it assembles)."""
_STREAM_ID_MIN = _STREAM_ID_RULE.get("min_length", 0) if _STREAM_ID_RULE else 0
_STREAM_ID_MAX = _STREAM_ID_RULE.get("max_length", sys.maxsize) if _STREAM_ID_RULE else 0
_SEQUENCE_MIN = _SEQUENCE_RULE.get("ge", -sys.maxsize) if _SEQUENCE_RULE else 0
_EVENT_ID = SchemaValidator(_ENVELOPE_FIELDS["event_id"]["schema"])
_SET_BY_ROUTING = frozenset(_ROUTING)


def _envelope_rules() -> dict[Any, Callable[[dict[str, Any]], Any]]:
    from cdb.domain.contracts.fields import JSON_READ_RULES, utc_datetime_json

    def timestamp(node: dict[str, Any]) -> Any:
        # NewEvent._timestamp_utc around an aware datetime: the UTC check and conversion.
        return utc_datetime_json(node["schema"]) if node.get("type") == "function-after" else None

    def traceparent(node: dict[str, Any]) -> Any:
        # EventMetadata._w3c around an optional str: the same pattern, in the regex engine of
        # pydantic-core, whose ``$`` is the end of the text (Python's also allows a final \n).
        inner = node.get("schema", {})
        if (
            node.get("type") != "function-after"
            or inner.get("type") != "nullable"
            or inner["schema"] != {"type": "str"}
        ):
            return None
        return {**inner, "schema": {"type": "str", "pattern": _TRACEPARENT.pattern}}

    return {
        **JSON_READ_RULES,
        NewEvent._timestamp_utc.__func__: timestamp,  # type: ignore[attr-defined]
        EventMetadata._w3c.__func__: traceparent,  # type: ignore[attr-defined]
    }


def _native_json(
    node: Any,
    rules: dict[Any, Callable[[dict[str, Any]], Any]],
    models: set[type[BaseModel]],
) -> Any:
    """``node`` with every known Python validator replaced by its native JSON-read form."""
    if isinstance(node, list):
        return [_native_json(item, rules, models) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _NOT_SCHEMAS:
            out[key] = value
        elif key == "fields" and isinstance(value, dict):
            # Keyed by field name, so every entry is a field schema, whatever its name.
            out[key] = {name: _native_json(field, rules, models) for name, field in value.items()}
        else:
            out[key] = _native_json(value, rules, models)
    kind = out.get("type")
    if kind in ("function-before", "function-after") and isinstance(out.get("function"), dict):
        function = out["function"].get("function")
        rule = rules.get(getattr(function, "__func__", function))
        native = rule(out) if rule is not None else None
        if native is not None:
            return native
    if kind == "model":
        models.add(out["cls"])
        if out.get("custom_init") and _translates_errors_only(out["cls"]):
            out["custom_init"] = False
    return out


def _translates_errors_only(cls: type[BaseModel]) -> bool:
    # Payload.__init__ only turns pydantic's error into ContractError; the normal path, which
    # runs when this one refuses, raises that error. Any other __init__ is kept.
    from cdb.domain.contracts.base import Payload

    return cls.__init__ is Payload.__init__


def _build(schema: Any, config: Any, models: set[type[BaseModel]]) -> SchemaValidator:
    # pydantic-core reuses a finished model class's own validator for a ``model`` node, which
    # would ignore the rewritten node; while the validator is built the classes are marked
    # unfinished, as ``model_rebuild`` itself does, and restored under the same lock.
    with _BUILD_LOCK:
        finished = [cls for cls in models if cls.__dict__.get("__pydantic_complete__")]
        try:
            for cls in finished:
                type.__setattr__(cls, "__pydantic_complete__", False)
            return SchemaValidator(schema, config)
        finally:
            for cls in finished:
                type.__setattr__(cls, "__pydantic_complete__", True)


# A routing field's slot in the body validator: filled in from the entry's own fields after
# validation, so the JSON body must not carry it (the normal path refuses such a body too).
_NOT_IN_BODY = core_schema.literal_schema([object()])


def reader_schema(contract: type[Contract]) -> tuple[Any, set[type[BaseModel]]]:
    """The native JSON-read schema of a stored body carrying ``contract``, and its model classes."""
    # Every envelope field, in the envelope's order, so the validated values are the
    # envelope's ``__dict__`` once the routing slots are filled.
    fields = {
        name: {
            "type": "model-field",
            "schema": core_schema.with_default_schema(_NOT_IN_BODY, default=None),
        }
        for name in EventEnvelope.model_fields
    }
    fields["timestamp"] = _ENVELOPE_FIELDS["timestamp"]
    fields["payload"] = {"type": "model-field", "schema": contract.__pydantic_core_schema__}
    fields["metadata"] = _ENVELOPE_FIELDS["metadata"]
    schema = {
        "type": "model",
        "cls": EventEnvelope,
        "config": _ENVELOPE_MODEL["config"],
        "schema": {"type": "model-fields", "fields": fields, "extra_behavior": "forbid"},
    }
    models: set[type[BaseModel]] = set()
    return _native_json(schema, _envelope_rules(), models), models


class StoredReader:
    """Reads the stored entries of one ``(event type, schema version)`` in one native pass."""

    __slots__ = ("_body", "event_type", "schema_version")

    def __init__(self, event_type: EventType, schema_version: str) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        schema, models = reader_schema(_contract(event_type, schema_version))
        self._body = _build(schema, None, models)

    def read(
        self, event_id: str, stream_id: str, sequence_number: int, body: str | bytes
    ) -> EventEnvelope | None:
        """The envelope, equal to ``EventEnvelope.model_validate`` of the same entry, or None
        when anything is unusual or invalid (the normal validation then decides)."""
        if not (
            _STREAM_ID_MIN <= len(stream_id) <= _STREAM_ID_MAX and sequence_number >= _SEQUENCE_MIN
        ):
            return None
        try:
            event_uuid = _EVENT_ID.validate_python(event_id)
            envelope: EventEnvelope = self._body.validate_json(body)
        except ValidationError:
            return None
        values = envelope.__dict__
        values["event_id"] = event_uuid
        values["event_type"] = self.event_type
        values["schema_version"] = self.schema_version
        values["stream_id"] = stream_id
        values["sequence_number"] = sequence_number
        envelope.__pydantic_fields_set__.update(_ROUTING)
        return envelope


_READERS: dict[tuple[str | bytes, str | bytes], StoredReader] = {}
_HEAD_OF_TYPE = SchemaValidator(
    {
        "type": "model-fields",
        "fields": {name: _ENVELOPE_FIELDS[name] for name in ("event_type", "schema_version")},
    }
)


def stored_reader(event_type: str | bytes, schema_version: str | bytes) -> StoredReader | None:
    """The reader of entries with these raw ``t`` and ``v`` fields (both str or both bytes),
    or None when they are not a valid, registered pair (the normal validation then says why)."""
    key = (event_type, schema_version)
    reader = _READERS.get(key)
    if reader is not None or not JSON_READ:
        return reader
    try:
        if isinstance(event_type, bytes) and isinstance(schema_version, bytes):
            event_type, schema_version = event_type.decode(), schema_version.decode()
        elif not (isinstance(event_type, str) and isinstance(schema_version, str)):
            return None
        values, _extra, _set = _HEAD_OF_TYPE.validate_python(
            {"event_type": event_type, "schema_version": schema_version}
        )
        _contract(values["event_type"], values["schema_version"])
    except (ValidationError, UnicodeDecodeError, CdbError):
        return None  # not cached: only registered pairs are, so the cache stays small
    # The version validated as the raw value is kept: a str equal to it.
    reader = StoredReader(values["event_type"], values["schema_version"])
    _READERS[key] = reader
    return reader
