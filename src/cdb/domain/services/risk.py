"""The risk layer: every signal gets exactly one decision -- an order or a block with a reason.

State is a fold over events (:func:`apply`), so it can be rebuilt from the streams at start:

* MARKET_DATA_RECEIVED and SIGNAL_GENERATED move the mark price of their symbol (newest wins);
* ORDER_PLACED puts an order in flight (it counts towards the limits until its result is in),
  SIGNAL_BLOCKED / ORDER_PLACED mark the signal as decided (a redelivered signal is not decided
  twice);
* a stop-loss's ORDER_REJECTED / ORDER_CANCELLED records the failure (market time) for its
  position; a later stop-loss placed or filled, or the position going flat, clears it;
* ORDER_FILLED / ORDER_PARTIALLY_FILLED / ORDER_CANCELLED / ORDER_REJECTED end an order and move
  the position of its strategy and symbol (cumulative reports count once, see
  :class:`~cdb.domain.services.positions.FillLedger`); realised PnL of the current UTC day adds up;
* CIRCUIT_BREAKER_TRIPPED / CIRCUIT_BREAKER_RESET switch the breaker.

The fold is insensitive to how the topics interleave on a rebuild: a result read before its
order still ends it, a fill of an earlier day never counts towards today, marks keep the newest.

Rules (env names and defaults of the original system):

* ``MAX_POSITION_PCT`` (0.10): a strategy's position in a symbol, including orders in flight,
  stays within that share of ``TEST_BALANCE``; an order is sized to the room left (at most the
  whole allowance), and no room (below ``RISK_MIN_ORDER_NOTIONAL``) blocks the signal with
  MAX_POSITION_EXCEEDED plus a WARNING alert ``RISK_LIMIT``.
* ``MAX_TOTAL_EXPOSURE_PCT`` (0.30): the same over all positions and orders in flight
  (MAX_EXPOSURE_EXCEEDED).
* Reduce-only orders are always allowed: a signal against an open position closes it (never more
  than is open and not already being closed), even while the breaker is tripped.
* ``MAX_DAILY_DRAWDOWN_PCT`` (0.05): when the day's realised + unrealised PnL is at or below
  ``-TEST_BALANCE x MAX_DAILY_DRAWDOWN_PCT`` the breaker trips (CIRCUIT_BREAKER_TRIPPED and a
  CRITICAL alert); until the next UTC day no order that opens or adds is placed
  (CIRCUIT_BREAKER_TRIPPED blocks). The first event of a later day resets it
  (CIRCUIT_BREAKER_RESET, timestamped at midnight, one per day whatever triggers it).
* ``STOP_LOSS_PCT`` (0.02): a position whose mark is that far against its entry gets a
  reduce-only close order (``signal_id`` ``stoploss-<id>``), once while it is in flight.
  A stop-loss that comes back REJECTED or CANCELLED is not retried in answer to that result
  (nor to any other result or signal): only a later tick of its symbol (timestamp after the
  failure) tries again, once per tick. Retrying at once would loop forever on an order that can
  never fill (an empty bar, no market data): each retry is answered by the same failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from cdb.domain.contracts import (
    AlertLevel,
    AlertV1,
    BlockReason,
    CircuitBreakerV1,
    MarketDataV1,
    OrderResultV1,
    OrderType,
    OrderV1,
    Side,
    SignalBlockedV1,
    SignalV1,
)
from cdb.domain.envelope import NewEvent, derive_id
from cdb.domain.event_types import AggregateType, EventType
from cdb.domain.services.clock import day_start, utc_day
from cdb.domain.services.events import ZERO, Emit, emit, new_id, q_money, q_qty
from cdb.domain.services.evolve import evolve
from cdb.domain.services.positions import FillLedger, Position, apply_fill
from cdb.domain.services.recent import RecentIds
from cdb.domain.services.settings import EnvReader

PRODUCER = "risk"
BREAKER_KEY = "circuit-breaker"
STOP_LOSS_PREFIX = "stoploss-"
ONE = Decimal(1)

RESULT_TYPES = frozenset(
    {
        EventType.ORDER_FILLED,
        EventType.ORDER_PARTIALLY_FILLED,
        EventType.ORDER_CANCELLED,
        EventType.ORDER_REJECTED,
    }
)
"""Terminal order results: each order gets exactly one of these from execution."""

STOP_FAILED_TYPES = frozenset({EventType.ORDER_CANCELLED, EventType.ORDER_REJECTED})
"""Results of a stop-loss that closed nothing: retried on a later tick only."""

FOLDED_TYPES = frozenset(
    {
        EventType.MARKET_DATA_RECEIVED,
        EventType.SIGNAL_GENERATED,
        EventType.SIGNAL_BLOCKED,
        EventType.ORDER_PLACED,
        EventType.CIRCUIT_BREAKER_TRIPPED,
        EventType.CIRCUIT_BREAKER_RESET,
        *RESULT_TYPES,
    }
)
"""What :func:`apply` folds (rebuild risk from these at start); any other type is ignored."""


@dataclass(frozen=True, slots=True)
class RiskParams:
    max_position_pct: Decimal = Decimal("0.10")
    """MAX_POSITION_PCT: one strategy's position in one symbol, as a share of TEST_BALANCE."""
    max_total_exposure_pct: Decimal = Decimal("0.30")
    """MAX_TOTAL_EXPOSURE_PCT: all positions and orders in flight, as a share of TEST_BALANCE."""
    max_daily_drawdown_pct: Decimal = Decimal("0.05")
    """MAX_DAILY_DRAWDOWN_PCT: the day's loss (share of TEST_BALANCE) that trips the breaker."""
    stop_loss_pct: Decimal = Decimal("0.02")
    """STOP_LOSS_PCT: adverse move from the entry price that closes a position."""
    test_balance: Decimal = Decimal(10_000)
    """TEST_BALANCE: the paper account's balance (USDT) every limit is a share of."""
    min_order_notional: Decimal = Decimal(10)
    """RISK_MIN_ORDER_NOTIONAL: smaller room than this (USDT) counts as no room."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RiskParams:
        r = EnvReader(env, "risk parameters")
        zero, one = Decimal(0), Decimal(1)
        d = cls()
        params = cls(
            max_position_pct=r.decimal("MAX_POSITION_PCT", d.max_position_pct, gt=zero, le=one),
            max_total_exposure_pct=r.decimal(
                "MAX_TOTAL_EXPOSURE_PCT", d.max_total_exposure_pct, gt=zero, le=one
            ),
            max_daily_drawdown_pct=r.decimal(
                "MAX_DAILY_DRAWDOWN_PCT", d.max_daily_drawdown_pct, gt=zero, le=one
            ),
            stop_loss_pct=r.decimal("STOP_LOSS_PCT", d.stop_loss_pct, gt=zero, lt=one),
            test_balance=r.decimal("TEST_BALANCE", d.test_balance, gt=zero),
            min_order_notional=r.decimal("RISK_MIN_ORDER_NOTIONAL", d.min_order_notional, ge=zero),
        )
        r.done()
        return params

    @property
    def max_position_notional(self) -> Decimal:
        return q_money(self.test_balance * self.max_position_pct)

    @property
    def max_exposure_notional(self) -> Decimal:
        return q_money(self.test_balance * self.max_total_exposure_pct)

    @property
    def loss_limit(self) -> Decimal:
        """The (negative) daily PnL at or below which the breaker trips."""
        return q_money(-self.test_balance * self.max_daily_drawdown_pct)


PositionKey = tuple[str, str]
"""(strategy_id, symbol)."""


@dataclass(frozen=True, slots=True)
class InFlight:
    """An order placed and not yet answered by execution."""

    strategy_id: str
    symbol: str
    side: Side
    quantity: Decimal
    reduce_only: bool
    price: Decimal
    stop_loss: bool = False

    @property
    def key(self) -> PositionKey:
        return (self.strategy_id, self.symbol)

    @property
    def signed(self) -> Decimal:
        return self.quantity if self.side is Side.BUY else -self.quantity


@dataclass(frozen=True, slots=True)
class RiskState:
    day: date | None = None
    realised_today: Decimal = ZERO
    positions: Mapping[PositionKey, Position] = field(default_factory=dict)
    ledger: FillLedger = field(default_factory=FillLedger)
    marks: Mapping[str, tuple[datetime, Decimal]] = field(default_factory=dict)
    in_flight: Mapping[str, InFlight] = field(default_factory=dict)
    finished: RecentIds = field(default_factory=RecentIds)
    """Order ids with their result (recent ones: see :mod:`.recent`)."""
    decided: RecentIds = field(default_factory=RecentIds)
    """Signal ids with their decision (recent ones)."""
    tripped_day: date | None = None
    """The UTC day the breaker tripped on; None while it is not tripped."""
    stop_failures: Mapping[PositionKey, datetime] = field(default_factory=dict)
    """Per position, the market time its last stop-loss was rejected or cancelled at."""

    @property
    def breaker_tripped(self) -> bool:
        return self.tripped_day is not None

    def mark(self, symbol: str) -> Decimal | None:
        entry = self.marks.get(symbol)
        return None if entry is None else entry[1]

    def unrealised(self) -> Decimal:
        total = ZERO
        for (_, symbol), pos in self.positions.items():
            mark = self.mark(symbol)
            if mark is not None:
                total += pos.unrealised(mark)
        return total

    def daily_pnl(self) -> Decimal:
        """Today's realised PnL (net of fees) plus the unrealised PnL of what is open now."""
        return q_money(self.realised_today + self.unrealised())


