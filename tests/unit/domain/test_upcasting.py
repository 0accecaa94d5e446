"""v1.0 messages of the original system (seeds 001 and 003) read into the current contracts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

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
from cdb.domain.event_types import EventType
from cdb.domain.upcasting import (
    LEGACY_STRATEGY_ID,
    LegacyContext,
    upcast_alert,
    upcast_legacy,
    upcast_market_data,
    upcast_order,
    upcast_order_result,
    upcast_signal,
)
from cdb.errors import ContractError

# The message examples of seed 001 ("Nachrichtenbeispiele"), verbatim.
SEED_MARKET_DATA = {
    "type": "market_data",
    "symbol": "BTC_USDT",
    "timestamp": 1730443200000,
    "price": 35250.5,
    "volume": 184.12,
    "interval": "1m",
}
SEED_SIGNAL = {
    "type": "signal",
    "symbol": "BTC_USDT",
    "side": "BUY",
    "confidence": 0.82,
    "reason": "Top mover + RSI oversold",
    "timestamp": 1730443260000,
}
SEED_ORDER_RESULT = {
    "type": "order_result",
    "order_id": "MOCK_123456",
    "status": "FILLED",
    "filled_quantity": 0.05,
    "price": 35260.1,
}
SEED_ALERT = {
    "type": "alert",
    "level": "CRITICAL",
    "code": "RISK_LIMIT",
    "message": "Daily drawdown reached. Trading halted.",
    "timestamp": 1730443280000,
}
# The websocket feed's payload of seed 003 (MEXC deal: strings, "BTC/USDT", ts_ms, no type).
SEED_MEXC_TICK = {
    "symbol": "BTC/USDT",
    "price": "35250.50",
    "volume": "0.0123",
    "timestamp": 1730443200000,
    "ts_ms": 1730443200000,
    "side": "BUY",
    "venue": "mexc",
}
T_MARKET = datetime(2024, 11, 1, 6, 40, tzinfo=UTC)
RECEIVED = datetime(2024, 11, 1, 6, 41, 30, tzinfo=UTC)

THE_ORDER = OrderV1(
    order_id="MOCK_123456",
    signal_id="sig-1",
    strategy_id="momentum",
    symbol="BTC_USDT",
    side=Side.BUY,
    quantity=Decimal("0.05"),
    order_type=OrderType.LIMIT,
    target_price=Decimal("35250"),
    timestamp=T_MARKET,
)


def problem(exc: ContractError, field: str) -> tuple[str, Any, str]:
    matches = [p for p in exc.problems if p[0] == field]
    assert matches, f"no problem names {field!r}: {exc.problems}"
    return matches[0]


def with_(message: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**message, **changes}


def without(message: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k not in names}


# -- the seed examples are read ----------------------------------------------------------------


def test_seed_market_data_becomes_market_data_v1() -> None:
    event_type, tick = upcast_legacy(SEED_MARKET_DATA)
    assert event_type is EventType.MARKET_DATA_RECEIVED
    assert tick == MarketDataV1(
        symbol="BTC_USDT",
        price=Decimal("35250.5"),
        volume=Decimal("184.12"),
        timestamp=T_MARKET,
        interval="1m",
    )


def test_seed_mexc_tick_is_identified_by_its_channel() -> None:
    event_type, tick = upcast_legacy(SEED_MEXC_TICK, channel="market_data")
    assert event_type is EventType.MARKET_DATA_RECEIVED
    assert isinstance(tick, MarketDataV1)
    assert tick.symbol == "BTC_USDT"
    assert str(tick.price) == "35250.50"  # the string's precision survives
    assert tick.volume == Decimal("0.0123")
    assert tick.timestamp == T_MARKET
    assert tick.side is Side.BUY
    assert tick.venue == "mexc"


def test_trade_qty_is_the_volume() -> None:
    tick = upcast_market_data(with_(without(SEED_MEXC_TICK, "volume"), trade_qty="0.5"))
    assert tick.volume == Decimal("0.5")


def test_seed_signal_needs_a_reference_price_and_gets_a_stable_id() -> None:
    context = LegacyContext(reference_price=Decimal("35250.5"))
    event_type, signal = upcast_legacy(SEED_SIGNAL, context)
    assert event_type is EventType.SIGNAL_GENERATED
    assert isinstance(signal, SignalV1)
    assert signal.strategy_id == LEGACY_STRATEGY_ID
    assert signal.side is Side.BUY
    assert signal.confidence == 0.82
    assert signal.price == Decimal("35250.5")
    assert signal.timestamp == datetime(2024, 11, 1, 6, 41, tzinfo=UTC)
    again = upcast_signal(SEED_SIGNAL, context)
    assert again.signal_id == signal.signal_id
    other = upcast_signal(with_(SEED_SIGNAL, side="SELL"), context)
    assert other.signal_id != signal.signal_id


def test_seed_signal_without_reference_price_names_price() -> None:
    with pytest.raises(ContractError) as caught:
        upcast_signal(SEED_SIGNAL)
    assert "reference_price" in problem(caught.value, "price")[2]


def test_seed_order_result_is_completed_from_the_order_it_answers() -> None:
    context = LegacyContext(received_at=RECEIVED, order=THE_ORDER)
    event_type, result = upcast_legacy(SEED_ORDER_RESULT, context)
    assert event_type is EventType.ORDER_FILLED
    assert isinstance(result, OrderResultV1)
    assert result.status is OrderStatus.FILLED
    assert (result.symbol, result.side, result.strategy_id) == ("BTC_USDT", Side.BUY, "momentum")
    assert result.signal_id == "sig-1"
    assert result.quantity == result.filled_quantity == Decimal("0.05")
    assert result.price == Decimal("35260.1")
    assert (result.fee, result.fee_asset) == (Decimal(0), "USDT")
    assert result.timestamp == RECEIVED
    # (35260.1 - 35250) / 35250 * 10000, paid more on a buy: positive slippage
    assert result.slippage_bps == Decimal("2.87")


def test_order_result_without_its_order_names_what_is_missing() -> None:
    with pytest.raises(ContractError) as caught:
        upcast_order_result(SEED_ORDER_RESULT)
    assert {field for field, _, _ in caught.value.problems} == {"symbol", "side", "timestamp"}
    assert "received_at" in problem(caught.value, "timestamp")[2]


def test_a_self_contained_legacy_order_result_needs_no_order() -> None:
    message = with_(
        SEED_ORDER_RESULT,
        status="partial",
        qty="0.1",
        symbol="BTC/USDT",
        direction="long",
        ts_ms=1730443290000,
        fee="0.02",
    )
    event_type, result = upcast_legacy(message)
    assert event_type is EventType.ORDER_PARTIALLY_FILLED
    assert isinstance(result, OrderResultV1)
    assert result.quantity == Decimal("0.1")
    assert result.fee == Decimal("0.02")
    assert result.strategy_id == LEGACY_STRATEGY_ID


def test_seed_alert_becomes_alert_v1() -> None:
    event_type, alert = upcast_legacy(SEED_ALERT)
    assert event_type is EventType.ALERT_RAISED
    assert isinstance(alert, AlertV1)
    assert alert.level is AlertLevel.CRITICAL
    assert alert.code == "RISK_LIMIT"
    assert alert.timestamp == datetime(2024, 11, 1, 6, 41, 20, tzinfo=UTC)


def test_alert_levels_and_context_values_are_normalised() -> None:
    alert = upcast_alert(with_(SEED_ALERT, level="warning", context={"pnl": -520.5, "n": 3}))
    assert alert.level is AlertLevel.WARNING
    assert alert.context == {"pnl": "-520.5", "n": "3"}


@pytest.mark.parametrize(
    ("direction", "side"),
    [("long", Side.BUY), ("SHORT", Side.SELL), ("Buy", Side.BUY), ("sell", Side.SELL)],
)
def test_legacy_qty_and_direction(direction: str, side: Side) -> None:
    message = {
        "type": "order",
        "client_order_id": "cdb-ord-7",
        "signal_id": "sig-7",
        "symbol": "eth/usdt",
        "direction": direction,
        "qty": "1.25",
        "ts_ms": 1730443200000,
    }
    event_type, order = upcast_legacy(message)
    assert event_type is EventType.ORDER_PLACED
    assert isinstance(order, OrderV1)
    assert (order.order_id, order.symbol, order.side) == ("cdb-ord-7", "ETH_USDT", side)
    assert order.quantity == Decimal("1.25")
    assert order.order_type is OrderType.MARKET


def test_a_legacy_limit_order_keeps_its_price_as_target() -> None:
    order = upcast_order(
        {
            "order_id": "o-1",
            "signal_id": "s-1",
            "symbol": "BTC_USDT",
            "side": "BUY",
            "qty": 1,
            "order_type": "limit",
            "price": "35000.00",
            "timestamp": "2024-11-01T06:40:00Z",
        }
    )
    assert order.order_type is OrderType.LIMIT
    assert order.target_price == Decimal("35000.00")
    assert order.timestamp == T_MARKET


@pytest.mark.parametrize("version", [{"api_version": "v1.0"}, {"schema_version": "1.0"}, {}])
def test_missing_or_v1_version_is_v1(version: dict[str, str]) -> None:
    assert upcast_legacy({**SEED_MARKET_DATA, **version})[0] is EventType.MARKET_DATA_RECEIVED


# -- broken variants are refused, naming field and value ---------------------------------------


@pytest.mark.parametrize(
    ("message", "field", "value", "rule_part"),
    [
        (with_(SEED_MARKET_DATA, price="35k"), "price", "35k", "decimal string"),
        (with_(SEED_MARKET_DATA, price=0), "price", Decimal(0), "greater than 0"),
        (with_(SEED_MARKET_DATA, volume="-1"), "volume", Decimal(-1), "greater than or equal"),
        (with_(SEED_MARKET_DATA, timestamp=1730443200), "timestamp", 1730443200, "seconds"),
        (with_(SEED_MARKET_DATA, timestamp=17304432e5), "timestamp", 17304432e5, "integer"),
        (with_(SEED_MARKET_DATA, symbol="BTC"), "symbol", "BTC", "pattern"),
        (with_(SEED_MARKET_DATA, side="up"), "side", "up", "long/short"),
        (with_(SEED_MARKET_DATA, ts_ms=1730443200001), "timestamp", 1730443200000, "ts_ms"),
        (with_(SEED_MARKET_DATA, trade_qty="1"), "trade_qty", "1", "disagrees"),
        (with_(SEED_MARKET_DATA, bid="1"), "bid", "1", "extra"),
        (with_(SEED_MARKET_DATA, api_version="v2.0"), "api_version", "v2.0", "v1.0"),
        (without(SEED_MARKET_DATA, "price"), "price", "<missing>", "required"),
        (with_(SEED_MARKET_DATA, timestamp="yesterday"), "timestamp", "yesterday", "datetime"),
        (with_(SEED_SIGNAL, direction="SHORT"), "direction", "SHORT", "disagrees"),
        (with_(SEED_SIGNAL, confidence=1.5), "confidence", 1.5, "less than or equal"),
        (with_(SEED_ORDER_RESULT, status="done"), "status", "done", "must be one of"),
        (with_(SEED_ALERT, level="PANIC"), "level", "PANIC", "INFO"),
        (
            {"type": "order", "order_id": "o", "signal_id": "s", "symbol": "BTC_USDT",
             "direction": "long", "qty": "0", "ts_ms": 1730443200000},
            "qty (as quantity)", Decimal(0), "greater than 0",
        ),
    ],
)  # fmt: skip
def test_broken_messages_name_field_value_and_rule(
    message: dict[str, Any], field: str, value: Any, rule_part: str
) -> None:
    context = LegacyContext(received_at=RECEIVED, order=THE_ORDER, reference_price=Decimal("35000"))
    with pytest.raises(ContractError) as caught:
        upcast_legacy(message, context)
    _named_field, named_value, rule = problem(caught.value, field)
    assert named_value == value
    assert rule_part in rule
    assert "legacy" in caught.value.contract


def test_a_message_without_any_timestamp_needs_received_at() -> None:
    message = without(SEED_MARKET_DATA, "timestamp")
    with pytest.raises(ContractError) as caught:
        upcast_market_data(message)
    assert "received_at" in problem(caught.value, "timestamp")[2]
    assert upcast_market_data(message, LegacyContext(received_at=RECEIVED)).timestamp == RECEIVED


def test_a_result_for_another_order_is_refused() -> None:
    context = LegacyContext(received_at=RECEIVED, order=THE_ORDER)
    with pytest.raises(ContractError) as caught:
        upcast_order_result(with_(SEED_ORDER_RESULT, order_id="MOCK_999"), context)
    assert "different order" in problem(caught.value, "order_id")[2]
    with pytest.raises(ContractError) as caught:
        upcast_order_result(with_(SEED_ORDER_RESULT, symbol="ETH/USDT"), context)
    assert problem(caught.value, "symbol")[1] == "ETH_USDT"


@pytest.mark.parametrize(
    ("message", "channel", "rule_part"),
    [
        (without(SEED_MARKET_DATA, "type"), None, "must name the kind"),
        (with_(SEED_MARKET_DATA, type="heartbeat"), None, "must name the kind"),
        (SEED_MARKET_DATA, "signals", "does not match channel"),
    ],
)
def test_unrecognisable_messages_say_what_is_missing(
    message: dict[str, Any], channel: str | None, rule_part: str
) -> None:
    with pytest.raises(ContractError) as caught:
        upcast_legacy(message, channel=channel)
    assert rule_part in problem(caught.value, "type")[2]


def test_not_an_object_and_unknown_channel_are_refused() -> None:
    with pytest.raises(ContractError, match="must be a JSON object"):
        upcast_legacy(["market_data"])  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="channel"):
        upcast_legacy(SEED_MEXC_TICK, channel="ticks")


def test_the_contracts_themselves_refuse_legacy_shapes() -> None:
    # Upcasting is explicit: the v1.0 shape is not valid current input.
    with pytest.raises(ContractError) as caught:
        MarketDataV1.parse(SEED_MARKET_DATA)
    fields = {field for field, _, _ in caught.value.problems}
    assert {"type", "timestamp", "price", "volume"} <= fields
