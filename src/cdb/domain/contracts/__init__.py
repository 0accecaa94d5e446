"""Every payload contract (DESIGN §3). Field rules live in :mod:`.fields`.

Importing this package does not register anything; :mod:`cdb.domain.registry` maps event types
to these classes when it is imported.
"""

from __future__ import annotations

from cdb.domain.contracts.alert import AlertV1
from cdb.domain.contracts.base import MISSING, Payload, contract_error
from cdb.domain.contracts.fields import (
    SYMBOL_PATTERN,
    AlertLevel,
    BlockReason,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
)
from cdb.domain.contracts.market import MarketDataV1
from cdb.domain.contracts.order import ORDER_EVENT_FOR_STATUS, OrderResultV1, OrderV1
from cdb.domain.contracts.portfolio import PortfolioSnapshotV1
from cdb.domain.contracts.position import PositionV1
from cdb.domain.contracts.risk import CircuitBreakerV1
from cdb.domain.contracts.signal import SignalBlockedV1, SignalV1

__all__ = [
    "MISSING",
    "ORDER_EVENT_FOR_STATUS",
    "SYMBOL_PATTERN",
    "AlertLevel",
    "AlertV1",
    "BlockReason",
    "CircuitBreakerV1",
    "MarketDataV1",
    "OrderResultV1",
    "OrderStatus",
    "OrderType",
    "OrderV1",
    "Payload",
    "PortfolioSnapshotV1",
    "PositionSide",
    "PositionV1",
    "Side",
    "SignalBlockedV1",
    "SignalV1",
    "contract_error",
]