@dataclass(frozen=True, slots=True)
class Decision:
    """The events a decision emits, in order (apply them to the state in this order)."""

    events: tuple[Emit, ...] = ()

    def of_type(self, event_type: EventType) -> list[Emit]:
        return [e for e in self.events if e.event_type is event_type]

    @property
    def order(self) -> OrderV1 | None:
        for e in self.events:
            payload = e.event.payload
            if isinstance(payload, OrderV1) and not payload.signal_id.startswith(STOP_LOSS_PREFIX):
                return payload
        return None

    @property
    def blocked(self) -> SignalBlockedV1 | None:
        for e in self.events:
            if isinstance(e.event.payload, SignalBlockedV1):
                return e.event.payload
        return None

    def __add__(self, other: Decision) -> Decision:
        return Decision(self.events + other.events)


# --------------------------------------------------------------------------------------------
# The fold


def apply(state: RiskState, event: NewEvent) -> RiskState:
    """The risk state after ``event`` (any event type; those risk does not use change nothing)."""
    state = _advance_day(state, utc_day(event.timestamp))
    payload = event.payload
    if isinstance(payload, MarketDataV1 | SignalV1):
        return _with_mark(state, payload.symbol, payload.timestamp, payload.price)
    if isinstance(payload, SignalBlockedV1):
        return evolve(state, decided=state.decided.add(payload.signal_id))
    if isinstance(payload, OrderV1):
        return _apply_order(state, payload)
    if isinstance(payload, OrderResultV1) and event.event_type in RESULT_TYPES:
        return _apply_result(state, event.event_type, payload)
    if isinstance(payload, CircuitBreakerV1):
        return _apply_breaker(state, event.event_type, payload)
    return state


