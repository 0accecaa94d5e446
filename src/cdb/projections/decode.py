"""Decoding topic entries for projections: the payload is always validated by its contract.

Projections decode millions of entries during a rebuild. They read with the store's own
decoder, :func:`cdb.eventstore.codec.decode_fields`, whose usual path validates the JSON body,
payload contract included, in one native pass per entry; an unusual or malformed entry goes
through the full validation, which raises the precise ContractError.
"""

from __future__ import annotations

from cdb.domain.envelope import EventEnvelope
from cdb.eventstore.codec import RawFields, decode_fields

StoredEvent = EventEnvelope
"""What :func:`decode_entry` returns (once a lighter record; the envelope is now as cheap)."""


def decode_entry(fields: RawFields) -> EventEnvelope:
    """The event of one entry; raises ContractError for a malformed one."""
    return decode_fields(fields)
