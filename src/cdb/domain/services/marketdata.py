"""Reading the market-data recording into ticks: CSV lines -> :class:`MarketDataV1` -> events.

Pure: it takes lines (the caller opens and gunzips the file, see
:func:`cdb.domain.services.marketgen.iter_csv_lines`). A 1-minute bar becomes one tick whose
price is the bar's close and whose volume is the bar's volume (base units), timestamped at the
bar's opening time. A malformed line raises :class:`ContractError` naming the line, the field,
the value and the rule; nothing is skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol

from cdb.domain.contracts import MarketDataV1
from cdb.domain.envelope import EventMetadata, NewEvent, derive_id
from cdb.domain.event_types import AggregateType, EventType
from cdb.domain.services.clock import from_ms, to_ms
from cdb.domain.services.events import Emit, stream_id
from cdb.domain.services.marketgen import CSV_HEADER, Bar
from cdb.errors import ContractError

COLUMNS = tuple(CSV_HEADER.split(","))
INTERVAL = "1m"
VENUE = "recording"


def parse_bar(line: str, lineno: int = 0) -> Bar:
    """One CSV line (no header) as a :class:`Bar`; ContractError names what is wrong."""
    where = f"recording line {lineno}"
    cells = line.strip().split(",")
    if len(cells) != len(COLUMNS):
        raise ContractError(
            where, [("<line>", line.strip(), f"needs {len(COLUMNS)} columns: {CSV_HEADER}")]
        )
    raw = dict(zip(COLUMNS, cells, strict=True))
    problems: list[tuple[str, object, str]] = []
    try:
        ts_ms = int(raw["ts_ms"])
    except ValueError:
        problems.append(("ts_ms", raw["ts_ms"], "must be epoch milliseconds (an integer)"))
        ts_ms = 0
    numbers: dict[str, Decimal] = {}
    for name in ("open", "high", "low", "close", "volume"):
        try:
            value = Decimal(raw[name])
        except InvalidOperation:
            problems.append((name, raw[name], "must be a decimal number"))
            continue
        if not value.is_finite() or value < 0 or (name != "volume" and value == 0):
            problems.append(
                (name, raw[name], "must be > 0" if name != "volume" else "must be >= 0")
            )
            continue
        numbers[name] = value
    if problems:
        raise ContractError(where, problems)
    bar = Bar(
        ts_ms,
        raw["symbol"],
        numbers["open"],
        numbers["high"],
        numbers["low"],
        numbers["close"],
        numbers["volume"],
    )
    if not bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
        raise ContractError(where, [("high/low", line.strip(), "needs low <= open, close <= high")])
    return bar


def read_bars(lines: Iterable[str]) -> Iterator[Bar]:
    """The bars of a recording's lines; the first line must be the header."""
    it = iter(lines)
    header = next(it, None)
    if header is None or header.strip() != CSV_HEADER:
        raise ContractError("recording line 1", [("<header>", header, f"must be {CSV_HEADER}")])
    for lineno, line in enumerate(it, start=2):
        if line.strip():
            yield parse_bar(line, lineno)


def to_market_data(bar: Bar) -> MarketDataV1:
    """The tick a bar becomes (a ContractError if the bar breaks a contract rule)."""
    try:
        return MarketDataV1(
            symbol=bar.symbol,
            price=bar.close,
            volume=bar.volume,
            timestamp=from_ms(bar.ts_ms),
            interval=INTERVAL,
            venue=VENUE,
        )
    except ContractError as exc:
        raise ContractError(f"bar {bar.symbol}@{bar.ts_ms}", exc.problems) from None


def read_market_data(lines: Iterable[str]) -> Iterator[MarketDataV1]:
    for bar in read_bars(lines):
        yield to_market_data(bar)


def tick_event(md: MarketDataV1, producer: str = "feed") -> Emit:
    """The MARKET_DATA_RECEIVED event of a tick; its id depends only on symbol, interval, time.

    Ticks are topic-only (no aggregate stream, DESIGN §3); ``stream_id`` names the symbol
    (``market-BTC_USDT``) for the topic partitioning.
    """
    event_id = derive_id(
        EventType.MARKET_DATA_RECEIVED.value, md.symbol, md.interval or "", str(to_ms(md.timestamp))
    )
    event = NewEvent(
        event_id=event_id,
        event_type=EventType.MARKET_DATA_RECEIVED,
        timestamp=md.timestamp,
        payload=md,
        metadata=EventMetadata(correlation_id=str(event_id), producer=producer),
    )
    return Emit(stream_id(AggregateType.MARKET, md.symbol), event)


class MarketFeed(Protocol):
    """Where ticks come from. The recording implements it; a live exchange feed would too.

    No live feed exists (no network here): an exchange adapter plugs in behind this interface
    and the feed service stays the same.
    """

    def ticks(self) -> Iterator[MarketDataV1]: ...


@dataclass(frozen=True, slots=True)
class RecordedFeed:
    """The recording's lines as a feed (the caller reads and gunzips the file)."""

    lines: Sequence[str]

    def ticks(self) -> Iterator[MarketDataV1]:
        return read_market_data(self.lines)


def paced(
    ticks: Iterable[MarketDataV1], speed: float | None
) -> Iterator[tuple[float, MarketDataV1]]:
    """Each tick with the seconds to wait before sending it when replaying at ``speed``.

    ``speed`` is a multiple of real time (1.0 = as recorded, 60.0 = a minute per second);
    ``None`` means as fast as possible (always 0). The wait is the market-time gap to the
    previous tick divided by ``speed``; the feed does the sleeping, this only computes.
    """
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be > 0 (or None for as fast as possible), got {speed}")
    previous: datetime | None = None
    for md in ticks:
        wait = 0.0
        if speed is not None and previous is not None and md.timestamp > previous:
            wait = (md.timestamp - previous).total_seconds() / speed
        previous = md.timestamp if previous is None else max(previous, md.timestamp)
        yield wait, md