def apply_all(state: RiskState, events: Iterable[NewEvent | Emit]) -> RiskState:
    for item in events:
        state = apply(state, item.event if isinstance(item, Emit) else item)
    return state


def _advance_day(state: RiskState, day: date) -> RiskState:
    if state.day is None or day > state.day:
        return evolve(state, day=day, realised_today=ZERO)
    return state


def _with_mark(state: RiskState, symbol: str, ts: datetime, price: Decimal) -> RiskState:
    current = state.marks.get(symbol)
    if current is not None and current[0] > ts:
        return state
    return evolve(state, marks={**state.marks, symbol: (ts, price)})


def _apply_order(state: RiskState, order: OrderV1) -> RiskState:
    state = evolve(state, decided=state.decided.add(order.signal_id))
    if order.order_id in state.finished:
        return state  # its result was folded first (a rebuild reads topics in any order)
    flight = InFlight(
        order.strategy_id,
        order.symbol,
        order.side,
        order.quantity,
        order.reduce_only,
        order.target_price or state.mark(order.symbol) or ZERO,
        stop_loss=_is_stop_loss(order.signal_id),
    )
    state = evolve(state, in_flight={**state.in_flight, order.order_id: flight})
    if flight.stop_loss:
        state = _clear_stop_failure(state, flight.key, order.timestamp)
    return state


