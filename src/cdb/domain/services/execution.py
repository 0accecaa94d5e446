"""Paper execution: an order in, exactly one terminal result out, priced by the market.

The result is a pure function of the order and the market tick *at the order's time* (the
newest tick of its symbol at or before ``order.timestamp``, which is the tick the signal saw),
so a redelivered order -- even one handled after later ticks arrived -- produces the same
result, byte for byte, under the same event id. That id is derived from the order id alone
(not from the result's status), so an order can never have two results in its stream: the
store refuses the second append of an id. The fold also remembers answered orders and
answers a redelivery with nothing.

Pricing (paper mode):

* price = the tick's price moved against the taker by the slippage: ``EXECUTION_SLIPPAGE_BPS``
  (default 5) plus ``EXECUTION_IMPACT_BPS`` (default 20) x the fill's share of the bar's volume;
* fee = ``EXECUTION_TAKER_FEE_BPS`` (default 6 = 0.06 %) of the filled notional, in the quote
  asset;
* at most ``EXECUTION_MAX_VOLUME_SHARE`` (default 0.10) of the bar's volume fills. A larger order
  fills that much and **the rest is cancelled** (immediate-or-cancel): the result is
  ORDER_PARTIALLY_FILLED, terminal, with the remainder named in ``reason``. We chose IOC over
  filling on later bars because it keeps one order = one result = one decision of risk, and
  risk sees the smaller position at once and can act on the next signal. Nothing fillable at
  all (an empty bar) is ORDER_CANCELLED.

Refusals are ORDER_REJECTED: while the circuit breaker is tripped (a trip strictly before the
order's time on the same UTC day), any order that is not reduce-only; an order older than the
market history kept. Reduce-only orders are filled while the breaker is tripped (closing risk is
always allowed).

Trading mode: ``CDB_TRADING_MODE`` is ``paper`` (default) or ``live``. Live needs
``CDB_LIVE_CONFIRM=I_UNDERSTAND_LIVE_TRADING`` and even then refuses to start with a clear
:class:`ConfigError`: no live exchange adapter exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from cdb.domain.contracts import (
    CircuitBreakerV1,
    MarketDataV1,
    OrderResultV1,
    OrderStatus,
    OrderV1,
    Side,
)
from cdb.domain.contracts.order import ORDER_EVENT_FOR_STATUS
from cdb.domain.envelope import NewEvent, derive_id
from cdb.domain.event_types import AggregateType, EventType
from cdb.domain.services.events import ZERO, Emit, emit, q_money, q_pct, q_price, q_qty
from cdb.domain.services.evolve import evolve
from cdb.domain.services.recent import RecentIds
from cdb.domain.services.settings import EnvReader
from cdb.errors import ConfigError

PRODUCER = "execution"
LIVE_CONFIRMATION = "I_UNDERSTAND_LIVE_TRADING"
BPS = Decimal(10_000)
RESULT_KIND = "ORDER_RESULT"


FOLDED_TYPES = frozenset(
    {
        EventType.MARKET_DATA_RECEIVED,
        EventType.CIRCUIT_BREAKER_TRIPPED,
        EventType.ORDER_FILLED,
        EventType.ORDER_PARTIALLY_FILLED,
        EventType.ORDER_CANCELLED,
        EventType.ORDER_REJECTED,
    }
)
"""What :func:`apply` folds (rebuild execution from these at start)."""


class TradingMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


def trading_mode_from_env(env: Mapping[str, str]) -> TradingMode:
    """``CDB_TRADING_MODE``: paper (default). Live is refused: see the module docstring."""
    r = EnvReader(env, "execution")
    mode = TradingMode(r.choice("CDB_TRADING_MODE", "paper", ("paper", "live")))
    r.done()
    if mode is TradingMode.LIVE:
        require_paper(mode, env.get("CDB_LIVE_CONFIRM"))
    return mode


def require_paper(mode: TradingMode, confirmation: str | None = None) -> None:
    """Raise ConfigError unless ``mode`` is paper; live is never available in cdb."""
    if mode is TradingMode.PAPER:
        return
    if confirmation != LIVE_CONFIRMATION:
        raise ConfigError(
            "CDB_TRADING_MODE=live needs the explicit confirmation "
            f"CDB_LIVE_CONFIRM={LIVE_CONFIRMATION}; refusing to start"
        )
    raise ConfigError(
        "CDB_TRADING_MODE=live: no live exchange adapter exists in cdb (no network here), so "
        "live trading cannot start; use CDB_TRADING_MODE=paper (the default)"
    )


@dataclass(frozen=True, slots=True)
class ExecutionParams:
    taker_fee_bps: Decimal = Decimal(6)
    """EXECUTION_TAKER_FEE_BPS: taker fee in basis points of the notional (6 = 0.06 %)."""
    slippage_bps: Decimal = Decimal(5)
    """EXECUTION_SLIPPAGE_BPS: base slippage against the taker, in basis points."""
    impact_bps: Decimal = Decimal(20)
    """EXECUTION_IMPACT_BPS: extra slippage at 100 % of the bar's volume (scales linearly)."""
    max_volume_share: Decimal = Decimal("0.10")
    """EXECUTION_MAX_VOLUME_SHARE: the largest share of a bar's volume one order may take."""
    history: int = 240
    """EXECUTION_TICK_HISTORY: ticks kept per symbol to price orders that arrive late."""
    mode: TradingMode = TradingMode.PAPER

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExecutionParams:
        r = EnvReader(env, "execution parameters")
        zero = Decimal(0)
        d = cls()
        params = cls(
            taker_fee_bps=r.decimal("EXECUTION_TAKER_FEE_BPS", d.taker_fee_bps, ge=zero, lt=BPS),
            slippage_bps=r.decimal("EXECUTION_SLIPPAGE_BPS", d.slippage_bps, ge=zero, lt=BPS),
            impact_bps=r.decimal("EXECUTION_IMPACT_BPS", d.impact_bps, ge=zero, lt=BPS),
            max_volume_share=r.decimal(
                "EXECUTION_MAX_VOLUME_SHARE", d.max_volume_share, gt=zero, le=Decimal(1)
            ),
            history=r.integer("EXECUTION_TICK_HISTORY", d.history, ge=1),
            mode=TradingMode(r.choice("CDB_TRADING_MODE", "paper", ("paper", "live"))),
        )
        r.done()
        require_paper(params.mode, env.get("CDB_LIVE_CONFIRM"))
        return params


