"""What the operator CLI shows: streams, groups, pending entries, stuck and parked entries.

Pure queries over a Redis client returning dataclasses (``cdb streams``, ``cdb pending``); the
one write is :func:`claim_stuck`, which moves stuck entries to a named consumer and records it
in the audit stream.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topology
from cdb.runtime import claim
from cdb.runtime._util import fields_text, now_ms, text
from cdb.runtime.dlq import group_partitions
from cdb.runtime.ordering import PartitionKeys

_SCAN_LIMIT = 10_000  # pending entries examined per group and partition


@dataclass(frozen=True)
class GroupInfo:
    name: str
    consumers: int
    pending: int
    lag: int | None  # entries not yet delivered to the group (None: unknown on Redis < 7)
    last_delivered_id: str
    dead_letters: int


@dataclass(frozen=True)
class PartitionInfo:
    topic: str
    partition: int
    key: str
    length: int
    first_id: str | None
    last_id: str | None
    groups: list[GroupInfo] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConsumerPending:
    name: str
    pending: int
    idle_ms: int
    last_heartbeat_ms: int | None  # ms since the last heartbeat; None = never / gone


@dataclass(frozen=True)
class ParkedAggregate:
    aggregate: str
    held_entry: str  # the entry the others wait behind
    held_as: str  # 'dead-lettered' or 'requeued'
    dlq_id: str | None
    waiting: int  # entries of this aggregate waiting behind it


@dataclass(frozen=True)
class GroupPending:
    topic: str
    group: str
    partition: int
    pending: int
    oldest_idle_ms: int
    max_deliveries_seen: int
    consumers: list[ConsumerPending] = field(default_factory=list)
    parked: list[ParkedAggregate] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StuckEntry:
    topic: str
    group: str
    partition: int
    entry_id: str
    consumer: str
    idle_ms: int
    deliveries: int
    aggregate: str
    event_type: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def streams_info(client: redis.Redis, topology: Topology, namespace: str) -> list[PartitionInfo]:
    keys = Keys(namespace)
    out: list[PartitionInfo] = []
    for spec in topology.topics.values():
        for p in range(spec.partitions):
            key = keys.topic(spec.name, p)
            if not client.exists(key):
                groups = [
                    GroupInfo(g, 0, 0, 0, "-", int(client.xlen(keys.dead_letter(spec.name, g, p))))
                    for g in sorted(spec.groups)
                ]
                out.append(PartitionInfo(spec.name, p, key, 0, None, None, groups))
                continue
            info = client.xinfo_stream(key)
            first, last = info.get("first-entry"), info.get("last-entry")
            present = {text(g["name"]): g for g in client.xinfo_groups(key)}
            groups = []
            for gname in sorted(set(spec.groups) | set(present)):
                g = present.get(gname)
                dead = int(client.xlen(keys.dead_letter(spec.name, gname, p)))
                if g is None:
                    groups.append(GroupInfo(gname, 0, 0, int(info["length"]), "-", dead))
                    continue
                lag = g.get("lag")
                groups.append(
                    GroupInfo(
                        name=gname,
                        consumers=int(g["consumers"]),
                        pending=int(g["pending"]),
                        lag=int(lag) if lag is not None else None,
                        last_delivered_id=text(g["last-delivered-id"]),
                        dead_letters=dead,
                    )
                )
            out.append(
                PartitionInfo(
                    topic=spec.name,
                    partition=p,
                    key=key,
                    length=int(info["length"]),
                    first_id=text(first[0]) if first else None,
                    last_id=text(last[0]) if last else None,
                    groups=groups,
                )
            )
    return out


def pending_info(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    topic: str | None = None,
    group: str | None = None,
) -> list[GroupPending]:
    out: list[GroupPending] = []
    now = now_ms()
    for pk in group_partitions(topology, namespace, topic, group):
        if not _group_exists(client, pk):
            out.append(GroupPending(pk.topic, pk.group, pk.partition, 0, 0, 0))
            continue
        rows = client.xpending_range(pk.stream, pk.group, "-", "+", _SCAN_LIMIT)
        beats = {text(k): int(v) for k, v in client.hgetall(pk.heartbeats).items()}
        consumers = [
            ConsumerPending(
                name=text(c["name"]),
                pending=int(c["pending"]),
                idle_ms=int(c["idle"]),
                last_heartbeat_ms=(now - beats[text(c["name"])])
                if text(c["name"]) in beats
                else None,
            )
            for c in client.xinfo_consumers(pk.stream, pk.group)
        ]
        out.append(
            GroupPending(
                topic=pk.topic,
                group=pk.group,
                partition=pk.partition,
                pending=int(client.xpending(pk.stream, pk.group)["pending"]),
                oldest_idle_ms=max((int(r["time_since_delivered"]) for r in rows), default=0),
                max_deliveries_seen=max((int(r["times_delivered"]) for r in rows), default=0),
                consumers=consumers,
                parked=parked_aggregates(client, pk),
            )
        )
    return out


def parked_aggregates(client: redis.Redis, pk: PartitionKeys) -> list[ParkedAggregate]:
    """Aggregates whose entries wait behind a dead-lettered (or requeued) entry."""
    out: list[ParkedAggregate] = []
    held = client.hgetall(pk.held)
    # Who waits directly behind whom; an entry's line of waiters is the chain from it.
    behind: dict[str, list[str]] = {}
    if held:
        for raw_waiting, raw_prev in client.hgetall(pk.waits).items():
            behind.setdefault(text(raw_prev), []).append(text(raw_waiting))
    for raw_id, raw_why in held.items():
        entry_id, why = text(raw_id), text(raw_why)
        dlq_id = why[4:] if why.startswith("dlq:") else None
        aggregate = ""
        if dlq_id is not None:
            rows = client.xrange(pk.dead_letter, dlq_id, dlq_id)
            if rows:
                aggregate = fields_text(rows[0][1]).get("aggregate", "")
        else:
            rows = client.xrange(pk.stream, entry_id, entry_id)
            if rows:
                aggregate = fields_text(rows[0][1]).get("s", "")
        waiting = _chain_length(behind, entry_id)
        out.append(
            ParkedAggregate(
                aggregate=aggregate,
                held_entry=entry_id,
                held_as="dead-lettered" if dlq_id else "requeued",
                dlq_id=dlq_id,
                waiting=waiting,
            )
        )
    return sorted(out, key=lambda p: p.held_entry)


def _chain_length(behind: dict[str, list[str]], first: str) -> int:
    count, todo, seen = 0, list(behind.get(first, [])), {first}
    while todo:
        entry = todo.pop()
        if entry in seen:
            continue
        seen.add(entry)
        count += 1
        todo += behind.get(entry, [])
    return count


def stuck_entries(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    idle_ms: int,
    *,
    topic: str | None = None,
    group: str | None = None,
) -> list[StuckEntry]:
    """Pending entries nobody has touched for ``idle_ms``: their consumer stopped heartbeating
    (live consumers reset the idle time of what they own on every heartbeat)."""
    out: list[StuckEntry] = []
    for pk in group_partitions(topology, namespace, topic, group):
        if not _group_exists(client, pk):
            continue
        rows = client.xpending_range(pk.stream, pk.group, "-", "+", _SCAN_LIMIT, idle=idle_ms)
        if not rows:
            continue
        pipe = client.pipeline(transaction=False)
        for r in rows:
            pipe.xrange(pk.stream, r["message_id"], r["message_id"])
        for r, found in zip(rows, pipe.execute(), strict=True):
            fields = fields_text(found[0][1]) if found else {}
            out.append(
                StuckEntry(
                    topic=pk.topic,
                    group=pk.group,
                    partition=pk.partition,
                    entry_id=text(r["message_id"]),
                    consumer=text(r["consumer"]),
                    idle_ms=int(r["time_since_delivered"]),
                    deliveries=int(r["times_delivered"]),
                    aggregate=fields.get("s", ""),
                    event_type=fields.get("t", ""),
                )
            )
    return out


@dataclass(frozen=True)
class ClaimSummary:
    to: str
    claimed: list[str]
    deleted: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def claim_stuck(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    idle_ms: int,
    *,
    to: str,
    topic: str | None = None,
    group: str | None = None,
) -> ClaimSummary:
    """Move every entry idle past ``idle_ms`` to consumer ``to`` (audited)."""
    claimed: list[str] = []
    deleted: list[str] = []
    for pk in group_partitions(topology, namespace, topic, group):
        if not _group_exists(client, pk):
            continue
        result = claim.claim_stuck(client, pk, to, idle_ms)
        claimed += [eid for eid, _ in result.claimed]
        deleted += result.deleted
    client.xadd(
        Keys(namespace).audit(),
        {
            "action": "pending.claim",
            "filter": json.dumps({"topic": topic, "group": group, "idle_ms": idle_ms, "to": to}),
            "count": str(len(claimed)),
            "at_ms": str(now_ms()),
        },
    )
    return ClaimSummary(to, claimed, deleted)


def _group_exists(client: redis.Redis, pk: PartitionKeys) -> bool:
    if not client.exists(pk.stream):
        return False
    return any(text(g["name"]) == pk.group for g in client.xinfo_groups(pk.stream))
