"""Diffing replayed against recorded events: same ids, same fields, or the first differences."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from cdb.domain.contracts import AlertLevel, AlertV1, MarketDataV1
from cdb.domain.envelope import EventMetadata
from cdb.domain.event_types import AggregateType, EventType
from cdb.domain.services.events import Emit, emit
from cdb.domain.services.marketdata import tick_event
from cdb.services.replay.diff import Compared, Kind, diff_events, flatten

T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
TICK = tick_event(
    MarketDataV1(symbol="BTC_USDT", price=Decimal("60000.5"), volume=Decimal(3), timestamp=T0)
)


def alert(code: str, *, message: str = "m", context: dict[str, str] | None = None) -> Emit:
    payload = AlertV1(
        level=AlertLevel.WARNING, code=code, message=message, context=context or {}, timestamp=T0
    )
    return emit(
        AggregateType.ALERT,
        code.lower(),
        EventType.ALERT_RAISED,
        payload,
        cause=TICK.event,
        producer="risk",
        id_parts=(code,),
    )


def c(item: Emit) -> Compared:
    return Compared(item.stream_id, item.event)


def test_identical_events_have_no_differences() -> None:
    events = [c(alert("A")), c(alert("B"))]
    assert diff_events(events, list(reversed(events))) == []


def test_a_changed_payload_field_is_named_with_both_values() -> None:
    recorded = c(alert("A", context={"limit": "10"}))
    replayed = c(alert("A", context={"limit": "12"}))
    (only,) = diff_events([recorded], [replayed])
    assert (only.kind, only.field, only.recorded, only.replayed) == (
        Kind.CHANGED,
        "payload.context.limit",
        "10",
        "12",
    )
    assert only.event_id == str(recorded.event.event_id)


def test_missing_and_extra_events_are_reported_in_recorded_order_then_extras() -> None:
    a, b, x = c(alert("A")), c(alert("B")), c(alert("X"))
    found = diff_events([a, b], [b, x])
    assert [(d.kind, d.event_id) for d in found] == [
        (Kind.MISSING, str(a.event.event_id)),
        (Kind.EXTRA, str(x.event.event_id)),
    ]
    assert found[0].recorded is not None
    assert "ALERT_RAISED on alert-a" in found[0].recorded


def test_the_type_and_stream_come_first_and_traceparent_is_ignored() -> None:
    recorded = alert("A", message="one")
    traced = recorded.event.model_copy(
        update={
            "metadata": EventMetadata(
                correlation_id=recorded.event.metadata.correlation_id,
                causation_id=recorded.event.metadata.causation_id,
                producer="risk",
                traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
            )
        }
    )
    assert diff_events([c(recorded)], [Compared(recorded.stream_id, traced)]) == []
    moved = alert("A", message="two")
    found = diff_events([c(recorded)], [Compared("alert-elsewhere", moved.event)])
    assert [d.field for d in found] == ["stream_id", "payload.message"]


def test_flatten_names_every_compared_field() -> None:
    fields = flatten(c(alert("A", context={"k": "v"})))
    assert fields["event_type"] == "ALERT_RAISED"
    assert fields["payload.context.k"] == "v"
    assert fields["metadata.causation_id"] == str(TICK.event.event_id)
    assert fields["metadata.producer"] == "risk"
    assert "metadata.traceparent" not in fields
    assert flatten(c(alert("B")))["payload.context"] == "{}"
