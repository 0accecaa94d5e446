"""The projections' decoder: same events as the store's codec, contract rules in full."""

from __future__ import annotations

import json

import pytest

from cdb.errors import ContractError
from cdb.eventstore.codec import decode_fields, encode_fields
from cdb.projections.decode import StoredEvent, decode_entry
from cdb.projections.sample import cycle


def _fields() -> list[dict[str, str]]:
    return [
        {
            k: v if isinstance(v, str) else v.decode()
            for k, v in encode_fields(event, request.stream_id, n).items()
        }
        for i in range(25)
        for request in cycle(i)
        for n, event in enumerate(request.events, start=1)
    ]


def test_the_fast_path_reads_what_the_store_codec_reads() -> None:
    for fields in _fields():
        as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
        fast = decode_entry(as_bytes)
        full = decode_fields(fields)
        assert isinstance(fast, StoredEvent)
        assert (
            fast.event_id,
            fast.event_type,
            fast.timestamp,
            fast.payload,
            fast.stream_id,
            fast.sequence_number,
        ) == (
            full.event_id,
            full.event_type,
            full.timestamp,
            full.payload,
            full.stream_id,
            full.sequence_number,
        )


def test_a_payload_breaking_its_contract_is_a_contract_error_naming_the_field() -> None:
    fields = _fields()[0]
    body = json.loads(fields["d"])
    body["payload"]["price"] = "-1"
    fields["d"] = json.dumps(body)
    with pytest.raises(ContractError, match="price"):
        decode_entry(fields)


def test_an_unusual_entry_goes_through_the_full_decoder() -> None:
    fields = _fields()[0]
    body = json.loads(fields["d"])
    body["timestamp"] = "2026-01-05T01:00:00+01:00"
    fields["d"] = json.dumps(body)
    with pytest.raises(ContractError, match="timestamp"):
        decode_entry(fields)
    fields = _fields()[0]
    del fields["n"]
    with pytest.raises(ContractError, match="'n'"):
        decode_entry(fields)
