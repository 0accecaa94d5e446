"""Small builders of input events for the pure pipeline logic's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cdb.domain.contracts import (
    MarketDataV1,
    OrderResultV1,
    OrderStatus,
    OrderType,
    OrderV1,
    Side,
    SignalV1,
)
from cdb.domain.contracts.order import ORDER_EVENT_FOR_STATUS
from cdb.domain.envelope import EventMetadata, NewEvent, derive_id
from cdb.domain.event_types import EventType
from cdb.domain.services.marketdata import tick_event

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


def at(minutes: float, start: datetime = T0) -> datetime:
    return start + timedelta(minutes=minutes)


def tick(
    symbol: str, price: str | Decimal, minute: float, volume: str | Decimal = "50"
) -> NewEvent:
    md = MarketDataV1(
        symbol=symbol,
        price=Decimal(price),
        volume=Decimal(volume),
        timestamp=at(minute),
        interval="1m",
    )
    return tick_event(md).event


def signal_event(
    symbol: str,
    side: Side,
    price: str | Decimal,
    minute: float,
    *,
    strategy_id: str = "momentum-v1",
    signal_id: str | None = None,
) -> NewEvent:
    sid = signal_id or str(derive_id("test-signal", symbol, side.value, str(minute), str(price)))
    payload = SignalV1(
        signal_id=sid,
        strategy_id=strategy_id,
        symbol=symbol,
        side=side,
        confidence=0.5,
        reason="test",
        price=Decimal(price),
        timestamp=at(minute),
    )
    return NewEvent(
        event_id=derive_id("test-signal-event", sid),
        event_type=EventType.SIGNAL_GENERATED,
        timestamp=at(minute),
        payload=payload,
        metadata=EventMetadata(correlation_id="corr-1", producer="test"),
    )


def order_event(
    symbol: str,
    side: Side,
    quantity: str | Decimal,
    minute: float,
    *,
    reduce_only: bool = False,
    order_id: str = "order-1",
    strategy_id: str = "momentum-v1",
    target_price: str | None = None,
) -> NewEvent:
    payload = OrderV1(
        order_id=order_id,
        signal_id=f"sig-{order_id}",
        strategy_id=strategy_id,
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        order_type=OrderType.MARKET,
        target_price=None if target_price is None else Decimal(target_price),
        reduce_only=reduce_only,
        timestamp=at(minute),
    )
    return NewEvent(
        event_id=derive_id("test-order-event", order_id),
        event_type=EventType.ORDER_PLACED,
        timestamp=at(minute),
        payload=payload,
    )


def fill_event(
    symbol: str,
    side: Side,
    quantity: str | Decimal,
    price: str | Decimal,
    minute: float,
    *,
    order_id: str,
    fee: str | Decimal = "0",
    strategy_id: str = "momentum-v1",
    ordered: str | Decimal | None = None,
) -> NewEvent:
    """A result of ``order_id``: FILLED, or PARTIALLY_FILLED when ``ordered`` is larger."""
    total = Decimal(ordered) if ordered is not None else Decimal(quantity)
    status = OrderStatus.FILLED if total == Decimal(quantity) else OrderStatus.PARTIALLY_FILLED
    payload = OrderResultV1(
        order_id=order_id,
        signal_id=f"sig-{order_id}",
        strategy_id=strategy_id,
        symbol=symbol,
        side=side,
        status=status,
        quantity=total,
        filled_quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal(fee),
        fee_asset="USDT",
        timestamp=at(minute),
    )
    return NewEvent(
        event_id=derive_id("test-result", order_id, str(quantity)),
        event_type=ORDER_EVENT_FOR_STATUS[status],
        timestamp=at(minute),
        payload=payload,
    )