def _is_stop_loss(signal_id: str | None) -> bool:
    return signal_id is not None and signal_id.startswith(STOP_LOSS_PREFIX)


def _clear_stop_failure(state: RiskState, key: PositionKey, ts: datetime) -> RiskState:
    """Forget the failed stop-loss of ``key`` unless it is newer than ``ts``."""
    failed_at = state.stop_failures.get(key)
    if failed_at is None or failed_at > ts:
        return state
    return evolve(state, stop_failures={k: v for k, v in state.stop_failures.items() if k != key})


def _apply_stop_result(state: RiskState, event_type: EventType, result: OrderResultV1) -> RiskState:
    """Remember a failed stop-loss (newest wins); a filled one clears an older failure."""
    key = (result.strategy_id, result.symbol)
    if event_type in STOP_FAILED_TYPES:
        failed_at = state.stop_failures.get(key)
        if failed_at is not None and failed_at >= result.timestamp:
            return state
        return evolve(state, stop_failures={**state.stop_failures, key: result.timestamp})
    return _clear_stop_failure(state, key, result.timestamp)


def _apply_breaker(state: RiskState, event_type: EventType, payload: CircuitBreakerV1) -> RiskState:
    day = payload.trading_day
    tripped = state.tripped_day
    if event_type is EventType.CIRCUIT_BREAKER_TRIPPED and (tripped is None or day > tripped):
        return evolve(state, tripped_day=day)
    if event_type is EventType.CIRCUIT_BREAKER_RESET and tripped is not None and day > tripped:
        return evolve(state, tripped_day=None)
    return state


def _apply_result(state: RiskState, event_type: EventType, result: OrderResultV1) -> RiskState:
    flight = state.in_flight.get(result.order_id)
    # The result names its signal; the order in flight tells too when the result lacks it.
    if _is_stop_loss(result.signal_id) or (flight is not None and flight.stop_loss):
        state = _apply_stop_result(state, event_type, result)
    in_flight = {k: v for k, v in state.in_flight.items() if k != result.order_id}
    state = evolve(state, in_flight=in_flight, finished=state.finished.add(result.order_id))
    ledger, fill = state.ledger.new_part(result)
    if fill is None:
        return evolve(state, ledger=ledger)
    key = (result.strategy_id, result.symbol)
    outcome = apply_fill(state.positions.get(key, Position()), fill)
    if outcome.after.is_flat:
        state = _clear_stop_failure(state, key, result.timestamp)
    positions = {**state.positions, key: outcome.after}
    realised_today = state.realised_today
    if utc_day(result.timestamp) == state.day:
        realised_today = q_money(realised_today + outcome.realised)
    return evolve(state, ledger=ledger, positions=positions, realised_today=realised_today)


# --------------------------------------------------------------------------------------------
# Decisions


def step(state: RiskState, event: NewEvent, params: RiskParams) -> tuple[RiskState, Decision]:
    """Fold ``event``, then emit what it calls for; the state returned has the outputs folded.

    Any event may reset the breaker (new day), trigger a stop-loss or trip the breaker (marks
    and fills move PnL); a SIGNAL_GENERATED is then decided.
    """
    state = apply(state, event)
    decision = check(state, event, params)
    state = apply_all(state, decision.events)
    if event.event_type is EventType.SIGNAL_GENERATED:
        decided = decide(state, event, params)
        state = apply_all(state, decided.events)
        decision = decision + decided
    return state, decision


def check(state: RiskState, cause: NewEvent, params: RiskParams) -> Decision:
    """Breaker reset at a new UTC day, stop-losses, and the breaker trip, in that order."""
    out: list[Emit] = []
    if state.tripped_day is not None and state.day is not None and state.day > state.tripped_day:
        out.extend(_reset(state, cause, params))
        state = apply_all(state, out)
    stops = _stop_losses(state, cause, params)
    out.extend(stops)
    state = apply_all(state, stops)
    if not state.breaker_tripped and state.day is not None:
        pnl = state.daily_pnl()
        if pnl <= params.loss_limit:
            out.extend(_trip(state, cause, params, pnl))
    return Decision(tuple(out))


