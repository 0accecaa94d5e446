"""Market data: one tick or candle close, published on the ``market_data`` topic only."""

from __future__ import annotations

from cdb.domain.contracts.base import Payload
from cdb.domain.contracts.fields import Interval, Price, Quantity, Side, Symbol, UtcTimestamp, Venue


class MarketDataV1(Payload):
    """A price observation. ``side`` is the aggressor side of a trade when the venue tells it."""

    symbol: Symbol
    price: Price
    volume: Quantity
    timestamp: UtcTimestamp
    interval: Interval | None = None
    side: Side | None = None
    venue: Venue | None = None
