"""Events -> rows, without a database: slippage, the original's column values, merging."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cdb.domain.contracts import (
    BlockReason,
    OrderResultV1,
    OrderStatus,
    OrderType,
    OrderV1,
    Side,
    SignalBlockedV1,
    SignalV1,
)
from cdb.domain.envelope import Contract, EventEnvelope
from cdb.domain.event_types import EventType
from cdb.errors import ContractError
from cdb.projections.mapping import OrderFill, batch_rows, result_rows, slippage_bps

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def envelope(event_type: EventType, payload: Contract, stream_id: str, seq: int) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{stream_id}/{seq}"),
        event_type=event_type,
        timestamp=AT,
        payload=payload,
        stream_id=stream_id,
        sequence_number=seq,
    )


def report(status: OrderStatus, filled: str, fee: str, **extra: Decimal | str) -> OrderResultV1:
    return OrderResultV1(
        order_id="o1",
        signal_id="s1",
        strategy_id="m1",
        symbol="BTC_USDT",
        side=Side.BUY,
        status=status,
        quantity=Decimal(1),
        filled_quantity=Decimal(filled),
        price=Decimal("101") if Decimal(filled) > 0 else None,
        target_price=Decimal("100"),
        fee=Decimal(fee),
        fee_asset="USDT",
        timestamp=AT,
        **extra,
    )


def test_slippage_is_absolute_basis_points_of_the_target() -> None:
    assert slippage_bps(Decimal("101"), Decimal("100")) == Decimal("100.00")
    assert slippage_bps(Decimal("99.5"), Decimal("100")) == Decimal("50.00")
    assert slippage_bps(Decimal("100.0123"), Decimal("100")) == Decimal("1.23")


def test_no_target_price_means_no_slippage() -> None:
    assert slippage_bps(Decimal("101"), None) is None


def test_a_non_positive_target_is_refused_with_the_field_named() -> None:
    with pytest.raises(ContractError, match="target_price"):
        slippage_bps(Decimal("1"), Decimal("0"))


def test_signal_row_uses_the_original_column_values() -> None:
    signal = SignalV1(
        signal_id="s1",
        strategy_id="m1",
        symbol="BTC_USDT",
        side=Side.SELL,
        confidence=0.75,
        reason="momentum",
        price=Decimal("100.5"),
        timestamp=AT,
    )
    rows = batch_rows([envelope(EventType.SIGNAL_GENERATED, signal, "signal-s1", 1)])
    (row,) = rows["signal"]
    assert row["id"] == "s1"
    assert row["signal_type"] == "sell"
    assert row["confidence"] == Decimal("0.75")
    assert row["source"] == "m1"
    assert row["status"] == "generated"


def test_an_order_links_to_its_signal_and_makes_sure_the_parent_row_exists() -> None:
    order = OrderV1(
        order_id="o1",
        signal_id="s1",
        strategy_id="m1",
        symbol="BTC_USDT",
        side=Side.BUY,
        quantity=Decimal(1),
        order_type=OrderType.LIMIT,
        target_price=Decimal(100),
        timestamp=AT,
    )
    rows = batch_rows([envelope(EventType.ORDER_PLACED, order, "order-o1", 1)])
    assert rows["signal_stub"] == [{"id": "s1"}]
    (row,) = rows["order_open"]
    assert (row["signal_id"], row["order_type"], row["approved"], row["status"]) == (
        "s1",
        "limit",
        True,
        "submitted",
    )


def test_only_filled_and_partially_filled_reports_make_trades() -> None:
    cancelled = envelope(
        EventType.ORDER_CANCELLED, report(OrderStatus.CANCELLED, "0", "0"), "order-o1", 2
    )
    rows, _ = result_rows(cancelled, OrderFill())
    assert [op for op, _ in rows] == ["signal_stub", "order_state"]


def test_an_execution_rejection_keeps_its_reason_and_makes_no_trade() -> None:
    rejected = envelope(
        EventType.ORDER_REJECTED,
        report(OrderStatus.REJECTED, "0", "0", reason="insufficient liquidity"),
        "order-o1",
        2,
    )
    rows = batch_rows([rejected])
    assert "trade" not in rows
    (state,) = rows["order_state"]
    assert (state["status"], state["rejection_reason"]) == ("rejected", "insufficient liquidity")


def test_a_trade_is_the_increment_of_a_cumulative_report() -> None:
    partial = envelope(
        EventType.ORDER_PARTIALLY_FILLED,
        report(OrderStatus.PARTIALLY_FILLED, "0.4", "0.04"),
        "order-o1",
        2,
    )
    filled = envelope(EventType.ORDER_FILLED, report(OrderStatus.FILLED, "1", "0.1"), "order-o1", 3)
    rows = batch_rows([partial, filled])
    trades = rows["trade"]
    assert [(t["size"], t["fees"], t["status"]) for t in trades] == [
        (Decimal("0.4"), Decimal("0.04"), "partial"),
        (Decimal("0.6"), Decimal("0.06"), "filled"),
    ]
    assert {t["slippage_bps"] for t in trades} == {Decimal("100.00")}
    # One order row per batch: the latest cumulative report.
    (state,) = rows["order_state"]
    assert (state["status"], state["filled_size"], state["sequence_number"]) == (
        "filled",
        Decimal("1"),
        3,
    )


def test_a_report_continues_from_the_fill_already_projected() -> None:
    filled = envelope(EventType.ORDER_FILLED, report(OrderStatus.FILLED, "1", "0.1"), "order-o1", 3)
    rows = batch_rows([filled], {"o1": OrderFill(Decimal("0.4"), Decimal("0.04"))})
    (trade,) = rows["trade"]
    assert (trade["size"], trade["fees"]) == (Decimal("0.6"), Decimal("0.06"))


def test_a_reported_slippage_wins_over_the_computed_one() -> None:
    given = envelope(
        EventType.ORDER_FILLED,
        report(OrderStatus.FILLED, "1", "0.1", slippage_bps=Decimal("7.456")),
        "order-o1",
        2,
    )
    (trade,) = batch_rows([given])["trade"]
    assert trade["slippage_bps"] == Decimal("7.46")


def test_a_blocked_signal_keeps_the_latest_reason() -> None:
    blocked = SignalBlockedV1(
        signal_id="s1",
        strategy_id="m1",
        symbol="BTC_USDT",
        side=Side.BUY,
        reason_code=BlockReason.DAILY_DRAWDOWN,
        detail="daily loss 5.2% > 5%",
        timestamp=AT,
    )
    (row,) = batch_rows([envelope(EventType.SIGNAL_BLOCKED, blocked, "signal-s1", 2)])[
        "signal_blocked"
    ]
    assert row["status"] == "blocked"
    assert row["block_reason"] == "DAILY_DRAWDOWN: daily loss 5.2% > 5%"
