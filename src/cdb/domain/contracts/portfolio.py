"""Portfolio snapshots: the account as a whole at one moment."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from cdb.domain.contracts.base import Payload
from cdb.domain.contracts.fields import Money, NonNegativeMoney, Percent, UtcTimestamp


class PortfolioSnapshotV1(Payload):
    """Equity = cash + value of open positions; ``drawdown_pct`` is from the day's peak equity."""

    equity: Money
    cash: Money
    exposure: NonNegativeMoney
    realised_pnl: Money
    unrealised_pnl: Money
    daily_pnl: Money
    drawdown_pct: Percent
    open_positions: Annotated[int, Field(ge=0)]
    timestamp: UtcTimestamp
