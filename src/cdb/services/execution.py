"""The execution service: paper fills priced by the market, one terminal result per order.

Groups ``execution`` on ``market_data`` (ticks kept per symbol), ``alerts`` (breaker trips) and
``orders`` (each ORDER_PLACED gets its result on ``order_results``). The result's event id is
derived from the order id, so a redelivered order never fills twice. An order whose market tick
this replica has not folded yet waits for it: run as its own process (one consumer thread per
topic), the handler waits up to :data:`TICK_WAIT_S` for this replica's market-data thread to
fold the tick (usually a few milliseconds behind the order), and only then falls back to a
retry after the group's backoff (hundreds of milliseconds). On a single thread (``cdb run all``)
nothing else could fold the tick meanwhile, so it retries at once.

Consumers run at their own pace, so an order may arrive long after this replica folded later
ticks (risk catching up after a restart, a burst of ticks): older than the few hours of ticks
the pure state keeps. The service therefore also keeps an archive of each symbol's ticks
(:class:`TickArchive`, ``archive`` ticks per symbol: 14 days of 1-minute bars by default) and
prices such an order at its own tick from there, exactly as it would have been priced on time.

The trading mode is checked when the parameters are read (:class:`ExecutionParams.from_env`):
``CDB_TRADING_MODE=live`` refuses to start. State is rebuilt from the ticks the group finished,
every breaker transition and every result execution stored.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from datetime import datetime

from cdb.domain.contracts import MarketDataV1, OrderV1
from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import EventType
from cdb.domain.services import execution
from cdb.domain.services.execution import ExecutionParams, ExecutionState
from cdb.runtime.handler import Outcome, Retry
from cdb.services.base import Service, Subscription, ack
from cdb.services.state import History, merged

NAME = "execution"
ARCHIVE = 20_160
TICK_WAIT_S = 1.0
"""How long an order waits in the handler for its tick when consumers run on threads."""


class TickArchive:
    """Each symbol's ticks in time order (the newest ``size``), found by time in O(log n)."""

    def __init__(self, size: int = ARCHIVE) -> None:
        self.size = size
        self._times: dict[str, list[datetime]] = {}
        self._ticks: dict[str, list[MarketDataV1]] = {}

    def add(self, tick: MarketDataV1) -> None:
        times = self._times.setdefault(tick.symbol, [])
        if times and tick.timestamp <= times[-1]:
            return  # redelivered or out of order: already here
        ticks = self._ticks.setdefault(tick.symbol, [])
        times.append(tick.timestamp)
        ticks.append(tick)
        if len(times) > self.size + self.size // 4:
            # Trim in chunks: amortised O(1) per tick.
            del times[: len(times) - self.size]
            del ticks[: len(ticks) - self.size]

    def at(self, symbol: str, ts: datetime) -> MarketDataV1 | None:
        """The newest tick of ``symbol`` at or before ``ts``."""
        times = self._times.get(symbol, [])
        i = bisect_right(times, ts)
        return self._ticks[symbol][i - 1] if i else None


class ExecutionService(Service):
    name = NAME

    def __init__(self, params: ExecutionParams | None = None, archive: int = ARCHIVE) -> None:
        super().__init__()
        self.params = params or ExecutionParams()
        execution.require_paper(self.params.mode)
        self.state = ExecutionState()
        self.archive = TickArchive(archive)
        self._tick_folded = threading.Condition(self.lock)
        self._tick_wait_s = 0.0

    def use_threads(self) -> None:
        self._tick_wait_s = TICK_WAIT_S

    def subscriptions(self) -> list[Subscription]:
        fold = self._locked(self.fold)
        return [
            Subscription("market_data", fold),
            Subscription("alerts", fold),
            Subscription("orders", self._locked(self.on_order)),
        ]

    def fold(self, event: NewEvent) -> Outcome:
        if event.event_type in execution.FOLDED_TYPES:
            self.state = execution.apply(self.state, event, self.params)
            if isinstance(event.payload, MarketDataV1):
                self.archive.add(event.payload)
                with self._tick_folded:  # re-entrant: the handler's lock is the same one
                    self._tick_folded.notify_all()
        return ack(())

    def on_order(self, event: NewEvent) -> Outcome:
        if event.event_type is not EventType.ORDER_PLACED:
            return ack(())
        order = event.payload
        if (
            isinstance(order, OrderV1)
            and order.order_id not in self.state.answered
            and self.state.has_seen(order.symbol, order.timestamp)
            and self.state.tick_at(order.symbol, order.timestamp) is None
        ):
            # Older than the ticks the state keeps: price it at its tick from the archive.
            result = execution.execute(
                event,
                self.archive.at(order.symbol, order.timestamp),
                self.params,
                breaker_tripped=self.state.breaker_tripped_at(order.timestamp),
            )
            self.state = execution.apply(self.state, result.event, self.params)
            return ack((result,))
        done = execution.on_order(self.state, event, self.params)
        if done.waiting and self._tick_wait_s > 0 and isinstance(order, OrderV1):
            # Releases the service lock while waiting, so the market-data thread can fold.
            self._tick_folded.wait_for(
                lambda: self.state.has_seen(order.symbol, order.timestamp), self._tick_wait_s
            )
            done = execution.on_order(self.state, event, self.params)
        if done.waiting:
            return Retry(f"order {event.event_id}: its market tick has not arrived here yet")
        self.state = done.state
        return ack(done.events)

    def rebuild(self, history: History) -> int:
        n = 0
        events = merged(
            history.processed("market_data"),
            history.everything("alerts"),
            history.everything("order_results"),
        )
        with self.lock:
            for event in events:
                if event.event_type in execution.FOLDED_TYPES:
                    self.fold(event)
                    n += 1
        return n