def decide(
    state: RiskState,
    signal_event: NewEvent,
    params: RiskParams,
    market: MarketDataV1 | None = None,
) -> Decision:
    """The decision on one signal: ORDER_PLACED, or SIGNAL_BLOCKED (+ an alert on a limit).

    ``market``, when given, is the newest tick of the signal's symbol and only moves its mark.
    A signal that was already decided yields no events (its decision is in the streams).
    """
    signal = signal_event.payload
    if not isinstance(signal, SignalV1):
        raise TypeError(f"decide needs a SignalV1 payload, got {type(signal).__name__}")
    if market is not None:
        state = _with_mark(state, market.symbol, market.timestamp, market.price)
    if signal.signal_id in state.decided:
        return Decision()
    key = (signal.strategy_id, signal.symbol)
    pos = state.positions.get(key, Position())
    direction = ONE if signal.side is Side.BUY else -ONE
    if pos.quantity * direction < 0:
        return _decide_close(state, signal_event, signal, key, pos)
    return _decide_open(state, signal_event, signal, key, params)


def _decide_close(
    state: RiskState, cause: NewEvent, signal: SignalV1, key: PositionKey, pos: Position
) -> Decision:
    """A signal against the open position closes it: reduce-only, always allowed."""
    closing = _closable(state, key, pos)
    if closing <= 0:
        return _block(
            cause,
            signal,
            BlockReason.DUPLICATE_SIGNAL,
            f"the {pos.side.value} position of {abs(pos.quantity)} is already being closed",
        )
    return Decision((_order(cause, signal, closing, reduce_only=True),))


def _decide_open(
    state: RiskState, cause: NewEvent, signal: SignalV1, key: PositionKey, params: RiskParams
) -> Decision:
    """A signal that opens or adds: breaker, drawdown, position and exposure limits apply."""
    if state.breaker_tripped:
        return _block(
            cause,
            signal,
            BlockReason.CIRCUIT_BREAKER_TRIPPED,
            f"circuit breaker tripped on {state.tripped_day}; only reduce-only orders until the "
            "next UTC day",
        )
    pnl = state.daily_pnl()
    if pnl <= params.loss_limit:
        return _block(
            cause,
            signal,
            BlockReason.DAILY_DRAWDOWN,
            f"daily PnL {pnl} is at or below the loss limit {params.loss_limit}",
        )
    price = signal.price
    projected = _projected(state)
    key_notional = abs(projected.get(key, ZERO)) * price
    total = sum(
        (abs(q) * (price if k == key else _mark_or(state, k)) for k, q in projected.items()),
        ZERO,
    )
    position_room = params.max_position_notional - key_notional
    exposure_room = params.max_exposure_notional - total
    room = min(position_room, exposure_room)
    quantity = q_qty(room / price) if room > 0 else ZERO
    if room >= params.min_order_notional and quantity > 0:
        return Decision((_order(cause, signal, quantity, reduce_only=False),))
    if position_room <= exposure_room:
        reason, limit, used = (
            BlockReason.MAX_POSITION_EXCEEDED,
            params.max_position_notional,
            key_notional,
        )
    else:
        reason, limit, used = BlockReason.MAX_EXPOSURE_EXCEEDED, params.max_exposure_notional, total
    cents = Decimal("0.01")
    detail = (
        f"{reason.value}: {used.quantize(cents)} USDT of {limit.quantize(cents)} used, room "
        f"{room.quantize(cents)} is below the minimum order of {params.min_order_notional}"
    )
    return _block(cause, signal, reason, detail, alert=True)


def _projected(state: RiskState) -> dict[PositionKey, Decimal]:
    """Signed quantity per position once every order in flight that opens or adds has filled."""
    out: dict[PositionKey, Decimal] = {k: p.quantity for k, p in state.positions.items()}
    for flight in state.in_flight.values():
        if not flight.reduce_only:
            out[flight.key] = out.get(flight.key, ZERO) + flight.signed
    return out


