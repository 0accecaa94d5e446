"""The whole pipeline in memory: ticks -> signal -> risk -> execution -> portfolio, no I/O.

Routing follows ``streams/topology.toml``: every event goes to the services that consume its
topic, in a fixed order, breadth first. This is the reference run the streamed pipeline can be
compared with (same input, same events and ids), and what the end-to-end unit test checks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from cdb.domain.contracts import MarketDataV1
from cdb.domain.event_types import EventType
from cdb.domain.services import execution, portfolio, risk, signal
from cdb.domain.services.events import Emit
from cdb.domain.services.execution import ExecutionParams, ExecutionState
from cdb.domain.services.marketdata import tick_event
from cdb.domain.services.portfolio import PortfolioParams, PortfolioState
from cdb.domain.services.risk import RiskParams, RiskState
from cdb.domain.services.signal import SignalParams, SignalState


@dataclass(frozen=True, slots=True)
class PipelineParams:
    signal: SignalParams = field(default_factory=SignalParams)
    risk: RiskParams = field(default_factory=RiskParams)
    execution: ExecutionParams = field(default_factory=ExecutionParams)
    portfolio: PortfolioParams = field(default_factory=PortfolioParams)


@dataclass(slots=True)
class Pipeline:
    """Each service's state, and every event emitted so far (ticks included), in order."""

    params: PipelineParams = field(default_factory=PipelineParams)
    signal: SignalState = field(default_factory=SignalState)
    risk: RiskState = field(default_factory=RiskState)
    execution: ExecutionState = field(default_factory=ExecutionState)
    portfolio: PortfolioState = field(default_factory=PortfolioState)
    events: list[Emit] = field(default_factory=list)

    def feed(self, tick: MarketDataV1) -> list[Emit]:
        """Run one tick through every service; the events it caused (the tick first)."""
        start = len(self.events)
        queue: deque[Emit] = deque([tick_event(tick)])
        while queue:
            item = queue.popleft()
            self.events.append(item)
            queue.extend(self._route(item))
        return self.events[start:]

    def run(self, ticks: Iterable[MarketDataV1]) -> Pipeline:
        for tick in ticks:
            self.feed(tick)
        return self

    @classmethod
    def rebuild(cls, events: Iterable[Emit], params: PipelineParams | None = None) -> Pipeline:
        """Every service's state folded from recorded events, as a restart rebuilds it.

        Nothing is emitted: each service only folds the topics it reads (and its own outputs).
        """
        pipe = cls(params or PipelineParams())
        p = pipe.params
        for item in events:
            event, et = item.event, item.event_type
            pipe.events.append(item)
            pipe.risk = risk.apply(pipe.risk, event)
            pipe.execution = execution.apply(pipe.execution, event, p.execution)
            pipe.portfolio = portfolio.apply(pipe.portfolio, event, p.portfolio)
            if et is EventType.MARKET_DATA_RECEIVED:
                pipe.signal, _ = signal.on_tick(pipe.signal, event, p.signal)
        return pipe

    def _route(self, item: Emit) -> list[Emit]:
        p, event, et = self.params, item.event, item.event_type
        out: list[Emit] = []
        if et is EventType.MARKET_DATA_RECEIVED:
            self.execution = execution.apply(self.execution, event, p.execution)
            self.portfolio, snapshots = portfolio.on_tick(self.portfolio, event, p.portfolio)
            out.extend(snapshots)
            self.risk, decision = risk.step(self.risk, event, p.risk)
            out.extend(decision.events)
            self.signal, signals = signal.on_tick(self.signal, event, p.signal)
            out.extend(signals)
        elif et is EventType.SIGNAL_GENERATED:
            self.risk, decision = risk.step(self.risk, event, p.risk)
            out.extend(decision.events)
        elif et is EventType.ORDER_PLACED:
            done = execution.on_order(self.execution, event, p.execution)
            if done.waiting:
                raise AssertionError(f"order {event.event_id} is ahead of the market data")
            self.execution = done.state
            out.extend(done.events)
        elif et in risk.RESULT_TYPES:
            self.risk, decision = risk.step(self.risk, event, p.risk)
            out.extend(decision.events)
            self.portfolio, positions = portfolio.on_result(self.portfolio, event, p.portfolio)
            out.extend(positions)
        elif et in (EventType.CIRCUIT_BREAKER_TRIPPED, EventType.CIRCUIT_BREAKER_RESET):
            self.execution = execution.apply(self.execution, event, p.execution)
        return out


def simulate(ticks: Iterable[MarketDataV1], params: PipelineParams | None = None) -> Pipeline:
    """A fresh pipeline run over ``ticks``."""
    return Pipeline(params or PipelineParams()).run(ticks)
