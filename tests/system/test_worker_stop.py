"""SIGTERM: stop reading, finish the entries in flight, ack them, exit 0."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from cdb.eventstore.keys import Keys
from cdb.eventstore.store import AppendRequest, EventStore
from tests.integration.runtime.support import (
    GROUP,
    TOPIC,
    alert,
    decoded,
    new_aggregate,
    topology,
    wait_for,
)
from tests.system.runtime_worker import output_stream
from tests.system.support import calls_key, start_worker

POLICY = {"batch_size": 10}


def test_sigterm_finishes_and_acks_the_batch_in_flight_then_exits_0(
    redis_url: str, redis_client: redis.Redis, namespace: str, tmp_path: Path
) -> None:
    topo = topology(**POLICY)
    store = EventStore(redis_client, topo, namespace, check_server=False)
    aggregates = [new_aggregate() for _ in range(40)]
    store.append_many([AppendRequest(a, [alert(a, 1)], 0) for a in aggregates])
    counter = calls_key(namespace)
    worker = start_worker(
        {
            "redis_url": redis_url,
            "namespace": namespace,
            "policy": POLICY,
            "name": "w",
            "delay_s": 0.05,
        },
        tmp_path / "worker.log",
    )
    wait_for(lambda: redis_client.hlen(counter) >= 2, "the worker to be mid-batch")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    stream = Keys(namespace).topic(TOPIC, 0)
    assert redis_client.xpending(stream, GROUP)["pending"] == 0  # nothing left half-done
    handled = {decoded(k) for k in redis_client.hkeys(counter)}
    assert len(handled) == 10  # the whole batch in flight, and no further batch
    done = [a for a in aggregates if store.version(output_stream(a)) == 1]
    assert len(done) == len(handled)  # every handled entry's output is durably there
