"""Real events (real contracts) for the event store's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cdb.domain.contracts import (
    AlertLevel,
    AlertV1,
    MarketDataV1,
    OrderResultV1,
    OrderStatus,
    OrderType,
    OrderV1,
    Side,
    SignalV1,
)
from cdb.domain.envelope import EventMetadata, NewEvent, derive_id
from cdb.domain.event_types import EventType

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def order_placed(order: str, *, n: int = 0) -> NewEvent:
    payload = OrderV1(
        order_id=order,
        signal_id=f"sig-{order}",
        strategy_id="momentum",
        symbol="BTC_USDT",
        side=Side.BUY,
        quantity=Decimal("0.0125"),
        order_type=OrderType.LIMIT,
        target_price=Decimal("64250.10"),
        timestamp=at(n),
    )
    return NewEvent(
        event_id=derive_id("test", "placed", order, str(n)),
        event_type=EventType.ORDER_PLACED,
        timestamp=at(n),
        payload=payload,
        metadata=EventMetadata(
            correlation_id=f"sig-{order}",
            causation_id=f"sig-{order}",
            producer="risk",
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    )


def order_filled(order: str, *, n: int = 1) -> NewEvent:
    payload = OrderResultV1(
        order_id=order,
        signal_id=f"sig-{order}",
        strategy_id="momentum",
        symbol="BTC_USDT",
        side=Side.BUY,
        status=OrderStatus.FILLED,
        quantity=Decimal("0.0125"),
        filled_quantity=Decimal("0.0125"),
        price=Decimal("64251.00"),
        target_price=Decimal("64250.10"),
        fee=Decimal("0.80313750"),
        fee_asset="USDT",
        slippage_bps=Decimal("0.14"),
        timestamp=at(n),
    )
    return NewEvent(
        event_id=derive_id("test", "filled", order, str(n)),
        event_type=EventType.ORDER_FILLED,
        timestamp=at(n),
        payload=payload,
        metadata=EventMetadata(producer="execution"),
    )


def signal(signal_id: str, *, n: int = 0) -> NewEvent:
    payload = SignalV1(
        signal_id=signal_id,
        strategy_id="momentum",
        symbol="ETH_USDT",
        side=Side.SELL,
        confidence=0.72,
        reason="price fell 2.1% in 5 minutes on rising volume",
        price=Decimal("3120.55"),
        timestamp=at(n),
    )
    return NewEvent(
        event_id=derive_id("test", "signal", signal_id, str(n)),
        event_type=EventType.SIGNAL_GENERATED,
        timestamp=at(n),
        payload=payload,
    )


def alert(tag: str, n: int) -> NewEvent:
    payload = AlertV1(
        level=AlertLevel.WARNING,
        code="TEST_ALERT",
        message=f"alert {n} of {tag}",
        context={"n": str(n)},
        timestamp=at(n),
    )
    return NewEvent(
        event_id=derive_id("test", "alert", tag, str(n)),
        event_type=EventType.ALERT_RAISED,
        timestamp=at(n),
        payload=payload,
    )


def tick(symbol: str, n: int) -> NewEvent:
    payload = MarketDataV1(
        symbol=symbol,
        price=Decimal("64000") + n,
        volume=Decimal("1.5"),
        timestamp=at(n),
        interval="1m",
    )
    return NewEvent(
        event_id=derive_id("test", "tick", symbol, str(n)),
        event_type=EventType.MARKET_DATA_RECEIVED,
        timestamp=at(n),
        payload=payload,
    )
