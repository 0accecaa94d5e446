"""Each service's pure logic as a replay drives it: fold the past, then step through inputs.

A runner holds one service's state. :meth:`Runner.fold` rebuilds it from recorded events of
the service's folded types (what a restart folds: ``risk.FOLDED_TYPES`` ...); :meth:`Runner.step`
handles one input event the way the pipeline routes it (:mod:`cdb.domain.services.sim` is the
reference) and returns what the service emits. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import EventType
from cdb.domain.services import execution, portfolio, risk, signal
from cdb.domain.services.events import Emit
from cdb.domain.services.sim import PipelineParams
from cdb.errors import ContractError

MARKET = EventType.MARKET_DATA_RECEIVED
BREAKER_TYPES = frozenset({EventType.CIRCUIT_BREAKER_TRIPPED, EventType.CIRCUIT_BREAKER_RESET})


class Runner(Protocol):
    name: str
    inputs: frozenset[EventType]
    """Event types the service handles (stepped during the replayed range)."""
    folded: frozenset[EventType]
    """Event types its state is rebuilt from (folded before the range)."""
    outputs: frozenset[EventType]
    """Event types it emits."""

    def fold(self, event: NewEvent) -> None: ...

    def step(self, event: NewEvent) -> list[Emit]: ...

    def unfinished(self) -> list[str]:
        """Inputs still waiting for something at the end (their ids); none for most."""
        ...


@dataclass
class SignalRunner:
    params: signal.SignalParams
    name: str = "signal"
    inputs: frozenset[EventType] = frozenset({MARKET})
    folded: frozenset[EventType] = frozenset({MARKET})
    outputs: frozenset[EventType] = frozenset({EventType.SIGNAL_GENERATED})
    state: signal.SignalState = field(default_factory=signal.SignalState)

    def fold(self, event: NewEvent) -> None:
        if event.event_type is MARKET:
            self.state, _ = signal.on_tick(self.state, event, self.params)

    def step(self, event: NewEvent) -> list[Emit]:
        if event.event_type is not MARKET:
            return []
        self.state, out = signal.on_tick(self.state, event, self.params)
        return out

    def unfinished(self) -> list[str]:
        return []


@dataclass
class RiskRunner:
    params: risk.RiskParams
    name: str = "risk"
    inputs: frozenset[EventType] = frozenset(
        {MARKET, EventType.SIGNAL_GENERATED, *risk.RESULT_TYPES}
    )
    folded: frozenset[EventType] = risk.FOLDED_TYPES
    outputs: frozenset[EventType] = frozenset(
        {
            EventType.ORDER_PLACED,
            EventType.SIGNAL_BLOCKED,
            EventType.ALERT_RAISED,
            *BREAKER_TYPES,
        }
    )
    state: risk.RiskState = field(default_factory=risk.RiskState)

    def fold(self, event: NewEvent) -> None:
        if event.event_type in self.folded:
            self.state = risk.apply(self.state, event)

    def step(self, event: NewEvent) -> list[Emit]:
        if event.event_type not in self.inputs:
            return []
        self.state, decision = risk.step(self.state, event, self.params)
        return list(decision.events)

    def unfinished(self) -> list[str]:
        return []


@dataclass
class ExecutionRunner:
    """Orders whose market tick has not been seen yet wait, as a redelivery would, and are
    tried again after every later input."""

    params: execution.ExecutionParams
    name: str = "execution"
    inputs: frozenset[EventType] = frozenset({MARKET, EventType.ORDER_PLACED, *BREAKER_TYPES})
    folded: frozenset[EventType] = execution.FOLDED_TYPES
    outputs: frozenset[EventType] = risk.RESULT_TYPES
    state: execution.ExecutionState = field(default_factory=execution.ExecutionState)
    waiting: list[NewEvent] = field(default_factory=list)

    def fold(self, event: NewEvent) -> None:
        if event.event_type in self.folded:
            self.state = execution.apply(self.state, event, self.params)

    def step(self, event: NewEvent) -> list[Emit]:
        out: list[Emit] = []
        if event.event_type is EventType.ORDER_PLACED:
            self.waiting.append(event)
        elif event.event_type in self.inputs:
            self.state = execution.apply(self.state, event, self.params)
        still: list[NewEvent] = []
        for order in self.waiting:
            done = execution.on_order(self.state, order, self.params)
            self.state = done.state
            out.extend(done.events)
            if done.waiting:
                still.append(order)
        self.waiting = still
        return out

    def unfinished(self) -> list[str]:
        return [str(order.event_id) for order in self.waiting]


@dataclass
class PortfolioRunner:
    params: portfolio.PortfolioParams
    name: str = "portfolio"
    inputs: frozenset[EventType] = frozenset({MARKET, *risk.RESULT_TYPES})
    folded: frozenset[EventType] = portfolio.FOLDED_TYPES
    outputs: frozenset[EventType] = frozenset(
        {
            EventType.POSITION_OPENED,
            EventType.POSITION_INCREASED,
            EventType.POSITION_REDUCED,
            EventType.POSITION_CLOSED,
            EventType.PORTFOLIO_SNAPSHOT_TAKEN,
        }
    )
    state: portfolio.PortfolioState = field(default_factory=portfolio.PortfolioState)

    def fold(self, event: NewEvent) -> None:
        if event.event_type in self.folded:
            self.state = portfolio.apply(self.state, event, self.params)

    def step(self, event: NewEvent) -> list[Emit]:
        if event.event_type is MARKET:
            self.state, out = portfolio.on_tick(self.state, event, self.params)
            return out
        if event.event_type in risk.RESULT_TYPES:
            self.state, out = portfolio.on_result(self.state, event, self.params)
            return out
        return []

    def unfinished(self) -> list[str]:
        return []


SERVICES = ("signal", "risk", "execution", "portfolio")


def runner_for(name: str, params: PipelineParams) -> Runner:
    """A fresh runner of service ``name`` with the given parameters."""
    runners: Mapping[str, Runner] = {
        "signal": SignalRunner(params.signal),
        "risk": RiskRunner(params.risk),
        "execution": ExecutionRunner(params.execution),
        "portfolio": PortfolioRunner(params.portfolio),
    }
    try:
        return runners[name]
    except KeyError:
        raise ContractError(
            "replay", [("--service", name, f"must be one of: {', '.join(SERVICES)}")]
        ) from None


def params_from_env(env: Mapping[str, str]) -> PipelineParams:
    """Every service's parameters from an environment mapping (the caller passes os.environ)."""
    return PipelineParams(
        signal=signal.SignalParams.from_env(env),
        risk=risk.RiskParams.from_env(env),
        execution=execution.ExecutionParams.from_env(env),
        portfolio=portfolio.PortfolioParams.from_env(env),
    )
