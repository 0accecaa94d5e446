"""A seeded generator of realistic 1-minute bars, and the recording shipped with the repository.

:func:`generate` is pure: a seed and a few parameters in, the same bars out. ``random.Random``
with a fixed seed gives the same ``random()`` stream on every CPython; normal draws come from it
through our own Box-Muller. (The float maths -- exp, log, sin -- is IEEE double and the
results are rounded to cents before they are written, so the bytes match across ordinary
x86-64/arm64 builds; the test that compares the shipped file with the generator would tell.)

The model, per symbol, one step per minute:

* a geometric random walk of log returns, with volatility following a 24-hour profile (quiet
  Asian night, busier London morning, busiest US open) and a common market factor, so ETH moves
  with BTC;
* regimes that change every few hours: calm, trend up, trend down, and *chop* -- a zigzag of
  false breakouts that a momentum strategy keeps getting wrong, which is how a bad day that trips
  the daily-drawdown circuit breaker arises. Day 1 of the default recording is scripted: a calm
  night, a morning rally, then 11 hours of chop from 10:00 UTC (the breaker trips in the
  evening); later days draw their regimes from the seed (day 2: chop, then down and up trends);
* volume in base units: a base rate times the same daily profile, larger on big moves, with a
  few very thin minutes at night (the signal's volume filter has something to filter);
* a soft band keeps prices where the symbol has traded recently (BTC 60k-100k, ETH 2k-5k USDT).

``python -m cdb.domain.services.marketgen --out streams/recordings/market_data_2symbols_1m.csv.gz``
writes the recording (gzip with a zero mtime, so the bytes are reproducible too).
"""

from __future__ import annotations

import argparse
import gzip
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from cdb.domain.services.clock import to_ms

CSV_HEADER = "ts_ms,symbol,open,high,low,close,volume"
DEFAULT_SEED = 20250303
DEFAULT_START = datetime(2025, 3, 3, tzinfo=UTC)
DEFAULT_DAYS = 2
RECORDING = "streams/recordings/market_data_2symbols_1m.csv.gz"


@dataclass(frozen=True, slots=True)
class Bar:
    """One 1-minute OHLCV bar; ``ts_ms`` is the bar's opening time in epoch milliseconds."""

    ts_ms: int
    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    def csv_row(self) -> str:
        return (
            f"{self.ts_ms},{self.symbol},{self.open},{self.high},{self.low},"
            f"{self.close},{self.volume}"
        )


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    symbol: str
    start_price: float
    floor: float  # the soft band: drift pushes back inside [floor, cap]
    cap: float
    sigma: float  # 1-minute log-return volatility at a profile factor of 1
    beta: float  # loading on the common market factor
    base_volume: float  # base units traded per minute at a profile factor of 1
    price_quantum: Decimal
    volume_quantum: Decimal


BTC = SymbolSpec(
    "BTC_USDT",
    84_250.0,
    62_000.0,
    98_000.0,
    0.00075,
    1.0,
    14.0,
    Decimal("0.01"),
    Decimal("0.00001"),
)
ETH = SymbolSpec(
    "ETH_USDT", 3_180.0, 2_100.0, 4_900.0, 0.00095, 1.15, 420.0, Decimal("0.01"), Decimal("0.0001")
)
DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (BTC, ETH)


@dataclass(frozen=True, slots=True)
class Regime:
    """A stretch of market behaviour: ``kind`` in calm | up | down | chop."""

    start_min: int
    length_min: int
    kind: str


def default_regimes(days: int, rng: random.Random) -> list[Regime]:
    """The regime schedule: day 1 scripted around a long chop session, later days random."""
    day = 1440
    plan: list[Regime] = []
    # Day 1: a calm night, a morning rally, then an afternoon/evening of false breakouts.
    scripted = [("calm", 360), ("up", 180), ("calm", 60), ("chop", 660), ("down", 60)]
    t = 0
    for kind, length in scripted:
        plan.append(Regime(t, length, kind))
        t += length
    plan.append(Regime(t, day - t, "calm"))
    t = day
    while t < days * day:
        kind = rng.choice(("calm", "up", "down", "up", "down", "chop"))
        length = min(rng.randrange(90, 300), days * day - t)
        plan.append(Regime(t, length, kind))
        t += length
    return plan


def _profile(minute_of_day: int) -> float:
    """Relative activity over the UTC day: quiet night, London morning, US open peak."""
    hour = minute_of_day / 60.0
    london = 0.45 * math.exp(-(((hour - 8.5) / 1.6) ** 2))
    us_open = 0.9 * math.exp(-(((hour - 14.75) / 1.8) ** 2))
    night = -0.35 * math.exp(-(((hour - 3.5) / 2.2) ** 2))
    return max(0.25, 0.75 + london + us_open + night)


