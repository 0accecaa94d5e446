"""What a dead-letter entry records."""

from __future__ import annotations

import json

from cdb.eventstore.keys import Keys
from cdb.runtime.deadletter import CONTRACT, DeadLetter
from cdb.runtime.dlq import DeadLetterEntry, DlqFilter
from cdb.runtime.ordering import PartitionKeys

PK = PartitionKeys.of(Keys("ns"), "orders", "execution", 0)
ORIGINAL = {"id": "e1", "n": "3", "s": "order-1", "t": "ORDER_PLACED", "v": "1", "d": "{}"}


def letter_fields() -> dict[str, str]:
    letter = DeadLetter(
        reason=CONTRACT,
        error_type="ContractError",
        error="OrderV1: field 'price' = -1: must be > 0",
        delivery_count=1,
        consumer="w1",
        entry_id="7-0",
        fields=ORIGINAL,
    )
    return letter.as_fields(PK, at_ms=1234)


def test_a_dead_letter_records_why_where_from_what_and_when() -> None:
    fields = letter_fields()
    assert fields["reason"] == "contract"
    assert fields["error_type"] == "ContractError"
    assert "price" in fields["error"]
    assert fields["deliveries"] == "1"
    assert (fields["topic"], fields["group"], fields["partition"]) == ("orders", "execution", "0")
    assert (fields["consumer"], fields["entry_id"]) == ("w1", "7-0")
    assert (fields["event_type"], fields["aggregate"], fields["event_id"]) == (
        "ORDER_PLACED",
        "order-1",
        "e1",
    )
    assert json.loads(fields["fields"]) == ORIGINAL
    assert fields["at_ms"] == "1234"


def test_filters_select_by_event_type_aggregate_error_type_and_time() -> None:
    entry = DeadLetterEntry.parse("1234-0", letter_fields(), PK)
    assert entry.fields == ORIGINAL
    assert entry.at_ms == 1234
    assert entry.deliveries == 1
    assert DlqFilter().matches(entry)
    assert DlqFilter(event_type="ORDER_PLACED", aggregate="order-1").matches(entry)
    assert not DlqFilter(event_type="ORDER_FILLED").matches(entry)
    assert DlqFilter(error_type="ContractError").matches(entry)
    assert not DlqFilter(error_type="HandlerRejected").matches(entry)
    assert DlqFilter(since_ms=1000, until_ms=2000).matches(entry)
    assert not DlqFilter(since_ms=1235).matches(entry)
    assert not DlqFilter(until_ms=1233).matches(entry)
    assert DlqFilter(topic="orders", aggregate="order-1").as_dict() == {
        "topic": "orders",
        "aggregate": "order-1",
    }
