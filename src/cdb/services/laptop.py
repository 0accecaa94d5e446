"""Every service in one process, in causal order: ``cdb run all`` and ``cdb demo``.

A single-threaded scheduler publishes one tick, then drains every consumer group until all are
idle, then publishes the next. Draining goes in passes over the consumers in :data:`PASS_ORDER`
(each consumer stepped while its topic has new entries); outputs appended during a pass are
read by the consumers after their producer in the same pass, and by those before it in the next.

That order makes each service see its inputs in the same order as the in-memory reference run
(:class:`cdb.domain.services.sim.Pipeline`, breadth first), so the streams hold the same events
with the same ids and payloads:

* a tick goes to execution, portfolio, risk, then signal, as in the reference;
* risk decides a tick's signal before any order of that tick has a result (``risk@signals``
  runs before ``execution@orders``), then sees the results in the order execution produced them;
* execution and portfolio see the tick before anything it caused.

The groups on risk's own outputs only acknowledge (see :mod:`cdb.services.risk`). The consumers
are the runtime's, so retries, dead letters, pending lists and group lag behave as in the
multi-process deployment; only the scheduling is deterministic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from cdb.domain.envelope import EventEnvelope
from cdb.domain.event_types import EventType
from cdb.domain.services.marketdata import paced
from cdb.errors import LeaseHeldError, TopologyError
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Ack, Delivery, Handler, Outcome
from cdb.services.base import Service
from cdb.services.feed import TOPIC as MARKET_TOPIC
from cdb.services.feed import FeedService, market_data
from cdb.services.lease import DEFAULT_TTL_MS, Lease, LeaseKeeper
from cdb.services.process import active_consumer_name
from cdb.services.state import History

log = logging.getLogger(__name__)

PASS_ORDER: tuple[tuple[str, str], ...] = (
    ("execution", "market_data"),
    ("portfolio", "market_data"),
    ("risk", "market_data"),
    ("signal", "market_data"),
    ("risk", "signals"),
    ("execution", "alerts"),
    ("execution", "orders"),
    ("risk", "order_results"),
    ("portfolio", "order_results"),
    ("risk", "orders"),
    ("risk", "positions"),
    ("risk", "portfolio_snapshots"),
)
"""(service, topic) in the order one drain pass steps them."""

_RETRY_WAIT_S = 0.005


@dataclass
class _Slot:
    service: str
    topic: str
    consumer: Consumer
    dirty: bool = True


@dataclass
class RunStats:
    ticks: int = 0
    """Ticks published by this run."""
    resumed_at: int = 0
    """Ticks that were already on the topic when the run started."""
    rebuilt: dict[str, int] = field(default_factory=dict)
    """Events folded per service at start."""


class Laptop:
    """The feed and every consuming service of one namespace, scheduled in one thread."""

    def __init__(
        self,
        client: redis.Redis,
        topology: Topology,
        namespace: str,
        services: Sequence[Service],
        feed: FeedService,
        *,
        owner: str,
        lease_ttl_ms: int = DEFAULT_TTL_MS,
    ) -> None:
        self.client = client
        self.topology = topology
        self.namespace = namespace
        self.services = {s.name: s for s in services}
        self.feed = feed
        self.owner = owner
        self.lease_ttl_ms = lease_ttl_ms
        self.stats = RunStats()
        self._topic_of: dict[EventType, str] = {
            et: t.name for t in topology.topics.values() for et in t.events
        }
        self._slots: list[_Slot] = []
        self._by_topic: dict[str, list[_Slot]] = {}
        self._keeper: LeaseKeeper | None = None
        self._lost = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Take every service's lease, rebuild each state, resume the feed, create the groups."""
        names = [self.feed.name, *self.services]
        leases = [
            Lease(self.client, self.namespace, n, self.owner, self.lease_ttl_ms) for n in names
        ]
        taken: list[Lease] = []
        for lease in leases:
            if not lease.try_acquire():
                for mine in taken:
                    mine.release()
                raise LeaseHeldError(lease.service, lease.holder())
            taken.append(lease)
        self._keeper = LeaseKeeper(leases, lambda _: self._lost.set())
        self._keeper.start()
        for svc in self.services.values():
            history = History(self.client, self.topology, self.namespace, svc.name)
            self.stats.rebuilt[svc.name] = svc.rebuild(history)
        self.stats.resumed_at = self.feed.resume()
        store = EventStore(self.client, self.topology, self.namespace)
        wanted = {
            (s.name, sub.topic): sub.handler
            for s in self.services.values()
            for sub in s.subscriptions()
        }
        unknown = set(wanted) - set(PASS_ORDER)
        if unknown:
            raise TopologyError(f"no place in the laptop schedule for {sorted(unknown)}")
        for service, topic in PASS_ORDER:
            handler = wanted.get((service, topic))
            if handler is None:
                continue
            consumer = Consumer(
                self.client,
                self.topology,
                self.namespace,
                topic=topic,
                group=service,
                handler=self._tracking(handler),
                store=store,
                consumer_name=active_consumer_name(service),
                block_ms=0,
            )
            consumer.start()
            slot = _Slot(service, topic, consumer)
            self._slots.append(slot)
            self._by_topic.setdefault(topic, []).append(slot)

    def close(self) -> None:
        for slot in self._slots:
            slot.consumer.close()
        if self._keeper is not None:
            self._keeper.stop(release=not self._lost.is_set())
            self._keeper = None

    # -- running --------------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        *,
        speed: float | None = None,
        on_tick: Callable[[int], None] | None = None,
        every: int = 250,
        checkpoint: Callable[[], None] | None = None,
    ) -> RunStats:
        """Publish every remaining tick, draining after each; ``checkpoint`` every ``every``.

        ``on_tick(position)`` is called after each tick's cascade is done. Returns when the
        recording is exhausted or ``stop`` is set (after finishing the tick in hand).
        """
        self.drain(stop)  # whatever a previous run left pending
        start = self.feed.position
        ticks = [market_data(e) for e in self.feed.events[start:]]
        for wait, _ in paced(ticks, speed):
            if stop.is_set() or self._lost.is_set() or (wait > 0 and stop.wait(wait)):
                break
            self.feed.publish_next()
            self.stats.ticks += 1
            self._mark(MARKET_TOPIC)
            self.drain(stop)
            if on_tick is not None:
                on_tick(self.feed.position)
            if checkpoint is not None and self.stats.ticks % every == 0:
                checkpoint()
        if checkpoint is not None:
            checkpoint()
        return self.stats

    def drain(self, stop: threading.Event) -> None:
        """Step consumers in pass order until no group has anything left to do."""
        while True:
            progressed = False
            for slot in self._slots:
                consumer = slot.consumer
                while slot.dirty or consumer.has_work():
                    slot.dirty = False
                    finished = consumer.step()
                    if finished:
                        progressed = True
                    if finished >= consumer.policy.batch_size:
                        slot.dirty = True
                    elif finished == 0:
                        break
            if not any(s.dirty or s.consumer.has_work() for s in self._slots):
                return
            if not progressed and stop.wait(_RETRY_WAIT_S):
                return  # waiting on a retry backoff, and asked to stop

    def _mark(self, topic: str) -> None:
        for slot in self._by_topic.get(topic, ()):
            slot.dirty = True

    def _tracking(self, handler: Handler) -> Handler:
        def handle(event: EventEnvelope, delivery: Delivery, /) -> Outcome | None:
            outcome = handler(event, delivery)
            if isinstance(outcome, Ack):
                for request in outcome.outputs:
                    for out in request.events:
                        self._mark(self._topic_of[out.event_type])
            return outcome

        return handle
