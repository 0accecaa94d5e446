"""The risk layer: limits that bind, reduce-only always, the breaker that trips and resets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cdb.domain.contracts import (
    AlertLevel,
    AlertV1,
    BlockReason,
    CircuitBreakerV1,
    MarketDataV1,
    OrderV1,
    Side,
    SignalBlockedV1,
    SignalV1,
)
from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import EventType
from cdb.domain.services.execution import ExecutionParams, execute
from cdb.domain.services.risk import (
    STOP_LOSS_PREFIX,
    Decision,
    RiskParams,
    RiskState,
    apply,
    apply_all,
    step,
)
from cdb.errors import ConfigError
from tests.unit.domain.services.factories import fill_event, signal_event, tick

PARAMS = RiskParams()  # 10 000 USDT: 1 000 per position, 3 000 in all, -500 a day trips


def run(events: list[NewEvent], params: RiskParams = PARAMS) -> tuple[RiskState, Decision]:
    state, decision = RiskState(), Decision()
    for event in events:
        state, d = step(state, event, params)
        decision = decision + d
    return state, decision


def placed(decision: Decision) -> list[OrderV1]:
    return [
        e.event.payload
        for e in decision.of_type(EventType.ORDER_PLACED)
        if isinstance(e.event.payload, OrderV1)
    ]


def blocks(decision: Decision) -> list[SignalBlockedV1]:
    return [
        e.event.payload
        for e in decision.of_type(EventType.SIGNAL_BLOCKED)
        if isinstance(e.event.payload, SignalBlockedV1)
    ]


def alerts(decision: Decision) -> list[AlertV1]:
    return [
        e.event.payload
        for e in decision.of_type(EventType.ALERT_RAISED)
        if isinstance(e.event.payload, AlertV1)
    ]


def filled(order: OrderV1, price: str, minute: float, fee: str = "0") -> NewEvent:
    return fill_event(
        order.symbol, order.side, order.quantity, price, minute, order_id=order.order_id, fee=fee
    )


def test_an_order_is_sized_to_the_position_allowance() -> None:
    _, decision = run([signal_event("BTC_USDT", Side.BUY, "80000", 0)])
    (order,) = placed(decision)
    assert order.quantity == Decimal("0.0125")  # 1 000 USDT / 80 000
    assert order.reduce_only is False
    assert order.side is Side.BUY
    assert order.target_price == Decimal(80000)


def test_defect_position_check_always_passed_the_position_limit_binds() -> None:
    """Defect of the original: the position check always passed. A full position blocks."""
    s1 = signal_event("BTC_USDT", Side.BUY, "80000", 0)
    state, first = run([s1])
    (order,) = placed(first)
    state, _ = step(state, filled(order, "80000", 0), PARAMS)
    state, second = step(state, signal_event("BTC_USDT", Side.BUY, "80100", 5), PARAMS)
    assert placed(second) == []
    (block,) = blocks(second)
    assert block.reason_code is BlockReason.MAX_POSITION_EXCEEDED
    (alert,) = alerts(second)
    assert alert.level is AlertLevel.WARNING
    assert alert.code == "RISK_LIMIT"


def test_orders_in_flight_count_towards_the_position_limit() -> None:
    # No fill has come back yet: the first order alone fills the allowance.
    _, decision = run(
        [
            signal_event("BTC_USDT", Side.BUY, "80000", 0),
            signal_event("BTC_USDT", Side.BUY, "80000", 1),
        ]
    )
    assert len(placed(decision)) == 1
    assert blocks(decision)[0].reason_code is BlockReason.MAX_POSITION_EXCEEDED


def test_a_partial_position_gets_only_the_room_left() -> None:
    state, first = run([signal_event("BTC_USDT", Side.BUY, "80000", 0)])
    (order,) = placed(first)
    half = fill_event(
        "BTC_USDT", Side.BUY, "0.00625", "80000", 0, order_id=order.order_id, ordered="0.0125"
    )
    state, _ = step(state, half, PARAMS)
    _, second = step(state, signal_event("BTC_USDT", Side.BUY, "80000", 5), PARAMS)
    (top_up,) = placed(second)
    assert top_up.quantity == Decimal("0.00625")


def test_the_total_exposure_limit_binds() -> None:
    params = RiskParams(max_position_pct=Decimal("0.2"), max_total_exposure_pct=Decimal("0.3"))
    _, decision = run(
        [
            signal_event("BTC_USDT", Side.BUY, "80000", 0),
            signal_event("ETH_USDT", Side.BUY, "2000", 1),
            signal_event("SOL_USDT", Side.BUY, "100", 2),
        ],
        params,
    )
    orders = placed(decision)
    notionals = [o.quantity * (o.target_price or Decimal(0)) for o in orders]
    assert notionals == [Decimal(2000), Decimal(1000)]  # the second only gets what is left
    (block,) = blocks(decision)
    assert block.symbol == "SOL_USDT"
    assert block.reason_code is BlockReason.MAX_EXPOSURE_EXCEEDED
    assert alerts(decision)[0].code == "RISK_LIMIT"


def test_an_opposite_signal_closes_the_position_reduce_only() -> None:
    state, first = run([signal_event("ETH_USDT", Side.BUY, "2000", 0)])
    (order,) = placed(first)
    state, _ = step(state, filled(order, "2000", 0), PARAMS)
    state, second = step(state, signal_event("ETH_USDT", Side.SELL, "2010", 20), PARAMS)
    (close,) = placed(second)
    assert close.reduce_only is True
    assert close.side is Side.SELL
    assert close.quantity == order.quantity
    # While that close is in flight, another SELL does not close twice.
    _, third = step(state, signal_event("ETH_USDT", Side.SELL, "2005", 21), PARAMS)
    assert blocks(third)[0].reason_code is BlockReason.DUPLICATE_SIGNAL


def losing_day(state: RiskState | None = None) -> tuple[RiskState, Decision]:
    """A long BTC position of 1 000 USDT and a day's realised loss of 484, then a drop."""
    state = state or RiskState()
    state, d1 = step(state, signal_event("BTC_USDT", Side.BUY, "80000", 0), PARAMS)
    (order,) = placed(d1)
    state, d2 = step(state, filled(order, "80000", 0), PARAMS)
    # A realised loss of 484 from another strategy's round trip.
    state, _ = step(
        state,
        fill_event("ETH_USDT", Side.BUY, "1", "2000", 1, order_id="o-x", strategy_id="other"),
        PARAMS,
    )
    state, d3 = step(
        state,
        fill_event("ETH_USDT", Side.SELL, "1", "1516", 2, order_id="o-y", strategy_id="other"),
        PARAMS,
    )
    return state, d1 + d2 + d3


