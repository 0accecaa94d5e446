"""Aggregate state folded from events: pure ``fold(state, event) -> state`` functions.

The event store's ``load(stream_id, fold, initial)`` replays an aggregate stream through one
of these. A fold checks that events arrive in stream order (``sequence_number`` is
``version + 1``) and that each event is a legal next step for the aggregate, raising
:class:`ContractError` otherwise: a history that breaks these rules is a bug to surface, never
state to guess. States are frozen dataclasses; ``version`` is the last folded sequence number,
the expected version for the next append.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from cdb.domain.contracts import (
    BlockReason,
    OrderResultV1,
    OrderV1,
    PositionSide,
    PositionV1,
    SignalBlockedV1,
    SignalV1,
)
from cdb.domain.contracts.order import ORDER_EVENT_FOR_STATUS
from cdb.domain.envelope import Contract, EventEnvelope
from cdb.domain.event_types import EventType
from cdb.errors import ContractError

C = TypeVar("C", bound=Contract)


def _reject(aggregate: str, event: EventEnvelope, rule: str) -> ContractError:
    return ContractError(
        aggregate,
        [("event_type", f"{event.event_type} #{event.sequence_number} in {event.stream_id}", rule)],
    )


def _next(aggregate: str, version: int, event: EventEnvelope) -> None:
    if event.sequence_number != version + 1:
        raise ContractError(
            aggregate,
            [
                (
                    "sequence_number",
                    event.sequence_number,
                    f"must be {version + 1} (events fold in stream order, gapless)",
                )
            ],
        )


def _payload(aggregate: str, event: EventEnvelope, kind: type[C]) -> C:
    if not isinstance(event.payload, kind):
        raise _reject(aggregate, event, f"payload must be {kind.__name__}")
    return event.payload


# -- signal ---------------------------------------------------------------------------------


class SignalStatus(StrEnum):
    NONE = "NONE"
    GENERATED = "GENERATED"
    BLOCKED = "BLOCKED"


@dataclass(frozen=True)
class SignalState:
    status: SignalStatus = SignalStatus.NONE
    signal: SignalV1 | None = None
    block_reason: BlockReason | None = None
    block_detail: str | None = None
    version: int = 0


SIGNAL_INITIAL = SignalState()


def fold_signal(state: SignalState, event: EventEnvelope) -> SignalState:
    """SIGNAL_GENERATED first, then at most one SIGNAL_BLOCKED."""
    _next("signal", state.version, event)
    if event.event_type is EventType.SIGNAL_GENERATED:
        if state.status is not SignalStatus.NONE:
            raise _reject("signal", event, "a signal is generated once, as its first event")
        signal = _payload("signal", event, SignalV1)
        return SignalState(SignalStatus.GENERATED, signal, version=event.sequence_number)
    if event.event_type is EventType.SIGNAL_BLOCKED:
        if state.status is not SignalStatus.GENERATED:
            raise _reject("signal", event, "only a generated, unblocked signal can be blocked")
        blocked = _payload("signal", event, SignalBlockedV1)
        return replace(
            state,
            status=SignalStatus.BLOCKED,
            block_reason=blocked.reason_code,
            block_detail=blocked.detail,
            version=event.sequence_number,
        )
    raise _reject("signal", event, "not an event of the signal aggregate")


# -- order ----------------------------------------------------------------------------------


class OrderPhase(StrEnum):
    NONE = "NONE"
    PLACED = "PLACED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


_OPEN = (OrderPhase.PLACED, OrderPhase.PARTIALLY_FILLED)


@dataclass(frozen=True)
class OrderState:
    """``filled_quantity``, ``avg_price`` and ``fees`` are the order's totals so far."""

    status: OrderPhase = OrderPhase.NONE
    order: OrderV1 | None = None
    filled_quantity: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    fees: Decimal = Decimal(0)
    version: int = 0

    @property
    def is_terminal(self) -> bool:
        return self.status in (OrderPhase.FILLED, OrderPhase.REJECTED, OrderPhase.CANCELLED)


ORDER_INITIAL = OrderState()