@dataclass(frozen=True, slots=True)
class ExecutionState:
    ticks: Mapping[str, tuple[MarketDataV1, ...]] = field(default_factory=dict)
    """Recent ticks per symbol, oldest first."""
    trips: Mapping[date, datetime] = field(default_factory=dict)
    """When the breaker tripped, per UTC day (a trip lasts until the end of its day)."""
    answered: RecentIds = field(default_factory=RecentIds)
    """Order ids that already have their result."""

    def breaker_tripped_at(self, ts: datetime) -> bool:
        tripped = self.trips.get(ts.date())
        return tripped is not None and tripped < ts

    def tick_at(self, symbol: str, ts: datetime) -> MarketDataV1 | None:
        """The newest tick of ``symbol`` at or before ``ts``."""
        for tick in reversed(self.ticks.get(symbol, ())):
            if tick.timestamp <= ts:
                return tick
        return None

    def has_seen(self, symbol: str, ts: datetime) -> bool:
        """Whether the market history of ``symbol`` reaches ``ts`` (else wait for it)."""
        ticks = self.ticks.get(symbol, ())
        return bool(ticks) and ticks[-1].timestamp >= ts


@dataclass(frozen=True, slots=True)
class ExecutionStep:
    """``waiting``: the order's market tick has not arrived yet; redeliver the order later."""

    state: ExecutionState
    events: tuple[Emit, ...] = ()
    waiting: bool = False


def apply(state: ExecutionState, event: NewEvent, params: ExecutionParams) -> ExecutionState:
    """Fold market ticks, breaker transitions and (own) order results."""
    payload = event.payload
    et = event.event_type
    if et is EventType.MARKET_DATA_RECEIVED and isinstance(payload, MarketDataV1):
        ticks = state.ticks.get(payload.symbol, ())
        if ticks and payload.timestamp <= ticks[-1].timestamp:
            return state  # redelivered or out of order
        kept = (*ticks[-(params.history - 1) :], payload) if params.history > 1 else (payload,)
        return evolve(state, ticks={**state.ticks, payload.symbol: kept})
    if et is EventType.CIRCUIT_BREAKER_TRIPPED and isinstance(payload, CircuitBreakerV1):
        return evolve(state, trips={**state.trips, payload.trading_day: payload.timestamp})
    if isinstance(payload, OrderResultV1):
        return evolve(state, answered=state.answered.add(payload.order_id))
    return state