def test_defect_breaker_could_never_trip_it_trips_at_the_daily_loss_limit() -> None:
    """Defect of the original: the circuit breaker could never trip."""
    state, decision = losing_day()
    assert decision.of_type(EventType.CIRCUIT_BREAKER_TRIPPED) == []
    assert state.daily_pnl() == Decimal(-484)
    # BTC -1.6 %: unrealised -16 -> exactly -500, the limit (at or below trips).
    state, d = step(state, tick("BTC_USDT", "78720", 3), PARAMS)
    (trip,) = d.of_type(EventType.CIRCUIT_BREAKER_TRIPPED)
    payload = trip.event.payload
    assert isinstance(payload, CircuitBreakerV1)
    assert payload.daily_pnl == Decimal(-500)
    assert payload.threshold == Decimal(-500)
    assert trip.stream_id == "risk-circuit-breaker"
    (critical,) = [a for a in alerts(d) if a.level is AlertLevel.CRITICAL]
    assert critical.code == "CIRCUIT_BREAKER"
    assert state.breaker_tripped


def test_a_tripped_breaker_blocks_new_orders_but_not_reduce_only() -> None:
    state, _ = losing_day()
    state, _ = step(state, tick("BTC_USDT", "78720", 3), PARAMS)
    # It trips once a day, not on every tick.
    state, again = step(state, tick("BTC_USDT", "78700", 4), PARAMS)
    assert again.of_type(EventType.CIRCUIT_BREAKER_TRIPPED) == []
    state, opening = step(state, signal_event("ETH_USDT", Side.BUY, "1500", 5), PARAMS)
    assert blocks(opening)[0].reason_code is BlockReason.CIRCUIT_BREAKER_TRIPPED
    _, closing = step(state, signal_event("BTC_USDT", Side.SELL, "78700", 6), PARAMS)
    (close,) = placed(closing)
    assert close.reduce_only is True


