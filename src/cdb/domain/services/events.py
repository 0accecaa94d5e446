"""Building output events: deterministic ids, causal metadata, and decimal quantisation.

Every event the pipeline logic emits is an :class:`Emit`: the :class:`NewEvent` plus the
aggregate stream it belongs to. Its ``event_id`` is derived (uuid5) from what caused it -- the
input event's id and the output's kind, or a semantic key such as the trading day for a breaker
reset -- and its timestamp is the input's, so replaying the same input yields the same events
byte for byte. (``traceparent`` is left to the runtime: trace ids differ per run.)
``causation_id`` is the input's id; ``correlation_id`` is carried along the chain
(the first event of a chain correlates to itself).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from cdb.domain.envelope import Contract, EventMetadata, NewEvent, derive_id
from cdb.domain.event_types import AggregateType, EventType

QTY_QUANTUM = Decimal("0.00000001")
"""Quantities (base units): 8 decimal places, rounded *down* so a size never exceeds a limit."""
PRICE_QUANTUM = Decimal("0.00000001")
"""Prices (quote per base): 8 decimal places, half-even."""
MONEY_QUANTUM = Decimal("0.00000001")
"""Amounts of quote currency (USDT): 8 decimal places, half-even."""
PCT_QUANTUM = Decimal("0.0001")
"""Percentages and basis points: 4 decimal places, half-even."""

ZERO = Decimal(0)


def _plain_zero(value: Decimal) -> Decimal:
    # A quantised zero (0E-8, -0E-8) becomes plain 0, so payloads never carry "0E-8".
    return value if value else ZERO


def q_qty(value: Decimal) -> Decimal:
    return _plain_zero(value.quantize(QTY_QUANTUM, rounding=ROUND_DOWN))


def q_price(value: Decimal) -> Decimal:
    return _plain_zero(value.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN))


def q_money(value: Decimal) -> Decimal:
    return _plain_zero(value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN))


def q_pct(value: Decimal) -> Decimal:
    return _plain_zero(value.quantize(PCT_QUANTUM, rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class Emit:
    """An event to append, and the aggregate stream (``<aggregate type>-<id>``) it goes to."""

    stream_id: str
    event: NewEvent

    @property
    def event_type(self) -> EventType:
        return self.event.event_type


def stream_id(aggregate: AggregateType, key: str) -> str:
    return f"{aggregate.value}-{key}"


def correlation_of(cause: NewEvent) -> str:
    """The correlation id a consequence of ``cause`` carries: the chain's, or ``cause`` itself."""
    return cause.metadata.correlation_id or str(cause.event_id)


def emit(
    aggregate: AggregateType,
    key: str,
    event_type: EventType,
    payload: Contract,
    *,
    cause: NewEvent,
    producer: str,
    id_parts: tuple[str, ...] | None = None,
    timestamp: datetime | None = None,
    causation_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Emit:
    """An :class:`Emit` caused by ``cause``.

    The event id is ``derive_id(cause id, event type, key)`` unless ``id_parts`` names a
    semantic key (then ``derive_id(event type, *id_parts)``, the same whichever input triggered
    it). The timestamp is the cause's unless given; ``causation_id`` overrides the cause's id
    where the real cause is a semantic predecessor (a breaker reset is caused by its trip);
    ``event_id`` fixes the id outright (one id for whichever result an order gets).
    """
    if event_id is None:
        event_id = (
            derive_id(event_type.value, *id_parts)
            if id_parts is not None
            else derive_id(str(cause.event_id), event_type.value, key)
        )
    event = NewEvent(
        event_id=event_id,
        event_type=event_type,
        timestamp=cause.timestamp if timestamp is None else timestamp,
        payload=payload,
        metadata=EventMetadata(
            correlation_id=correlation_of(cause),
            causation_id=causation_id or str(cause.event_id),
            producer=producer,
        ),
    )
    return Emit(stream_id(aggregate, key), event)


def new_id(*parts: str) -> str:
    """A deterministic entity id (order id, signal id ...) as text."""
    return str(derive_id(*parts))
