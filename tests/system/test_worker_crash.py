"""kill -9 of a worker holding pending entries: another worker claims and finishes them."""

from __future__ import annotations

import os
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

POLICY = {"claim_idle_ms": 400, "batch_size": 20, "backoff_base_ms": 20}


def consumer_pending(client: redis.Redis, stream: str, name: str) -> int:
    try:
        consumers = client.xinfo_consumers(stream, GROUP)
    except redis.ResponseError:  # the group does not exist yet
        return 0
    for c in consumers:
        if decoded(c["name"]) == name:
            return int(c["pending"])
    return 0


def test_a_killed_workers_entries_are_claimed_and_handled_once_in_effect(
    redis_url: str, redis_client: redis.Redis, namespace: str, tmp_path: Path
) -> None:
    topo = topology(**POLICY)
    store = EventStore(redis_client, topo, namespace, check_server=False)
    aggregates = [new_aggregate() for _ in range(10)]
    per_aggregate = 10
    for n in range(1, per_aggregate + 1):
        store.append_many([AppendRequest(a, [alert(a, n)], n - 1) for a in aggregates])
    stream = Keys(namespace).topic(TOPIC, 0)
    base = {"redis_url": redis_url, "namespace": namespace, "policy": POLICY}
    victim = start_worker({**base, "name": "victim", "delay_s": 0.05}, tmp_path / "victim.log")
    try:
        wait_for(
            lambda: (
                consumer_pending(redis_client, stream, "victim") > 0
                and redis_client.hlen(calls_key(namespace)) > 0
            ),
            "the victim to hold pending entries mid-batch",
        )
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    held = consumer_pending(redis_client, stream, "victim")
    assert held > 0
    rescuer = start_worker({**base, "name": "rescuer"}, tmp_path / "rescuer.log")
    try:
        total = len(aggregates) * per_aggregate
        wait_for(
            lambda: (
                sum(store.version(output_stream(a)) for a in aggregates) >= total
                and redis_client.xpending(stream, GROUP)["pending"] == 0
            ),
            "every entry handled and acked",
            timeout_s=30,
        )
    finally:
        rescuer.send_signal(signal.SIGTERM)
        assert rescuer.wait(timeout=15) == 0
    for a in aggregates:
        outputs = store.read_aggregate(output_stream(a))
        # Effects are not doubled although some inputs ran twice, and stay in order.
        assert [e.payload.context["n"] for e in outputs] == [  # type: ignore[attr-defined]
            str(n) for n in range(1, per_aggregate + 1)
        ]
    calls = {decoded(k): int(v) for k, v in redis_client.hgetall(calls_key(namespace)).items()}
    assert len(calls) == len(aggregates) * per_aggregate
    assert sum(calls.values()) > len(calls)  # the victim's unacked work was redone
    log = (tmp_path / "rescuer.log").read_text()
    assert "claimed" in log