def on_order(
    state: ExecutionState, order_event: NewEvent, params: ExecutionParams
) -> ExecutionStep:
    """The result of one ORDER_PLACED (nothing if already answered; ``waiting`` if early)."""
    order = order_event.payload
    if not isinstance(order, OrderV1):
        raise TypeError(f"on_order needs an OrderV1 payload, got {type(order).__name__}")
    if order.order_id in state.answered:
        return ExecutionStep(state)
    if not state.has_seen(order.symbol, order.timestamp):
        return ExecutionStep(state, waiting=True)
    result = execute(
        order_event,
        state.tick_at(order.symbol, order.timestamp),
        params,
        breaker_tripped=state.breaker_tripped_at(order.timestamp),
    )
    return ExecutionStep(apply(state, result.event, params), (result,))


def result_event_id(order_id: str) -> str:
    """The one event id every result of ``order_id`` has, whatever its status."""
    return str(derive_id(RESULT_KIND, order_id))


def execute(
    order_event: NewEvent,
    market: MarketDataV1 | None,
    params: ExecutionParams,
    *,
    breaker_tripped: bool,
) -> Emit:
    """The terminal result of an order given the tick at its time and the breaker's state."""
    require_paper(params.mode)
    order = order_event.payload
    if not isinstance(order, OrderV1):
        raise TypeError(f"execute needs an OrderV1 payload, got {type(order).__name__}")
    if breaker_tripped and not order.reduce_only:
        return _result(
            order_event,
            order,
            OrderStatus.REJECTED,
            reason=(
                "circuit breaker tripped: only reduce-only orders are executed "
                "until the next UTC day"
            ),
        )
    if market is None or market.symbol != order.symbol:
        return _result(
            order_event,
            order,
            OrderStatus.REJECTED,
            reason=(f"no {order.symbol} market data at or before {order.timestamp.isoformat()}"),
        )
    cap = q_qty(market.volume * params.max_volume_share)
    filled = min(order.quantity, cap)
    if filled <= 0:
        return _result(
            order_event,
            order,
            OrderStatus.CANCELLED,
            reason=(f"no liquidity: bar volume {market.volume} allows no fill"),
        )
    participation = filled / market.volume
    slippage = q_pct(params.slippage_bps + params.impact_bps * participation)
    direction = 1 if order.side is Side.BUY else -1
    price = q_price(market.price * (1 + direction * slippage / BPS))
    fee = q_money(filled * price * params.taker_fee_bps / BPS)
    if filled == order.quantity:
        return _result(
            order_event,
            order,
            OrderStatus.FILLED,
            filled=filled,
            price=price,
            fee=fee,
            slippage_bps=slippage,
        )
    reason = (
        f"immediate-or-cancel: {_plain(filled)} of {_plain(order.quantity)} filled "
        f"({_plain(params.max_volume_share)} of bar volume {_plain(market.volume)}); "
        f"{_plain(order.quantity - filled)} cancelled"
    )
    return _result(
        order_event,
        order,
        OrderStatus.PARTIALLY_FILLED,
        filled=filled,
        price=price,
        fee=fee,
        slippage_bps=slippage,
        reason=reason,
    )


def _plain(value: Decimal) -> str:
    """``value`` without trailing zeros and never in exponent form (for messages)."""
    return format(value.normalize(), "f")


def _result(
    cause: NewEvent,
    order: OrderV1,
    status: OrderStatus,
    *,
    filled: Decimal = ZERO,
    price: Decimal | None = None,
    fee: Decimal = ZERO,
    slippage_bps: Decimal | None = None,
    reason: str | None = None,
) -> Emit:
    payload = OrderResultV1(
        order_id=order.order_id,
        signal_id=order.signal_id,
        strategy_id=order.strategy_id,
        symbol=order.symbol,
        side=order.side,
        status=status,
        quantity=order.quantity,
        filled_quantity=filled,
        price=price,
        target_price=order.target_price,
        fee=fee,
        fee_asset=order.symbol.rsplit("_", 1)[-1],
        slippage_bps=slippage_bps,
        reason=reason,
        timestamp=order.timestamp,
    )
    return emit(
        AggregateType.ORDER,
        order.order_id,
        ORDER_EVENT_FOR_STATUS[status],
        payload,
        cause=cause,
        producer=PRODUCER,
        event_id=derive_id(RESULT_KIND, order.order_id),
    )
