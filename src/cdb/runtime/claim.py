"""Taking over entries from consumers that went silent, and removing consumers that are gone.

Live consumers reset the idle time of everything they own on every heartbeat
(:mod:`cdb.runtime.heartbeat`), so an entry idle past the group's ``claim_idle_ms`` belongs to a
consumer that stopped heartbeating: XAUTOCLAIM with that min-idle takes exactly those. The walk
follows XAUTOCLAIM's cursor through the whole pending list, not only its head, and clears
references to entries deleted from the stream (Redis 7 drops them and returns their ids in a
third element; Redis 6.2 claims them and returns nil, so they are found and acked here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from cdb.eventstore.lua import LuaScript
from cdb.runtime._util import fields_text, now_ms, text
from cdb.runtime.ordering import PartitionKeys

_REAP = LuaScript("consume_reap")


@dataclass
class ClaimResult:
    claimed: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def parse_autoclaim(reply: Any) -> tuple[str, list[tuple[str, dict[str, str] | None]], list[str]]:
    """``(next cursor, entries, deleted ids)`` from a Redis 6.2 (2 items) or 7 (3 items) reply."""
    cursor = text(reply[0])
    entries: list[tuple[str, dict[str, str] | None]] = []
    for item in reply[1] or []:
        if item is None or item[0] is None:
            # Redis 6.2: a deleted entry comes back as nil, without even its id.
            entries.append(("", None))
            continue
        eid, raw = item
        entries.append((text(eid), fields_text(raw) if raw is not None else None))
    deleted = [text(d) for d in reply[2]] if len(reply) > 2 and reply[2] else []
    return cursor, entries, deleted


def autoclaim(
    client: redis.Redis,
    pk: PartitionKeys,
    consumer: str,
    min_idle_ms: int,
    *,
    page: int = 100,
    limit: int = 10_000,
) -> ClaimResult:
    """Walk the whole pending list once, claiming entries idle at least ``min_idle_ms``."""
    result = ClaimResult()
    cursor = "0-0"
    while True:
        reply = client.xautoclaim(
            pk.stream, pk.group, consumer, min_idle_ms, start_id=cursor, count=page
        )
        cursor, entries, deleted = parse_autoclaim(reply)
        result.deleted += deleted
        anonymous = False
        for eid, fields in entries:
            if fields is None:
                anonymous = True
            else:
                result.claimed.append((eid, fields))
        if anonymous:
            result.deleted += _clear_deleted(client, pk, consumer)
        if cursor == "0-0" or len(result.claimed) >= limit:
            return result


def _clear_deleted(client: redis.Redis, pk: PartitionKeys, consumer: str) -> list[str]:
    """Ack entries ``consumer`` owns that no longer exist (Redis 6.2 leaves them pending)."""
    rows = client.xpending_range(pk.stream, pk.group, "-", "+", 100_000, consumername=consumer)
    ids = [text(r["message_id"]) for r in rows]
    pipe = client.pipeline(transaction=False)
    for eid in ids:
        pipe.xrange(pk.stream, eid, eid)
    gone = [eid for eid, found in zip(ids, pipe.execute(), strict=True) if not found]
    if gone:
        client.xack(pk.stream, pk.group, *gone)
    return gone


def reap_consumers(
    client: redis.Redis, pk: PartitionKeys, consumer: str, silent_ms: int
) -> list[str]:
    """Delete consumers that own nothing and have been silent past ``silent_ms``."""
    reply = _REAP.call(
        client,
        [pk.stream, pk.heartbeats],
        [pk.group, consumer, str(now_ms()), str(silent_ms)],
    )
    return [text(name) for name in reply or []]


def claim_stuck(
    client: redis.Redis, pk: PartitionKeys, to_consumer: str, min_idle_ms: int
) -> ClaimResult:
    """Operator's claim (``cdb pending claim``): same walk, to a named consumer."""
    return autoclaim(client, pk, to_consumer, min_idle_ms, limit=1_000_000)
