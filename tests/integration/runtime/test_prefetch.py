"""What the consumer sends ahead (the next read, the records, the acks) on real Redis: an
entry recorded behind one acked in the previous cycle runs at once, a stop handles a batch read
ahead, a lost connection with a read in flight loses nothing, a failed ack is noticed."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

import pytest
import redis

from cdb.domain.envelope import EventEnvelope
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import AppendRequest, EventStore
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Delivery
from cdb.runtime.link import Link
from tests.integration.runtime.support import (
    GROUP,
    TOPIC,
    alert,
    new_aggregate,
    topology,
    wait_for,
)

BATCH = 64  # a full read of this many goes the native way, and reads ahead


class Seen:
    def __init__(self) -> None:
        self.order: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, event: EventEnvelope, _delivery: Delivery) -> None:
        with self.lock:
            self.order.append((event.stream_id, event.sequence_number))

    def firsts(self) -> dict[str, list[int]]:
        """Per aggregate, its sequence numbers in the order each was first handled."""
        out: dict[str, list[int]] = defaultdict(list)
        with self.lock:
            for agg, n in self.order:
                if n not in out[agg]:
                    out[agg].append(n)
        return out


def fill(store: EventStore, batches: int) -> list[str]:
    """``batches`` full batches; each aggregate's next entry lands in the next batch."""
    aggregates = [new_aggregate() for _ in range(BATCH)]
    for n in range(1, batches + 1):
        store.append_many([AppendRequest(a, [alert(a, n)], n - 1) for a in aggregates])
    return aggregates


def consumer_for(client: redis.Redis, namespace: str, handler: Any, **kw: Any) -> Consumer:
    topo = topology(batch_size=BATCH, claim_idle_ms=60_000)
    return Consumer(
        client, topo, namespace, topic=TOPIC, group=GROUP, handler=handler, block_ms=20, **kw
    )


@pytest.fixture
def store(redis_client: redis.Redis, namespace: str) -> EventStore:
    return EventStore(redis_client, topology(batch_size=BATCH), namespace, check_server=False)


def pending(client: redis.Redis, namespace: str) -> int:
    return int(client.xpending(Keys(namespace).topic(TOPIC, 0), GROUP)["pending"])


