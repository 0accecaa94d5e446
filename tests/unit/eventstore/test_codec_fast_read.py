"""The native read path of the codec: it reads exactly what the full validation reads.

``decode_fields`` first tries one native pydantic pass over the entry (``_read``); anything
that pass does not accept goes through the full validation (``_decode_checked``), which also
words the errors. These tests hold the native pass to the full one: equal envelopes where it
accepts, and never an acceptance where the full validation refuses.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdb.domain.contracts import CircuitBreakerV1, OrderResultV1, PositionV1
from cdb.domain.envelope import EventEnvelope, EventMetadata, NewEvent, derive_id, reader_schema
from cdb.domain.event_types import EventType
from cdb.domain.registry import registered
from cdb.errors import CdbError
from cdb.eventstore.codec import _decode_checked, _read, decode_fields, encode_fields
from cdb.projections.decode import decode_entry
from cdb.projections.sample import cycle
from tests.eventstore_events import order_filled, tick

T0 = datetime(2026, 1, 5, 12, 30, 1, 250000, tzinfo=UTC)


def _circuit_breaker(event_type: EventType) -> NewEvent:
    return NewEvent(
        event_id=derive_id("cb", event_type.value),
        event_type=event_type,
        timestamp=T0,
        payload=CircuitBreakerV1(
            trading_day=date(2026, 1, 5),
            daily_pnl=Decimal("-512.40"),
            threshold=Decimal("-500"),
            reason="daily drawdown limit crossed",
            timestamp=T0,
        ),
        metadata=EventMetadata(
            correlation_id="c-1",
            causation_id="x",
            producer="risk",
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    )


def _cancelled() -> NewEvent:
    return NewEvent(
        event_id=derive_id("cancel"),
        event_type=EventType.ORDER_CANCELLED,
        timestamp=T0,
        payload=OrderResultV1(
            order_id="o-1",
            strategy_id="st",
            symbol="BTC_USDT",
            side="SELL",
            status="CANCELLED",
            quantity=Decimal("2"),
            filled_quantity=Decimal("0"),
            fee=Decimal("0"),
            fee_asset="USDT",
            timestamp=T0,
        ),
    )


def _position(event_type: EventType, quantity: str) -> NewEvent:
    flat = quantity == "0"
    return NewEvent(
        event_id=derive_id("position", event_type.value),
        event_type=event_type,
        timestamp=T0,
        payload=PositionV1(
            strategy_id="st",
            symbol="ETH_USDT",
            side="FLAT" if flat else "SHORT",
            quantity=Decimal(quantity),
            avg_entry_price=None if flat else Decimal("2500.5"),
            realised_pnl=Decimal("-12.25"),
            timestamp=T0,
        ),
    )


def _samples() -> list[NewEvent]:
    events = [e for i in range(60) for request in cycle(i) for e in request.events]
    events += [tick("BTC_USDT", 1), tick("ETH_USDT", 2), order_filled("o-9"), _cancelled()]
    events += [_circuit_breaker(t) for t in (EventType.CIRCUIT_BREAKER_TRIPPED,)]
    events += [_circuit_breaker(EventType.CIRCUIT_BREAKER_RESET)]
    events += [
        _position(EventType.POSITION_REDUCED, "0.5"),
        _position(EventType.POSITION_CLOSED, "0"),
    ]
    return events


SAMPLES = _samples()


def _entry(event: NewEvent, **change: str) -> dict[bytes, bytes]:
    fields: dict[str, Any] = dict(encode_fields(event, "stream-1", 7))
    fields.update(change)
    return {k.encode(): v.encode() for k, v in fields.items()}


def _outcome(read: Any, fields: Any) -> Any:
    try:
        return read(fields)
    except CdbError as exc:
        return (type(exc), exc.contract if hasattr(exc, "contract") else None, str(exc))


def _assert_same_read(fields: Any) -> None:
    """The native pass accepts nothing the full one refuses, and reads what it reads."""
    full = _outcome(_decode_checked, fields)
    fast = _read(fields)
    if fast is not None:
        assert isinstance(full, EventEnvelope), (full, fields)
        _assert_identical(fast, full)
    _assert_identical(_outcome(decode_fields, fields), full)


def _assert_identical(got: Any, want: Any) -> None:
    assert got == want
    if isinstance(want, EventEnvelope):
        assert list(got.__dict__) == list(want.__dict__)
        assert got.__pydantic_fields_set__ == want.__pydantic_fields_set__
        assert type(got.__pydantic_fields_set__) is set
        assert type(got.payload) is type(want.payload)
        assert got.payload.__pydantic_fields_set__ == want.payload.__pydantic_fields_set__
        assert got.metadata.__pydantic_fields_set__ == want.metadata.__pydantic_fields_set__
        assert got.timestamp.tzinfo is want.timestamp.tzinfo
        for name, value in want.payload.__dict__.items():
            assert type(getattr(got.payload, name)) is type(value), name
            if isinstance(value, datetime):
                assert getattr(got.payload, name).tzinfo is value.tzinfo
        assert got.model_dump_json() == want.model_dump_json()


def test_the_samples_cover_every_registered_event_type_and_version() -> None:
    covered = {(e.event_type.value, e.schema_version) for e in SAMPLES}
    assert covered >= set(registered()), set(registered()) - covered


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: f"{e.event_type}-{e.event_id}")
def test_every_sample_takes_the_native_pass_and_reads_as_the_full_validation(
    event: NewEvent,
) -> None:
    entry = _entry(event)
    assert _read(entry) is not None
    _assert_same_read(entry)
    as_text = {k.decode(): v.decode() for k, v in entry.items()}
    assert _read(as_text) is not None
    _assert_same_read(as_text)
    _assert_identical(decode_entry(entry), _decode_checked(entry))
    want = EventEnvelope.model_validate(
        {
            "event_id": as_text["id"],
            "event_type": as_text["t"],
            "schema_version": as_text["v"],
            "stream_id": as_text["s"],
            "sequence_number": int(as_text["n"]),
            **json.loads(as_text["d"]),
        }
    )
    _assert_identical(decode_fields(entry), want)


def _text(event: NewEvent) -> str:
    return str(encode_fields(event, "s", 1)["d"])


def _with_body(event: NewEvent, edit: Any) -> dict[bytes, bytes]:
    body = json.loads(encode_fields(event, "s", 1)["d"])
    edit(body)
    return _entry(event, d=json.dumps(body))


def _set(path: str, value: Any) -> Any:
    def edit(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return edit


def _del(path: str) -> Any:
    def edit(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for part in parents:
            node = node[part]
        del node[last]

    return edit


FILL = order_filled("o-1")
TICK = tick("BTC_USDT", 3)

HOSTILE: list[tuple[str, dict[bytes, bytes]]] = [
    ("float price", _with_body(TICK, _set("payload.price", 101.5))),
    ("float fee", _with_body(FILL, _set("payload.fee", 0.1))),
    ("integral float", _with_body(TICK, _set("payload.volume", 2.0))),
    ("int price", _with_body(TICK, _set("payload.price", 101))),
    ("bool volume", _with_body(TICK, _set("payload.volume", True))),
    ("padded decimal", _with_body(TICK, _set("payload.price", " 101.5 "))),
    ("exponent decimal", _with_body(TICK, _set("payload.price", "1e3"))),
    ("nan decimal", _with_body(TICK, _set("payload.price", "NaN"))),
    ("negative price", _with_body(TICK, _set("payload.price", "-1"))),
    ("+01:00 payload", _with_body(TICK, _set("payload.timestamp", "2026-01-05T13:00:00+01:00"))),
    ("+01:00 envelope", _with_body(TICK, _set("timestamp", "2026-01-05T13:00:00+01:00"))),
    ("+00:00 payload", _with_body(TICK, _set("payload.timestamp", "2026-01-05T12:00:00+00:00"))),
    ("+00:00 envelope", _with_body(TICK, _set("timestamp", "2026-01-05T12:00:00+00:00"))),
    ("-00:00 payload", _with_body(TICK, _set("payload.timestamp", "2026-01-05T12:00:00-00:00"))),
    ("naive payload", _with_body(TICK, _set("payload.timestamp", "2026-01-05T12:00:00"))),
    ("naive envelope", _with_body(TICK, _set("timestamp", "2026-01-05T12:00:00"))),
    ("epoch payload", _with_body(TICK, _set("payload.timestamp", 1767614400))),
    ("epoch ms payload", _with_body(TICK, _set("payload.timestamp", 1767614400000))),
    ("epoch envelope", _with_body(TICK, _set("timestamp", 1767614400))),
    ("epoch string", _with_body(TICK, _set("payload.timestamp", "1767614400"))),
    ("space separator", _with_body(TICK, _set("payload.timestamp", "2026-01-05 12:00:00Z"))),
    ("lowercase z", _with_body(TICK, _set("payload.timestamp", "2026-01-05T12:00:00z"))),
    (
        "7 digit fraction",
        _with_body(TICK, _set("payload.timestamp", "2026-01-05T12:00:00.1234567Z")),
    ),
    ("Feb 30", _with_body(TICK, _set("payload.timestamp", "2026-02-30T12:00:00Z"))),
    ("year 0", _with_body(TICK, _set("payload.timestamp", "0000-01-01T00:00:00Z"))),
    ("leap second", _with_body(TICK, _set("payload.timestamp", "2016-12-31T23:59:60Z"))),
    ("extra payload key", _with_body(TICK, _set("payload.colour", "red"))),
    ("extra body key", _with_body(TICK, _set("extra", 1))),
    ("routing key in body", _with_body(TICK, _set("stream_id", "other"))),
    ("event_id in body", _with_body(TICK, _set("event_id", str(derive_id("x"))))),
    ("extra metadata key", _with_body(TICK, _set("metadata.colour", "red"))),
    ("metadata not a string", _with_body(TICK, _set("metadata.producer", 5))),
    ("null metadata", _with_body(TICK, _set("metadata", None))),
    (
        "no metadata",
        _with_body(_circuit_breaker(EventType.CIRCUIT_BREAKER_RESET), _del("metadata")),
    ),
    ("no timestamp", _with_body(TICK, _del("timestamp"))),
    ("no payload", _with_body(TICK, _del("payload"))),
    ("null optional", _with_body(TICK, _set("payload.venue", None))),
    ("bad symbol", _with_body(TICK, _set("payload.symbol", "BTC/USDT"))),
    ("long venue", _with_body(TICK, _set("payload.venue", "v" * 33))),
    ("bad traceparent", _with_body(TICK, _set("metadata.traceparent", "00-xyz"))),
    (
        "traceparent with newline",
        _with_body(
            TICK,
            _set(
                "metadata.traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"
            ),
        ),
    ),
    (
        "good traceparent",
        _with_body(
            TICK,
            _set("metadata.traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ),
    ),
    ("fill over quantity", _with_body(FILL, _set("payload.filled_quantity", "100"))),
    ("wrong payload for the type", _entry(FILL, d=_text(TICK))),
    ("payload of the type renamed", _entry(TICK, t="ORDER_FILLED")),
    ("unknown type", _entry(TICK, t="MARKET_DATA_TELEPORTED")),
    ("lowercase type", _entry(TICK, t="market_data_received")),
    ("unregistered version", _entry(TICK, v="2")),
    ("version 1.0", _entry(TICK, v="1.0")),
    ("version with newline", _entry(TICK, v="1\n")),
    ("hex id", _entry(TICK, id="6F1C5D2E8F4A4C7E9A1B2D3C4E5F6A7B")),
    ("braced id", _entry(TICK, id="{6f1c5d2e-8f4a-4c7e-9a1b-2d3c4e5f6a7b}")),
    ("bad id", _entry(TICK, id="not-a-uuid")),
    ("negative n", _entry(TICK, n="-1")),
    ("padded n", _entry(TICK, n=" 7 ")),
    ("underscored n", _entry(TICK, n="1_0")),
    ("word n", _entry(TICK, n="seven")),
    ("empty stream", _entry(TICK, s="")),
    ("long stream", _entry(TICK, s="x" * 201)),
    ("longest stream", _entry(TICK, s="x" * 200)),
    ("body is a list", _entry(TICK, d="[1, 2]")),
    ("body not JSON", _entry(TICK, d="{not json")),
    ("body with trailing data", _entry(TICK, d=_text(TICK) + " x")),
    ("duplicate key", _entry(TICK, d=_text(TICK)[:-1] + ',"timestamp":1}')),
    (
        "escaped routing key",
        _entry(TICK, d=_text(TICK)[:-1] + ',"stream\\u005fid":"x"}'),
    ),
]


@pytest.mark.parametrize(("name", "entry"), HOSTILE, ids=[name for name, _ in HOSTILE])
def test_hostile_entries_read_exactly_as_the_full_validation_reads_them(
    name: str, entry: dict[bytes, bytes]
) -> None:
    _assert_same_read(entry)
    _assert_same_read({k.decode(): v.decode() for k, v in entry.items()})


@pytest.mark.parametrize(
    "name", ["float price", "+01:00 payload", "epoch payload", "extra payload key", "null metadata"]
)
def test_refused_entries_never_take_the_native_pass(name: str) -> None:
    entry = dict(HOSTILE)[name]
    assert _read(entry) is None
    with pytest.raises(CdbError):
        decode_fields(entry)


def test_entries_with_more_or_other_fields_take_the_full_validation() -> None:
    entry = _entry(TICK)
    _assert_same_read({**entry, b"rg": b"x"})
    mixed: dict[Any, Any] = dict(entry)
    mixed["s"] = mixed.pop(b"s").decode()
    _assert_same_read(mixed)
    del entry[b"n"]
    _assert_same_read(entry)


_DIGITS = st.integers(min_value=0, max_value=99).map(lambda i: f"{i:02d}")


@settings(max_examples=400, deadline=None)
@given(
    date_part=st.tuples(
        st.integers(min_value=0, max_value=9999).map(lambda i: f"{i:04d}"), _DIGITS, _DIGITS
    ),
    time_part=st.tuples(_DIGITS, _DIGITS, _DIGITS),
    fraction=st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,7}", fullmatch=True)),
    zone=st.sampled_from(["Z", "+00:00", "-00:00", "+01:00", "", "z"]),
)
def test_any_timestamp_string_reads_as_the_full_validation_reads_it(
    date_part: tuple[str, str, str], time_part: tuple[str, str, str], fraction: str, zone: str
) -> None:
    text = "-".join(date_part) + "T" + ":".join(time_part) + fraction + zone
    _assert_same_read(_with_body(TICK, _set("payload.timestamp", text)))
    _assert_same_read(_with_body(TICK, _set("timestamp", text)))


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(),
        st.text(alphabet="0123456789.eE+- _", max_size=12),
        st.booleans(),
        st.none(),
    )
)
def test_any_money_value_reads_as_the_full_validation_reads_it(value: Any) -> None:
    _assert_same_read(_with_body(FILL, _set("payload.fee", value)))
    _assert_same_read(_with_body(TICK, _set("payload.price", value)))


def test_offsets_are_refused_after_a_day_of_ticks() -> None:
    # Every timestamp form the encoder writes (whole seconds, milliseconds, microseconds).
    for step in range(0, 86400 * 1000, 86400 * 1000 // 97):
        at = T0 + timedelta(milliseconds=step, microseconds=step % 7)
        event = NewEvent(**{**dict(TICK), "timestamp": at})
        entry = _entry(event)
        assert _read(entry) is not None
        _assert_same_read(entry)


def _nodes(node: Any) -> Any:
    if isinstance(node, list):
        for item in node:
            yield from _nodes(item)
    elif isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key not in ("default", "config", "cls", "members", "serialization"):
                yield from _nodes(value)


@pytest.mark.parametrize("key", sorted(registered()), ids="@".join)
def test_the_native_pass_of_every_contract_calls_none_of_the_rules_it_replaces(
    key: tuple[str, str],
) -> None:
    from cdb.domain.contracts.base import Payload
    from cdb.domain.contracts.fields import JSON_READ_RULES

    replaced = {*JSON_READ_RULES, NewEvent._timestamp_utc.__func__, EventMetadata._w3c.__func__}  # type: ignore[attr-defined]
    schema, models = reader_schema(registered()[key])
    assert {EventEnvelope, EventMetadata, registered()[key]} <= models
    for node in _nodes(schema):
        function = node.get("function")
        if isinstance(function, dict):
            called = function.get("function")
            assert getattr(called, "__func__", called) not in replaced, node
        if node.get("type") == "model" and issubclass(node["cls"], Payload):
            assert node["custom_init"] is False
