"""The read path's envelope (``stored_envelope``) against the normal ``EventEnvelope`` validation.

``stored_envelope`` validates each part once and assembles the envelope; for any input it must
give exactly what ``EventEnvelope.model_validate`` gives: an equal envelope, or the same error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cdb.domain.envelope import FAST_READ, Contract, EventEnvelope, derive_id, stored_envelope
from cdb.domain.registry import contract_for, registered
from cdb.errors import ContractError
from tests.unit.domain import factories as f

EXAMPLES: dict[str, Callable[..., dict[str, Any]]] = {
    "MarketDataV1": f.market_data,
    "SignalV1": f.signal,
    "SignalBlockedV1": f.signal_blocked,
    "OrderV1": f.order,
    "OrderResultV1": f.order_result,
    "PositionV1": f.position,
    "PortfolioSnapshotV1": f.portfolio,
    "CircuitBreakerV1": f.circuit_breaker,
    "AlertV1": f.alert,
}
REGISTERED = sorted(registered().items())
KEYS = [f"{t}@{v}" for (t, v), _ in REGISTERED]


def stored(event_type: str, contract: type[Contract], **changes: Any) -> dict[str, Any]:
    """What the codec hands over for one entry: JSON-shaped values, as read from Redis."""
    payload = json.loads(contract.model_validate(EXAMPLES[contract.__name__]()).model_dump_json())
    data: dict[str, Any] = {
        "event_id": str(derive_id("envelope-test", event_type)),
        "event_type": event_type,
        "schema_version": "1",
        "stream_id": "order-o-1",
        "sequence_number": 3,
        "timestamp": "2026-03-01T09:30:00Z",
        "payload": payload,
        "metadata": {"correlation_id": "sig-1", "producer": "risk"},
    }
    data.update(changes)
    return data


def outcome(validate: Callable[[], EventEnvelope]) -> tuple[str, Any]:
    """The result, or the error reduced to what a caller sees (type, contract, problems)."""
    try:
        envelope = validate()
    except ValidationError as exc:
        return "ValidationError", [(e["loc"], e["type"], e["msg"]) for e in exc.errors()]
    except ContractError as exc:
        return type(exc).__name__, (exc.contract, exc.problems)
    return "ok", envelope


def assert_same(data: dict[str, Any], contract: type[Contract]) -> None:
    # Both paths get their own copy: neither may depend on the other's mutations.
    fast = outcome(lambda: stored_envelope(json.loads(json.dumps(data))))
    normal = outcome(lambda: EventEnvelope.model_validate(json.loads(json.dumps(data))))
    assert fast[0] == normal[0], (fast, normal)
    if fast[0] != "ok":
        assert fast == normal
        return
    got, want = fast[1], normal[1]
    assert got == want
    assert type(got.payload) is type(want.payload)
    assert list(got.__dict__) == list(want.__dict__)
    assert got.model_fields_set == want.model_fields_set
    assert got.payload.model_fields_set == want.payload.model_fields_set
    assert got.model_dump_json() == want.model_dump_json()
    assert got.timestamp.tzinfo is want.timestamp.tzinfo


@pytest.mark.parametrize(("key", "contract"), REGISTERED, ids=KEYS)
def test_every_contract_reads_back_equal_to_the_normal_validation(
    key: tuple[str, str], contract: type[Contract]
) -> None:
    assert_same(stored(key[0], contract), contract)
    assert_same(stored(key[0], contract, metadata={}), contract)
    without_metadata = stored(key[0], contract)
    del without_metadata["metadata"]
    assert_same(without_metadata, contract)


# Values that break (or stretch) each rule: wrong types, bounds, formats, offsets, nulls.
ODD: st.SearchStrategy[Any] = st.sampled_from(
    [
        None,
        "",
        "x",
        "  ",
        -1,
        0,
        1,
        1.5,
        True,
        "0",
        "-1",
        "1e3",
        "NaN",
        "Infinity",
        [],
        {},
        {"a": 1},
        "2026-03-01T09:30:00Z",
        "2026-03-01T09:30:00+00:00",
        "2026-03-01T10:30:00+01:00",
        "2026-03-01T09:30:00",
        "2026-03-01",
        1_700_000_000,
        "BTC_USDT",
        "BTC/USDT",
        "BUY",
        "buy",
        "LIMIT",
        "FILLED",
        "6f1c5d2e-8f4a-4c7e-9a1b-2d3c4e5f6a7b",
        "6F1C5D2E8F4A4C7E9A1B2D3C4E5F6A7B",
        "1\n",
        "1.0",
        "ORDER_PLACED",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x" * 201,
    ]
)
ENVELOPE_FIELDS = [*EventEnvelope.model_fields, "extra"]


@settings(max_examples=300, deadline=None)
@given(
    entry=st.sampled_from(REGISTERED),
    envelope_changes=st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), ODD, max_size=2),
    payload_changes=st.lists(st.tuples(st.integers(0, 30), ODD), max_size=3),
    metadata_changes=st.dictionaries(
        st.sampled_from(["correlation_id", "causation_id", "producer", "traceparent", "other"]),
        ODD,
        max_size=2,
    ),
    drop=st.lists(st.integers(0, 30), max_size=2),
)
def test_any_change_reads_the_same_as_the_normal_validation(
    entry: tuple[tuple[str, str], type[Contract]],
    envelope_changes: dict[str, Any],
    payload_changes: list[tuple[int, Any]],
    metadata_changes: dict[str, Any],
    drop: list[int],
) -> None:
    (event_type, _), contract = entry
    data = stored(event_type, contract)
    names = sorted(data["payload"])
    for index, value in payload_changes:
        data["payload"][names[index % len(names)]] = value
    for index in drop:
        data["payload"].pop(names[index % len(names)], None)
    data["metadata"].update(metadata_changes)
    data.update(envelope_changes)
    assert_same(data, contract)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"timestamp": "2026-03-01T10:30:00+01:00"}, "timestamp"),
        ({"timestamp": "2026-03-01T09:30:00"}, "timestamp"),
        ({"schema_version": "one"}, "event_type"),  # no contract for ORDER_PLACED@one
        ({"stream_id": ""}, "stream_id"),
        ({"sequence_number": -1}, "sequence_number"),
        ({"metadata": {"traceparent": "nope"}}, "metadata.traceparent"),
        ({"metadata": {"who": "me"}}, "metadata.who"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_broken_envelope_field_is_refused_by_name(change: dict[str, Any], field: str) -> None:
    contract = contract_for("ORDER_PLACED", "1")
    data = stored("ORDER_PLACED", contract, **change)
    with pytest.raises((ValidationError, ContractError)) as caught:
        stored_envelope(data)
    error = caught.value
    if isinstance(error, ValidationError):
        named = [".".join(str(p) for p in e["loc"]) for e in error.errors()]
    else:
        assert isinstance(error, ContractError)
        named = [p[0] for p in error.problems]
    assert field in named, named


def test_a_broken_payload_is_refused_by_its_contract_naming_the_field() -> None:
    contract = contract_for("ORDER_PLACED", "1")
    data = stored("ORDER_PLACED", contract)
    data["payload"]["quantity"] = "-1"
    with pytest.raises(ContractError) as caught:
        stored_envelope(data)
    assert caught.value.contract == "OrderV1"
    assert [p[:2] for p in caught.value.problems] == [("quantity", "-1")]


def test_a_payload_is_parsed_by_the_contract_of_its_own_event_type() -> None:
    # A signal's payload stored under ORDER_PLACED is judged by OrderV1, whatever it looks like.
    signal = stored("SIGNAL_GENERATED", contract_for("SIGNAL_GENERATED", "1"))
    data = stored("ORDER_PLACED", contract_for("ORDER_PLACED", "1"), payload=signal["payload"])
    assert_same(data, contract_for("ORDER_PLACED", "1"))
    with pytest.raises(ContractError) as caught:
        stored_envelope(data)
    assert caught.value.contract == "OrderV1"


def test_the_fast_read_path_knows_every_envelope_rule() -> None:
    # A new validator on NewEvent/EventEnvelope turns the fast path off (correct, but slow):
    # teach cdb.domain.envelope's read path the new rule, then update its list of known ones.
    assert FAST_READ
