"""Where a projection's entries come from: its consumer group (live) or plain XRANGE (rebuild).

The live projector reads with XREADGROUP under the projection's own group and a fixed consumer
name, and acks only after the batch committed. After a start or any failure it first re-reads
its own pending entries (id ``0``): a crash between commit and ack redelivers them and the
checkpoint skips them; a crash before commit redelivers them and they are applied then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topology
from cdb.projections.apply import Entry
from cdb.projections.checkpoints import StreamPos
from cdb.projections.definitions import Definition


def stream_positions(definition: Definition, topology: Topology) -> list[StreamPos]:
    """Every (topic, partition) the projection reads, in causal topic order."""
    return [
        (topic, partition)
        for topic in definition.topics
        for partition in range(topology.topic(topic).partitions)
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class GroupSource:
    """Batches for one projection from its consumer group on each of its topic partitions."""

    def __init__(
        self,
        client: redis.Redis,
        definition: Definition,
        topology: Topology,
        namespace: str,
        *,
        consumer: str = "projector-1",
        batch_size: int = 1000,
        block_ms: int = 500,
    ) -> None:
        self._client = client
        self._definition = definition
        self._keys = Keys(namespace)
        self._consumer = consumer
        self._batch = batch_size
        self._block_ms = block_ms
        self._positions = stream_positions(definition, topology)
        self._key_of = {pos: self._keys.topic(*pos) for pos in self._positions}
        self._pos_of = {key: pos for pos, key in self._key_of.items()}
        self._recovering = True

    @property
    def group(self) -> str:
        return self._definition.group

    def ensure_groups(self) -> None:
        for key in self._key_of.values():
            try:
                self._client.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def recover(self) -> None:
        """Next read starts with this consumer's pending entries (after a failure)."""
        self._recovering = True

    def read(self, *, block: bool = True) -> list[Entry]:
        if self._recovering:
            entries = self._xreadgroup("0", block_ms=None)
            if entries:
                return entries
            self._recovering = False
        return self._xreadgroup(">", block_ms=self._block_ms if block else None)

    def ack(self, entries: Sequence[Entry]) -> None:
        by_key: dict[str, list[str]] = {}
        for entry in entries:
            by_key.setdefault(self._key_of[(entry.topic, entry.partition)], []).append(
                entry.entry_id
            )
        if not by_key:
            return
        pipe = self._client.pipeline(transaction=False)
        for key, ids in by_key.items():
            pipe.xack(key, self.group, *ids)
        pipe.execute()

    def _xreadgroup(self, cursor: str, block_ms: int | None) -> list[Entry]:
        streams: dict[Any, Any] = dict.fromkeys(self._key_of.values(), cursor)
        reply: Any = self._client.xreadgroup(
            self.group, self._consumer, streams, count=self._batch, block=block_ms
        )
        entries: list[Entry] = []
        for key, rows in reply or []:
            topic, partition = self._pos_of[_text(key)]
            for entry_id, fields in rows:
                # A pending entry whose message was deleted comes back without fields; streams
                # are never trimmed, but such an entry would still need its ack.
                entries.append(Entry(topic, partition, _text(entry_id), fields or {}))
        return entries


def read_range(
    client: redis.Redis,
    keys: Keys,
    pos: StreamPos,
    after: str,
    *,
    count: int,
    until: str = "+",
) -> list[Entry]:
    """Up to ``count`` entries of one topic partition after ``after`` (exclusive), up to
    ``until`` (inclusive)."""
    rows: Any = client.xrange(keys.topic(*pos), f"({after}", until, count=count)
    return [Entry(pos[0], pos[1], _text(entry_id), fields) for entry_id, fields in rows or []]


def head(client: redis.Redis, keys: Keys, pos: StreamPos) -> tuple[str, int]:
    """Last entry id and length of one topic partition (``0-0``, 0 when empty or missing)."""
    key = keys.topic(*pos)
    pipe = client.pipeline(transaction=False)
    pipe.xrevrange(key, "+", "-", count=1)
    pipe.xlen(key)
    last: Any
    length: Any
    last, length = pipe.execute()
    return (_text(last[0][0]) if last else "0-0"), int(length)
