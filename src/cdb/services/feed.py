"""The feed service: publishes market ticks on ``market_data``, resumably.

The ticks come from a :class:`~cdb.domain.services.marketdata.MarketFeed` (the recording that
ships with the repository; a live exchange adapter would implement the same interface). They are
published as topic-only events (what :meth:`EventStore.publish` writes), as fast as possible
(pipelined in batches) or paced at a multiple of real time (one by one). A restarted feed does
not publish again what is already on the topic: it finds the last tick stored (on any
partition) and resumes after it. Pacing sleeps on the stop event, so SIGTERM interrupts a long
wait at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import redis

from cdb.domain.contracts import MarketDataV1
from cdb.domain.services.events import Emit
from cdb.domain.services.marketdata import paced, tick_event
from cdb.eventstore.codec import decode_fields
from cdb.eventstore.store import EventStore

log = logging.getLogger(__name__)

NAME = "feed"
TOPIC = "market_data"
BATCH = 200
"""Ticks per pipeline when publishing as fast as possible."""


class FeedService:
    """Publishes ``ticks`` (in order) to the store's ``market_data`` topic."""

    name = NAME

    def __init__(
        self, client: redis.Redis, store: EventStore, ticks: Sequence[MarketDataV1]
    ) -> None:
        self.client = client
        self.store = store
        self.events: list[Emit] = [tick_event(md) for md in ticks]
        self._index = {e.event.event_id: i for i, e in enumerate(self.events)}
        self.position = 0
        """Index of the next tick to publish."""

    @property
    def total(self) -> int:
        return len(self.events)

    @property
    def done(self) -> bool:
        return self.position >= len(self.events)

    def resume(self) -> int:
        """Skip the ticks already on the topic; returns how many were already there."""
        spec = self.store.topology.topic(TOPIC)
        last = -1
        for partition in range(spec.partitions):
            tail = self.client.xrevrange(self.store.topic_key(TOPIC, partition), count=1)
            if tail:
                event = decode_fields(tail[0][1] or {})
                last = max(last, self._index.get(event.event_id, -1))
        self.position = last + 1
        return self.position

    def publish_next(self) -> Emit:
        """Publish the next tick; returns it."""
        item = self.events[self.position]
        self.store.publish(TOPIC, item.stream_id, (item.event,))
        self.position += 1
        return item

    def publish_batch(self, size: int) -> int:
        """Publish up to ``size`` next ticks in one pipeline, in order; returns how many.

        The same entries as :meth:`publish_next` one by one (topic-only, sequence number 0),
        in one round trip. A failure part-way leaves a prefix published: :meth:`resume`
        continues after it.
        """
        items = self.events[self.position : self.position + size]
        if not items:
            return 0
        self.store.publish_many(TOPIC, [(item.stream_id, item.event) for item in items])
        self.position += len(items)
        return len(items)

    def run(
        self,
        stop: threading.Event,
        *,
        speed: float | None = None,
        on_tick: Callable[[Emit], None] | None = None,
    ) -> int:
        """Publish until the end (or ``stop``); ``speed``: x real time, None = at once."""
        published = 0
        start = self.position
        if speed is None and on_tick is None:
            while not stop.is_set() and not self.done:
                published += self.publish_batch(BATCH)
            return published
        ticks = [market_data(e) for e in self.events[start:]]
        for wait, _ in paced(ticks, speed):
            if stop.is_set() or (wait > 0 and stop.wait(wait)):
                break
            item = self.publish_next()
            published += 1
            if on_tick is not None:
                on_tick(item)
        return published


def market_data(item: Emit) -> MarketDataV1:
    """The tick an emitted MARKET_DATA_RECEIVED carries."""
    payload = item.event.payload
    assert isinstance(payload, MarketDataV1)
    return payload
