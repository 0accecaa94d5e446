"""A deterministic trading history for benches, tests and demos of the projections.

Each cycle is one signal, its order (every tenth one rejected by execution, every twentieth
signal blocked by risk instead), a partial fill and a fill, and the position after the fill;
every tenth cycle adds a portfolio snapshot and every 25th an alert. The same arguments always
give the same events.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cdb.domain.contracts import (
    AlertLevel,
    AlertV1,
    BlockReason,
    OrderResultV1,
    OrderStatus,
    OrderType,
    OrderV1,
    PortfolioSnapshotV1,
    PositionSide,
    PositionV1,
    Side,
    SignalBlockedV1,
    SignalV1,
)
from cdb.domain.envelope import Contract, NewEvent, derive_id
from cdb.domain.event_types import EventType
from cdb.eventstore.store import AppendRequest

SYMBOLS = ("BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT")
BASE_TIME = datetime(2026, 1, 5, tzinfo=UTC)
EVENTS_PER_CYCLE = 6  # approximately: 5 per cycle plus the occasional snapshot / alert


def _event(seed: str, i: int, kind: str, event_type: EventType, payload: Contract) -> NewEvent:
    return NewEvent(
        event_id=derive_id(seed, str(i), kind),
        event_type=event_type,
        timestamp=BASE_TIME + timedelta(seconds=i),
        payload=payload,
    )


def cycle(i: int, seed: str = "sample") -> list[AppendRequest]:
    """The appends of cycle ``i`` (each request is one aggregate and one topic)."""
    at = BASE_TIME + timedelta(seconds=i)
    symbol = SYMBOLS[i % len(SYMBOLS)]
    strategy = f"momentum{i % 3}"
    side = Side.BUY if i % 2 == 0 else Side.SELL
    price = Decimal(100 + i % 97) + Decimal(i % 100) / 100
    signal_id = f"s{seed}{i}"
    order_id = f"o{seed}{i}"
    requests: list[AppendRequest] = []
    signal = SignalV1(
        signal_id=signal_id,
        strategy_id=strategy,
        symbol=symbol,
        side=side,
        confidence=0.5 + (i % 50) / 100,
        reason="price change above threshold",
        price=price,
        timestamp=at,
    )
    requests.append(
        AppendRequest(
            f"signal-{signal_id}",
            [_event(seed, i, "signal", EventType.SIGNAL_GENERATED, signal)],
            None,
        )
    )
    quantity = Decimal("0.5") + Decimal(i % 7) / 10
    if i % 20 == 19:
        blocked = SignalBlockedV1(
            signal_id=signal_id,
            strategy_id=strategy,
            symbol=symbol,
            side=side,
            reason_code=BlockReason.MAX_EXPOSURE_EXCEEDED,
            detail="exposure 31% > 30%",
            timestamp=at,
        )
        requests[-1] = AppendRequest(
            f"signal-{signal_id}",
            [
                *requests[-1].events,
                _event(seed, i, "blocked", EventType.SIGNAL_BLOCKED, blocked),
            ],
            None,
        )
        return requests
    order = OrderV1(
        order_id=order_id,
        signal_id=signal_id,
        strategy_id=strategy,
        symbol=symbol,
        side=side,
        quantity=quantity,
        order_type=OrderType.MARKET,
        target_price=price,
        timestamp=at,
    )
    requests.append(
        AppendRequest(
            f"order-{order_id}", [_event(seed, i, "placed", EventType.ORDER_PLACED, order)], None
        )
    )
    if i % 10 == 9:
        rejected = OrderResultV1(
            order_id=order_id,
            signal_id=signal_id,
            strategy_id=strategy,
            symbol=symbol,
            side=side,
            status=OrderStatus.REJECTED,
            quantity=quantity,
            filled_quantity=Decimal(0),
            fee=Decimal(0),
            fee_asset="USDT",
            reason="insufficient liquidity",
            timestamp=at,
        )
        requests.append(
            AppendRequest(
                f"order-{order_id}",
                [_event(seed, i, "rejected", EventType.ORDER_REJECTED, rejected)],
                None,
            )
        )
        return requests
    slip = Decimal(1) + Decimal(i % 5) / 1000
    fill_price = (price * slip).quantize(Decimal("0.00000001"))
    half = (quantity / 2).quantize(Decimal("0.00000001"))
    fills = []
    for kind, status, filled in (
        ("partial", OrderStatus.PARTIALLY_FILLED, half),
        ("filled", OrderStatus.FILLED, quantity),
    ):
        fills.append(
            _event(
                seed,
                i,
                kind,
                EventType.ORDER_FILLED
                if status is OrderStatus.FILLED
                else EventType.ORDER_PARTIALLY_FILLED,
                OrderResultV1(
                    order_id=order_id,
                    signal_id=signal_id,
                    strategy_id=strategy,
                    symbol=symbol,
                    side=side,
                    status=status,
                    quantity=quantity,
                    filled_quantity=filled,
                    price=fill_price,
                    target_price=price,
                    fee=(filled * fill_price / 1000).quantize(Decimal("0.00000001")),
                    fee_asset="USDT",
                    timestamp=at,
                ),
            )
        )
    requests.append(AppendRequest(f"order-{order_id}", fills, None))
    position = PositionV1(
        strategy_id=strategy,
        symbol=symbol,
        side=PositionSide.LONG if side is Side.BUY else PositionSide.SHORT,
        quantity=quantity,
        avg_entry_price=fill_price,
        realised_pnl=Decimal(i % 13) - 6,
        unrealised_pnl=Decimal(0),
        mark_price=fill_price,
        timestamp=at,
    )
    position_type = EventType.POSITION_OPENED if i < 12 else EventType.POSITION_INCREASED
    requests.append(
        AppendRequest(
            f"position-{strategy}.{symbol}",
            [_event(seed, i, "position", position_type, position)],
            None,
        )
    )
    if i % 10 == 0:
        snapshot = PortfolioSnapshotV1(
            equity=Decimal(10_000) + i % 300,
            cash=Decimal(8_000),
            exposure=Decimal(2_000) + i % 100,
            realised_pnl=Decimal(i % 50) - 25,
            unrealised_pnl=Decimal(0),
            daily_pnl=Decimal(i % 40) - 20,
            drawdown_pct=Decimal(i % 5),
            open_positions=i % 8,
            timestamp=at,
        )
        requests.append(
            AppendRequest(
                "portfolio-main",
                [_event(seed, i, "snapshot", EventType.PORTFOLIO_SNAPSHOT_TAKEN, snapshot)],
                None,
            )
        )
    if i % 25 == 0:
        alert = AlertV1(
            level=AlertLevel.WARNING,
            code="RISK_LIMIT",
            message=f"exposure close to limit on {symbol}",
            context={"symbol": symbol, "cycle": str(i)},
            timestamp=at,
        )
        requests.append(
            AppendRequest(
                f"alert-{seed}{i}", [_event(seed, i, "alert", EventType.ALERT_RAISED, alert)], None
            )
        )
    return requests


def requests(cycles: int, seed: str = "sample", start: int = 0) -> Iterator[AppendRequest]:
    for i in range(start, start + cycles):
        yield from cycle(i, seed)
