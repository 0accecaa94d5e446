"""Per-aggregate order across every consumer of a group.

Each (topic, group, partition) keeps, per aggregate, a Redis list of the entry ids of that
aggregate that are delivered but not finished, in stream order. Reads take a short per-group
lock, so XREADGROUP and the recording of the read entries happen one reader at a time, in
delivery order (a reader that dies in between is caught up by the next one); the ack removes
an entry; a dead-lettered entry stays (held) so later entries of its aggregate wait behind it
until an operator requeues or purges it. An entry may run when it is the head of its list, or
when the entry before it was handled successfully in the same cycle by this consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis

from cdb.eventstore.keys import Keys
from cdb.eventstore.lua import LuaScript
from cdb.runtime._util import fields_text, text

_BEGIN = LuaScript("consume_begin")
_REGISTER = LuaScript("consume_register")
_ACK = LuaScript("consume_ack")
_HEADS = LuaScript("consume_heads")

RUNNABLE = ""


class ReadEntry(NamedTuple):
    entry_id: str
    fields: dict[str, str]
    prev: str  # id this entry waits behind ('' = head of its aggregate's list)


@dataclass(frozen=True)
class PartitionKeys:
    """The keys one consumer of (topic, group) touches on one partition (one hash slot)."""

    topic: str
    group: str
    partition: int
    stream: str
    held: str
    order_prefix: str
    dead_letter: str
    heartbeats: str
    read_lock: str
    registered: str

    @classmethod
    def of(cls, keys: Keys, topic: str, group: str, partition: int) -> PartitionKeys:
        return cls(
            topic=topic,
            group=group,
            partition=partition,
            stream=keys.topic(topic, partition),
            held=keys.held(topic, group, partition),
            order_prefix=keys.order_prefix(topic, group, partition),
            dead_letter=keys.dead_letter(topic, group, partition),
            heartbeats=keys.heartbeats(topic, group, partition),
            read_lock=keys.read_lock(topic, group, partition),
            registered=keys.registered(topic, group, partition),
        )


def read_batch(
    client: redis.Redis, pk: PartitionKeys, consumer: str, count: int, *, lock_ms: int = 2000
) -> tuple[list[ReadEntry], str | None]:
    """New entries for ``consumer``, each with the entry it waits behind.

    Returns ``(entries, newest)``: ``newest`` is the group's last-delivered id when nothing was
    read (for a blocking wait), ``None`` when another reader held the read lock (try again).
    One reader at a time reads and records, so the lines match the delivery order; the read
    itself is a plain XREADGROUP (the fields never pass through Lua).
    """
    token = uuid.uuid4().hex
    begun = _BEGIN.call(
        client,
        [pk.stream, pk.read_lock, pk.registered],
        [pk.group, token, str(lock_ms), pk.order_prefix],
    )
    if text(begun[0]) == "busy":
        return [], None
    try:
        reply = client.xreadgroup(pk.group, consumer, {pk.stream: ">"}, count=count)
    except BaseException:
        client.delete(pk.read_lock)  # best effort; the lock also expires by itself
        raise
    rows: list[Any] = reply[0][1] if reply else []  # type: ignore[index, assignment]
    entries: list[tuple[str, dict[str, str]]] = []
    ids: list[str] = []
    aggregates: list[bytes] = []
    requeued: list[str] = []
    as_bytes = bool(rows) and isinstance(rows[0][0], bytes)
    for raw_id, raw in rows:
        if as_bytes:  # the hot path: plain bytes.decode, no per-item type checks
            eid = raw_id.decode()
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            aggregates.append(raw.get(b"s", b""))
        else:
            eid, fields = text(raw_id), fields_text(raw or {})
            aggregates.append(fields.get("s", "").encode())
        entries.append((eid, fields))
        ids.append(eid)
        if "rg" in fields:
            requeued += (str(len(ids)), fields["rg"])
    args: list[str | bytes] = [
        pk.group,
        token,
        pk.order_prefix,
        ids[-1] if ids else "",
        ",".join(ids),
        ",".join([str(len(a)) for a in aggregates]),
        b"".join(aggregates),
        *requeued,
    ]
    reply_pairs = _REGISTER.call(client, [pk.stream, pk.read_lock, pk.registered, pk.held], args)
    # Only entries behind another one come back, as (1-based index, what they wait behind).
    prevs = [""] * len(entries)
    for i in range(0, len(reply_pairs), 2):
        prevs[int(reply_pairs[i]) - 1] = text(reply_pairs[i + 1])
    out = [
        ReadEntry(eid, fields, prev)
        for (eid, fields), prev in zip(entries, prevs, strict=True)
        if prev != "-"  # "-": requeued for another group, acked by the script
    ]
    return out, (text(begun[1]) if not rows else "")


def ack(client: redis.Redis, pk: PartitionKeys, done: Sequence[tuple[str, str]]) -> None:
    """Ack ``(entry id, aggregate)`` pairs in one step, releasing their place in line."""
    if not done:
        return
    aggregates = [aggregate.encode() for _, aggregate in done]
    args: list[str | bytes] = [
        pk.group,
        pk.order_prefix,
        ",".join([entry_id for entry_id, _ in done]),
        ",".join([str(len(a)) for a in aggregates]),
        b"".join(aggregates),
    ]
    _ACK.call(client, [pk.stream], args)


def waiting_for(
    client: redis.Redis, pk: PartitionKeys, entries: Sequence[tuple[str, str]]
) -> list[str]:
    """For each ``(entry id, aggregate)``: '' when runnable, else 'p:<id>' / 'h:<id>'."""
    if not entries:
        return []
    args = [pk.group, pk.order_prefix]
    for entry_id, aggregate in entries:
        args += [entry_id, aggregate]
    return [text(v) for v in _HEADS.call(client, [pk.stream, pk.held], args)]
