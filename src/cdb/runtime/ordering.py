"""Per-aggregate order across every consumer of a group.

Each (topic, group, partition) keeps a hash of tails: per aggregate, its newest delivered entry
that is not finished. Recording a delivered entry makes it the tail; when there was one
already, the entry waits behind it, and that is recorded too (the waits hash), so a consumer
that takes the entry over later knows it. An entry may run when it waits behind nothing, or
its predecessor is neither pending nor held, or its predecessor was handled successfully
earlier in the same cycle by this consumer. A chain of direct predecessors is enough: an entry
is finished only after its own predecessor was.

Reads record atomically, without a lock: small batches are read by the recording script
itself (one round trip); big batches are read with a plain XREADGROUP (their fields do not
pass through Lua) and recorded right after, the script first recording anything delivered
before them that is still unrecorded (see ``consume_read.lua``). The ack releases the tail;
a dead-lettered entry stays (held) so later entries of its aggregate wait behind it until an
operator requeues or purges it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from cdb.eventstore.keys import Keys
from cdb.eventstore.lua import LuaScript
from cdb.runtime._util import text

_READ = LuaScript("consume_read")
_ACK = LuaScript("consume_ack")
_HEADS = LuaScript("consume_heads")

# Reads of up to this many entries go through the recording script (one round trip); a read
# that fills it is followed by plain XREADGROUPs, whose fields skip Lua (cheaper per entry).
SMALL = 64

# A read as redis-py returns it: (entry id, fields) pairs, bytes (or str with decode_responses).
Rows = list[Any]


@dataclass(frozen=True)
class PartitionKeys:
    """The keys one consumer of (topic, group) touches on one partition (one hash slot)."""

    topic: str
    group: str
    partition: int
    stream: str
    held: str
    tails: str
    waits: str
    registered: str
    dead_letter: str
    heartbeats: str

    @classmethod
    def of(cls, keys: Keys, topic: str, group: str, partition: int) -> PartitionKeys:
        return cls(
            topic=topic,
            group=group,
            partition=partition,
            stream=keys.topic(topic, partition),
            held=keys.held(topic, group, partition),
            tails=keys.tails(topic, group, partition),
            waits=keys.waits(topic, group, partition),
            registered=keys.registered(topic, group, partition),
            dead_letter=keys.dead_letter(topic, group, partition),
            heartbeats=keys.heartbeats(topic, group, partition),
        )

    def read_keys(self) -> list[str]:
        return [self.stream, self.tails, self.waits, self.held, self.registered]


@dataclass(frozen=True)
class Read:
    """One recorded read: the rows, what waits behind what, and (when nothing was read by the
    script) the stream's newest id, past which a blocking wait waits ('' = unknown)."""

    rows: Rows
    waits: dict[int, str]  # 0-based row index -> id it waits behind
    top: str


EMPTY = Read([], {}, "")


def aggregate_of(fields: Any) -> bytes:
    """The aggregate field of an entry as bytes ('' = none), whatever the reply type."""
    value = fields.get(b"s")
    if value is None:
        value = fields.get("s", b"")
    return value if isinstance(value, bytes) else str(value).encode()


def read_script_call(pk: PartitionKeys, consumer: str, count: int) -> tuple[str, list[Any]]:
    """The EVALSHA arguments of a read by the script itself (to queue on a pipeline)."""
    return _READ.sha, [5, *pk.read_keys(), pk.group, consumer, count]


def parse_read(reply: Any) -> Read:
    top, rows, pairs = reply
    waits = {int(pairs[i]) - 1: text(pairs[i + 1]) for i in range(0, len(pairs), 2)}
    # The script returns each entry's fields as a flat list: make them what XREADGROUP gives.
    as_dicts = [(eid, dict(zip(f[::2], f[1::2], strict=True))) for eid, f in rows]
    return Read(as_dicts, waits, text(top))


def read(client: redis.Redis, pk: PartitionKeys, consumer: str, count: int) -> Read:
    """Read and record up to ``count`` new entries, the cheaper way for that many."""
    if count <= SMALL:
        return read_small(client, pk, consumer, count)
    return read_big(client, pk, consumer, count)


def read_small(client: redis.Redis, pk: PartitionKeys, consumer: str, count: int) -> Read:
    """Read up to ``count`` new entries and record them, in one step (one round trip)."""
    return parse_read(_READ.call(client, pk.read_keys(), [pk.group, consumer, str(count)]))


def read_big(client: redis.Redis, pk: PartitionKeys, consumer: str, count: int) -> Read:
    """Read with a plain XREADGROUP, then record (two round trips, fields never in Lua)."""
    reply: Any = client.xreadgroup(pk.group, consumer, {pk.stream: ">"}, count=count)
    if not reply:
        return EMPTY
    rows: Rows = reply[0][1]
    return Read(rows, record(client, pk, consumer, rows), "")