class _Normal:
    """Standard normal draws from one ``random.Random`` (Box-Muller, no cached state in rng)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._spare: float | None = None

    def __call__(self) -> float:
        if self._spare is not None:
            value, self._spare = self._spare, None
            return value
        u1 = 1.0 - self._rng.random()  # (0, 1]: log is finite
        u2 = self._rng.random()
        radius = math.sqrt(-2.0 * math.log(u1))
        self._spare = radius * math.sin(2.0 * math.pi * u2)
        return radius * math.cos(2.0 * math.pi * u2)


@dataclass(slots=True)
class _Zigzag:
    """The chop regime's path: legs of alternating direction, each overshooting the last."""

    direction: int = 1
    left: int = 0
    step: float = 0.0


def _regime_at(plan: Sequence[Regime], minute: int) -> Regime:
    for regime in plan:
        if regime.start_min <= minute < regime.start_min + regime.length_min:
            return regime
    return plan[-1]


def _q(value: float, quantum: Decimal) -> Decimal:
    return Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_EVEN)


def generate(
    seed: int = DEFAULT_SEED,
    *,
    start: datetime = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    symbols: Sequence[SymbolSpec] = DEFAULT_SYMBOLS,
    regimes: Sequence[Regime] | None = None,
) -> list[Bar]:
    """1-minute bars for every symbol over ``days`` UTC days from ``start``, in time order.

    Within one minute, bars come in the order of ``symbols``. Same arguments, same bars.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if start.tzinfo is None or start.utcoffset() != timedelta(0):
        raise ValueError(f"start must be an aware UTC datetime, got {start!r}")
    rng = random.Random(seed)
    normal = _Normal(rng)
    plan = list(regimes) if regimes is not None else default_regimes(days, rng)
    log_price = [math.log(spec.start_price) for spec in symbols]
    zigzags = [_Zigzag() for _ in symbols]
    start_ms = to_ms(start)
    bars: list[Bar] = []
    for minute in range(days * 1440):
        regime = _regime_at(plan, minute)
        activity = _profile(minute % 1440)
        market = normal()
        ts_ms = start_ms + minute * 60_000
        for i, spec in enumerate(symbols):
            sigma = spec.sigma * activity
            drift = _drift(regime.kind, sigma, zigzags[i], rng)
            # Keep prices in the symbol's recent range: pull back harder the further outside.
            band = math.log(spec.floor) + 0.15, math.log(spec.cap) - 0.15
            if log_price[i] < band[0]:
                drift += 0.2 * sigma
            elif log_price[i] > band[1]:
                drift -= 0.2 * sigma
            shock = spec.beta * 0.6 * market + 0.8 * normal()
            ret = drift + sigma * shock
            open_ = math.exp(log_price[i])
            log_price[i] += ret
            close = math.exp(log_price[i])
            wick = sigma * 0.6
            high = max(open_, close) * math.exp(abs(normal()) * wick)
            low = min(open_, close) * math.exp(-abs(normal()) * wick)
            surprise = abs(ret) / max(sigma, 1e-12)
            volume = (
                spec.base_volume * activity * (0.6 + 0.55 * surprise) * math.exp(0.35 * normal())
            )
            if regime.kind == "chop":
                volume *= 1.6
            if rng.random() < 0.02 * (1.3 - min(activity, 1.3)) / 1.05:
                volume *= 0.01  # a thin minute: almost nobody traded
            bars.append(
                Bar(
                    ts_ms,
                    spec.symbol,
                    _q(open_, spec.price_quantum),
                    _q(max(high, open_, close), spec.price_quantum),
                    _q(min(low, open_, close), spec.price_quantum),
                    _q(close, spec.price_quantum),
                    max(_q(volume, spec.volume_quantum), spec.volume_quantum),
                )
            )
    return bars


def _drift(kind: str, sigma: float, zz: _Zigzag, rng: random.Random) -> float:
    if kind == "up":
        return 0.35 * sigma
    if kind == "down":
        return -0.35 * sigma
    if kind == "chop":
        if zz.left <= 0:
            zz.direction = -zz.direction
            zz.left = rng.randrange(10, 22)
            amplitude = rng.uniform(0.024, 0.038)
            zz.step = amplitude / zz.left
        zz.left -= 1
        return zz.direction * zz.step
    return 0.0


def render_csv(bars: Sequence[Bar]) -> str:
    """The CSV text of ``bars`` (header first, one line per bar, trailing newline)."""
    lines = [CSV_HEADER, *(bar.csv_row() for bar in bars)]
    return "\n".join(lines) + "\n"


def gzip_bytes(text: str) -> bytes:
    """``text`` gzipped with no file name and a zero mtime: same text, same bytes."""
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def iter_csv_lines(data: bytes) -> Iterator[str]:
    """The lines of a recording given as bytes, gunzipped when they are gzip data."""
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    yield from raw.decode("utf-8").splitlines()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the seeded market-data recording.")
    parser.add_argument("--out", type=Path, default=Path(RECORDING))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    args = parser.parse_args(argv)
    bars = generate(args.seed, days=args.days)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(gzip_bytes(render_csv(bars)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