def _mark_or(state: RiskState, key: PositionKey) -> Decimal:
    mark = state.mark(key[1])
    if mark is not None:
        return mark
    pos = state.positions.get(key)
    if pos is not None and pos.avg_entry:
        return pos.avg_entry
    prices = [f.price for f in state.in_flight.values() if f.key == key]
    return prices[0] if prices else ZERO


def _closable(state: RiskState, key: PositionKey, pos: Position) -> Decimal:
    being_closed = sum(
        (f.quantity for f in state.in_flight.values() if f.key == key and f.reduce_only), ZERO
    )
    return abs(pos.quantity) - being_closed


def _order(cause: NewEvent, signal: SignalV1, quantity: Decimal, *, reduce_only: bool) -> Emit:
    order_id = new_id(signal.signal_id, EventType.ORDER_PLACED.value)
    payload = OrderV1(
        order_id=order_id,
        signal_id=signal.signal_id,
        strategy_id=signal.strategy_id,
        symbol=signal.symbol,
        side=signal.side,
        quantity=quantity,
        order_type=OrderType.MARKET,
        target_price=signal.price,
        reduce_only=reduce_only,
        timestamp=signal.timestamp,
    )
    return emit(
        AggregateType.ORDER,
        order_id,
        EventType.ORDER_PLACED,
        payload,
        cause=cause,
        producer=PRODUCER,
        id_parts=(order_id,),
    )


def _block(
    cause: NewEvent,
    signal: SignalV1,
    reason: BlockReason,
    detail: str,
    *,
    alert: bool = False,
) -> Decision:
    payload = SignalBlockedV1(
        signal_id=signal.signal_id,
        strategy_id=signal.strategy_id,
        symbol=signal.symbol,
        side=signal.side,
        reason_code=reason,
        detail=detail,
        timestamp=signal.timestamp,
    )
    blocked = emit(
        AggregateType.SIGNAL,
        signal.signal_id,
        EventType.SIGNAL_BLOCKED,
        payload,
        cause=cause,
        producer=PRODUCER,
    )
    if not alert:
        return Decision((blocked,))
    warning = _alert(
        cause,
        AlertLevel.WARNING,
        "RISK_LIMIT",
        f"signal {signal.signal_id} on {signal.symbol} blocked: {detail}",
        {"signal_id": signal.signal_id, "symbol": signal.symbol, "reason_code": reason.value},
    )
    return Decision((blocked, warning))


def _alert(
    cause: NewEvent, level: AlertLevel, code: str, message: str, context: Mapping[str, str]
) -> Emit:
    alert_id = new_id(str(cause.event_id), EventType.ALERT_RAISED.value, code)
    payload = AlertV1(
        level=level, code=code, message=message, context=dict(context), timestamp=cause.timestamp
    )
    return emit(
        AggregateType.ALERT,
        alert_id,
        EventType.ALERT_RAISED,
        payload,
        cause=cause,
        producer=PRODUCER,
        id_parts=(alert_id,),
    )


def _stop_losses(state: RiskState, cause: NewEvent, params: RiskParams) -> list[Emit]:
    out: list[Emit] = []
    for key, pos in sorted(state.positions.items()):
        mark = state.mark(key[1])
        if pos.is_flat or mark is None or not pos.avg_entry:
            continue
        direction = ONE if pos.quantity > 0 else -ONE
        move = (mark - pos.avg_entry) / pos.avg_entry * direction
        if move > -params.stop_loss_pct:
            continue
        closing = _closable(state, key, pos)
        if closing <= 0 or not _may_retry_stop(state, key, cause):
            continue
        trigger = new_id(str(cause.event_id), "STOP_LOSS", *key)
        signal_id = STOP_LOSS_PREFIX + trigger
        order_id = new_id(signal_id, EventType.ORDER_PLACED.value)
        order = OrderV1(
            order_id=order_id,
            signal_id=signal_id,
            strategy_id=key[0],
            symbol=key[1],
            side=Side.SELL if direction > 0 else Side.BUY,
            quantity=closing,
            order_type=OrderType.MARKET,
            target_price=mark,
            reduce_only=True,
            timestamp=cause.timestamp,
        )
        out.append(
            emit(
                AggregateType.ORDER,
                order_id,
                EventType.ORDER_PLACED,
                order,
                cause=cause,
                producer=PRODUCER,
                id_parts=(order_id,),
            )
        )
        out.append(
            _alert(
                cause,
                AlertLevel.WARNING,
                "STOP_LOSS",
                f"stop-loss on {key[0]} {key[1]}: mark {mark} is {abs(move * 100):.2f}% against "
                f"the entry {pos.avg_entry}; closing {closing}",
                {"strategy_id": key[0], "symbol": key[1], "order_id": order_id},
            )
        )
        state = apply_all(state, out[-2:])
    return out


