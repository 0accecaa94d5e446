"""Portfolio: position lifecycle with realised PnL, flips, marks, snapshots, drawdown."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cdb.domain.contracts import PortfolioSnapshotV1, PositionSide, PositionV1, Side
from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import EventType
from cdb.domain.services.events import Emit
from cdb.domain.services.portfolio import (
    PortfolioParams,
    PortfolioState,
    drawdown_pct,
    on_result,
    on_tick,
)
from cdb.domain.services.positions import Fill, Position, apply_fill
from cdb.errors import ConfigError
from tests.unit.domain.services.factories import fill_event, tick

PARAMS = PortfolioParams()


def feed(
    events: list[NewEvent], state: PortfolioState | None = None
) -> tuple[PortfolioState, list[Emit]]:
    state = state or PortfolioState()
    out: list[Emit] = []
    for event in events:
        if event.event_type is EventType.MARKET_DATA_RECEIVED:
            state, emitted = on_tick(state, event, PARAMS)
        else:
            state, emitted = on_result(state, event, PARAMS)
        out.extend(emitted)
    return state, out


def positions(out: list[Emit]) -> list[tuple[EventType, PositionV1]]:
    return [(e.event_type, e.event.payload) for e in out if isinstance(e.event.payload, PositionV1)]


def buy(qty: str, price: str, minute: float, order_id: str, fee: str = "0") -> NewEvent:
    return fill_event("ETH_USDT", Side.BUY, qty, price, minute, order_id=order_id, fee=fee)


def sell(qty: str, price: str, minute: float, order_id: str, fee: str = "0") -> NewEvent:
    return fill_event("ETH_USDT", Side.SELL, qty, price, minute, order_id=order_id, fee=fee)


def test_the_lifecycle_opened_increased_reduced_closed_with_realised_pnl() -> None:
    state, out = feed(
        [
            buy("1", "2000", 0, "a", fee="1"),
            buy("1", "2200", 1, "b", fee="1"),
            sell("1", "2300", 2, "c", fee="1"),
            sell("1", "2050", 3, "d", fee="1"),
        ]
    )
    kinds = [k for k, _ in positions(out)]
    assert kinds == [
        EventType.POSITION_OPENED,
        EventType.POSITION_INCREASED,
        EventType.POSITION_REDUCED,
        EventType.POSITION_CLOSED,
    ]
    snaps = [p for _, p in positions(out)]
    assert snaps[1].avg_entry_price == Decimal(2100)
    assert snaps[1].quantity == 2
    assert snaps[2].realised_pnl == Decimal(200 - 3)  # +200 gross, three fees so far
    closed = snaps[3]
    assert closed.side is PositionSide.FLAT
    assert closed.quantity == 0
    assert closed.avg_entry_price is None
    assert closed.realised_pnl == Decimal(200 - 50 - 4)
    # Account identity: equity = balance + realised + unrealised (nothing open).
    assert state.equity(PARAMS) == Decimal(10000 + 146)
    assert state.cash(PARAMS) == Decimal(10146)


def test_a_short_gains_when_the_price_falls() -> None:
    _, out = feed([sell("2", "2000", 0, "a"), buy("2", "1900", 1, "b")])
    (_, opened), (_, closed) = positions(out)
    assert opened.side is PositionSide.SHORT
    assert closed.realised_pnl == Decimal(200)


def test_a_fill_beyond_the_position_flips_it_close_then_open() -> None:
    _, out = feed([buy("1", "2000", 0, "a"), sell("3", "2100", 1, "b")])
    kinds = positions(out)
    assert [k for k, _ in kinds] == [
        EventType.POSITION_OPENED,
        EventType.POSITION_CLOSED,
        EventType.POSITION_OPENED,
    ]
    closed, reopened = kinds[1][1], kinds[2][1]
    assert closed.side is PositionSide.FLAT
    assert closed.realised_pnl == Decimal(100)
    assert reopened.side is PositionSide.SHORT
    assert reopened.quantity == 2
    assert reopened.avg_entry_price == Decimal(2100)
    ids = [e.event.event_id for e in out]
    assert len(set(ids)) == len(ids)


def test_a_redelivered_fill_moves_nothing() -> None:
    fill = buy("1", "2000", 0, "a")
    state, out = feed([fill, fill])
    assert len(out) == 1
    assert state.positions[("momentum-v1", "ETH_USDT")].quantity == 1


def test_cumulative_reports_of_one_order_add_only_their_new_part() -> None:
    part = fill_event("ETH_USDT", Side.BUY, "1", "2000", 0, order_id="a", ordered="3")
    whole = fill_event("ETH_USDT", Side.BUY, "3", "2100", 1, order_id="a")  # avg of all 3
    state, out = feed([part, whole])
    pos = state.positions[("momentum-v1", "ETH_USDT")]
    assert pos.quantity == 3
    assert pos.avg_entry == Decimal(2100)
    assert [k for k, _ in positions(out)] == [
        EventType.POSITION_OPENED,
        EventType.POSITION_INCREASED,
    ]


def test_marks_move_unrealised_pnl_and_equity() -> None:
    state, _ = feed([buy("1", "2000", 0, "a"), tick("ETH_USDT", "2100", 1)])
    assert state.unrealised() == Decimal(100)
    assert state.exposure() == Decimal(2100)
    assert state.equity(PARAMS) == Decimal(10100)
    assert state.equity(PARAMS) == PARAMS.balance + state.realised() + state.unrealised()


def test_a_snapshot_every_n_minutes_of_market_time_at_the_boundary() -> None:
    ticks = [tick("ETH_USDT", "2000", m) for m in range(0, 46, 3)]  # 10:00 .. 10:45
    _, out = feed(ticks)
    snaps = [e for e in out if e.event_type is EventType.PORTFOLIO_SNAPSHOT_TAKEN]
    assert [s.event.timestamp.strftime("%H:%M") for s in snaps] == ["10:15", "10:30", "10:45"]
    assert all(s.stream_id == "portfolio-account" for s in snaps)
    # The id belongs to the boundary, not to the tick that crossed it.
    _, other = feed([tick("ETH_USDT", "2000", m) for m in (0, 16)])
    assert other[0].event.event_id == snaps[0].event.event_id


def test_snapshot_reports_daily_pnl_and_drawdown_from_the_days_peak() -> None:
    events = [
        buy("1", "2000", 0, "a"),
        tick("ETH_USDT", "2200", 1),  # equity 10 200: the day's peak
        tick("ETH_USDT", "1800", 14),  # equity 9 800
        tick("ETH_USDT", "1800", 15),  # crosses 10:15: snapshot of the state before it
    ]
    _, out = feed(events)
    (snap,) = [e.event.payload for e in out if isinstance(e.event.payload, PortfolioSnapshotV1)]
    assert snap.equity == Decimal(9800)
    assert snap.unrealised_pnl == Decimal(-200)
    assert snap.daily_pnl == Decimal(-200)
    assert snap.open_positions == 1
    assert snap.exposure == Decimal(1800)
    assert snap.drawdown_pct == Decimal("3.9216")  # 400 / 10 200


def test_drawdown_is_zero_at_or_above_the_peak() -> None:
    assert drawdown_pct(Decimal(100), Decimal(120)) == 0
    assert drawdown_pct(None, Decimal(1)) == 0
    assert drawdown_pct(Decimal(100), Decimal(90)) == Decimal(10)


def test_position_event_ids_derive_from_the_fill() -> None:
    fill = buy("1", "2000", 0, "a")
    _, a = feed([fill])
    _, b = feed([fill])
    assert a == b
    assert a[0].stream_id == "position-momentum-v1:ETH_USDT"
    assert a[0].event.metadata.causation_id == str(fill.event_id)


def test_apply_fill_handles_every_case() -> None:
    long = apply_fill(Position(), Fill(Side.BUY, Decimal(2), Decimal(100), Decimal(0))).after
    assert long == Position(Decimal(2), Decimal(100), Decimal(0))
    flip = apply_fill(long, Fill(Side.SELL, Decimal(5), Decimal(110), Decimal(1)))
    assert flip.flipped_at == Position(Decimal(0), Decimal(0), Decimal(19))
    assert flip.after == Position(Decimal(-3), Decimal(110), Decimal(19))
    assert flip.closed == 2
    assert flip.opened == 3


def test_params_from_env() -> None:
    assert PortfolioParams.from_env({}) == PortfolioParams()
    assert PortfolioParams.from_env({"PORTFOLIO_SNAPSHOT_MIN": "5"}).snapshot_min == 5
    with pytest.raises(ConfigError, match="PORTFOLIO_SNAPSHOT_MIN='0'"):
        PortfolioParams.from_env({"PORTFOLIO_SNAPSHOT_MIN": "0"})
