"""The portfolio: positions per strategy and symbol, mark-to-market, snapshots, drawdown.

Fills (ORDER_FILLED / ORDER_PARTIALLY_FILLED) move positions and emit one lifecycle event each:
POSITION_OPENED (from flat), POSITION_INCREASED, POSITION_REDUCED, POSITION_CLOSED (back to
flat, with the realised PnL). A fill larger than the open position *flips* it: POSITION_CLOSED
for the old side, then POSITION_OPENED for the rest on the other side at the fill price. Each
event carries the whole position afterwards (:class:`PositionV1`); ``realised_pnl`` is
cumulative for the strategy and symbol and net of fees (see
:mod:`cdb.domain.services.positions`). Cumulative order reports count once (a redelivered fill
moves nothing).

Ticks move marks. Every ``PORTFOLIO_SNAPSHOT_MIN`` minutes of *market* time, the first tick of a
new slot first emits PORTFOLIO_SNAPSHOT_TAKEN describing the account at the slot boundary (its
timestamp and id are the boundary's, whichever tick crossed it). The trading day is UTC:
``daily_pnl`` is the day's realised PnL plus the unrealised PnL now, ``drawdown_pct`` is the
fall from the day's peak equity.

The account: ``cash = TEST_BALANCE - bought + sold - fees``, ``equity = cash + sum(quantity x
mark)``, which equals ``TEST_BALANCE + realised + unrealised``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cdb.domain.contracts import (
    MarketDataV1,
    OrderResultV1,
    PortfolioSnapshotV1,
    PositionV1,
)
from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import AggregateType, EventType
from cdb.domain.services.clock import floor_to, utc_day
from cdb.domain.services.events import ZERO, Emit, emit, q_money, q_pct
from cdb.domain.services.evolve import evolve
from cdb.domain.services.positions import FillLedger, FillOutcome, Position, apply_fill
from cdb.domain.services.settings import EnvReader

PRODUCER = "portfolio"
ACCOUNT_KEY = "account"
HUNDRED = Decimal(100)

FILL_TYPES = frozenset({EventType.ORDER_FILLED, EventType.ORDER_PARTIALLY_FILLED})
FOLDED_TYPES = frozenset({EventType.MARKET_DATA_RECEIVED, *FILL_TYPES})
"""What :func:`apply` folds (rebuild the portfolio from these at start)."""

PositionKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PortfolioParams:
    balance: Decimal = Decimal(10_000)
    """TEST_BALANCE: the paper account's starting cash (USDT)."""
    snapshot_min: int = 15
    """PORTFOLIO_SNAPSHOT_MIN: minutes of market time between snapshots."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PortfolioParams:
        r = EnvReader(env, "portfolio parameters")
        d = cls()
        params = cls(
            balance=r.decimal("TEST_BALANCE", d.balance, gt=Decimal(0)),
            snapshot_min=r.integer("PORTFOLIO_SNAPSHOT_MIN", d.snapshot_min, ge=1),
        )
        r.done()
        return params

    @property
    def snapshot_every(self) -> timedelta:
        return timedelta(minutes=self.snapshot_min)


@dataclass(frozen=True, slots=True)
class PortfolioState:
    positions: Mapping[PositionKey, Position] = field(default_factory=dict)
    ledger: FillLedger = field(default_factory=FillLedger)
    marks: Mapping[str, tuple[datetime, Decimal]] = field(default_factory=dict)
    cash_flow: Decimal = ZERO
    """Cash moved by trading so far: sold - bought - fees."""
    day: date | None = None
    realised_today: Decimal = ZERO
    day_peak_equity: Decimal | None = None
    last_slot: datetime | None = None

    def mark(self, key: PositionKey) -> Decimal:
        entry = self.marks.get(key[1])
        if entry is not None:
            return entry[1]
        return self.positions[key].avg_entry if key in self.positions else ZERO

    def cash(self, params: PortfolioParams) -> Decimal:
        return q_money(params.balance + self.cash_flow)

    def exposure(self) -> Decimal:
        return q_money(sum((p.notional(self.mark(k)) for k, p in self.positions.items()), ZERO))

    def unrealised(self) -> Decimal:
        return q_money(sum((p.unrealised(self.mark(k)) for k, p in self.positions.items()), ZERO))

    def realised(self) -> Decimal:
        return q_money(sum((p.realised_pnl for p in self.positions.values()), ZERO))

    def equity(self, params: PortfolioParams) -> Decimal:
        value = sum((p.quantity * self.mark(k) for k, p in self.positions.items()), ZERO)
        return q_money(params.balance + self.cash_flow + value)

    def open_positions(self) -> int:
        return sum(1 for p in self.positions.values() if not p.is_flat)


def on_tick(
    state: PortfolioState, tick: NewEvent, params: PortfolioParams
) -> tuple[PortfolioState, list[Emit]]:
    """Fold a MARKET_DATA_RECEIVED; a snapshot first when the tick opens a new slot."""
    md = tick.payload
    if not isinstance(md, MarketDataV1):
        raise TypeError(f"on_tick needs a MarketDataV1 payload, got {type(md).__name__}")
    out: list[Emit] = []
    slot = floor_to(md.timestamp, params.snapshot_every)
    state = _advance_day(state, utc_day(slot), params)
    # Every tick moves a mark and most open no slot: one copy of the state for both.
    changes: dict[str, Any] = {}
    if state.last_slot is None or slot > state.last_slot:
        if state.last_slot is not None:
            out.append(snapshot(state, tick, params, slot))
        changes["last_slot"] = slot
    current = state.marks.get(md.symbol)
    if current is None or md.timestamp >= current[0]:
        changes["marks"] = {**state.marks, md.symbol: (md.timestamp, md.price)}
    if changes:
        state = evolve(state, **changes)
    return _track_peak(state, params), out


def on_result(
    state: PortfolioState, result_event: NewEvent, params: PortfolioParams
) -> tuple[PortfolioState, list[Emit]]:
    """Fold an order result; the position events its (new) fill causes."""
    result = result_event.payload
    if not isinstance(result, OrderResultV1):
        raise TypeError(f"on_result needs an OrderResultV1 payload, got {type(result).__name__}")
    ledger, fill = state.ledger.new_part(result)
    state = evolve(state, ledger=ledger)
    if fill is None:
        return state, []
    state = _advance_day(state, utc_day(result.timestamp), params)
    key = (result.strategy_id, result.symbol)
    outcome = apply_fill(state.positions.get(key, Position()), fill)
    realised_today = state.realised_today
    if utc_day(result.timestamp) == state.day:
        realised_today = q_money(realised_today + outcome.realised)
    state = evolve(
        state,
        positions={**state.positions, key: outcome.after},
        cash_flow=q_money(state.cash_flow - fill.signed_quantity * fill.price - fill.fee),
        realised_today=realised_today,
    )
    if key[1] not in state.marks:
        state = evolve(state, marks={**state.marks, key[1]: (result.timestamp, fill.price)})
    events = [
        _position_event(
            result_event, key, event_type, pos=pos, state=state, timestamp=result.timestamp
        )
        for event_type, pos in _lifecycle(outcome)
    ]
    return _track_peak(state, params), events


def apply(state: PortfolioState, event: NewEvent, params: PortfolioParams) -> PortfolioState:
    """Rebuild from the streams: ticks and fills folded (own outputs need no folding)."""
    if event.event_type is EventType.MARKET_DATA_RECEIVED:
        return on_tick(state, event, params)[0]
    if event.event_type in FILL_TYPES:
        return on_result(state, event, params)[0]
    return state


def _lifecycle(outcome: FillOutcome) -> list[tuple[EventType, Position]]:
    before, after = outcome.before, outcome.after
    if outcome.flipped_at is not None:
        return [
            (EventType.POSITION_CLOSED, outcome.flipped_at),
            (EventType.POSITION_OPENED, after),
        ]
    if before.is_flat:
        return [(EventType.POSITION_OPENED, after)]
    if after.is_flat:
        return [(EventType.POSITION_CLOSED, after)]
    if abs(after.quantity) > abs(before.quantity):
        return [(EventType.POSITION_INCREASED, after)]
    return [(EventType.POSITION_REDUCED, after)]


def position_stream_key(key: PositionKey) -> str:
    return f"{key[0]}:{key[1]}"


def _position_event(
    cause: NewEvent,
    key: PositionKey,
    event_type: EventType,
    *,
    pos: Position,
    state: PortfolioState,
    timestamp: datetime,
) -> Emit:
    mark = state.mark(key)
    payload = PositionV1(
        strategy_id=key[0],
        symbol=key[1],
        side=pos.side,
        quantity=abs(pos.quantity),
        avg_entry_price=None if pos.is_flat else pos.avg_entry,
        realised_pnl=pos.realised_pnl,
        unrealised_pnl=pos.unrealised(mark),
        mark_price=mark if mark > 0 else None,
        timestamp=timestamp,
    )
    return emit(
        AggregateType.POSITION,
        position_stream_key(key),
        event_type,
        payload,
        cause=cause,
        producer=PRODUCER,
    )


def snapshot(state: PortfolioState, cause: NewEvent, params: PortfolioParams, at: datetime) -> Emit:
    """PORTFOLIO_SNAPSHOT_TAKEN of the account as it is, timestamped (and keyed) at ``at``."""
    equity = state.equity(params)
    unrealised = state.unrealised()
    payload = PortfolioSnapshotV1(
        equity=equity,
        cash=state.cash(params),
        exposure=state.exposure(),
        realised_pnl=state.realised(),
        unrealised_pnl=unrealised,
        daily_pnl=q_money(state.realised_today + unrealised),
        drawdown_pct=drawdown_pct(state.day_peak_equity, equity),
        open_positions=state.open_positions(),
        timestamp=at,
    )
    return emit(
        AggregateType.PORTFOLIO,
        ACCOUNT_KEY,
        EventType.PORTFOLIO_SNAPSHOT_TAKEN,
        payload,
        cause=cause,
        producer=PRODUCER,
        id_parts=(ACCOUNT_KEY, at.isoformat()),
        timestamp=at,
    )


def drawdown_pct(peak: Decimal | None, equity: Decimal) -> Decimal:
    """The fall from ``peak`` to ``equity`` in percent (0 at or above the peak), 0..100."""
    if peak is None or peak <= 0 or equity >= peak:
        return q_pct(ZERO)
    return q_pct(min(HUNDRED, (peak - equity) / peak * HUNDRED))


def _advance_day(state: PortfolioState, day: date, params: PortfolioParams) -> PortfolioState:
    if state.day is not None and day <= state.day:
        return state
    return evolve(state, day=day, realised_today=ZERO, day_peak_equity=state.equity(params))


def _track_peak(state: PortfolioState, params: PortfolioParams) -> PortfolioState:
    equity = state.equity(params)
    if state.day_peak_equity is None or equity > state.day_peak_equity:
        return evolve(state, day_peak_equity=equity)
    return state
