"""The momentum strategy: BUY after a rise, SELL after a fall, over a lookback of market time.

For each tick of a symbol the strategy compares the price with the price ``SIGNAL_LOOKBACK_MIN``
minutes earlier (the latest tick at or before that moment). A change of at least
``SIGNAL_THRESHOLD_PCT`` percent up is a BUY, down a SELL -- provided the tick's quote volume
(price x base volume, USDT) is at least ``SIGNAL_MIN_VOLUME``: a move on almost no trading is
noise. After a signal, the same side on the same symbol is quiet for ``SIGNAL_COOLDOWN_MIN``
minutes, so one move yields one signal rather than one per tick; the opposite side is not held
back (a reversal is news).

The state is a fold over the ticks (:func:`on_tick`); a tick at or before the last one seen for
its symbol (a redelivery, or out of order) changes nothing and emits nothing. If the reference
tick is more than two lookbacks old (a gap in the data), there is no signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from cdb.domain.contracts import MarketDataV1, Side, SignalV1
from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import AggregateType, EventType
from cdb.domain.services.events import Emit, emit, new_id, q_pct
from cdb.domain.services.evolve import evolve
from cdb.domain.services.settings import EnvReader

PRODUCER = "signal"
HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class SignalParams:
    """The strategy's parameters (env names of the original system, plus the cooldown)."""

    threshold_pct: Decimal = Decimal("1.0")
    """SIGNAL_THRESHOLD_PCT: minimum price change over the lookback, in percent (1.0 = 1 %)."""
    min_volume: Decimal = Decimal(100_000)
    """SIGNAL_MIN_VOLUME: minimum quote volume (USDT) of the tick's bar."""
    lookback_min: int = 15
    """SIGNAL_LOOKBACK_MIN: lookback window in minutes of market time."""
    strategy_id: str = "momentum-v1"
    """SIGNAL_STRATEGY_ID: required on every signal; names the positions it opens."""
    cooldown_min: int = 15
    """SIGNAL_COOLDOWN_MIN: minutes a symbol stays quiet on one side after a signal."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SignalParams:
        """Read from an environment mapping; one ConfigError names every bad value."""
        r = EnvReader(env, "signal parameters")
        d = cls()
        params = cls(
            threshold_pct=r.decimal(
                "SIGNAL_THRESHOLD_PCT", d.threshold_pct, gt=Decimal(0), lt=HUNDRED
            ),
            min_volume=r.decimal("SIGNAL_MIN_VOLUME", d.min_volume, ge=Decimal(0)),
            lookback_min=r.integer("SIGNAL_LOOKBACK_MIN", d.lookback_min, ge=1),
            strategy_id=r.text(
                "SIGNAL_STRATEGY_ID",
                d.strategy_id,
                pattern=r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}",
                rule="must be 1-64 characters: a letter or digit, then letters, digits, _ . : -",
            ),
            cooldown_min=r.integer("SIGNAL_COOLDOWN_MIN", d.cooldown_min, ge=0),
        )
        r.done()
        return params

    @property
    def lookback(self) -> timedelta:
        return timedelta(minutes=self.lookback_min)

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_min)


@dataclass(frozen=True, slots=True)
class SymbolWindow:
    """The recent ticks of one symbol (oldest first) and when each side last signalled."""

    points: tuple[tuple[datetime, Decimal], ...] = ()
    last_signal: Mapping[Side, datetime] = field(default_factory=dict)

    @property
    def last_ts(self) -> datetime | None:
        return self.points[-1][0] if self.points else None


@dataclass(frozen=True, slots=True)
class SignalState:
    windows: Mapping[str, SymbolWindow] = field(default_factory=dict)


def on_tick(
    state: SignalState, tick: NewEvent, params: SignalParams
) -> tuple[SignalState, list[Emit]]:
    """Fold one MARKET_DATA_RECEIVED event; the SIGNAL_GENERATED it causes, if any."""
    md = tick.payload
    if not isinstance(md, MarketDataV1):
        raise TypeError(f"on_tick needs a MarketDataV1 payload, got {type(md).__name__}")
    window = state.windows.get(md.symbol, SymbolWindow())
    last = window.last_ts
    if last is not None and md.timestamp <= last:
        return state, []  # redelivered or out of order: already folded
    now = md.timestamp
    horizon = now - params.lookback
    points = (*window.points, (now, md.price))
    # Keep the newest point at or before the horizon (the reference) and everything after it.
    # Points are in time order and the window was trimmed at the previous tick, so the scan
    # stops after a step or two instead of walking the whole window.
    keep_from = 0
    for i in range(1, len(points)):
        if points[i][0] > horizon:
            break
        keep_from = i
    if keep_from:
        points = points[keep_from:]
    window = evolve(window, points=points)
    out: list[Emit] = []
    ref_ts, ref_price = points[0]
    if ref_ts <= horizon and ref_ts > now - 2 * params.lookback:
        change_pct = (md.price - ref_price) / ref_price * HUNDRED
        side = _side_of(change_pct, params.threshold_pct)
        quote_volume = md.price * md.volume
        if side is not None and quote_volume >= params.min_volume:
            since = window.last_signal.get(side)
            if since is None or now - since >= params.cooldown:
                out.append(
                    _signal(
                        tick,
                        md,
                        side,
                        change_pct=change_pct,
                        quote_volume=quote_volume,
                        params=params,
                    )
                )
                window = evolve(window, last_signal={**window.last_signal, side: now})
    return SignalState({**state.windows, md.symbol: window}), out


def _side_of(change_pct: Decimal, threshold_pct: Decimal) -> Side | None:
    if change_pct >= threshold_pct:
        return Side.BUY
    if change_pct <= -threshold_pct:
        return Side.SELL
    return None


def _signal(
    tick: NewEvent,
    md: MarketDataV1,
    side: Side,
    *,
    change_pct: Decimal,
    quote_volume: Decimal,
    params: SignalParams,
) -> Emit:
    signal_id = new_id(str(tick.event_id), EventType.SIGNAL_GENERATED.value, params.strategy_id)
    # Confidence grows with the move: the threshold gives 1/3, three thresholds or more give 1.
    confidence = float(
        min(Decimal(1), abs(change_pct) / (3 * params.threshold_pct)).quantize(Decimal("0.0001"))
    )
    payload = SignalV1(
        signal_id=signal_id,
        strategy_id=params.strategy_id,
        symbol=md.symbol,
        side=side,
        confidence=confidence,
        reason=(
            f"momentum {q_pct(change_pct):+}% over {params.lookback_min}m, "
            f"quote volume {quote_volume.quantize(Decimal(1))}"
        ),
        price=md.price,
        timestamp=md.timestamp,
    )
    return emit(
        AggregateType.SIGNAL,
        signal_id,
        EventType.SIGNAL_GENERATED,
        payload,
        cause=tick,
        producer=PRODUCER,
        id_parts=(signal_id,),
    )
