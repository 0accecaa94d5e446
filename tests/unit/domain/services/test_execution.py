"""Paper execution: market prices, fees, slippage, partial fills, idempotency, the gate."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from cdb.domain.contracts import CircuitBreakerV1, MarketDataV1, OrderResultV1, OrderStatus, Side
from cdb.domain.envelope import NewEvent, derive_id
from cdb.domain.event_types import EventType
from cdb.domain.services.execution import (
    LIVE_CONFIRMATION,
    ExecutionParams,
    ExecutionState,
    TradingMode,
    apply,
    execute,
    on_order,
    result_event_id,
    trading_mode_from_env,
)
from cdb.errors import ConfigError
from tests.unit.domain.services.factories import at, order_event, tick

PARAMS = ExecutionParams()


def with_ticks(*ticks: NewEvent) -> ExecutionState:
    state = ExecutionState()
    for t in ticks:
        state = apply(state, t, PARAMS)
    return state


def result_of(state: ExecutionState, order: NewEvent) -> OrderResultV1:
    step = on_order(state, order, PARAMS)
    (emitted,) = step.events
    payload = emitted.event.payload
    assert isinstance(payload, OrderResultV1)
    return payload


def test_a_buy_fills_at_the_market_price_plus_slippage_and_pays_the_taker_fee() -> None:
    state = with_ticks(tick("BTC_USDT", "80000", 0, volume="10"))
    result = result_of(state, order_event("BTC_USDT", Side.BUY, "0.0125", 0))
    assert result.status is OrderStatus.FILLED
    assert result.filled_quantity == Decimal("0.0125")
    # 5 bps base + 20 bps x (0.0125 / 10) participation = 5.025 bps -> 5.0250 (4 dp).
    assert result.slippage_bps == Decimal("5.0250")
    assert result.price == Decimal("80040.2")
    assert result.fee == Decimal("0.60030150")  # 0.0125 x 80040.2 x 6 bps
    assert result.fee_asset == "USDT"


def test_a_sell_slips_down() -> None:
    state = with_ticks(tick("BTC_USDT", "80000", 0, volume="10"))
    result = result_of(state, order_event("BTC_USDT", Side.SELL, "0.0125", 0))
    assert result.price is not None
    assert result.price < Decimal(80000)


def test_defect_mock_fills_at_fixed_prices_the_fill_follows_the_market() -> None:
    """Defect of the original: mock fills at fixed prices. The market price moves the fill."""
    order = order_event("ETH_USDT", Side.BUY, "1", 0)
    low = result_of(with_ticks(tick("ETH_USDT", "2000", 0, "1000")), order)
    high = result_of(with_ticks(tick("ETH_USDT", "3000", 0, "1000")), order)
    assert low.price is not None
    assert high.price is not None
    assert high.price / low.price == Decimal("1.5")


def test_defect_no_fees_every_fill_pays_a_fee() -> None:
    """Defect of the original: no fees. Default 0.06 % of the notional."""
    result = result_of(
        with_ticks(tick("ETH_USDT", "2000", 0, "1000")), order_event("ETH_USDT", Side.BUY, "1", 0)
    )
    assert result.price is not None
    assert result.fee == (result.price * Decimal("0.0006")).quantize(Decimal("0.00000001"))
    free = ExecutionParams(taker_fee_bps=Decimal(0))
    step = on_order(
        apply(ExecutionState(), tick("ETH_USDT", "2000", 0, "1000"), free),
        order_event("ETH_USDT", Side.BUY, "1", 0),
        free,
    )
    payload = step.events[0].event.payload
    assert isinstance(payload, OrderResultV1)
    assert payload.fee == 0


def test_the_fill_uses_the_tick_at_the_order_time_not_a_later_one() -> None:
    order = order_event("ETH_USDT", Side.BUY, "1", 1)
    early = with_ticks(tick("ETH_USDT", "2000", 0, "1000"), tick("ETH_USDT", "2100", 1, "1000"))
    late = apply(early, tick("ETH_USDT", "2500", 2, "1000"), PARAMS)
    assert result_of(early, order) == result_of(late, order)


def test_an_order_ahead_of_the_market_data_waits() -> None:
    state = with_ticks(tick("ETH_USDT", "2000", 0, "1000"))
    step = on_order(state, order_event("ETH_USDT", Side.BUY, "1", 1), PARAMS)
    assert step.waiting
    assert step.events == ()


def test_an_order_larger_than_the_volume_share_fills_partly_and_the_rest_is_cancelled() -> None:
    state = with_ticks(tick("ETH_USDT", "2000", 0, volume="20"))
    result = result_of(state, order_event("ETH_USDT", Side.BUY, "5", 0))
    assert result.status is OrderStatus.PARTIALLY_FILLED
    assert result.filled_quantity == Decimal(2)  # 10 % of 20
    assert result.reason is not None
    assert "3 cancelled" in result.reason
    assert result.slippage_bps == Decimal(7)  # 5 + 20 x 0.1


def test_an_empty_bar_cancels_the_order() -> None:
    state = with_ticks(tick("ETH_USDT", "2000", 0, volume="0"))
    result = result_of(state, order_event("ETH_USDT", Side.BUY, "1", 0))
    assert result.status is OrderStatus.CANCELLED
    assert result.filled_quantity == 0
    assert result.price is None


def test_defect_duplicate_fills_a_redelivered_order_never_fills_twice() -> None:
    """Defect of the original: a redelivered order filled again."""
    state = with_ticks(tick("ETH_USDT", "2000", 0, "1000"))
    order = order_event("ETH_USDT", Side.BUY, "1", 0)
    first = on_order(state, order, PARAMS)
    # The same order again after the fold: nothing.
    assert on_order(first.state, order, PARAMS).events == ()
    # The same order on a state that lost the fold (a crash before the ack): the same event,
    # same id, which the store refuses to append a second time.
    again = on_order(state, order, PARAMS)
    assert again.events == first.events
    assert first.events[0].event.event_id == derive_id("ORDER_RESULT", "order-1")
    assert str(first.events[0].event.event_id) == result_event_id("order-1")


def breaker_tripped(minute: float) -> NewEvent:
    payload = CircuitBreakerV1(
        trading_day=date(2025, 3, 3),
        daily_pnl=Decimal(-600),
        threshold=Decimal(-500),
        reason="test",
        timestamp=at(minute),
    )
    return NewEvent(
        event_id=derive_id("trip"),
        event_type=EventType.CIRCUIT_BREAKER_TRIPPED,
        timestamp=at(minute),
        payload=payload,
    )


def test_orders_are_refused_while_the_breaker_is_tripped_except_reduce_only() -> None:
    state = apply(with_ticks(tick("ETH_USDT", "2000", 5, "1000")), breaker_tripped(1), PARAMS)
    refused = result_of(state, order_event("ETH_USDT", Side.BUY, "1", 5))
    assert refused.status is OrderStatus.REJECTED
    assert refused.reason is not None
    assert "circuit breaker" in refused.reason
    closing = result_of(state, order_event("ETH_USDT", Side.SELL, "1", 5, reduce_only=True))
    assert closing.status is OrderStatus.FILLED
    # The next UTC day the breaker is over for execution too.
    next_day = apply(state, tick("ETH_USDT", "2000", 24 * 60, "1000"), PARAMS)
    fills = result_of(next_day, order_event("ETH_USDT", Side.BUY, "1", 24 * 60, order_id="o2"))
    assert fills.status is OrderStatus.FILLED


def test_one_result_id_per_order_whatever_the_status() -> None:
    order = order_event("ETH_USDT", Side.BUY, "1", 5)
    open_market = with_ticks(tick("ETH_USDT", "2000", 5, "1000"))
    tripped = apply(open_market, breaker_tripped(1), PARAMS)
    a = on_order(open_market, order, PARAMS).events[0]
    b = on_order(tripped, order, PARAMS).events[0]
    assert a.event_type is EventType.ORDER_FILLED
    assert b.event_type is EventType.ORDER_REJECTED
    assert a.event.event_id == b.event.event_id
    assert a.stream_id == b.stream_id == "order-order-1"


def test_execute_is_a_pure_function_of_order_and_market() -> None:
    order = order_event("ETH_USDT", Side.BUY, "1", 0)
    md = tick("ETH_USDT", "2000", 0, "1000").payload
    assert isinstance(md, MarketDataV1)
    one = execute(order, md, PARAMS, breaker_tripped=False)
    two = execute(order, md, PARAMS, breaker_tripped=False)
    assert one == two


def test_paper_is_the_default_mode() -> None:
    assert trading_mode_from_env({}) is TradingMode.PAPER
    assert ExecutionParams.from_env({}) == ExecutionParams()


def test_live_without_confirmation_is_refused() -> None:
    with pytest.raises(ConfigError, match="CDB_LIVE_CONFIRM"):
        trading_mode_from_env({"CDB_TRADING_MODE": "live"})


def test_live_with_confirmation_refuses_to_start_no_adapter_exists() -> None:
    with pytest.raises(ConfigError, match="no live exchange adapter"):
        ExecutionParams.from_env(
            {"CDB_TRADING_MODE": "live", "CDB_LIVE_CONFIRM": LIVE_CONFIRMATION}
        )


def test_a_live_params_object_cannot_execute() -> None:
    state = with_ticks(tick("ETH_USDT", "2000", 0, "1000"))
    live = ExecutionParams(mode=TradingMode.LIVE)
    with pytest.raises(ConfigError, match="CDB_TRADING_MODE=live"):
        on_order(state, order_event("ETH_USDT", Side.BUY, "1", 0), live)


def test_bad_execution_params_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        ExecutionParams.from_env({"EXECUTION_MAX_VOLUME_SHARE": "0", "CDB_TRADING_MODE": "demo"})
    assert "EXECUTION_MAX_VOLUME_SHARE='0': must be > 0" in str(err.value)
    assert "CDB_TRADING_MODE='demo': must be one of paper, live" in str(err.value)
