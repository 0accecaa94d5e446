"""The signal service: the momentum strategy on every tick of ``market_data``.

Group ``signal`` on ``market_data``; emits SIGNAL_GENERATED on ``signals``. State (a price
window per symbol) is rebuilt from the ticks the group has finished.
"""

from __future__ import annotations

from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import EventType
from cdb.domain.services import signal
from cdb.domain.services.signal import SignalParams, SignalState
from cdb.runtime.handler import Outcome
from cdb.services.base import Service, Subscription, ack
from cdb.services.state import History

NAME = "signal"


class SignalService(Service):
    name = NAME

    def __init__(self, params: SignalParams | None = None) -> None:
        super().__init__()
        self.params = params or SignalParams()
        self.state = SignalState()

    def subscriptions(self) -> list[Subscription]:
        return [Subscription("market_data", self._locked(self.on_tick))]

    def on_tick(self, event: NewEvent) -> Outcome:
        if event.event_type is not EventType.MARKET_DATA_RECEIVED:
            return ack(())
        self.state, out = signal.on_tick(self.state, event, self.params)
        return ack(out)

    def rebuild(self, history: History) -> int:
        n = 0
        with self.lock:
            for _, event in history.processed("market_data"):
                if event.event_type is EventType.MARKET_DATA_RECEIVED:
                    self.state, _ = signal.on_tick(self.state, event, self.params)
                    n += 1
        return n
