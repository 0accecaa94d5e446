"""The event catalogue: every event type, and the aggregate type whose stream carries it."""

from __future__ import annotations

from enum import StrEnum


class AggregateType(StrEnum):
    """Kinds of aggregate. A stream id is ``<aggregate type>-<id>``, e.g. ``order-7f3a...``."""

    SIGNAL = "signal"
    ORDER = "order"
    POSITION = "position"
    PORTFOLIO = "portfolio"
    RISK = "risk"
    ALERT = "alert"
    # Market ticks have no aggregate stream (DESIGN §3); they live on the market_data topic only.
    MARKET = "market"


class EventType(StrEnum):
    MARKET_DATA_RECEIVED = "MARKET_DATA_RECEIVED"
    SIGNAL_GENERATED = "SIGNAL_GENERATED"
    SIGNAL_BLOCKED = "SIGNAL_BLOCKED"
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_PARTIALLY_FILLED = "ORDER_PARTIALLY_FILLED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    POSITION_OPENED = "POSITION_OPENED"
    POSITION_INCREASED = "POSITION_INCREASED"
    POSITION_REDUCED = "POSITION_REDUCED"
    POSITION_CLOSED = "POSITION_CLOSED"
    PORTFOLIO_SNAPSHOT_TAKEN = "PORTFOLIO_SNAPSHOT_TAKEN"
    CIRCUIT_BREAKER_TRIPPED = "CIRCUIT_BREAKER_TRIPPED"
    CIRCUIT_BREAKER_RESET = "CIRCUIT_BREAKER_RESET"
    ALERT_RAISED = "ALERT_RAISED"


AGGREGATE_OF: dict[EventType, AggregateType] = {
    EventType.MARKET_DATA_RECEIVED: AggregateType.MARKET,
    EventType.SIGNAL_GENERATED: AggregateType.SIGNAL,
    EventType.SIGNAL_BLOCKED: AggregateType.SIGNAL,
    EventType.ORDER_PLACED: AggregateType.ORDER,
    EventType.ORDER_REJECTED: AggregateType.ORDER,
    EventType.ORDER_FILLED: AggregateType.ORDER,
    EventType.ORDER_PARTIALLY_FILLED: AggregateType.ORDER,
    EventType.ORDER_CANCELLED: AggregateType.ORDER,
    EventType.POSITION_OPENED: AggregateType.POSITION,
    EventType.POSITION_INCREASED: AggregateType.POSITION,
    EventType.POSITION_REDUCED: AggregateType.POSITION,
    EventType.POSITION_CLOSED: AggregateType.POSITION,
    EventType.PORTFOLIO_SNAPSHOT_TAKEN: AggregateType.PORTFOLIO,
    EventType.CIRCUIT_BREAKER_TRIPPED: AggregateType.RISK,
    EventType.CIRCUIT_BREAKER_RESET: AggregateType.RISK,
    EventType.ALERT_RAISED: AggregateType.ALERT,
}


def aggregate_type_of(stream_id: str) -> str:
    """The aggregate type named by a stream id's prefix (``order-abc`` -> ``order``)."""
    head, sep, _ = stream_id.partition("-")
    return head if sep else ""
