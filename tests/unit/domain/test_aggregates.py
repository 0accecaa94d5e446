"""Folding aggregate state from events: legal histories fold, illegal ones are refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import reduce
from typing import Any, TypeVar

import pytest

from cdb.domain.aggregates import (
    ORDER_INITIAL,
    POSITION_INITIAL,
    SIGNAL_INITIAL,
    OrderPhase,
    SignalStatus,
    fold_order,
    fold_position,
    fold_signal,
)
from cdb.domain.contracts import (
    BlockReason,
    OrderResultV1,
    OrderV1,
    PositionSide,
    PositionV1,
    SignalBlockedV1,
    SignalV1,
)
from cdb.domain.envelope import Contract, EventEnvelope
from cdb.domain.event_types import EventType
from cdb.errors import ContractError
from tests.unit.domain import factories as f

S = TypeVar("S")


def envelope(event_type: EventType, payload: Contract, seq: int, stream: str) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.UUID(int=seq),
        event_type=event_type,
        timestamp=f.T0,
        payload=payload,
        stream_id=stream,
        sequence_number=seq,
    )


def history(stream: str, *steps: tuple[EventType, Contract]) -> list[EventEnvelope]:
    return [envelope(t, p, i, stream) for i, (t, p) in enumerate(steps, start=1)]


def fold_all(
    fold: Callable[[S, EventEnvelope], S], initial: S, events: Iterable[EventEnvelope]
) -> S:
    return reduce(fold, events, initial)


def result(**overrides: Any) -> OrderResultV1:
    return OrderResultV1(**f.order_result(**overrides))


def position(**overrides: Any) -> PositionV1:
    return PositionV1(**f.position(**overrides))


# -- signal ------------------------------------------------------------------------------------


def test_a_generated_then_blocked_signal() -> None:
    events = history(
        "signal-sig-1",
        (EventType.SIGNAL_GENERATED, SignalV1(**f.signal())),
        (EventType.SIGNAL_BLOCKED, SignalBlockedV1(**f.signal_blocked())),
    )
    generated = fold_signal(SIGNAL_INITIAL, events[0])
    assert generated.status is SignalStatus.GENERATED
    assert generated.version == 1
    blocked = fold_signal(generated, events[1])
    assert blocked.status is SignalStatus.BLOCKED
    assert blocked.block_reason is BlockReason.MAX_EXPOSURE_EXCEEDED
    assert blocked.signal == generated.signal
    assert blocked.version == 2
    assert generated.status is SignalStatus.GENERATED  # states are values, never mutated


def test_a_signal_cannot_be_blocked_before_it_exists_or_twice_generated() -> None:
    blocked = history(
        "signal-sig-1", (EventType.SIGNAL_BLOCKED, SignalBlockedV1(**f.signal_blocked()))
    )
    with pytest.raises(ContractError, match="only a generated"):
        fold_signal(SIGNAL_INITIAL, blocked[0])
    twice = history(
        "signal-sig-1",
        (EventType.SIGNAL_GENERATED, SignalV1(**f.signal())),
        (EventType.SIGNAL_GENERATED, SignalV1(**f.signal())),
    )
    with pytest.raises(ContractError, match="generated once"):
        fold_all(fold_signal, SIGNAL_INITIAL, twice)


# -- order -------------------------------------------------------------------------------------


def test_an_order_partially_filled_then_filled() -> None:
    events = history(
        "order-ord-1",
        (EventType.ORDER_PLACED, OrderV1(**f.order())),
        (
            EventType.ORDER_PARTIALLY_FILLED,
            result(status="PARTIALLY_FILLED", filled_quantity="0.02", price="35250", fee="0.7"),
        ),
        (EventType.ORDER_FILLED, result()),
    )
    state = fold_all(fold_order, ORDER_INITIAL, events[:2])
    assert (state.status, state.filled_quantity, state.avg_price) == (
        OrderPhase.PARTIALLY_FILLED,
        Decimal("0.02"),
        Decimal("35250"),
    )
    assert not state.is_terminal
    state = fold_order(state, events[2])
    assert state.status is OrderPhase.FILLED
    assert state.filled_quantity == Decimal("0.05")
    assert state.fees == Decimal("1.76")
    assert state.version == 3
    assert state.is_terminal


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([(EventType.ORDER_FILLED, result())], "takes no more results"),
        (
            [
                (EventType.ORDER_PLACED, OrderV1(**f.order())),
                (EventType.ORDER_PLACED, OrderV1(**f.order())),
            ],
            "placed once",
        ),
        (
            [(EventType.ORDER_PLACED, OrderV1(**f.order())), (EventType.ORDER_CANCELLED, result())],
            "carries a FILLED result",
        ),
        (
            [
                (EventType.ORDER_PLACED, OrderV1(**f.order())),
                (EventType.ORDER_FILLED, result(side="SELL")),
            ],
            "disagrees with the order on side",
        ),
        (
            [
                (EventType.ORDER_PLACED, OrderV1(**f.order())),
                (EventType.ORDER_FILLED, result()),
                (EventType.ORDER_CANCELLED, result(status="CANCELLED")),
            ],
            "takes no more results",
        ),
        (
            [
                (EventType.ORDER_PLACED, OrderV1(**f.order())),
                (
                    EventType.ORDER_PARTIALLY_FILLED,
                    result(status="PARTIALLY_FILLED", filled_quantity="0.03"),
                ),
                (
                    EventType.ORDER_PARTIALLY_FILLED,
                    result(status="PARTIALLY_FILLED", filled_quantity="0.02"),
                ),
            ],
            "results are cumulative",
        ),
        (
            [
                (EventType.ORDER_PLACED, OrderV1(**f.order())),
                (EventType.ALERT_RAISED, OrderV1(**f.order())),
            ],
            "not an event of the order aggregate",
        ),
    ],
)
def test_illegal_order_histories_are_refused(
    steps: list[tuple[EventType, Contract]], message: str
) -> None:
    events = [
        envelope(t, p, i, "order-ord-1") if t is not EventType.ALERT_RAISED else _raw(t, p, i)
        for i, (t, p) in enumerate(steps, start=1)
    ]
    with pytest.raises(ContractError, match=message):
        fold_all(fold_order, ORDER_INITIAL, events)


def _raw(event_type: EventType, payload: Contract, seq: int) -> EventEnvelope:
    # An envelope whose payload does not match its type, as only a bug could produce.
    valid = envelope(EventType.ORDER_PLACED, payload, seq, "order-ord-1")
    return valid.model_copy(update={"event_type": event_type})


def test_events_fold_in_stream_order_without_gaps() -> None:
    placed = envelope(EventType.ORDER_PLACED, OrderV1(**f.order()), 2, "order-ord-1")
    with pytest.raises(ContractError) as caught:
        fold_order(ORDER_INITIAL, placed)
    assert caught.value.problems[0][:2] == ("sequence_number", 2)


# -- position ----------------------------------------------------------------------------------


def test_a_position_opened_increased_reduced_closed_and_reopened() -> None:
    events = history(
        "position-momentum-BTC_USDT",
        (EventType.POSITION_OPENED, position()),
        (EventType.POSITION_INCREASED, position(quantity="0.08", avg_entry_price="35300")),
        (
            EventType.POSITION_REDUCED,
            position(quantity="0.03", avg_entry_price="35300", realised_pnl="10"),
        ),
        (
            EventType.POSITION_CLOSED,
            position(side="FLAT", quantity="0", avg_entry_price=None, realised_pnl="12.5"),
        ),
        (EventType.POSITION_OPENED, position(side="SHORT", quantity="1", realised_pnl="12.5")),
    )
    closed = fold_all(fold_position, POSITION_INITIAL, events[:4])
    assert (closed.side, closed.quantity, closed.realised_pnl) == (
        PositionSide.FLAT,
        Decimal(0),
        Decimal("12.5"),
    )
    reopened = fold_position(closed, events[4])
    assert reopened.side is PositionSide.SHORT
    assert reopened.version == 5
    assert reopened.symbol == "BTC_USDT"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([(EventType.POSITION_INCREASED, position())], "increases an open position"),
        (
            [(EventType.POSITION_OPENED, position()), (EventType.POSITION_OPENED, position())],
            "from FLAT",
        ),
        (
            [
                (EventType.POSITION_OPENED, position()),
                (EventType.POSITION_REDUCED, position(side="SHORT", quantity="0.01")),
            ],
            "reduces an open position",
        ),
        (
            [
                (EventType.POSITION_OPENED, position()),
                (EventType.POSITION_REDUCED, position(quantity="0.05")),
            ],
            "without closing it",
        ),
        (
            [
                (EventType.POSITION_OPENED, position()),
                (EventType.POSITION_CLOSED, position(quantity="0.01")),
            ],
            "to FLAT",
        ),
        (
            [
                (EventType.POSITION_OPENED, position()),
                (EventType.POSITION_INCREASED, position(symbol="ETH_USDT", quantity="0.1")),
            ],
            "another strategy or symbol",
        ),
    ],
)
def test_illegal_position_histories_are_refused(
    steps: list[tuple[EventType, Contract]], message: str
) -> None:
    with pytest.raises(ContractError, match=message):
        fold_all(fold_position, POSITION_INITIAL, history("position-x", *steps))
