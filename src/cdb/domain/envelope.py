"""The event envelope (DESIGN §3) and deterministic event ids.

A producer builds a :class:`NewEvent`; the store assigns ``stream_id`` and ``sequence_number``
on append and hands back :class:`EventEnvelope` values. The payload is a typed contract chosen
by ``(event_type, schema_version)`` through :mod:`cdb.domain.registry`.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)

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