def record(client: redis.Redis, pk: PartitionKeys, consumer: str, rows: Rows) -> dict[int, str]:
    """Record rows this consumer read natively; returns 0-based index -> id it waits behind."""
    if not rows:
        return {}
    return parse_read(_READ.call(client, pk.read_keys(), record_args(pk, consumer, rows))).waits


def record_args(pk: PartitionKeys, consumer: str, rows: Rows) -> list[Any]:
    """The script arguments (after the keys) that record ``rows`` (not empty)."""
    ids = [eid for eid, _ in rows]
    if isinstance(rows[0][0], bytes):
        aggregates = [fields.get(b"s", b"") for _, fields in rows]
    else:
        aggregates = [aggregate_of(fields) for _, fields in rows]
    requeued: list[str] = []
    for i, (_, fields) in enumerate(rows):
        if len(fields) != 6:  # the six fields of an event; a requeued one carries rq and rg
            rg = fields.get(b"rg") or fields.get("rg")
            if rg is not None:
                requeued += (str(i + 1), text(rg))
    return [
        pk.group,
        consumer,
        "0",
        str(len(rows)),
        str(len(requeued) // 2),
        *requeued,
        *ids,
        *aggregates,
    ]


def record_command(pk: PartitionKeys, consumer: str, rows: Rows) -> tuple[Any, ...]:
    """EVALSHA that records ``rows`` (to send ahead; its reply goes to :func:`parse_read`)."""
    keys = pk.read_keys()
    return ("EVALSHA", _READ.sha, str(len(keys)), *keys, *record_args(pk, consumer, rows))


def xread_command(pk: PartitionKeys, consumer: str, count: int) -> tuple[Any, ...]:
    """A plain XREADGROUP of new entries (to send ahead; its reply goes to :func:`rows_of`)."""
    return (
        "XREADGROUP",
        "GROUP",
        pk.group,
        consumer,
        "COUNT",
        str(count),
        "STREAMS",
        pk.stream,
        ">",
    )


def rows_of(reply: Any) -> Rows:
    """(id, fields dict) pairs from an unparsed XREADGROUP reply of one stream (RESP2 or 3)."""
    if not reply:
        return []
    entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    # An event's six fields as one dict display: a quarter of what dict(zip(...)) costs.
    return [
        (eid, {f[0]: f[1], f[2]: f[3], f[4]: f[5], f[6]: f[7], f[8]: f[9], f[10]: f[11]})
        if len(f) == 12
        else (eid, _pairs(f))
        for eid, f in entries
    ]


def _pairs(flat: Any) -> dict[Any, Any]:
    it = iter(flat or ())
    return dict(zip(it, it, strict=True))


def ack(client: redis.Redis, pk: PartitionKeys, done: Sequence[tuple[str, bytes, bool]]) -> None:
    """Ack ``(entry id, aggregate, waited)`` triples in one step, releasing their place."""
    if not done:
        return
    _ACK.call(client, [pk.stream, pk.tails, pk.waits], ack_args(pk, done))


def ack_args(pk: PartitionKeys, done: Sequence[tuple[str, bytes, bool]]) -> list[str | bytes]:
    waited = [entry_id for entry_id, _, waited in done if waited]
    return [
        pk.group,
        str(len(done)),
        str(len(waited)),
        *[entry_id for entry_id, _, _ in done],
        *[aggregate for _, aggregate, _ in done],
        *waited,
    ]


def ack_command(pk: PartitionKeys, done: Sequence[tuple[str, bytes, bool]]) -> tuple[Any, ...]:
    """EVALSHA that acks ``done`` (not empty; to send ahead, its reply read later)."""
    return ("EVALSHA", _ACK.sha, "3", pk.stream, pk.tails, pk.waits, *ack_args(pk, done))


def waiting_for(client: redis.Redis, pk: PartitionKeys, entry_ids: Sequence[str]) -> list[str]:
    """For each entry id: '' when free to run, else 'p:<id>' / 'h:<id>' (what it waits for)."""
    if not entry_ids:
        return []
    reply = _HEADS.call(client, [pk.stream, pk.held, pk.waits], [pk.group, *entry_ids])
    return [text(v) for v in reply]


def load_scripts(client: redis.Redis) -> None:
    """Send the scripts called ahead (by SHA1, without a NOSCRIPT retry) to the server."""
    _READ.load(client)
    _ACK.load(client)


def is_noscript(value: object) -> bool:
    return isinstance(value, redis.exceptions.NoScriptError)
