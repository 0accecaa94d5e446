"""Dead letters for the operator: list, show, requeue and purge, with filters.

Requeue puts an entry back on its topic partition with its original fields (so its event_id:
consumers dedupe), marked for its group only, in the place its aggregate's order kept for it;
it runs in chunks, each chunk one atomic Lua step. Purge deletes dead letters and releases the
place they held, so later entries of their aggregates flow again (an operator's "skip").
Requeue and purge record an audit entry (when, what, filter, count).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from cdb.errors import TopologyError
from cdb.eventstore.keys import Keys
from cdb.eventstore.lua import LuaScript
from cdb.eventstore.topology import Topology
from cdb.runtime._util import fields_text, now_ms, text
from cdb.runtime.ordering import PartitionKeys

_REQUEUE = LuaScript("dlq_requeue")
_PURGE = LuaScript("dlq_purge")
_PAGE = 500


@dataclass(frozen=True)
class DlqFilter:
    """Which dead letters an operation applies to; ``None`` matches everything."""

    topic: str | None = None
    group: str | None = None
    event_type: str | None = None
    aggregate: str | None = None
    error_type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: DeadLetterEntry) -> bool:
        return (
            (self.event_type is None or letter.event_type == self.event_type)
            and (self.aggregate is None or letter.aggregate == self.aggregate)
            and (self.error_type is None or letter.error_type == self.error_type)
            and (self.since_ms is None or letter.at_ms >= self.since_ms)
            and (self.until_ms is None or letter.at_ms <= self.until_ms)
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class DeadLetterEntry:
    dlq_id: str
    topic: str
    group: str
    partition: int
    reason: str
    error_type: str
    error: str
    deliveries: int
    consumer: str
    entry_id: str
    event_type: str
    aggregate: str
    event_id: str
    at_ms: int
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, dlq_id: str, raw: dict[str, str], pk: PartitionKeys) -> DeadLetterEntry:
        try:
            original = json.loads(raw.get("fields", "{}"))
        except ValueError:
            original = {}
        return cls(
            dlq_id=dlq_id,
            topic=raw.get("topic", pk.topic),
            group=raw.get("group", pk.group),
            partition=int(raw.get("partition", pk.partition)),
            reason=raw.get("reason", ""),
            error_type=raw.get("error_type", ""),
            error=raw.get("error", ""),
            deliveries=int(raw.get("deliveries", "0") or 0),
            consumer=raw.get("consumer", ""),
            entry_id=raw.get("entry_id", ""),
            event_type=raw.get("event_type", ""),
            aggregate=raw.get("aggregate", ""),
            event_id=raw.get("event_id", ""),
            at_ms=int(raw.get("at_ms", dlq_id.split("-", maxsplit=1)[0]) or 0),
            fields=original if isinstance(original, dict) else {},
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RequeueResult:
    dry_run: bool
    count: int
    moved: list[tuple[str, str]]  # (dead-letter id, new topic entry id); empty on a dry run
    letters: list[DeadLetterEntry]


def group_partitions(
    topology: Topology, namespace: str, topic: str | None, group: str | None
) -> list[PartitionKeys]:
    """Every (topic, group, partition) the filter names; a clear error for unknown names."""
    keys = Keys(namespace)
    topics = [topology.topic(topic)] if topic else list(topology.topics.values())
    out: list[PartitionKeys] = []
    for spec in topics:
        if group is not None:
            if topic is None and group not in spec.groups:
                continue
            groups = [spec.group(group).name]
        else:
            groups = sorted(spec.groups)
        for g in groups:
            out += [PartitionKeys.of(keys, spec.name, g, p) for p in range(spec.partitions)]
    if group is not None and not out:
        raise TopologyError(f"no topic has a consumer group '{group}'")
    return out


def _iter_letters(
    client: redis.Redis, pk: PartitionKeys, flt: DlqFilter
) -> Iterator[DeadLetterEntry]:
    start = f"{flt.since_ms}-0" if flt.since_ms is not None else "-"
    end = f"{flt.until_ms}-18446744073709551615" if flt.until_ms is not None else "+"
    while True:
        rows = client.xrange(pk.dead_letter, start, end, count=_PAGE) or []
        for raw_id, raw in rows:
            letter = DeadLetterEntry.parse(text(raw_id), fields_text(raw or {}), pk)
            if flt.matches(letter):
                yield letter
        if len(rows) < _PAGE:
            return
        start = "(" + text(rows[-1][0])


def list_dead_letters(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    flt: DlqFilter,
    limit: int | None = None,
) -> list[DeadLetterEntry]:
    out: list[DeadLetterEntry] = []
    for pk in group_partitions(topology, namespace, flt.topic, flt.group):
        for letter in _iter_letters(client, pk, flt):
            out.append(letter)
            if limit is not None and len(out) >= limit:
                return out
    return out


def show(
    client: redis.Redis, topology: Topology, namespace: str, dlq_id: str, flt: DlqFilter
) -> DeadLetterEntry | None:
    """One dead letter by its id (or by the original entry id / event id)."""
    for pk in group_partitions(topology, namespace, flt.topic, flt.group):
        for letter in _iter_letters(client, pk, DlqFilter()):
            if dlq_id in (letter.dlq_id, letter.entry_id, letter.event_id):
                return letter
    return None


def requeue(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    flt: DlqFilter,
    *,
    dry_run: bool = False,
    chunk: int = 100,
) -> RequeueResult:
    letters = list_dead_letters(client, topology, namespace, flt)
    if dry_run:
        return RequeueResult(True, len(letters), [], letters)
    moved: list[tuple[str, str]] = []
    for pk, ids in _by_partition(topology, namespace, letters):
        for i in range(0, len(ids), chunk):
            reply = _REQUEUE.call(
                client,
                [pk.stream, pk.dead_letter, pk.held, pk.tails, pk.waits],
                [pk.group, *ids[i : i + chunk]],
            )
            moved += [(text(a), text(b)) for a, b in reply]
    _audit(client, namespace, "dlq.requeue", flt, len(moved))
    return RequeueResult(False, len(moved), moved, letters)


def purge(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    flt: DlqFilter,
    *,
    dry_run: bool = False,
    chunk: int = 200,
) -> tuple[int, list[DeadLetterEntry]]:
    letters = list_dead_letters(client, topology, namespace, flt)
    if dry_run:
        return len(letters), letters
    count = 0
    for pk, ids in _by_partition(topology, namespace, letters):
        for i in range(0, len(ids), chunk):
            count += int(
                _PURGE.call(client, [pk.dead_letter, pk.held, pk.tails], ids[i : i + chunk])
            )
    _audit(client, namespace, "dlq.purge", flt, count)
    return count, letters


def _by_partition(
    topology: Topology, namespace: str, letters: Sequence[DeadLetterEntry]
) -> list[tuple[PartitionKeys, list[str]]]:
    keys = Keys(namespace)
    grouped: dict[tuple[str, str, int], list[str]] = {}
    for letter in letters:
        grouped.setdefault((letter.topic, letter.group, letter.partition), []).append(letter.dlq_id)
    out = []
    for (topic, group, partition), ids in grouped.items():
        topology.topic(topic).group(group)
        out.append((PartitionKeys.of(keys, topic, group, partition), ids))
    return out


def _audit(client: redis.Redis, namespace: str, action: str, flt: DlqFilter, count: int) -> None:
    client.xadd(
        Keys(namespace).audit(),
        {
            "action": action,
            "filter": json.dumps(flt.as_dict(), sort_keys=True),
            "count": str(count),
            "at_ms": str(now_ms()),
        },
    )


def audit_log(client: redis.Redis, namespace: str, count: int = 100) -> list[dict[str, str]]:
    rows = client.xrevrange(Keys(namespace).audit(), count=count) or []
    return [{"id": text(i), **fields_text(f)} for i, f in rows]
