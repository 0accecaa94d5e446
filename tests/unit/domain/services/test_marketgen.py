"""The seeded market-data generator, the shipped recording, and the CSV reader."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cdb.domain.contracts import MarketDataV1
from cdb.domain.event_types import EventType
from cdb.domain.services.marketdata import (
    RecordedFeed,
    paced,
    parse_bar,
    read_bars,
    read_market_data,
    tick_event,
)
from cdb.domain.services.marketgen import (
    CSV_HEADER,
    RECORDING,
    Bar,
    generate,
    gzip_bytes,
    iter_csv_lines,
    main,
    render_csv,
)
from cdb.errors import ContractError

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def bars() -> list[Bar]:
    return generate()


def test_the_same_seed_gives_the_same_bars_and_another_seed_others() -> None:
    assert generate(7, days=1) == generate(7, days=1)
    assert generate(7, days=1) != generate(8, days=1)


def test_the_shipped_recording_is_the_generators_output(bars: list[Bar]) -> None:
    shipped = (REPO / RECORDING).read_bytes()
    assert len(shipped) < 3_000_000
    assert shipped == gzip_bytes(render_csv(bars))


def test_two_full_utc_days_of_1_minute_bars_for_btc_and_eth(bars: list[Bar]) -> None:
    by_symbol: dict[str, list[Bar]] = defaultdict(list)
    for bar in bars:
        by_symbol[bar.symbol].append(bar)
    assert set(by_symbol) == {"BTC_USDT", "ETH_USDT"}
    for series in by_symbol.values():
        assert len(series) == 2 * 1440
        steps = {b.ts_ms - a.ts_ms for a, b in itertools.pairwise(series)}
        assert steps == {60_000}
        first = datetime.fromtimestamp(series[0].ts_ms / 1000, UTC)
        assert (first.hour, first.minute) == (0, 0)
    assert [b.ts_ms for b in bars] == sorted(b.ts_ms for b in bars)


def test_prices_and_volumes_are_realistic(bars: list[Bar]) -> None:
    for symbol, low, high in (("BTC_USDT", 60_000, 100_000), ("ETH_USDT", 2_000, 5_000)):
        series = [b for b in bars if b.symbol == symbol]
        assert all(low <= b.low and b.high <= high for b in series)
        assert all(b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high for b in series)
        assert all(b.volume > 0 for b in series)
        moves = [abs(b.close / a.close - 1) for a, b in itertools.pairwise(series)]
        assert max(moves) < Decimal("0.02")  # no absurd 1-minute jumps
    btc_quote = sorted(b.close * b.volume for b in bars if b.symbol == "BTC_USDT")
    assert Decimal(200_000) < btc_quote[len(btc_quote) // 2] < Decimal(5_000_000)


def test_the_cli_writes_the_recording(tmp_path: Path) -> None:
    out = tmp_path / "rec.csv.gz"
    assert main(["--out", str(out), "--days", "1", "--seed", "3"]) == 0
    lines = list(iter_csv_lines(out.read_bytes()))
    assert lines[0] == CSV_HEADER
    assert len(lines) == 1 + 2 * 1440


def test_the_reader_turns_rows_into_market_data() -> None:
    lines = [CSV_HEADER, "1740960000000,BTC_USDT,84250.00,84337.40,84247.32,84258.72,8.33168"]
    (md,) = list(read_market_data(lines))
    assert md == MarketDataV1(
        symbol="BTC_USDT",
        price=Decimal("84258.72"),
        volume=Decimal("8.33168"),
        timestamp=datetime(2025, 3, 3, tzinfo=UTC),
        interval="1m",
        venue="recording",
    )
    emitted = tick_event(md)
    assert emitted.event.event_type is EventType.MARKET_DATA_RECEIVED
    assert emitted.stream_id == "market-BTC_USDT"
    assert tick_event(md) == emitted  # the id depends on symbol, interval and time only


def test_the_reader_reads_the_whole_shipped_file(bars: list[Bar]) -> None:
    lines = iter_csv_lines((REPO / RECORDING).read_bytes())
    assert list(read_bars(lines)) == bars


def test_a_bad_header_is_refused() -> None:
    with pytest.raises(ContractError, match="<header>"):
        list(read_bars(["time,sym,price"]))


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("abc,BTC_USDT,1,1,1,1,1", "ts_ms"),
        ("1,BTC_USDT,1,1,1,x,1", "close"),
        ("1,BTC_USDT,1,1,1,1,-2", "volume"),
        ("1,BTC_USDT,0,1,1,1,1", "open"),
        ("1,BTC_USDT,1,1", "<line>"),
        ("1,BTC_USDT,5,4,3,5,1", "high/low"),
    ],
)
def test_a_bad_row_names_line_field_and_value(line: str, field: str) -> None:
    with pytest.raises(ContractError) as err:
        parse_bar(line, 42)
    assert err.value.contract == "recording line 42"
    assert err.value.problems[0][0] == field


def test_a_bad_symbol_is_refused_by_the_contract() -> None:
    bar = parse_bar("1740960000000,btc/usdt,1,1,1,1,1", 2)
    with pytest.raises(ContractError) as err:
        list(read_market_data([CSV_HEADER, "1740960000000,btc/usdt,1,1,1,1,1"]))
    assert err.value.problems[0][0] == "symbol"
    assert bar.symbol == "btc/usdt"


def test_a_recorded_feed_replays_as_fast_as_possible_or_paced() -> None:
    lines = [
        CSV_HEADER,
        "1740960000000,BTC_USDT,1,1,1,1,1",
        "1740960000000,ETH_USDT,1,1,1,1,1",
        "1740960060000,BTC_USDT,1,1,1,1,1",
    ]
    feed = RecordedFeed(lines)
    assert [w for w, _ in paced(feed.ticks(), None)] == [0.0, 0.0, 0.0]
    assert [w for w, _ in paced(feed.ticks(), 60.0)] == [0.0, 0.0, 1.0]
    assert [w for w, _ in paced(feed.ticks(), 1.0)] == [0.0, 0.0, 60.0]
    with pytest.raises(ValueError, match="speed"):
        list(paced(feed.ticks(), 0))