def fold_order(state: OrderState, event: EventEnvelope) -> OrderState:
    """ORDER_PLACED first; then results (cumulative reports) until FILLED/REJECTED/CANCELLED."""
    _next("order", state.version, event)
    if event.event_type is EventType.ORDER_PLACED:
        if state.status is not OrderPhase.NONE:
            raise _reject("order", event, "an order is placed once, as its first event")
        order = _payload("order", event, OrderV1)
        return OrderState(OrderPhase.PLACED, order, version=event.sequence_number)
    if event.event_type not in ORDER_EVENT_FOR_STATUS.values():
        raise _reject("order", event, "not an event of the order aggregate")
    if state.status not in _OPEN or state.order is None:
        raise _reject("order", event, f"the order is {state.status}, it takes no more results")
    result = _payload("order", event, OrderResultV1)
    _check_result(state, state.order, result, event)
    return replace(
        state,
        status=OrderPhase(result.status.value),
        filled_quantity=result.filled_quantity,
        avg_price=result.price,
        fees=result.fee,
        version=event.sequence_number,
    )


def _check_result(
    state: OrderState, order: OrderV1, result: OrderResultV1, event: EventEnvelope
) -> None:
    if ORDER_EVENT_FOR_STATUS[result.status] is not event.event_type:
        raise _reject("order", event, f"carries a {result.status} result")
    mismatched = [
        name
        for name, ours, theirs in (
            ("order_id", order.order_id, result.order_id),
            ("symbol", order.symbol, result.symbol),
            ("side", order.side, result.side),
            ("quantity", order.quantity, result.quantity),
        )
        if ours != theirs
    ]
    if mismatched:
        raise _reject("order", event, "result disagrees with the order on " + ", ".join(mismatched))
    if result.filled_quantity < state.filled_quantity:
        raise _reject(
            "order",
            event,
            f"filled_quantity {result.filled_quantity} < {state.filled_quantity} already filled "
            "(results are cumulative)",
        )


# -- position -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionState:
    """The position after the last event; ``realised_pnl`` is cumulative over its life."""

    side: PositionSide = PositionSide.FLAT
    quantity: Decimal = Decimal(0)
    avg_entry_price: Decimal | None = None
    realised_pnl: Decimal = Decimal(0)
    strategy_id: str | None = None
    symbol: str | None = None
    version: int = 0


POSITION_INITIAL = PositionState()


def fold_position(state: PositionState, event: EventEnvelope) -> PositionState:
    """OPENED from flat, INCREASED/REDUCED on the same side, CLOSED back to flat (repeatable)."""
    _next("position", state.version, event)
    position = _payload("position", event, PositionV1)
    rule = _position_rule(state, position, event.event_type)
    if rule is not None:
        raise _reject("position", event, rule)
    if state.strategy_id is not None and (state.strategy_id, state.symbol) != (
        position.strategy_id,
        position.symbol,
    ):
        raise _reject("position", event, "belongs to another strategy or symbol")
    return PositionState(
        side=position.side,
        quantity=position.quantity,
        avg_entry_price=position.avg_entry_price,
        realised_pnl=position.realised_pnl,
        strategy_id=position.strategy_id,
        symbol=position.symbol,
        version=event.sequence_number,
    )


def _position_rule(state: PositionState, new: PositionV1, event_type: EventType) -> str | None:
    """Why ``new`` cannot follow ``state`` through ``event_type``; None when it can."""
    flat = state.side is PositionSide.FLAT
    same_side = not flat and new.side is state.side
    rules: dict[EventType, tuple[bool, str]] = {
        EventType.POSITION_OPENED: (
            flat and new.side is not PositionSide.FLAT,
            "opens a LONG or SHORT position from FLAT",
        ),
        EventType.POSITION_INCREASED: (
            same_side and new.quantity > state.quantity,
            "increases an open position on the same side",
        ),
        EventType.POSITION_REDUCED: (
            same_side and 0 < new.quantity < state.quantity,
            "reduces an open position on the same side without closing it",
        ),
        EventType.POSITION_CLOSED: (
            not flat and new.side is PositionSide.FLAT,
            "closes an open position to FLAT",
        ),
    }
    if event_type not in rules:
        return "not an event of the position aggregate"
    allowed, rule = rules[event_type]
    return None if allowed else rule
