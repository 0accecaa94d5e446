"""Circuit breaker: trading halted for the day (TRIPPED) and resumed (RESET)."""

from __future__ import annotations

from datetime import date

from cdb.domain.contracts.base import Payload
from cdb.domain.contracts.fields import Money, Text, UtcTimestamp


class CircuitBreakerV1(Payload):
    """``threshold`` is the daily loss limit (negative PnL) whose crossing trips the breaker."""

    trading_day: date
    daily_pnl: Money
    threshold: Money
    reason: Text
    timestamp: UtcTimestamp