def test_defect_shutdown_flag_latched_the_breaker_resets_at_the_next_utc_day() -> None:
    """Defect of the original: a halt flag latched forever. A new UTC day resets the breaker."""
    state, _ = losing_day()
    state, _ = step(state, tick("BTC_USDT", "78720", 3), PARAMS)
    assert state.breaker_tripped
    # Still the same day at 23:59 (T0 is 10:00).
    state, d = step(state, tick("BTC_USDT", "78720", 13 * 60 + 59), PARAMS)
    assert d.of_type(EventType.CIRCUIT_BREAKER_RESET) == []
    state, d = step(state, tick("BTC_USDT", "78720", 14 * 60 + 1), PARAMS)
    (reset,) = d.of_type(EventType.CIRCUIT_BREAKER_RESET)
    assert reset.event.timestamp.isoformat() == "2025-03-04T00:00:00+00:00"
    assert not state.breaker_tripped
    assert state.realised_today == 0
    _, d = step(state, signal_event("ETH_USDT", Side.BUY, "1500", 14 * 60 + 2), PARAMS)
    assert len(placed(d)) == 1


def test_the_reset_has_one_id_per_day_whatever_triggers_it() -> None:
    state, _ = losing_day()
    state, _ = step(state, tick("BTC_USDT", "78720", 3), PARAMS)
    _, by_tick = step(state, tick("BTC_USDT", "78720", 14 * 60 + 1), PARAMS)
    _, by_signal = step(state, signal_event("ETH_USDT", Side.BUY, "1500", 14 * 60 + 5), PARAMS)
    (a,) = by_tick.of_type(EventType.CIRCUIT_BREAKER_RESET)
    (b,) = by_signal.of_type(EventType.CIRCUIT_BREAKER_RESET)
    assert a.event.event_id == b.event.event_id


def test_a_position_down_the_stop_loss_is_closed_reduce_only_once() -> None:
    state, d = run([signal_event("ETH_USDT", Side.BUY, "2000", 0)])
    (order,) = placed(d)
    state, _ = step(state, filled(order, "2000", 0), PARAMS)
    state, d = step(state, tick("ETH_USDT", "1970", 1), PARAMS)  # -1.5 %: hold
    assert placed(d) == []
    state, d = step(state, tick("ETH_USDT", "1960", 2), PARAMS)  # -2 %: stop
    (stop,) = placed(d)
    assert stop.reduce_only is True
    assert stop.side is Side.SELL
    assert stop.quantity == order.quantity
    assert stop.signal_id.startswith(STOP_LOSS_PREFIX)
    assert [a.code for a in alerts(d)] == ["STOP_LOSS"]
    _, d = step(state, tick("ETH_USDT", "1950", 3), PARAMS)  # still in flight: no second stop
    assert placed(d) == []


def test_a_short_is_stopped_on_a_rise() -> None:
    state, d = run([signal_event("ETH_USDT", Side.SELL, "2000", 0)])
    (order,) = placed(d)
    state, _ = step(state, filled(order, "2000", 0), PARAMS)
    _, d = step(state, tick("ETH_USDT", "2040", 1), PARAMS)
    (stop,) = placed(d)
    assert stop.side is Side.BUY
    assert stop.reduce_only is True


def test_a_redelivered_signal_is_not_decided_twice() -> None:
    s = signal_event("BTC_USDT", Side.BUY, "80000", 0)
    state, first = run([s])
    _, second = step(state, s, PARAMS)
    assert len(placed(first)) == 1
    assert second.events == ()


def test_every_signal_gets_exactly_one_decision() -> None:
    signals = [
        signal_event(sym, side, price, minute)
        for minute, (sym, side, price) in enumerate(
            [
                ("BTC_USDT", Side.BUY, "80000"),
                ("BTC_USDT", Side.BUY, "80000"),
                ("ETH_USDT", Side.SELL, "2000"),
                ("ETH_USDT", Side.BUY, "2000"),
            ]
        )
    ]
    _, decision = run(signals)
    decided = [o.signal_id for o in placed(decision)] + [b.signal_id for b in blocks(decision)]
    expected = [s.payload.signal_id for s in signals if isinstance(s.payload, SignalV1)]
    assert sorted(decided) == sorted(expected)


def test_order_ids_derive_from_the_signal() -> None:
    s = signal_event("BTC_USDT", Side.BUY, "80000", 0)
    (a,) = placed(run([s])[1])
    (b,) = placed(run([s])[1])
    assert a.order_id == b.order_id
    (c,) = placed(run([signal_event("BTC_USDT", Side.BUY, "80000", 1)])[1])
    assert c.order_id != a.order_id


