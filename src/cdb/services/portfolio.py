"""The portfolio service: positions, marks, snapshots and drawdown.

Groups ``portfolio`` on ``market_data`` (marks; a PORTFOLIO_SNAPSHOT_TAKEN when a tick opens a
new slot of market time) and ``order_results`` (fills move positions: POSITION_OPENED /
INCREASED / REDUCED / CLOSED). State is rebuilt from the ticks and results the group finished,
in arrival order, so an input whose outputs were not stored yet is handled again after a
restart and emits them then.
"""

from __future__ import annotations

from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import EventType
from cdb.domain.services import portfolio
from cdb.domain.services.portfolio import PortfolioParams, PortfolioState
from cdb.runtime.handler import Outcome
from cdb.services.base import Service, Subscription, ack
from cdb.services.state import History, merged

NAME = "portfolio"


class PortfolioService(Service):
    name = NAME

    def __init__(self, params: PortfolioParams | None = None) -> None:
        super().__init__()
        self.params = params or PortfolioParams()
        self.state = PortfolioState()

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription("market_data", self._locked(self.on_tick)),
            Subscription("order_results", self._locked(self.on_result)),
        ]

    def on_tick(self, event: NewEvent) -> Outcome:
        if event.event_type is not EventType.MARKET_DATA_RECEIVED:
            return ack(())
        self.state, out = portfolio.on_tick(self.state, event, self.params)
        return ack(out)

    def on_result(self, event: NewEvent) -> Outcome:
        if event.event_type not in portfolio.FILL_TYPES:
            return ack(())
        self.state, out = portfolio.on_result(self.state, event, self.params)
        return ack(out)

    def rebuild(self, history: History) -> int:
        n = 0
        events = merged(history.processed("market_data"), history.processed("order_results"))
        with self.lock:
            for event in events:
                if event.event_type in portfolio.FOLDED_TYPES:
                    self.state = portfolio.apply(self.state, event, self.params)
                    n += 1
        return n