def test_an_entry_recorded_behind_one_acked_in_the_previous_cycle_runs_at_once(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    aggregates = fill(store, 3)
    seen = Seen()
    consumer = consumer_for(redis_client, namespace, seen)
    part = consumer._parts[0]
    prevs: list[dict[str, str]] = []
    run = consumer._run

    def run_noting_prevs(p: Any, candidates: Any, cycle: Any) -> None:
        prevs.append({e.entry_id: e.prev for e in candidates})
        # The read sent ahead is always in by the time the loop looks: the record of the next
        # batch goes out while this batch runs, before its ack.
        if p.next_read is not None:
            consumer._link.wait(p.next_read)
        run(p, candidates, cycle)

    consumer._run = run_noting_prevs  # type: ignore[method-assign,assignment]
    assert consumer.step() == BATCH  # the first read (the script's): batch 1
    assert consumer.step() == BATCH  # batch 2, natively; batch 3 read ahead and recorded
    assert part.ahead is not None
    assert part.ahead_record is not None
    assert consumer.step() == BATCH  # batch 3, all of it, in this very cycle
    # Batch 3 was recorded before batch 2's ack ran: each entry behind its aggregate's entry
    # of batch 2, which this consumer had acked in the cycle before.
    assert set(prevs[2].values()) == set(prevs[1])
    assert consumer.parked() == {}
    assert seen.firsts() == {a: [1, 2, 3] for a in aggregates}
    consumer.close()
    assert pending(redis_client, namespace) == 0
    # Every ack cleared what its entries waited behind.
    assert redis_client.hlen(Keys(namespace).waits(TOPIC, GROUP, 0)) <= 1  # the keep-field


def test_a_stop_handles_the_batch_read_ahead_and_reads_nothing_more(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    fill(store, 5)
    seen = Seen()
    consumer = consumer_for(redis_client, namespace, seen)
    assert consumer.step() == BATCH
    assert consumer.step() == BATCH  # batch 3 read ahead (maybe in hand, and batch 4 ahead)
    part = consumer._parts[0]
    assert part.next_read is not None or part.ahead is not None
    stop = threading.Event()
    stop.set()
    consumer.run(stop)  # stopped at once: the drain handles what was read ahead, only that
    handled = len(seen.order)
    assert handled in (3 * BATCH, 4 * BATCH)
    assert pending(redis_client, namespace) == 0
    assert not consumer.has_work()
    # Nothing delivered that was not handled (read off ids: Redis 6.2 has no entries-read/lag).
    stream = Keys(namespace).topic(TOPIC, 0)
    group = redis_client.xinfo_groups(stream)[0]
    delivered: Any = redis_client.xrange(stream, count=handled)
    last: bytes = delivered[-1][0]
    assert group["last-delivered-id"] == last
    after: Any = redis_client.xrange(stream, b"(" + last, "+")
    assert len(after) == 5 * BATCH - handled


def test_a_connection_lost_with_a_read_in_flight_loses_nothing(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    aggregates = fill(store, 6)
    seen = Seen()
    consumer = consumer_for(redis_client, namespace, seen)
    assert consumer.step() == BATCH
    link_id = consumer._link.call(("CLIENT", "ID"))  # the connection the reads go ahead on
    assert consumer.step() == BATCH
    part = consumer._parts[0]
    if part.next_read is None:  # its reply came in during the decode: send one more ahead
        part.full = True
        consumer._read_more(part)
    assert part.next_read is not None
    assert redis_client.client_kill_filter(_id=link_id) == 1  # reply unread: lost with it
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(
            lambda: (
                len(seen.firsts()) == BATCH
                and all(len(ns) == 6 for ns in seen.firsts().values())
                and pending(redis_client, namespace) == 0
            ),
            "every entry handled after the lost connection",
        )
    finally:
        stop.set()
        thread.join(timeout=10)
    assert consumer.stats.reconnects == 1
    assert seen.firsts() == {a: [1, 2, 3, 4, 5, 6] for a in aggregates}


def test_an_ack_that_fails_on_the_server_is_noticed_and_its_entries_run_again(
    redis_client: redis.Redis,
    namespace: str,
    store: EventStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    aggregate = new_aggregate()
    store.append(aggregate, [alert(aggregate, 1), alert(aggregate, 2)], 0)
    tails = Keys(namespace).tails(TOPIC, GROUP, 0)
    seen = Seen()

    def spoil_the_tails_once(event: EventEnvelope, delivery: Delivery) -> None:
        if not seen.order:
            # The ack script will find a string where it wants a hash: an error reply.
            redis_client.delete(tails)
            redis_client.set(tails, "not a hash")
        seen(event, delivery)

    consumer = consumer_for(redis_client, namespace, spoil_the_tails_once)
    with caplog.at_level(logging.WARNING, logger="cdb.runtime.consumer"):
        assert consumer.step() == 2  # handled; the ack is sent, its reply not read yet
        redis_client.delete(tails)
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_for(
                lambda: len(seen.order) == 4 and pending(redis_client, namespace) == 0,
                "the entries of the failed ack handled again and acked",
            )
        finally:
            stop.set()
            thread.join(timeout=10)
    assert seen.order == [(aggregate, 1), (aggregate, 2), (aggregate, 1), (aggregate, 2)]
    assert any(
        "failed" in r.getMessage() and "still pending run again" in r.getMessage()
        for r in caplog.records
    )


def test_the_link_reads_replies_in_order_and_never_pools_a_connection_with_one_unread(
    redis_client: redis.Redis, namespace: str
) -> None:
    link = Link(redis_client)
    key = f"{{{namespace}:0}}:link"
    first = link.send(("SET", key, "1"))
    failing = link.send(("HGET", key, "f"))  # wrong type: an error reply
    last = link.send(("GET", key))
    assert link.wait(last) == b"1"
    assert first.done
    assert first.value in (b"OK", True)
    assert isinstance(failing.value, redis.ResponseError)
    with pytest.raises(redis.ResponseError):
        link.call(("HGET", key, "f"))
    link.send(("GET", key))
    conn = link._conn
    link.settle()  # reads the reply, then gives the connection back
    assert link._conn is None
    assert link.outstanding == 0
    assert conn in redis_client.connection_pool._available_connections
    # A connection killed with a reply outstanding is dropped, not pooled, and replaced.
    link_id = link.call(("CLIENT", "ID"))
    pending_reply = link.send(("BLPOP", f"{key}:none", "5"))
    redis_client.client_kill_filter(_id=link_id)
    with pytest.raises(redis.ConnectionError):
        link.wait(pending_reply)
    assert link._conn is None
    assert link.outstanding == 0
    assert link.call(("GET", key)) == b"1"
    link.settle()


def test_a_trickle_is_handled_at_once_and_read_once_per_entry(
    redis_client: redis.Redis,
    namespace: str,
    store: EventStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Entries arriving one at a time (a tick a millisecond, say): after a short read the
    # consumer goes straight to its blocking wait, which reads right behind it, instead of
    # first making a read that finds nothing. No entry may wait for the wait's timeout.
    from cdb.runtime import ordering

    reads = 0
    real_read_small = ordering.read_small

    def counting_read_small(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return real_read_small(*args, **kwargs)

    monkeypatch.setattr(ordering, "read_small", counting_read_small)
    seen = Seen()
    consumer = Consumer(
        redis_client,
        topology(batch_size=BATCH, claim_idle_ms=60_000),
        namespace,
        topic=TOPIC,
        group=GROUP,
        handler=seen,
        block_ms=3_000,  # a missed entry would sit out this timeout and fail the deadline
    )
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,))
    worker.start()
    try:
        aggregate = new_aggregate()
        for n in range(1, 31):
            store.append(aggregate, [alert(aggregate, n)], n - 1)
            wait_for(lambda n=n: len(seen.order) >= n, f"entry {n}", timeout_s=2.0)  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=10)
    assert [n for _, n in seen.order] == list(range(1, 31))
    assert reads <= 2  # the first read; every later one rode behind a wait


def _lingering(client: redis.Redis, namespace: str, handler: Any, *, block_ms: int) -> Consumer:
    """A consumer lingering 1 s, the most allowed (slack for a slow host)."""
    return Consumer(
        client,
        topology(batch_size=BATCH, claim_idle_ms=60_000, linger_ms=1000),
        namespace,
        topic=TOPIC,
        group=GROUP,
        handler=handler,
        block_ms=block_ms,
    )


def test_a_lingering_consumer_handles_a_trickle_in_one_cycle(
    redis_client: redis.Redis,
    namespace: str,
    store: EventStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Entries 20 ms apart, the first right after a cycle: a consumer lingering 1 s (the most
    # allowed, as slack for a slow host) gathers the five into its next cycle (one round of
    # scripts instead of five). Without the linger each is handled on its own, as soon as it is
    # there (the trickle test above).
    seen = Seen()
    consumer = _lingering(redis_client, namespace, seen, block_ms=1_500)
    cycles: list[int] = []
    real_run = consumer._run

    def counting_run(part: Any, candidates: list[Any], cycle: Any) -> None:
        cycles.append(len(candidates))
        real_run(part, candidates, cycle)

    monkeypatch.setattr(consumer, "_run", counting_run)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,))
    worker.start()
    aggregate = new_aggregate()
    try:
        store.append(aggregate, [alert(aggregate, 1)], 0)
        wait_for(lambda: len(seen.order) == 1, "the first entry", timeout_s=5)
        for n in range(2, 7):
            stop.wait(0.02)  # the producer's pace: the trickle this test is about
            store.append(aggregate, [alert(aggregate, n)], n - 1)
        wait_for(lambda: len(seen.order) == 6, "the trickle", timeout_s=5)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert [n for _, n in seen.order] == list(range(1, 7))
    assert cycles == [1, 5]


def test_a_stop_ends_a_linger_at_once(
    redis_client: redis.Redis,
    namespace: str,
    store: EventStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Lingering 1 s after a trickle: a SIGTERM arriving then must not wait the linger out.
    seen = Seen()
    consumer = _lingering(redis_client, namespace, seen, block_ms=100)
    lingering = threading.Event()
    real_linger = consumer._linger

    def noted_linger() -> None:
        if consumer._flowing:
            lingering.set()
        real_linger()

    monkeypatch.setattr(consumer, "_linger", noted_linger)
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,))
    worker.start()
    aggregate = new_aggregate()
    try:
        store.append(aggregate, [alert(aggregate, 1)], 0)
        wait_for(lingering.is_set, "the linger after the first entry", timeout_s=5)
    finally:
        stop.set()
        stopped_at = time.monotonic()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert [n for _, n in seen.order] == [1]
    # The linger had about 1 s to go; the stop ends it, then at most one 100 ms read.
    assert time.monotonic() - stopped_at < 0.8