def test_the_fold_is_the_same_whatever_order_a_rebuild_reads_topics_in() -> None:
    state, d = run([signal_event("BTC_USDT", Side.BUY, "80000", 0)])
    events = [e.event for e in d.events]
    result = filled(placed(d)[0], "80000", 0)
    live = apply(state, result)
    order_first = apply_all(RiskState(), [*events, result])
    result_first = apply_all(RiskState(), [result, *events])
    for rebuilt in (order_first, result_first):
        assert rebuilt.positions == live.positions
        assert rebuilt.in_flight == live.in_flight == {}
        assert rebuilt.decided == live.decided


def test_a_fill_of_an_earlier_day_does_not_count_towards_today() -> None:
    state = apply(RiskState(), tick("BTC_USDT", "80000", 24 * 60))  # tomorrow
    state = apply(state, fill_event("ETH_USDT", Side.BUY, "1", "2000", 0, order_id="a", fee="1"))
    assert state.realised_today == 0


def test_redelivered_fills_move_the_position_once() -> None:
    fill = fill_event("ETH_USDT", Side.BUY, "1", "2000", 0, order_id="a")
    state = apply_all(RiskState(), [fill, fill])
    assert state.positions[("momentum-v1", "ETH_USDT")].quantity == 1


def test_params_have_the_original_names_and_defaults() -> None:
    assert RiskParams.from_env({}) == RiskParams(
        Decimal("0.10"), Decimal("0.30"), Decimal("0.05"), Decimal("0.02"), Decimal(10000)
    )
    params = RiskParams.from_env(
        {
            "MAX_POSITION_PCT": "0.2",
            "MAX_TOTAL_EXPOSURE_PCT": "0.5",
            "MAX_DAILY_DRAWDOWN_PCT": "0.1",
            "STOP_LOSS_PCT": "0.03",
            "TEST_BALANCE": "50000",
        }
    )
    assert params.max_position_notional == Decimal(10000)
    assert params.max_exposure_notional == Decimal(25000)
    assert params.loss_limit == Decimal(-5000)


def test_bad_params_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        RiskParams.from_env({"MAX_POSITION_PCT": "1.5", "TEST_BALANCE": "zero"})
    assert "MAX_POSITION_PCT='1.5': must be <= 1" in str(err.value)
    assert "TEST_BALANCE='zero': must be a decimal number" in str(err.value)


def test_a_loss_just_short_of_the_limit_does_not_trip() -> None:
    state, _ = losing_day()
    state, d = step(state, tick("BTC_USDT", "78721", 3), PARAMS)  # -499.9875
    assert d.of_type(EventType.CIRCUIT_BREAKER_TRIPPED) == []
    assert not state.breaker_tripped


# --------------------------------------------------------------------------------------------
# A stop-loss that cannot fill is retried on later ticks only, never in answer to its failure


def stopped_out(volume: str = "0") -> tuple[RiskState, OrderV1, NewEvent, NewEvent]:
    """A long ETH position 2 % under water at minute 2: the state, the stop, its order and tick."""
    state, d = run([signal_event("ETH_USDT", Side.BUY, "2000", 0)])
    (order,) = placed(d)
    state, _ = step(state, filled(order, "2000", 0), PARAMS)
    bar = tick("ETH_USDT", "1960", 2, volume=volume)
    state, d = step(state, bar, PARAMS)
    (stop,) = placed(d)
    assert stop.signal_id.startswith(STOP_LOSS_PREFIX)
    (stop_event,) = [e.event for e in d.of_type(EventType.ORDER_PLACED)]
    return state, stop, stop_event, bar


def executed(order_event: NewEvent, bar: NewEvent | None) -> NewEvent:
    """Execution's result of ``order_event`` against ``bar`` (None: no market data)."""
    market = None if bar is None else bar.payload
    assert market is None or isinstance(market, MarketDataV1)
    return execute(order_event, market, ExecutionParams(), breaker_tripped=False).event


