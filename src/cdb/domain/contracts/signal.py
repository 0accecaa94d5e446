"""Signals: what a strategy wants to do, and the risk layer's refusal of it."""

from __future__ import annotations

from cdb.domain.contracts.base import Payload
from cdb.domain.contracts.fields import (
    BlockReason,
    Confidence,
    EntityId,
    Price,
    Side,
    Symbol,
    Text,
    UtcTimestamp,
)


class SignalV1(Payload):
    """A strategy's recommendation. ``price`` is the reference price the strategy saw."""

    signal_id: EntityId
    strategy_id: EntityId
    symbol: Symbol
    side: Side
    confidence: Confidence
    reason: Text
    price: Price
    timestamp: UtcTimestamp


class SignalBlockedV1(Payload):
    """The risk layer refused a signal; ``reason_code`` says which rule, ``detail`` the numbers."""

    signal_id: EntityId
    strategy_id: EntityId
    symbol: Symbol
    side: Side
    reason_code: BlockReason
    detail: Text
    timestamp: UtcTimestamp
