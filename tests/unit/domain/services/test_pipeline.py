"""End to end, in memory: the shipped recording through signal -> risk -> execution -> portfolio.

The properties the system test later checks on real streams, checked here on the pure run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

import pytest

from cdb.domain.contracts import (
    CircuitBreakerV1,
    MarketDataV1,
    OrderResultV1,
    OrderV1,
    PortfolioSnapshotV1,
    PositionSide,
    PositionV1,
    Side,
    SignalBlockedV1,
    SignalV1,
)
from cdb.domain.event_types import EventType
from cdb.domain.services.events import Emit
from cdb.domain.services.risk import RESULT_TYPES, STOP_LOSS_PREFIX, RiskParams
from cdb.domain.services.sim import Pipeline

RISK = RiskParams()
TOLERANCE = Decimal("0.000001")


def of(run: Pipeline, *types: EventType) -> list[Emit]:
    return [e for e in run.events if e.event_type in types]


def test_every_signal_has_exactly_one_decision(shipped_run: Pipeline) -> None:
    signals = [e.event.payload for e in of(shipped_run, EventType.SIGNAL_GENERATED)]
    decisions: Counter[str] = Counter()
    for e in of(shipped_run, EventType.ORDER_PLACED, EventType.SIGNAL_BLOCKED):
        payload = e.event.payload
        assert isinstance(payload, OrderV1 | SignalBlockedV1)
        if not payload.signal_id.startswith(STOP_LOSS_PREFIX):
            decisions[payload.signal_id] += 1
    ids = {s.signal_id for s in signals if isinstance(s, SignalV1)}
    assert len(ids) == len(signals) > 50
    assert set(decisions) == ids
    assert set(decisions.values()) == {1}


def test_every_order_has_exactly_one_terminal_result(shipped_run: Pipeline) -> None:
    orders = {
        e.event.payload.order_id
        for e in of(shipped_run, EventType.ORDER_PLACED)
        if isinstance(e.event.payload, OrderV1)
    }
    results = Counter(
        e.event.payload.order_id
        for e in of(shipped_run, *RESULT_TYPES)
        if isinstance(e.event.payload, OrderResultV1)
    )
    assert set(results) == orders
    assert set(results.values()) == {1}


def test_both_sides_both_symbols_stop_losses_and_limit_blocks_occur(shipped_run: Pipeline) -> None:
    sides = Counter(
        (e.event.payload.symbol, e.event.payload.side)
        for e in of(shipped_run, EventType.SIGNAL_GENERATED)
        if isinstance(e.event.payload, SignalV1)
    )
    for symbol in ("BTC_USDT", "ETH_USDT"):
        assert sides[(symbol, Side.BUY)] > 5
        assert sides[(symbol, Side.SELL)] > 5
    reasons = Counter(
        e.event.payload.reason_code.value
        for e in of(shipped_run, EventType.SIGNAL_BLOCKED)
        if isinstance(e.event.payload, SignalBlockedV1)
    )
    assert reasons["MAX_POSITION_EXCEEDED"] > 0
    assert reasons["CIRCUIT_BREAKER_TRIPPED"] > 0
    stops = [
        e
        for e in of(shipped_run, EventType.ORDER_PLACED)
        if isinstance(e.event.payload, OrderV1)
        and e.event.payload.signal_id.startswith(STOP_LOSS_PREFIX)
    ]
    assert stops


def test_the_breaker_trips_on_the_bad_day_and_resets_at_midnight(shipped_run: Pipeline) -> None:
    transitions = of(
        shipped_run, EventType.CIRCUIT_BREAKER_TRIPPED, EventType.CIRCUIT_BREAKER_RESET
    )
    assert [e.event_type for e in transitions] == [
        EventType.CIRCUIT_BREAKER_TRIPPED,
        EventType.CIRCUIT_BREAKER_RESET,
    ]
    trip, reset = (e.event.payload for e in transitions)
    assert isinstance(trip, CircuitBreakerV1)
    assert isinstance(reset, CircuitBreakerV1)
    assert trip.trading_day == date(2025, 3, 3)
    assert trip.daily_pnl <= RISK.loss_limit
    assert reset.trading_day == date(2025, 3, 4)
    assert reset.timestamp.isoformat() == "2025-03-04T00:00:00+00:00"
    critical = [
        e
        for e in of(shipped_run, EventType.ALERT_RAISED)
        if e.event.payload.model_dump().get("level") == "CRITICAL"
    ]
    assert len(critical) == 1
    # Between trip and reset only reduce-only orders are placed; after the reset, new ones again.
    tripped_at, reset_at = transitions[0].event.timestamp, transitions[1].event.timestamp
    orders = [
        e.event.payload
        for e in of(shipped_run, EventType.ORDER_PLACED)
        if isinstance(e.event.payload, OrderV1)
    ]
    assert all(o.reduce_only for o in orders if tripped_at < o.timestamp < reset_at)
    assert any(not o.reduce_only for o in orders if o.timestamp >= reset_at)


def test_positions_agree_with_fills(shipped_run: Pipeline) -> None:
    from_fills: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in of(shipped_run, EventType.ORDER_FILLED, EventType.ORDER_PARTIALLY_FILLED):
        r = e.event.payload
        assert isinstance(r, OrderResultV1)
        signed = r.filled_quantity if r.side is Side.BUY else -r.filled_quantity
        from_fills[(r.strategy_id, r.symbol)] += signed
    last: dict[tuple[str, str], PositionV1] = {}
    for e in of(
        shipped_run,
        EventType.POSITION_OPENED,
        EventType.POSITION_INCREASED,
        EventType.POSITION_REDUCED,
        EventType.POSITION_CLOSED,
    ):
        p = e.event.payload
        assert isinstance(p, PositionV1)
        last[(p.strategy_id, p.symbol)] = p
    assert set(last) == set(from_fills)
    for key, qty in from_fills.items():
        pos = last[key]
        signed = -pos.quantity if pos.side is PositionSide.SHORT else pos.quantity
        assert signed == qty
        assert shipped_run.portfolio.positions[key].quantity == qty
        assert shipped_run.risk.positions[key].quantity == qty


def test_fills_are_priced_by_the_market_with_fees_and_adverse_slippage(
    shipped_run: Pipeline,
) -> None:
    last_price: dict[str, Decimal] = {}
    fills = 0
    for e in shipped_run.events:
        payload = e.event.payload
        if isinstance(payload, MarketDataV1):
            last_price[payload.symbol] = payload.price
        elif isinstance(payload, OrderResultV1) and payload.price is not None:
            fills += 1
            market = last_price[payload.symbol]
            assert payload.fee > 0
            assert payload.slippage_bps is not None
            assert payload.slippage_bps >= 5
            if payload.side is Side.BUY:
                assert payload.price > market
            else:
                assert payload.price < market
    assert fills > 50


def test_limits_held_at_every_order(shipped_run: Pipeline) -> None:
    position: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    mark: dict[str, Decimal] = {}
    for e in shipped_run.events:
        p = e.event.payload
        if isinstance(p, MarketDataV1):
            mark[p.symbol] = p.price
        elif isinstance(p, OrderResultV1) and p.filled_quantity:
            position[(p.strategy_id, p.symbol)] += (
                p.filled_quantity if p.side is Side.BUY else -p.filled_quantity
            )
        elif isinstance(p, OrderV1):
            key = (p.strategy_id, p.symbol)
            if p.reduce_only:
                assert p.quantity <= abs(position[key])  # never more than is open
                continue
            price = p.target_price or mark[p.symbol]
            after = abs(position[key]) + p.quantity
            assert after * price <= RISK.max_position_notional + TOLERANCE
            others = sum((abs(q) * mark[k[1]] for k, q in position.items() if k != key), Decimal(0))
            assert others + after * price <= RISK.max_exposure_notional + TOLERANCE


def test_the_account_adds_up_in_every_snapshot(shipped_run: Pipeline) -> None:
    snaps = [
        e.event.payload
        for e in of(shipped_run, EventType.PORTFOLIO_SNAPSHOT_TAKEN)
        if isinstance(e.event.payload, PortfolioSnapshotV1)
    ]
    assert len(snaps) == 2 * 96 - 1  # every 15 minutes of market time over two days
    for s in snaps:
        assert abs(s.equity - (Decimal(10000) + s.realised_pnl + s.unrealised_pnl)) < Decimal(
            "0.01"
        )
        assert 0 <= s.drawdown_pct <= 100


@pytest.mark.parametrize("kind", ["causation", "correlation"])
def test_every_event_is_caused_by_an_earlier_one(shipped_run: Pipeline, kind: str) -> None:
    seen: set[str] = set()
    for e in shipped_run.events:
        meta = e.event.metadata
        if e.event_type is not EventType.MARKET_DATA_RECEIVED:
            ref = meta.causation_id if kind == "causation" else meta.correlation_id
            assert ref in seen, (e.event_type, ref)
        seen.add(str(e.event.event_id))
