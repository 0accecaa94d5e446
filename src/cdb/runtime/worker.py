"""A process that runs one consumer until SIGTERM/SIGINT: what ``cdb run`` builds on.

``run_worker`` connects, wires the event store (for handlers' outputs), tracing and signals,
and returns the process exit code (0 after a graceful stop).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology
from cdb.runtime.consumer import Consumer, ConsumerStats
from cdb.runtime.handler import Handler
from cdb.runtime.signals import GracefulStop
from cdb.runtime.tracing import configure_from_env

log = logging.getLogger(__name__)


def run_worker(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    *,
    topic: str,
    group: str,
    handler: Handler,
    store: EventStore | None = None,
    consumer_name: str | None = None,
    install_signals: bool = True,
    stop: threading.Event | None = None,
    grace_s: float = 10.0,
    on_started: Callable[[Consumer], None] | None = None,
) -> int:
    """Run until stopped (SIGTERM/SIGINT, or ``stop`` set); returns 0 after a graceful stop.

    Outputs returned in :class:`~cdb.runtime.handler.Ack` are appended through ``store``
    (default: a store on ``client``) before the entry is acked.
    """
    configure_from_env(service_name=f"cdb-{group}")
    if store is None:
        store = EventStore(client, topology, namespace)
    graceful = GracefulStop(grace_s, event=stop)
    if install_signals:
        graceful.install()
    consumer = Consumer(
        client,
        topology,
        namespace,
        topic=topic,
        group=group,
        handler=handler,
        store=store,
        consumer_name=consumer_name,
    )
    consumer.start()
    if on_started is not None:
        on_started(consumer)
    stats: ConsumerStats = consumer.run(graceful.event)
    graceful.cancel_timer()
    log.info(
        "consumer %s stopped: %d handled, %d retried, %d dead-lettered, %d claimed",
        consumer.name,
        stats.handled,
        stats.retried,
        stats.dead_lettered,
        stats.claimed,
    )
    return 0
