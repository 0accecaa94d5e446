"""Where a projection's entries come from: its consumer group (live) or plain XRANGE (rebuild).

The live projector reads with XREADGROUP under the projection's own group and a fixed consumer
name, and acks only after the batch committed. After a start or any failure it first re-reads
its own pending entries (id ``0``): a crash between commit and ack redelivers them and the
checkpoint skips them; a crash before commit redelivers them and they are applied then.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis

from cdb.eventstore.codec import FIELDS
from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topology
from cdb.projections.apply import Entry
from cdb.projections.checkpoints import StreamPos, entry_key
from cdb.projections.definitions import Definition
from cdb.projections.split import part_of_stream


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
        # Entries read but held back for a later batch (see ``read``); still pending.
        self._held: dict[StreamPos, list[Entry]] = {pos: [] for pos in self._positions}
        self._more = dict.fromkeys(self._positions, False)  # last page was full

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
        for buffer in self._held.values():  # pending: the recovery read delivers them again
            buffer.clear()

    def read(self, *, block: bool = True) -> list[Entry]:
        """The next batch. When some partitions return a full page, the batch ends at the
        earliest last entry of those (entry ids start with the append time) and the later
        entries wait for the next batch: the partitions stay aligned in time, so an order's
        ORDER_PLACED and its fills (two topics) mostly meet in one batch and fold into one row
        instead of the busier results topic falling behind. They stay pending meanwhile, so a
        crash redelivers them like any unacknowledged entry."""
        if self._recovering:
            entries = self._xreadgroup("0", block_ms=None)
            if entries:
                return entries
            self._recovering = False
        buffers = self._held
        wanted = [pos for pos in self._positions if len(buffers[pos]) < self._batch]
        waiting = any(buffers.values())
        if wanted:
            block_ms = self._block_ms if block and not waiting else None
            fresh = self._xreadgroup(">", block_ms=block_ms, positions=wanted)
            pages: dict[StreamPos, list[Entry]] = {pos: [] for pos in wanted}
            for entry in fresh:
                pages[(entry.topic, entry.partition)].append(entry)
            for pos, page in pages.items():
                self._more[pos] = len(page) >= self._batch
                buffers[pos].extend(page)
        # A partition gives at most a page per batch (entries held back from the last read
        # plus a fresh page can exceed one): where it has more, its page end bounds the cut.
        limit = self._batch
        ends: list[tuple[int, int]] = []
        for pos, buffer in buffers.items():
            if len(buffer) > limit:
                ends.append(entry_key(buffer[limit - 1].entry_id))
            elif buffer and (self._more[pos] or pos not in wanted):
                ends.append(entry_key(buffer[-1].entry_id))
        cut = min(ends) if ends else None
        batch: list[Entry] = []
        for pos, buffer in buffers.items():
            taken = min(len(buffer), limit)
            if cut is not None:
                while taken and entry_key(buffer[taken - 1].entry_id) > cut:
                    taken -= 1
            batch.extend(buffer[:taken])
            buffers[pos] = buffer[taken:]
        return batch

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

    def _xreadgroup(
        self, cursor: str, block_ms: int | None, positions: Sequence[StreamPos] | None = None
    ) -> list[Entry]:
        keys = [self._key_of[pos] for pos in positions or self._positions]
        streams: dict[Any, Any] = dict.fromkeys(keys, cursor)
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
    return read_ranges(client, keys, [(pos, after, until)], count=count)


class Page(NamedTuple):
    """What one XRANGE of a partition gave."""

    entries: list[Entry]  # those kept (all, unless a part was asked for)
    read: int  # entries the range held, kept or not
    last_id: str | None  # the last of them; None when there were none


def read_ranges(
    client: redis.Redis,
    keys: Keys,
    wanted: Sequence[tuple[StreamPos, str, str]],
    *,
    count: int,
) -> list[Entry]:
    """:func:`read_range` of several partitions ``(pos, after, until)`` in one round trip, in
    the order given."""
    return [e for page in read_pages(client, keys, wanted, count=count) for e in page.entries]


def read_pages(
    client: redis.Redis,
    keys: Keys,
    wanted: Sequence[tuple[StreamPos, str, str]],
    *,
    count: int,
    part: tuple[int, int] | None = None,
) -> list[Page]:
    """One XRANGE page per partition ``(pos, after, until)``, all in one round trip, in the
    order given. With ``part`` = ``(index, parts)`` a page keeps only the entries of that part
    of a split build (:func:`cdb.projections.split.part_of`).

    The replies are parsed here, not by redis-py: each process of a split build reads every
    entry and keeps one in ``parts``, and the others then cost a hash of their stream id
    instead of a dict and an Entry each (measured on 795k entries, 2 parts: 2.0 s of CPU
    against 2.6-3.2 s).
    """
    if not wanted:
        return []
    pipe = _raw_ranges(client).pipeline(transaction=False)
    for pos, after, until in wanted:
        pipe.xrange(keys.topic(*pos), f"({after}", until, count=count)
    replies: list[Any] = pipe.execute()
    pages: list[Page] = []
    for (pos, _, _), reply in zip(wanted, replies, strict=True):
        rows = reply or []
        topic, partition = pos
        entries: list[Entry] = []
        for entry_id, flat in rows:
            if part is not None and part_of_stream(_stream_field(flat), part[1]) != part[0]:
                continue
            items = iter(flat or ())
            fields = dict(zip(items, items, strict=False))
            entries.append(Entry(topic, partition, _text(entry_id), fields))
        pages.append(Page(entries, len(rows), _text(rows[-1][0]) if rows else None))
    return pages


# Where the name and the value of field ``s`` sit in a flat field list as the store writes it.
_S_NAME = 2 * FIELDS.index("s")
_S_VALUE = _S_NAME + 1


_RAW: weakref.WeakKeyDictionary[redis.Redis, redis.Redis] = weakref.WeakKeyDictionary()


def _raw_ranges(client: redis.Redis) -> redis.Redis:
    """A client on the same connection pool whose XRANGE replies come back unparsed:
    ``[entry id, [field, value, ...]]`` per entry."""
    raw = _RAW.get(client)
    if raw is None:
        raw = redis.Redis(connection_pool=client.connection_pool)
        raw.set_response_callback("XRANGE", _unparsed)
        _RAW[client] = raw
    return raw


def _unparsed(response: Any, **_options: Any) -> Any:
    return response


def _stream_field(flat: Sequence[bytes | str] | None) -> bytes | str | None:
    """The value of field ``s`` (the aggregate stream id) in a flat field list."""
    if not flat:
        return None
    # A split part calls this for every entry it reads: where the store writes ``s`` first.
    if len(flat) > _S_VALUE and flat[_S_NAME] == b"s":
        return flat[_S_VALUE]
    for name in (b"s", "s"):
        start = 0
        while True:
            try:
                at = flat.index(name, start)
            except ValueError:
                break
            if at % 2 == 0:  # a field name, not a value that happens to read "s"
                return flat[at + 1] if at + 1 < len(flat) else None
            start = at + 1
    return None


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
