"""The risk service: exactly one decision (order or block) per signal, limits, breaker.

Groups ``risk`` on:

* ``market_data``, ``signals`` (SIGNAL_GENERATED), ``order_results`` -- stepped through
  :func:`cdb.domain.services.risk.step` (marks, decisions, stop-losses, breaker trip/reset);
* ``orders``, ``positions``, ``portfolio_snapshots`` and its own SIGNAL_BLOCKED -- acked only:
  risk's own outputs are folded when it emits them, and the portfolio's events carry nothing
  the fold uses (risk keeps its own positions from the fills).

State is rebuilt at start from the ticks and results the group finished plus every decision
and breaker transition risk itself stored (``risk.FOLDED_TYPES``); the fold does not depend on
how the topics interleave.
"""

from __future__ import annotations

from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import EventType
from cdb.domain.services import risk
from cdb.domain.services.risk import RiskParams, RiskState
from cdb.runtime.handler import Outcome
from cdb.services.base import Service, Subscription, ack
from cdb.services.state import History, merged

NAME = "risk"
_STEPPED = frozenset(
    {EventType.MARKET_DATA_RECEIVED, EventType.SIGNAL_GENERATED, *risk.RESULT_TYPES}
)


class RiskService(Service):
    name = NAME

    def __init__(self, params: RiskParams | None = None) -> None:
        super().__init__()
        self.params = params or RiskParams()
        self.state = RiskState()

    def subscriptions(self) -> list[Subscription]:
        step = self._locked(self.step)
        return [
            Subscription("market_data", step),
            Subscription("signals", step),
            Subscription("order_results", step),
            Subscription("orders", self._ignore()),
            Subscription("positions", self._ignore()),
            Subscription("portfolio_snapshots", self._ignore()),
        ]

    def step(self, event: NewEvent) -> Outcome:
        if event.event_type not in _STEPPED:
            return ack(())
        self.state, decision = risk.step(self.state, event, self.params)
        return ack(decision.events)

    def rebuild(self, history: History) -> int:
        n = 0
        events = merged(
            history.processed("market_data"),
            history.everything("signals"),
            history.everything("orders"),
            history.processed("order_results"),
            history.everything("alerts"),
        )
        with self.lock:
            for event in events:
                if event.event_type in risk.FOLDED_TYPES:
                    self.state = risk.apply(self.state, event)
                    n += 1
        return n
