"""The order a replay feeds inputs in: millisecond, then chain, then causal depth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cdb.domain.contracts import AlertLevel, AlertV1, MarketDataV1
from cdb.domain.envelope import EventEnvelope, NewEvent
from cdb.domain.event_types import AggregateType, EventType
from cdb.domain.services.events import Emit, emit
from cdb.domain.services.marketdata import tick_event
from cdb.services.replay.positions import EntryId
from cdb.services.replay.topic import Recorded, causal_order, replay_order

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
RANKS = {"market_data": 0, "signals": 1, "alerts": 6}


def tick(minute: int) -> Emit:
    md = MarketDataV1(
        symbol="BTC_USDT",
        price=Decimal(60000 + minute),
        volume=Decimal(1),
        timestamp=T0 + timedelta(minutes=minute),
    )
    return tick_event(md)


def child(cause: NewEvent, code: str) -> Emit:
    payload = AlertV1(level=AlertLevel.INFO, code=code, message=code, timestamp=cause.timestamp)
    return emit(
        AggregateType.ALERT,
        code.lower(),
        EventType.ALERT_RAISED,
        payload,
        cause=cause,
        producer="risk",
        id_parts=(code,),
    )


def at(item: Emit, entry: str, topic: str) -> Recorded:
    envelope = EventEnvelope(**item.event.model_dump(), stream_id=item.stream_id, sequence_number=0)
    key = (EntryId.parse(entry), RANKS[topic], 0)
    return Recorded(key, topic, entry, envelope)


def ids(items: list[Recorded]) -> list[str]:
    return [r.event_id for r in items]


def test_within_a_millisecond_a_ticks_consequences_come_before_the_next_tick() -> None:
    t1, t2 = tick(1), tick(2)
    a1 = child(t1.event, "A1")
    b1 = child(a1.event, "B1")
    a2 = child(t2.event, "A2")
    # Appended t1, a1, b1, t2, a2 within one millisecond: the alerts stream's sequence numbers
    # (0, 1, 2) say nothing about the ticks' (0, 1).
    rows = [
        at(t1, "7-0", "market_data"),
        at(t2, "7-1", "market_data"),
        at(a1, "7-0", "alerts"),
        at(b1, "7-1", "alerts"),
        at(a2, "7-2", "alerts"),
    ]
    expected = [r.event_id for r in (rows[0], rows[2], rows[3], rows[1], rows[4])]
    assert ids(replay_order(rows)) == expected
    assert ids(replay_order(list(reversed(rows)))) == expected


def test_milliseconds_order_before_chains() -> None:
    t1, t2 = tick(1), tick(2)
    late = child(t1.event, "LATE")
    rows = [at(t1, "7-0", "market_data"), at(t2, "8-0", "market_data"), at(late, "9-0", "alerts")]
    assert ids(replay_order(rows)) == ids(rows)


def test_an_input_never_comes_before_the_input_that_caused_it() -> None:
    t1 = tick(1)
    a1 = child(t1.event, "A1")
    b1 = child(a1.event, "B1")
    other = tick(5)
    window = [
        at(b1, "1-0", "alerts"),
        at(other, "2-0", "market_data"),
        at(t1, "3-0", "market_data"),
    ]
    cause_of = {
        str(a1.event.event_id): str(t1.event.event_id),
        str(b1.event.event_id): str(a1.event.event_id),
    }
    ordered = causal_order(window, cause_of, set())
    assert ids(ordered) == [window[1].event_id, window[2].event_id, window[0].event_id]
    # A cause handled before the window releases its consequences at once.
    assert ids(causal_order(window[:1], cause_of, {str(t1.event.event_id)})) == ids(window[:1])
