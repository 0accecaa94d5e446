"""Redis restarted mid-run (AOF on): the worker reconnects and finishes; nothing is lost."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis

from cdb.embedded.redis_server import EmbeddedRedis
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import AppendRequest, EventStore
from tests.integration.runtime.support import GROUP, TOPIC, alert, new_aggregate, topology, wait_for
from tests.system.runtime_worker import output_stream
from tests.system.support import calls_key, start_worker

# A handler that touches Redis fails while it is down; plenty of attempts keep that a retry.
POLICY = {"claim_idle_ms": 1000, "batch_size": 10, "max_deliveries": 50, "backoff_cap_ms": 500}


# Small batches go through the read script; full batches of 64 are read natively, the next
# one read ahead while the one in hand is handled: the outage catches reads, records and acks
# in flight.
@pytest.mark.parametrize("batch_size", [10, 64])
def test_the_worker_survives_a_redis_restart_and_loses_nothing(
    tmp_path: Path, batch_size: int
) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.ensure_running()
    client = redis.Redis.from_url(url)
    try:
        namespace = "restart"
        policy = {**POLICY, "batch_size": batch_size}
        topo = topology(**policy)
        store = EventStore(client, topo, namespace)
        aggregates = [new_aggregate() for _ in range(batch_size)]
        per_aggregate = 10

        def append(numbers: range) -> None:
            for n in numbers:
                store.append_many([AppendRequest(a, [alert(a, n)], n - 1) for a in aggregates])

        append(range(1, 6))
        log = tmp_path / "worker.log"
        worker = start_worker(
            {
                "redis_url": url,
                "namespace": namespace,
                "policy": policy,
                "name": "w",
                "delay_s": 0.01,
            },
            log,
        )
        try:
            wait_for(
                lambda: client.hlen(calls_key(namespace)) >= batch_size + 10,
                "the worker under way",
            )
            server.stop()
            # Keep it down until the worker has noticed, so the outage is real to it.
            wait_for(lambda: "lost Redis" in log.read_text(), "the worker to notice the outage")
            assert server.ensure_running() == url  # same port and password after the restart
            append(range(6, per_aggregate + 1))
            stream = Keys(namespace).topic(TOPIC, 0)
            total = len(aggregates) * per_aggregate
            wait_for(
                lambda: (
                    sum(store.version(output_stream(a)) for a in aggregates) >= total
                    and client.xpending(stream, GROUP)["pending"] == 0
                ),
                "every entry handled after the restart",
                timeout_s=40,
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=15) == 0
        for a in aggregates:
            assert [e.sequence_number for e in store.read_aggregate(a)] == list(
                range(1, per_aggregate + 1)
            )
            outputs = store.read_aggregate(output_stream(a))
            assert [e.payload.context["n"] for e in outputs] == [  # type: ignore[attr-defined]
                str(n) for n in range(1, per_aggregate + 1)
            ]
        text = log.read_text()
        assert text.count("lost Redis") == 1, text  # one line per outage, not one per retry
        assert text.count("reconnected after") == 1, text
    finally:
        client.close()
        server.stop()