def _may_retry_stop(state: RiskState, key: PositionKey, cause: NewEvent) -> bool:
    """No failed stop-loss for ``key``, or ``cause`` is a tick of its symbol after the failure.

    So the failure's own result (or any other result or signal) never retries it, and each
    new tick of the symbol tries at most once.
    """
    failed_at = state.stop_failures.get(key)
    if failed_at is None:
        return True
    tick = cause.payload
    return (
        cause.event_type is EventType.MARKET_DATA_RECEIVED
        and isinstance(tick, MarketDataV1)
        and tick.symbol == key[1]
        and tick.timestamp > failed_at
    )


def _trip(state: RiskState, cause: NewEvent, params: RiskParams, pnl: Decimal) -> list[Emit]:
    day = state.day
    assert day is not None
    payload = CircuitBreakerV1(
        trading_day=day,
        daily_pnl=pnl,
        threshold=params.loss_limit,
        reason=(
            f"daily PnL {pnl} USDT is at or below -{params.max_daily_drawdown_pct} x "
            f"{params.test_balance} = {params.loss_limit}"
        ),
        timestamp=cause.timestamp,
    )
    tripped = emit(
        AggregateType.RISK,
        BREAKER_KEY,
        EventType.CIRCUIT_BREAKER_TRIPPED,
        payload,
        cause=cause,
        producer=PRODUCER,
        id_parts=(BREAKER_KEY, day.isoformat()),
    )
    alert = _alert(
        tripped.event,
        AlertLevel.CRITICAL,
        "CIRCUIT_BREAKER",
        f"Daily drawdown reached ({pnl} USDT <= {params.loss_limit}). Trading halted until the "
        "next UTC day; reduce-only orders continue.",
        {
            "trading_day": day.isoformat(),
            "daily_pnl": str(pnl),
            "threshold": str(params.loss_limit),
        },
    )
    return [tripped, alert]


def trip_event_id(day: date) -> uuid.UUID:
    """The id of the CIRCUIT_BREAKER_TRIPPED event of ``day`` (at most one per day)."""
    return derive_id(EventType.CIRCUIT_BREAKER_TRIPPED.value, BREAKER_KEY, day.isoformat())


def _reset(state: RiskState, cause: NewEvent, params: RiskParams) -> list[Emit]:
    day = state.day
    assert day is not None
    payload = CircuitBreakerV1(
        trading_day=day,
        daily_pnl=state.daily_pnl(),
        threshold=params.loss_limit,
        reason=f"new UTC trading day {day.isoformat()} (tripped on {state.tripped_day})",
        timestamp=day_start(day),
    )
    reset = emit(
        AggregateType.RISK,
        BREAKER_KEY,
        EventType.CIRCUIT_BREAKER_RESET,
        payload,
        cause=cause,
        producer=PRODUCER,
        id_parts=(BREAKER_KEY, day.isoformat()),
        timestamp=day_start(day),
        causation_id=str(trip_event_id(state.tripped_day)) if state.tripped_day else None,
    )
    alert = _alert(
        reset.event,
        AlertLevel.INFO,
        "CIRCUIT_BREAKER_RESET",
        f"Circuit breaker reset for the new UTC day {day.isoformat()}; trading resumes.",
        {"trading_day": day.isoformat()},
    )
    return [reset, alert]
