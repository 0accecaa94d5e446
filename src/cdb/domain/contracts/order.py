"""Orders: the approved order sent to execution, and execution's report on it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import ValidationInfo, field_validator

from cdb.domain.contracts.base import Payload
from cdb.domain.contracts.fields import (
    Asset,
    BasisPoints,
    EntityId,
    NonNegativeMoney,
    OrderStatus,
    OrderType,
    PositiveQuantity,
    Price,
    Quantity,
    Side,
    Symbol,
    Text,
    UtcTimestamp,
)
from cdb.domain.event_types import EventType


class OrderV1(Payload):
    """An order the risk layer approved. ``order_id`` is the deterministic client order id."""

    order_id: EntityId
    signal_id: EntityId
    strategy_id: EntityId
    symbol: Symbol
    side: Side
    quantity: PositiveQuantity
    order_type: OrderType
    target_price: Price | None = None
    reduce_only: bool = False
    timestamp: UtcTimestamp

    @field_validator("target_price")
    @classmethod
    def _limit_needs_price(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if value is None and info.data.get("order_type") is OrderType.LIMIT:
            raise ValueError("a LIMIT order needs a target_price")
        return value


class OrderResultV1(Payload):
    """Execution's report on an order, cumulative for the whole order.

    ``filled_quantity``, ``price`` (average fill price) and ``fee`` are totals for the order so
    far, as an exchange's execution report gives them, so the latest report is the order's state.
    Coherence: FILLED needs ``filled_quantity == quantity``; PARTIALLY_FILLED needs
    ``0 < filled_quantity < quantity``; REJECTED needs nothing filled; a fill needs a ``price``
    and no fill must not carry one.
    """

    order_id: EntityId
    signal_id: EntityId | None = None
    strategy_id: EntityId
    symbol: Symbol
    side: Side
    status: OrderStatus
    quantity: PositiveQuantity
    filled_quantity: Quantity
    price: Price | None = None
    target_price: Price | None = None
    fee: NonNegativeMoney
    fee_asset: Asset
    slippage_bps: BasisPoints | None = None
    reason: Text | None = None
    timestamp: UtcTimestamp

    @field_validator("filled_quantity")
    @classmethod
    def _filled_matches_status(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        status, quantity = info.data.get("status"), info.data.get("quantity")
        if status is None or quantity is None:
            return value  # already reported as invalid
        if value > quantity:
            raise ValueError(f"must not exceed quantity {quantity}")
        if status is OrderStatus.FILLED and value != quantity:
            raise ValueError(f"FILLED needs filled_quantity == quantity ({quantity})")
        if status is OrderStatus.PARTIALLY_FILLED and not 0 < value < quantity:
            raise ValueError(f"PARTIALLY_FILLED needs 0 < filled_quantity < quantity ({quantity})")
        if status is OrderStatus.REJECTED and value != 0:
            raise ValueError("REJECTED needs filled_quantity == 0")
        return value

    @field_validator("price")
    @classmethod
    def _price_iff_filled(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        filled: Any = info.data.get("filled_quantity")
        if filled is None:
            return value
        if filled > 0 and value is None:
            raise ValueError("a fill (filled_quantity > 0) needs its average fill price")
        if filled == 0 and value is not None:
            raise ValueError("nothing was filled, so there is no fill price")
        return value


ORDER_EVENT_FOR_STATUS: dict[OrderStatus, EventType] = {
    OrderStatus.FILLED: EventType.ORDER_FILLED,
    OrderStatus.PARTIALLY_FILLED: EventType.ORDER_PARTIALLY_FILLED,
    OrderStatus.REJECTED: EventType.ORDER_REJECTED,
    OrderStatus.CANCELLED: EventType.ORDER_CANCELLED,
}
"""The event type that carries an :class:`OrderResultV1` of each status."""
