"""The momentum strategy: BUY and SELL, volume filter, cooldown, parameters from env."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cdb.domain.contracts import Side, SignalV1
from cdb.domain.envelope import NewEvent
from cdb.domain.event_types import EventType
from cdb.domain.services.events import Emit
from cdb.domain.services.signal import SignalParams, SignalState, on_tick
from cdb.errors import ConfigError
from tests.unit.domain.services.factories import tick

PARAMS = SignalParams(threshold_pct=Decimal(1), min_volume=Decimal(1000), lookback_min=5)


def run(events: list[NewEvent], params: SignalParams = PARAMS) -> list[Emit]:
    state, out = SignalState(), []
    for event in events:
        state, emitted = on_tick(state, event, params)
        out.extend(emitted)
    return out


def path(prices: list[str], volume: str = "50", symbol: str = "ETH_USDT") -> list[NewEvent]:
    return [tick(symbol, p, minute, volume) for minute, p in enumerate(prices)]


def only_signal(out: list[Emit]) -> SignalV1:
    assert len(out) == 1, out
    payload = out[0].event.payload
    assert isinstance(payload, SignalV1)
    return payload


def test_a_rise_over_the_lookback_is_a_buy() -> None:
    signal = only_signal(run(path(["100", "100", "100", "100", "100", "101.2"])))
    assert signal.side is Side.BUY
    assert signal.strategy_id == "momentum-v1"
    assert signal.price == Decimal("101.2")
    assert "+1.2000%" in signal.reason


def test_defect_signals_were_buy_only_a_fall_is_a_sell() -> None:
    """Defect of the original: only BUY signals. A fall of the threshold is a SELL."""
    signal = only_signal(run(path(["100", "100", "100", "100", "100", "98.9"])))
    assert signal.side is Side.SELL


def test_a_move_below_the_threshold_is_no_signal() -> None:
    assert run(path(["100", "100", "100", "100", "100", "100.9"])) == []


def test_no_signal_before_the_lookback_is_covered() -> None:
    assert run(path(["100", "105", "110"])) == []


def test_the_volume_filter_holds_back_thin_moves() -> None:
    # 101.2 x 5 = 506 USDT of quote volume, below the 1000 minimum.
    assert run(path(["100", "100", "100", "100", "100", "101.2"], volume="5")) == []
    assert len(run(path(["100", "100", "100", "100", "100", "101.2"], volume="10"))) == 1


def test_the_cooldown_gives_one_signal_per_move_not_one_per_tick() -> None:
    prices = ["100"] * 5 + ["101.5", "102", "102.5", "103", "103.5", "104", "104.5"]
    out = run(path(prices), SignalParams(Decimal(1), Decimal(0), 5, "s1", cooldown_min=10))
    assert [only_signal([o]).side for o in out] == [Side.BUY]
    # Without a cooldown every tick of the same move would signal again.
    again = run(path(prices), SignalParams(Decimal(1), Decimal(0), 5, "s1", cooldown_min=0))
    assert len(again) == 7


def test_the_cooldown_does_not_hold_back_a_reversal() -> None:
    prices = ["100"] * 5 + ["101.5", "101", "100", "99", "98", "97", "96"]
    out = run(path(prices), SignalParams(Decimal(1), Decimal(0), 5, "s1", cooldown_min=30))
    sides = [only_signal([o]).side for o in out]
    assert sides == [Side.BUY, Side.SELL]


def test_a_redelivered_or_older_tick_changes_nothing() -> None:
    events = path(["100", "100", "100", "100", "100", "101.2"])
    state = SignalState()
    for event in events[:-1]:
        state, _ = on_tick(state, event, PARAMS)
    state, first = on_tick(state, events[-1], PARAMS)
    again, second = on_tick(state, events[-1], PARAMS)
    assert len(first) == 1
    assert second == []
    assert again == state


def test_a_gap_in_the_data_gives_no_signal_on_a_stale_reference() -> None:
    events = [tick("ETH_USDT", "100", 0), tick("ETH_USDT", "110", 30)]
    assert run(events) == []


def test_symbols_are_independent() -> None:
    eth = path(["100", "100", "100", "100", "100", "101.2"])
    btc = path(["50000"] * 6, symbol="BTC_USDT")
    mixed = [e for pair in zip(btc, eth, strict=True) for e in pair]
    out = run(mixed)
    assert [only_signal([o]).symbol for o in out] == ["ETH_USDT"]


def test_signal_ids_and_event_ids_derive_from_the_tick() -> None:
    events = path(["100", "100", "100", "100", "100", "101.2"])
    first, second = run(events), run(events)
    assert first == second
    emitted = first[0]
    assert emitted.event.event_type is EventType.SIGNAL_GENERATED
    assert emitted.stream_id == f"signal-{only_signal(first).signal_id}"
    assert emitted.event.metadata.causation_id == str(events[-1].event_id)
    assert emitted.event.timestamp == events[-1].timestamp
    other = run(events, SignalParams(Decimal(1), Decimal(1000), 5, "another-strategy"))
    assert only_signal(other).signal_id != only_signal(first).signal_id


def test_params_default_to_the_documented_values() -> None:
    params = SignalParams.from_env({})
    assert params == SignalParams()
    assert params.threshold_pct == Decimal("1.0")
    assert params.lookback_min == 15
    assert params.strategy_id == "momentum-v1"


def test_params_read_the_original_env_names() -> None:
    params = SignalParams.from_env(
        {
            "SIGNAL_THRESHOLD_PCT": "3.0",
            "SIGNAL_MIN_VOLUME": "250000",
            "SIGNAL_LOOKBACK_MIN": "30",
            "SIGNAL_STRATEGY_ID": "mom-fast",
            "SIGNAL_COOLDOWN_MIN": "5",
        }
    )
    assert params == SignalParams(Decimal("3.0"), Decimal(250000), 30, "mom-fast", 5)


def test_bad_params_are_all_named_with_value_and_rule() -> None:
    with pytest.raises(ConfigError) as err:
        SignalParams.from_env(
            {
                "SIGNAL_THRESHOLD_PCT": "abc",
                "SIGNAL_MIN_VOLUME": "-1",
                "SIGNAL_LOOKBACK_MIN": "0",
                "SIGNAL_STRATEGY_ID": "has space",
            }
        )
    text = str(err.value)
    assert "SIGNAL_THRESHOLD_PCT='abc': must be a decimal number" in text
    assert "SIGNAL_MIN_VOLUME='-1': must be >= 0" in text
    assert "SIGNAL_LOOKBACK_MIN='0': must be >= 1" in text
    assert "SIGNAL_STRATEGY_ID='has space'" in text


def test_an_empty_strategy_id_is_refused() -> None:
    with pytest.raises(ConfigError, match="SIGNAL_STRATEGY_ID"):
        SignalParams.from_env({"SIGNAL_STRATEGY_ID": ""})