@pytest.mark.parametrize(
    ("volume", "no_market", "result_type"),
    [
        ("0", False, EventType.ORDER_CANCELLED),  # an empty bar fills nothing
        ("50", True, EventType.ORDER_REJECTED),  # no market data to price it
    ],
)
def test_a_failed_stop_loss_is_retried_once_on_the_next_tick_not_on_its_result(
    volume: str, no_market: bool, result_type: EventType
) -> None:
    state, stop, stop_event, bar = stopped_out(volume)
    result = executed(stop_event, None if no_market else bar)
    assert result.event_type is result_type
    state, d = step(state, result, PARAMS)
    assert placed(d) == []  # not in answer to the failure itself
    assert state.stop_failures == {("momentum-v1", "ETH_USDT"): stop.timestamp}
    # Nor to other results, a redelivered tick of the failure's minute, or another symbol.
    other = fill_event("BTC_USDT", Side.BUY, "0.01", "80000", 2, order_id="o-b", strategy_id="x")
    for event in (result, other, bar, tick("BTC_USDT", "80000", 3)):
        state, d = step(state, event, PARAMS)
        assert placed(d) == []
    # The next tick of ETH past the stop tries again, exactly once, with a new id.
    state, d = step(state, tick("ETH_USDT", "1955", 3), PARAMS)
    (retry,) = placed(d)
    assert retry.reduce_only is True
    assert retry.quantity == stop.quantity
    assert retry.order_id != stop.order_id
    assert retry.signal_id.startswith(STOP_LOSS_PREFIX)
    assert [a.code for a in alerts(d)] == ["STOP_LOSS"]
    assert state.stop_failures == {}  # the retry is in flight: no second one
    _, d = step(state, tick("ETH_USDT", "1950", 4), PARAMS)
    assert placed(d) == []


def test_a_stop_loss_that_can_never_fill_does_not_loop() -> None:
    """Every result goes back to risk, as the pipeline routes it; each tick gets one attempt."""
    state, _, stop_event, _ = stopped_out("0")
    attempts: list[str] = []

    def drain(state: RiskState, pending: list[NewEvent], bar: NewEvent | None) -> RiskState:
        while pending:
            assert len(attempts) < 1_000, "risk keeps answering its failed stop-loss anew"
            order_event = pending.pop()
            assert isinstance(order_event.payload, OrderV1)
            attempts.append(order_event.payload.order_id)
            state, d = step(state, executed(order_event, bar), PARAMS)
            pending.extend(e.event for e in d.of_type(EventType.ORDER_PLACED))
        return state

    state = drain(state, [stop_event], None)  # rejected: no market data
    for minute in range(3, 53):
        bar = tick("ETH_USDT", "1950", minute, volume="0")
        state, d = step(state, bar, PARAMS)
        state = drain(state, [e.event for e in d.of_type(EventType.ORDER_PLACED)], bar)
    assert len(attempts) == 51  # the first stop, then one per tick after it
    assert len(set(attempts)) == len(attempts)
    # The market comes back: the stop fills and the failure is forgotten.
    bar = tick("ETH_USDT", "1950", 53)
    state, d = step(state, bar, PARAMS)
    (stop_event,) = [e.event for e in d.of_type(EventType.ORDER_PLACED)]
    state, d = step(state, executed(stop_event, bar), PARAMS)
    assert placed(d) == []
    assert state.positions[("momentum-v1", "ETH_USDT")].is_flat
    assert state.stop_failures == {}


def test_a_failed_stop_loss_is_remembered_whatever_order_a_rebuild_reads_topics_in() -> None:
    signal = signal_event("ETH_USDT", Side.BUY, "2000", 0)
    state, d = run([signal])
    decisions = [e.event for e in d.events]
    fill = filled(placed(d)[0], "2000", 0)
    state, _ = step(state, fill, PARAMS)
    bar = tick("ETH_USDT", "1960", 2, volume="0")
    state, d = step(state, bar, PARAMS)
    decisions += [e.event for e in d.events]
    (stop_event,) = [e.event for e in d.of_type(EventType.ORDER_PLACED)]
    result = executed(stop_event, bar)
    live, _ = step(state, result, PARAMS)
    assert live.stop_failures
    orders_first = apply_all(RiskState(), [signal, bar, *decisions, fill, result])
    results_first = apply_all(RiskState(), [fill, result, signal, bar, *decisions])
    for rebuilt in (orders_first, results_first):
        assert rebuilt.stop_failures == live.stop_failures
        assert rebuilt.in_flight == live.in_flight == {}
        assert rebuilt.positions == live.positions
