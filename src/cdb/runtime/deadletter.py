"""Moving an entry to its group's dead-letter stream: one atomic Lua step (move + ack).

A dead-letter entry records why (reason, error type and message), how often it was delivered,
where it came from (topic, partition, group, consumer, entry id), what it was (event type,
aggregate, event id, the original fields as JSON) and when.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from cdb.eventstore.lua import LuaScript
from cdb.runtime._util import now_ms, text
from cdb.runtime.ordering import PartitionKeys

_DEAD_LETTER = LuaScript("dead_letter")

# Reasons recorded in the ``reason`` field.
EXHAUSTED = "max_deliveries"
CONTRACT = "contract"
REJECTED = "rejected"


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    error_type: str
    error: str
    delivery_count: int
    consumer: str
    entry_id: str
    fields: Mapping[str, str]

    def as_fields(self, pk: PartitionKeys, at_ms: int) -> dict[str, str]:
        return {
            "reason": self.reason,
            "error_type": self.error_type,
            "error": self.error[:2000],
            "deliveries": str(self.delivery_count),
            "topic": pk.topic,
            "partition": str(pk.partition),
            "group": pk.group,
            "consumer": self.consumer,
            "entry_id": self.entry_id,
            "event_type": self.fields.get("t", ""),
            "aggregate": self.fields.get("s", ""),
            "event_id": self.fields.get("id", ""),
            "fields": json.dumps(dict(self.fields), sort_keys=True),
            "at_ms": str(at_ms),
        }


def dead_letter(client: redis.Redis, pk: PartitionKeys, letter: DeadLetter) -> str | None:
    """Move and ack; the dead-letter id, or None when the entry was no longer pending."""
    args = [pk.group, letter.entry_id]
    for name, value in letter.as_fields(pk, now_ms()).items():
        args += [name, value]
    reply = _DEAD_LETTER.call(client, [pk.stream, pk.dead_letter, pk.held, pk.waits], args)
    return text(reply) if reply else None
