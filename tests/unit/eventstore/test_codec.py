"""Stream entry layout: six fields, and a strict way back to a typed envelope."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cdb.domain.envelope import EventEnvelope, EventMetadata, NewEvent
from cdb.errors import ContractError, UnknownEventTypeError
from cdb.eventstore.codec import (
    FIELDS,
    _problems,
    decode_fields,
    encode_body,
    encode_fields,
    parse_json,
)
from tests.eventstore_events import alert, order_filled, order_placed, signal, tick


def as_redis(fields: dict[str, str | bytes]) -> dict[bytes, bytes]:
    """The fields as redis-py returns them from XRANGE (bytes both sides)."""
    return {
        key.encode(): value if isinstance(value, bytes) else value.encode()
        for key, value in fields.items()
    }


def expected_envelope(event: NewEvent, stream_id: str, seq: int) -> EventEnvelope:
    return EventEnvelope(**dict(event), stream_id=stream_id, sequence_number=seq)


EVENTS = [order_placed("o-1"), order_filled("o-1"), signal("s-1"), alert("a", 3), tick("X_Y", 1)]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: str(e.event_type))
def test_every_envelope_field_survives_the_round_trip(event: NewEvent) -> None:
    fields = encode_fields(event, "order-o-1", 7)
    back = decode_fields(as_redis(fields))
    assert back == expected_envelope(event, "order-o-1", 7)
    assert type(back.payload) is type(event.payload)
    assert back.metadata == event.metadata
    # str keys and values (a client with decode_responses=True) read the same
    assert decode_fields({k: str(v) for k, v in fields.items()}) == back


def test_the_entry_has_exactly_the_six_fields_and_routing_stays_out_of_the_body() -> None:
    event = order_placed("o-9")
    fields = encode_fields(event, "order-o-9", 3)
    assert tuple(fields) == FIELDS
    assert fields["id"] == str(event.event_id)
    assert fields["n"] == "3"
    assert fields["s"] == "order-o-9"
    assert fields["t"] == "ORDER_PLACED"
    assert fields["v"] == "1"
    body = json.loads(fields["d"])
    assert set(body) == {"timestamp", "payload", "metadata"}
    assert body["payload"]["quantity"] == "0.0125"  # money and quantities as exact strings


def test_decimals_keep_their_exact_digits() -> None:
    event = order_filled("o-2")
    back = decode_fields(as_redis(encode_fields(event, "order-o-2", 2)))
    assert isinstance(back.payload, type(event.payload))
    assert str(back.payload.model_dump()["fee"]) == "0.80313750"


def test_unset_metadata_is_left_out_and_reads_back_as_none() -> None:
    bare = signal("s-2")  # no metadata at all
    assert "metadata" not in json.loads(encode_body(bare))
    assert decode_fields(as_redis(encode_fields(bare, "signal-s-2", 1))).metadata == (
        EventMetadata()
    )
    partial = bare.model_copy(update={"metadata": EventMetadata(producer="signal")})
    assert json.loads(encode_body(partial))["metadata"] == {"producer": "signal"}
    back = decode_fields(as_redis(encode_fields(partial, "signal-s-2", 1)))
    assert back.metadata == EventMetadata(producer="signal")


def _broken(**changes: Any) -> dict[bytes, bytes]:
    fields: dict[str, Any] = dict(encode_fields(order_placed("o-3"), "order-o-3", 1))
    for key, value in changes.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    return as_redis(fields)


def _body(**changes: Any) -> str:
    body = json.loads(encode_fields(order_placed("o-3"), "order-o-3", 1)["d"])
    body.update(changes)
    return json.dumps(body)


@pytest.mark.parametrize(
    ("entry", "field", "rule"),
    [
        (_broken(t=None), "t", "missing"),
        (_broken(d="{not json"), "d", "must be JSON"),
        (_broken(d="[1, 2]"), "d", "JSON object"),
        (_broken(d=_body(extra=1)), "d.extra", "unknown key"),
        (_broken(n="seven"), "n", "integer"),
        (_broken(n="-1"), "sequence_number", "greater than or equal to 0"),
        (_broken(id="not-a-uuid"), "event_id", "UUID"),
        (_broken(v="9"), "event_type", "'ORDER_PLACED@9': no contract registered"),
        (_broken(s=""), "stream_id", "at least 1"),
    ],
)
def test_a_malformed_entry_is_a_contract_error_naming_the_field(
    entry: dict[bytes, bytes], field: str, rule: str
) -> None:
    with pytest.raises(ContractError) as caught:
        decode_fields(entry)
    fields = [problem[0] for problem in caught.value.problems]
    assert any(field in name for name in fields), caught.value.problems
    assert rule in str(caught.value)


def test_a_payload_breaking_its_contract_names_the_payload_field() -> None:
    body = json.loads(encode_fields(order_placed("o-4"), "order-o-4", 1)["d"])
    body["payload"]["quantity"] = "-1"
    with pytest.raises(ContractError) as caught:
        decode_fields(_broken(d=json.dumps(body)))
    assert caught.value.contract == "OrderV1"
    assert [p[0] for p in caught.value.problems] == ["quantity"]
    assert caught.value.problems[0][1] == "-1"


def test_an_unknown_event_type_is_named() -> None:
    with pytest.raises(UnknownEventTypeError, match="ORDER_TELEPORTED@1"):
        decode_fields(_broken(t="ORDER_TELEPORTED"))


def test_bytes_that_are_not_utf8_are_refused() -> None:
    entry = _broken()
    entry[b"s"] = b"order-\xff"
    with pytest.raises(ContractError, match="UTF-8"):
        decode_fields(entry)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: str(e.event_type))
@pytest.mark.parametrize(
    "change",
    [
        {},
        {"id": "6F1C5D2E8F4A4C7E9A1B2D3C4E5F6A7B"},
        {"n": "0"},
        {"v": "1.0"},
        {"v": "2"},
        {"t": "order_placed"},
        {"s": "x" * 201},
        {"d": '{"timestamp": "2026-03-01T10:30:00+01:00", "payload": {}}'},
        {"rg": "other-group"},
    ],
)
def test_the_fast_read_path_matches_the_normal_validation(
    event: NewEvent, change: dict[str, str]
) -> None:
    fields: dict[str, str | bytes] = {
        k: v if isinstance(v, str) else v.decode()
        for k, v in encode_fields(event, "order-o-1", 7).items()
    }
    fields.update(change)
    body = json.loads(fields["d"])
    data: dict[str, Any] = {
        "event_id": fields["id"],
        "event_type": fields["t"],
        "schema_version": fields["v"],
        "stream_id": fields["s"],
        "sequence_number": int(str(fields["n"])),
        **body,
    }
    try:
        want: Any = EventEnvelope.model_validate(data)
    except ContractError as exc:
        want = (type(exc), exc.contract, exc.problems)
    except ValidationError as exc:
        want = (ContractError, "EventEnvelope", [p[0] for p in _problems(exc)])
    entries: list[Mapping[Any, Any]] = [fields, as_redis(dict(fields))]
    for entry in entries:
        try:
            got: Any = decode_fields(entry)
        except ContractError as exc:
            got = (type(exc), exc.contract, exc.problems)
            if exc.contract == "EventEnvelope":
                got = (ContractError, "EventEnvelope", [p[0] for p in exc.problems])
        assert got == want


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: str(e.event_type))
@pytest.mark.parametrize("mask", range(16))
def test_the_body_is_the_event_dumped_without_its_none_metadata(event: NewEvent, mask: int) -> None:
    full = {
        "correlation_id": "c-1",
        "causation_id": "c-0",
        "producer": "p",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    metadata = {name: v if mask >> i & 1 else None for i, (name, v) in enumerate(full.items())}
    changed = event.model_copy(update={"metadata": EventMetadata(**metadata)})
    dumped = json.loads(changed.model_dump_json())
    want = {key: dumped[key] for key in ("timestamp", "payload", "metadata")}
    want["metadata"] = {k: v for k, v in want["metadata"].items() if v is not None}
    if not want["metadata"]:
        del want["metadata"]
    assert encode_body(changed) == json.dumps(want, separators=(",", ":"), ensure_ascii=False)
    as_stored = EventEnvelope(**dict(changed), stream_id="order-o-1", sequence_number=1)
    assert encode_body(as_stored) == encode_body(changed)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_bodies_parse_exactly_as_json_loads_does(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert parse_json(text) == json.loads(text)
    assert parse_json(text.encode("utf-8", "surrogatepass")) == json.loads(
        text.encode("utf-8", "surrogatepass")
    )


@pytest.mark.parametrize(
    "text",
    ['{"a": NaN}', '{"a": -Infinity}', '{"a": 1e400}', '{"a": 1, "a": 2}', '"\\ud800"', "[1.0]"],
)
def test_odd_but_valid_json_parses_as_json_loads_does(text: str) -> None:
    assert repr(parse_json(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ["{not json", "", "[1,]", '{"a": 1} x', "'a'"])
def test_invalid_json_is_refused_with_json_loads_message(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(ContractError) as caught:
        parse_json(text)
    assert caught.value.problems == [("d", text, f"must be JSON: {expected.value}")]
