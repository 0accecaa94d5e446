"""Positions per strategy and symbol: each event carries the position as it is afterwards."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ValidationInfo, field_validator

from cdb.domain.contracts.base import Payload
from cdb.domain.contracts.fields import (
    EntityId,
    Money,
    PositionSide,
    Price,
    Quantity,
    Symbol,
    UtcTimestamp,
)


class PositionV1(Payload):
    """The position after the event. FLAT means ``quantity == 0``; ``realised_pnl`` is cumulative.

    ``avg_entry_price`` is absent only for a FLAT position.
    """

    strategy_id: EntityId
    symbol: Symbol
    side: PositionSide
    quantity: Quantity
    avg_entry_price: Price | None = None
    realised_pnl: Money
    unrealised_pnl: Money | None = None
    mark_price: Price | None = None
    timestamp: UtcTimestamp

    @field_validator("quantity")
    @classmethod
    def _flat_iff_empty(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        side = info.data.get("side")
        if side is PositionSide.FLAT and value != 0:
            raise ValueError("a FLAT position has quantity 0")
        if side in (PositionSide.LONG, PositionSide.SHORT) and value == 0:
            raise ValueError(f"a {side} position needs quantity > 0 (use FLAT for none)")
        return value

    @field_validator("avg_entry_price")
    @classmethod
    def _entry_price_when_open(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        side = info.data.get("side")
        if side in (PositionSide.LONG, PositionSide.SHORT) and value is None:
            raise ValueError(f"a {side} position needs its average entry price")
        return value
