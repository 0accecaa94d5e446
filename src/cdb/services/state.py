"""Reading the history a service rebuilds its state from at start.

Two views of a topic:

* :meth:`History.processed` -- the entries the service's consumer group has *finished*
  (delivered and acked: at or before the group's last-delivered id and not pending). Their
  outputs are durably appended (the runtime acks only after that), so folding them gives the
  state the service had when it stopped; entries still pending or not delivered are handled
  again after the rebuild, and emit what they must (deterministic ids make a repeat a no-op).
* :meth:`History.everything` -- every entry (for topics that hold the service's own outputs,
  which are durable by definition).

Entries that cannot be decoded are skipped here: the consumer dead-letters them.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator

import redis

from cdb.domain.envelope import EventEnvelope
from cdb.errors import ContractError
from cdb.eventstore.codec import decode_fields
from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topology

log = logging.getLogger(__name__)

_PAGE = 1000
_PENDING_SCAN = 100_000

Position = tuple[int, int, int]
"""(milliseconds, sequence, partition) of an entry: merges several topics in arrival order."""
Item = tuple[Position, EventEnvelope]


def entry_position(entry_id: str, partition: int = 0) -> Position:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0), partition


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class History:
    """The streams of one namespace as a service (consumer group ``group``) rebuilds from them."""

    def __init__(self, client: redis.Redis, topology: Topology, namespace: str, group: str) -> None:
        self.client = client
        self.topology = topology
        self.keys = Keys(namespace)
        self.group = group

    def everything(self, topic: str) -> Iterator[Item]:
        spec = self.topology.topic(topic)
        parts = [self._range(topic, p, "+", frozenset()) for p in range(spec.partitions)]
        return heapq.merge(*parts, key=lambda item: item[0])

    def processed(self, topic: str) -> Iterator[Item]:
        spec = self.topology.topic(topic)
        parts: list[Iterator[Item]] = []
        for p in range(spec.partitions):
            bound = self._finished_bound(topic, p)
            if bound is None:
                continue
            last_delivered, pending = bound
            parts.append(self._range(topic, p, last_delivered, pending))
        return heapq.merge(*parts, key=lambda item: item[0])

    def _finished_bound(self, topic: str, partition: int) -> tuple[str, frozenset[str]] | None:
        key = self.keys.topic(topic, partition)
        try:
            groups = self.client.xinfo_groups(key)
        except redis.ResponseError:
            return None  # no stream yet
        for g in groups:
            if _text(g["name"]) == self.group:
                last = _text(g["last-delivered-id"])
                rows = self.client.xpending_range(key, self.group, "-", "+", _PENDING_SCAN)
                return last, frozenset(_text(r["message_id"]) for r in rows)
        return None  # the group never read: nothing processed

    def _range(self, topic: str, partition: int, end: str, skip: frozenset[str]) -> Iterator[Item]:
        key = self.keys.topic(topic, partition)
        start = "-"
        while True:
            rows = self.client.xrange(key, start, end, count=_PAGE) or []
            for raw_id, fields in rows:
                entry_id = _text(raw_id)
                if entry_id in skip:
                    continue
                try:
                    event = decode_fields(fields or {})
                except ContractError as exc:
                    log.warning("rebuild skips undecodable %s %s: %s", topic, entry_id, exc)
                    continue
                yield entry_position(entry_id, partition), event
            if len(rows) < _PAGE:
                return
            start = "(" + _text(rows[-1][0])


def merged(*sources: Iterable[Item]) -> Iterator[EventEnvelope]:
    """The events of several topics in arrival order (entry ids are Redis-time ordered)."""
    for _, event in heapq.merge(*sources, key=lambda item: item[0]):
        yield event
