"""Field rules of the payload contracts: what is accepted, and how a refusal reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cdb.domain.contracts import (
    MISSING,
    AlertV1,
    CircuitBreakerV1,
    MarketDataV1,
    OrderResultV1,
    OrderStatus,
    OrderV1,
    Payload,
    PortfolioSnapshotV1,
    PositionV1,
    Side,
    SignalBlockedV1,
    SignalV1,
)
from cdb.errors import ContractError
from tests.unit.domain import factories as f

EXAMPLES: list[tuple[type[Payload], Callable[..., dict[str, Any]]]] = [
    (MarketDataV1, f.market_data),
    (SignalV1, f.signal),
    (SignalBlockedV1, f.signal_blocked),
    (OrderV1, f.order),
    (OrderResultV1, f.order_result),
    (PositionV1, f.position),
    (PortfolioSnapshotV1, f.portfolio),
    (CircuitBreakerV1, f.circuit_breaker),
    (AlertV1, f.alert),
]
IDS = [contract.__name__ for contract, _ in EXAMPLES]


def problem(exc: ContractError, field: str) -> tuple[str, Any, str]:
    matches = [p for p in exc.problems if p[0] == field]
    assert matches, f"no problem names {field!r}: {exc.problems}"
    return matches[0]


@pytest.mark.parametrize(("contract", "example"), EXAMPLES, ids=IDS)
def test_each_contract_accepts_its_example_and_round_trips_through_json(
    contract: type[Payload], example: Callable[..., dict[str, Any]]
) -> None:
    payload = contract(**example())
    assert contract.parse_json(payload.model_dump_json()) == payload
    assert contract.parse(payload.model_dump(mode="json")) == payload


@pytest.mark.parametrize(("contract", "example"), EXAMPLES, ids=IDS)
def test_extra_fields_are_refused_by_name(
    contract: type[Payload], example: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ContractError) as caught:
        contract.parse(example(surprise="x"))
    assert caught.value.contract == contract.__name__
    _field, value, rule = problem(caught.value, "surprise")
    assert value == "x"
    assert "extra" in rule


@pytest.mark.parametrize(("contract", "example"), EXAMPLES, ids=IDS)
def test_contracts_are_frozen(
    contract: type[Payload], example: Callable[..., dict[str, Any]]
) -> None:
    payload = contract(**example())
    with pytest.raises(ValidationError):
        setattr(payload, "timestamp", datetime.now(UTC))  # noqa: B010


@pytest.mark.parametrize(("contract", "example"), EXAMPLES, ids=IDS)
def test_naive_timestamps_are_refused(
    contract: type[Payload], example: Callable[..., dict[str, Any]]
) -> None:
    with pytest.raises(ContractError) as caught:
        contract(**example(timestamp=datetime(2024, 11, 1, 6, 40)))  # noqa: DTZ001
    _field, _, rule = problem(caught.value, "timestamp")
    assert "timezone" in rule


def test_non_utc_timestamps_are_refused_and_zero_offsets_become_utc() -> None:
    plus_two = datetime(2024, 11, 1, 8, 40, tzinfo=timezone(timedelta(hours=2)))
    with pytest.raises(ContractError) as caught:
        MarketDataV1(**f.market_data(timestamp=plus_two))
    assert "UTC" in problem(caught.value, "timestamp")[2]
    zero = datetime(2024, 11, 1, 6, 40, tzinfo=timezone(timedelta(0)))
    assert MarketDataV1(**f.market_data(timestamp=zero)).timestamp.tzinfo is UTC
    parsed = MarketDataV1.parse(f.market_data(timestamp="2024-11-01T06:40:00Z"))
    assert parsed.timestamp == f.T0


def test_epoch_numbers_are_refused_and_point_to_the_upcaster() -> None:
    with pytest.raises(ContractError) as caught:
        MarketDataV1.parse(f.market_data(timestamp=1730443200000))
    _field, value, rule = problem(caught.value, "timestamp")
    assert value == 1730443200000
    assert "upcasting" in rule


@pytest.mark.parametrize(
    ("field", "value", "rule_part"),
    [
        ("price", "0", "greater than 0"),
        ("price", "-1", "greater than 0"),
        ("price", 35250.5, "not a float"),
        ("price", "NaN", "finite"),
        ("price", "abc", "decimal"),
        ("volume", "-0.1", "greater than or equal to 0"),
        ("symbol", "BTC/USDT", "pattern"),
        ("symbol", "btc_usdt", "pattern"),
        ("symbol", "BTCUSDT", "pattern"),
        ("symbol", "ABCDEFGHIJ_KLMNOPQRST", "at most 20"),
        ("side", "LONG", "BUY"),
        ("interval", "1x", "pattern"),
    ],
)
def test_market_data_field_rules_name_field_value_and_rule(
    field: str, value: Any, rule_part: str
) -> None:
    with pytest.raises(ContractError) as caught:
        MarketDataV1.parse(f.market_data(**{field: value}))
    _named_field, named_value, rule = problem(caught.value, field)
    assert named_value == value
    assert rule_part in rule
    assert field in str(caught.value)
    assert "MarketDataV1" in str(caught.value)


def test_missing_required_fields_are_each_reported() -> None:
    data = f.signal()
    del data["strategy_id"], data["price"]
    with pytest.raises(ContractError) as caught:
        SignalV1.parse(data)
    assert problem(caught.value, "strategy_id")[1] == MISSING
    assert problem(caught.value, "price")[1] == MISSING


@pytest.mark.parametrize("confidence", [-0.01, 1.01, float("nan")])
def test_signal_confidence_is_between_zero_and_one(confidence: float) -> None:
    with pytest.raises(ContractError) as caught:
        SignalV1(**f.signal(confidence=confidence))
    problem(caught.value, "confidence")


def test_signal_blocked_needs_a_known_reason_code() -> None:
    with pytest.raises(ContractError) as caught:
        SignalBlockedV1(**f.signal_blocked(reason_code="BECAUSE"))
    assert problem(caught.value, "reason_code")[1] == "BECAUSE"


def test_order_quantity_is_positive_and_limit_orders_need_a_price() -> None:
    with pytest.raises(ContractError) as caught:
        OrderV1(**f.order(quantity="0"))
    assert "greater than 0" in problem(caught.value, "quantity")[2]
    with pytest.raises(ContractError) as caught:
        OrderV1(**f.order(order_type="LIMIT"))
    assert "LIMIT" in problem(caught.value, "target_price")[2]
    limit = OrderV1(**f.order(order_type="LIMIT", target_price="35000"))
    assert limit.target_price == Decimal("35000")
    assert limit.reduce_only is False


@pytest.mark.parametrize(
    ("overrides", "field", "rule_part"),
    [
        ({"filled_quantity": "0.04"}, "filled_quantity", "FILLED needs"),
        ({"status": "PARTIALLY_FILLED"}, "filled_quantity", "PARTIALLY_FILLED needs"),
        ({"status": "PARTIALLY_FILLED", "filled_quantity": "0"}, "filled_quantity", "0 <"),
        ({"status": "REJECTED", "filled_quantity": "0.01"}, "filled_quantity", "REJECTED"),
        ({"filled_quantity": "0.06"}, "filled_quantity", "must not exceed"),
        ({"price": None}, "price", "needs its average fill price"),
        ({"status": "REJECTED", "filled_quantity": "0"}, "price", "no fill price"),
        ({"fee": "-0.1"}, "fee", "greater than or equal to 0"),
    ],
)
def test_order_results_must_be_coherent(
    overrides: dict[str, Any], field: str, rule_part: str
) -> None:
    with pytest.raises(ContractError) as caught:
        OrderResultV1(**f.order_result(**overrides))
    assert rule_part in problem(caught.value, field)[2]


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "PARTIALLY_FILLED", "filled_quantity": "0.02"},
        {"status": "REJECTED", "filled_quantity": "0", "price": None, "reason": "no liquidity"},
        {"status": "CANCELLED", "filled_quantity": "0", "price": None},
        {"status": "CANCELLED", "filled_quantity": "0.01"},
    ],
)
def test_coherent_order_results_are_accepted(overrides: dict[str, Any]) -> None:
    result = OrderResultV1(**f.order_result(**overrides))
    assert result.status is OrderStatus(overrides["status"])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"side": "FLAT"}, "quantity"),
        ({"quantity": "0"}, "quantity"),
        ({"avg_entry_price": None}, "avg_entry_price"),
        ({"side": "BUY"}, "side"),
    ],
)
def test_positions_are_coherent(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ContractError) as caught:
        PositionV1(**f.position(**overrides))
    problem(caught.value, field)


def test_a_flat_position_has_no_quantity_and_may_lack_an_entry_price() -> None:
    flat = PositionV1(**f.position(side="FLAT", quantity="0", avg_entry_price=None))
    assert flat.quantity == 0


def test_portfolio_drawdown_is_a_percentage() -> None:
    with pytest.raises(ContractError) as caught:
        PortfolioSnapshotV1(**f.portfolio(drawdown_pct="100.5"))
    problem(caught.value, "drawdown_pct")
    with pytest.raises(ContractError) as caught:
        PortfolioSnapshotV1(**f.portfolio(open_positions=-1))
    problem(caught.value, "open_positions")


def test_alert_levels_codes_and_context() -> None:
    with pytest.raises(ContractError) as caught:
        AlertV1(**f.alert(level="PANIC", code="risk limit", context={"n": 1}))
    problem(caught.value, "level")
    problem(caught.value, "code")
    assert problem(caught.value, "context.n")[1] == 1
    assert AlertV1(**f.alert(context={})).context == {}


def test_circuit_breaker_trading_day_is_a_date() -> None:
    breaker = CircuitBreakerV1.parse(f.circuit_breaker())
    assert breaker.trading_day.isoformat() == "2024-11-01"
    with pytest.raises(ContractError) as caught:
        CircuitBreakerV1.parse(f.circuit_breaker(trading_day="2024-13-01"))
    problem(caught.value, "trading_day")


def test_decimals_are_serialised_as_strings() -> None:
    document = MarketDataV1(**f.market_data(price=Decimal("35250.50"))).model_dump(mode="json")
    assert document["price"] == "35250.50"
    assert document["volume"] == "184.12"
    assert MarketDataV1(**f.market_data(side=Side.SELL)).model_dump(mode="json")["side"] == "SELL"


@given(
    price=st.decimals(
        min_value=Decimal("0.00000001"), max_value=Decimal("1e12"), allow_nan=False, places=8
    ),
    volume=st.decimals(min_value=0, max_value=Decimal("1e15"), allow_nan=False),
)
def test_decimals_survive_json_exactly(price: Decimal, volume: Decimal) -> None:
    tick = MarketDataV1(**f.market_data(price=price, volume=volume))
    back = MarketDataV1.parse_json(tick.model_dump_json())
    assert back.price == price
    assert str(back.price) == str(price)
    assert back.volume == volume
    assert str(back.volume) == str(volume)
