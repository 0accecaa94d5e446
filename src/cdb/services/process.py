"""Running one service as its own process: lease, rebuild, one consumer thread per topic.

:func:`run_service` waits (as a standby) for the service's lease, rebuilds the state from the
streams, then runs a :class:`~cdb.runtime.consumer.Consumer` per subscribed topic on threads
until ``stop`` is set; then every consumer finishes its in-flight batch (outputs appended,
entries acked), the lease is released and 0 is returned. Losing the lease (another replica took
over after this one stalled for longer than the TTL) stops the consumers and returns
:data:`LEASE_LOST`.

The consumer name is stable per service (``<service>-active`` unless given), so a replica that
takes over after a crash adopts the dead one's pending entries at once instead of waiting for
the group's claim timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology
from cdb.runtime.consumer import Consumer
from cdb.services.base import Service
from cdb.services.feed import FeedService
from cdb.services.lease import DEFAULT_TTL_MS, Lease, LeaseKeeper
from cdb.services.state import History

log = logging.getLogger(__name__)

LEASE_LOST = 3


def active_consumer_name(service: str) -> str:
    return f"{service}-active"


@dataclass
class _Tenure:
    """A held lease. ``inner`` stops the service's threads; it is set on loss or at the end."""

    keeper: LeaseKeeper
    lost: threading.Event = field(default_factory=threading.Event)
    inner: threading.Event = field(default_factory=threading.Event)

    def end(self) -> None:
        self.inner.set()
        # A lost lease already belongs to another replica: releasing it would free theirs.
        self.keeper.stop(release=not self.lost.is_set())

    @property
    def exit_code(self) -> int:
        return LEASE_LOST if self.lost.is_set() else 0


def _take_lease(
    client: redis.Redis,
    namespace: str,
    name: str,
    stop: threading.Event,
    *,
    owner: str,
    ttl_ms: int,
) -> _Tenure | None:
    """Wait as a standby until this replica holds ``name``'s lease; None if stopped first."""
    lease = Lease(client, namespace, name, owner, ttl_ms)
    if not lease.acquire(stop, lambda holder: log.info("%s: standby (active: %s)", name, holder)):
        return None
    lost = threading.Event()
    inner = threading.Event()

    def on_lost(_: Lease) -> None:
        lost.set()
        inner.set()

    keeper = LeaseKeeper([lease], on_lost)
    keeper.start()
    return _Tenure(keeper, lost, inner)


def run_service(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    service: Service,
    stop: threading.Event,
    *,
    owner: str,
    lease_ttl_ms: int = DEFAULT_TTL_MS,
    consumer_name: str | None = None,
    on_active: Callable[[int], None] | None = None,
) -> int:
    """Run ``service`` until ``stop``; 0 after a graceful stop, LEASE_LOST if pre-empted."""
    tenure = _take_lease(client, namespace, service.name, stop, owner=owner, ttl_ms=lease_ttl_ms)
    if tenure is None:
        return 0
    lost, inner = tenure.lost, tenure.inner
    try:
        folded = service.rebuild(History(client, topology, namespace, service.name))
        log.info("%s: active; state rebuilt from %d events", service.name, folded)
        if on_active is not None:
            on_active(folded)
        store = EventStore(client, topology, namespace)
        name = consumer_name or active_consumer_name(service.name)
        consumers = [
            Consumer(
                client,
                topology,
                namespace,
                topic=sub.topic,
                group=service.name,
                handler=sub.handler,
                store=store,
                consumer_name=name,
            )
            for sub in service.subscriptions()
        ]
        for consumer in consumers:
            consumer.start()
        service.use_threads()
        threads = [
            threading.Thread(
                target=consumer.run, args=(inner,), name=f"{service.name}@{consumer.topic.name}"
            )
            for consumer in consumers
        ]
        for thread in threads:
            thread.start()
        while not stop.is_set() and not lost.is_set():
            stop.wait(0.2)
        inner.set()
        for thread in threads:
            thread.join()
    finally:
        tenure.end()
    return tenure.exit_code


def run_feed(
    client: redis.Redis,
    feed: FeedService,
    namespace: str,
    stop: threading.Event,
    *,
    owner: str,
    speed: float | None = None,
    lease_ttl_ms: int = DEFAULT_TTL_MS,
    exit_at_end: bool = False,
) -> int:
    """Publish the feed's ticks (resuming after what is on the topic) under the feed's lease."""
    tenure = _take_lease(client, namespace, feed.name, stop, owner=owner, ttl_ms=lease_ttl_ms)
    if tenure is None:
        return 0
    lost, inner = tenure.lost, tenure.inner
    try:
        already = feed.resume()
        log.info("feed: active; %d of %d ticks already published", already, feed.total)
        relay = threading.Thread(target=_relay, args=(stop, inner), daemon=True)
        relay.start()
        published = feed.run(inner, speed=speed)
        log.info("feed: published %d ticks (%d of %d)", published, feed.position, feed.total)
        if not exit_at_end:
            while not stop.is_set() and not lost.is_set():
                stop.wait(0.2)
    finally:
        tenure.end()
    return tenure.exit_code


def _relay(source: threading.Event, target: threading.Event) -> None:
    while not target.is_set():
        if source.wait(0.2):
            target.set()
