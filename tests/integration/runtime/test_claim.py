"""Claiming from silent consumers, sparing slow live ones, clearing deleted entries."""

from __future__ import annotations

import threading
import time

import redis

from cdb.domain.envelope import EventEnvelope
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import EventStore
from cdb.runtime import claim, inspect, ordering
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Delivery
from cdb.runtime.ordering import PartitionKeys
from tests.integration.runtime.support import (
    GROUP,
    TOPIC,
    alert,
    decoded,
    new_aggregate,
    topology,
    wait_for,
)


def pk_of(namespace: str) -> PartitionKeys:
    return PartitionKeys.of(Keys(namespace), TOPIC, GROUP, 0)


def test_entries_of_a_silent_consumer_are_claimed_and_handled(
    redis_client: redis.Redis, namespace: str
) -> None:
    topo = topology(claim_idle_ms=1000)
    store = EventStore(redis_client, topo, namespace, check_server=False)
    aggs = [new_aggregate() for _ in range(4)]
    for a in aggs:
        store.append(a, [alert(a, 1), alert(a, 2)], 0)
    pk = pk_of(namespace)
    redis_client.xgroup_create(pk.stream, GROUP, id="0")
    # A consumer that reads and then dies: never acks, never heartbeats.
    taken = ordering.read(redis_client, pk, "dead-one", 100).rows
    assert len(taken) == 8
    done: list[tuple[str, int]] = []

    def handler(event: EventEnvelope, delivery: Delivery) -> None:
        done.append((event.stream_id, event.sequence_number))

    live = Consumer(redis_client, topo, namespace, topic=TOPIC, group=GROUP, handler=handler)
    stop = threading.Event()
    thread = threading.Thread(target=live.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(done) == 8, "the dead consumer's 8 entries handled")
        wait_for(
            lambda: (
                "dead-one"
                not in {decoded(c["name"]) for c in redis_client.xinfo_consumers(pk.stream, GROUP)}
            ),
            "the gone consumer removed",
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert live.stats.claimed == 8
    for a in aggs:
        assert [n for s, n in done if s == a] == [1, 2]
    assert redis_client.xpending(pk.stream, GROUP)["pending"] == 0


def test_a_slow_but_alive_consumer_is_not_robbed(redis_client: redis.Redis, namespace: str) -> None:
    # Beats every 250 ms against a 1 s timeout: a loaded host's stalls stay inside the slack.
    topo = topology(claim_idle_ms=1000, batch_size=1)
    store = EventStore(redis_client, topo, namespace, check_server=False)
    agg = new_aggregate()
    store.append(agg, [alert(agg, 1)], 0)
    calls: list[str] = []
    release = threading.Event()

    def slow(event: EventEnvelope, delivery: Delivery) -> None:
        calls.append(delivery.consumer)
        release.wait(10)

    def fast(event: EventEnvelope, delivery: Delivery) -> None:
        calls.append(delivery.consumer)

    slow_c = Consumer(
        redis_client, topo, namespace, topic=TOPIC, group=GROUP, handler=slow, consumer_name="slow"
    )
    fast_c = Consumer(
        redis_client, topo, namespace, topic=TOPIC, group=GROUP, handler=fast, consumer_name="fast"
    )
    stop = threading.Event()
    t_slow = threading.Thread(target=slow_c.run, args=(stop,), daemon=True)
    t_slow.start()
    wait_for(lambda: calls == ["slow"], "the slow consumer to start on the entry")
    t_fast = threading.Thread(target=fast_c.run, args=(stop,), daemon=True)
    t_fast.start()
    try:
        # Several claim timeouts pass while the slow handler runs; its heartbeat keeps it alive.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert fast_c.stats.claimed == 0
            time.sleep(0.05)
        release.set()
        wait_for(
            lambda: redis_client.xpending(pk_of(namespace).stream, GROUP)["pending"] == 0,
            "the slow consumer to finish",
        )
    finally:
        release.set()
        stop.set()
        t_slow.join(timeout=10)
        t_fast.join(timeout=10)
    assert calls == ["slow"]


def test_the_claim_walk_covers_the_whole_pending_list_and_clears_deleted_entries(
    redis_client: redis.Redis, namespace: str
) -> None:
    topo = topology(claim_idle_ms=0)
    store = EventStore(redis_client, topo, namespace, check_server=False)
    aggs = [new_aggregate() for _ in range(25)]
    for a in aggs:
        store.append(a, [alert(a, 1)], 0)
    pk = pk_of(namespace)
    redis_client.xgroup_create(pk.stream, GROUP, id="0")
    taken = ordering.read(redis_client, pk, "dead-one", 100).rows
    deleted = [decoded(taken[3][0]), decoded(taken[17][0])]
    redis_client.xdel(pk.stream, *deleted)
    result = claim.autoclaim(redis_client, pk, "rescuer", 0, page=5)
    assert len(result.claimed) == 23  # walked past the first page of 5
    assert sorted(result.deleted) == sorted(deleted)
    pending = redis_client.xpending_range(pk.stream, GROUP, "-", "+", 100)
    assert {decoded(p["consumer"]) for p in pending} == {"rescuer"}
    assert len(pending) == 23


def test_operator_claim_moves_stuck_entries_to_a_named_consumer(
    redis_client: redis.Redis, namespace: str
) -> None:
    topo = topology()
    store = EventStore(redis_client, topo, namespace, check_server=False)
    agg = new_aggregate()
    store.append(agg, [alert(agg, 1), alert(agg, 2)], 0)
    pk = pk_of(namespace)
    redis_client.xgroup_create(pk.stream, GROUP, id="0")
    ordering.read(redis_client, pk, "dead-one", 100)
    wait_for(
        lambda: len(inspect.stuck_entries(redis_client, topo, namespace, 50, topic=TOPIC)) == 2,
        "two entries idle 50 ms",
    )
    (stuck, _) = inspect.stuck_entries(redis_client, topo, namespace, 50, topic=TOPIC)
    assert stuck.aggregate == agg
    assert stuck.deliveries == 1
    assert stuck.consumer == "dead-one"
    summary = inspect.claim_stuck(redis_client, topo, namespace, 50, to="ops", topic=TOPIC)
    assert len(summary.claimed) == 2
    # Idle 0 lists every pending entry: both now belong to ops, delivered once more. (Not
    # "nothing stuck at 50 ms": a slow host can let 50 ms pass again before the check.)
    after = inspect.stuck_entries(redis_client, topo, namespace, 0, topic=TOPIC)
    assert sorted((e.entry_id, e.consumer, e.deliveries) for e in after) == sorted(
        (e, "ops", 2) for e in summary.claimed
    )
    (info,) = inspect.pending_info(redis_client, topo, namespace, TOPIC, GROUP)
    assert {c.name: c.pending for c in info.consumers}["ops"] == 2
