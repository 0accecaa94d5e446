"""Per-aggregate order with several consumers, failures, dead letters and requeues."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from typing import Any

import redis

from cdb.domain.envelope import EventEnvelope
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import AppendRequest, EventStore
from cdb.runtime import dlq, inspect, ordering
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Delivery, Handler, Reject
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


class OrderedRecorder:
    """Fails at random; records successful handlings per aggregate, in the order they happen."""

    def __init__(self, fail_rate: float, seed: int) -> None:
        self.done: dict[str, list[int]] = defaultdict(list)
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.fail_rate = fail_rate

    def __call__(self, event: EventEnvelope, _delivery: Delivery) -> None:
        with self.lock:
            if self.rng.random() < self.fail_rate:
                raise RuntimeError("random failure")
            self.done[event.stream_id].append(event.sequence_number)

    def total(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.done.values())


def interleaved(store: EventStore, aggregates: list[str], per_aggregate: int) -> None:
    for n in range(1, per_aggregate + 1):
        store.append_many([AppendRequest(a, [alert(a, n)], n - 1) for a in aggregates])


def run_consumers(consumers: list[Consumer], until: object, what: str) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in consumers]
    for t in threads:
        t.start()
    try:
        wait_for(until, what, timeout_s=30)  # type: ignore[arg-type]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


def test_each_aggregate_is_handled_in_sequence_order_by_several_failing_consumers(
    redis_client: redis.Redis, namespace: str
) -> None:
    topo = topology(max_deliveries=50, backoff_base_ms=5, backoff_cap_ms=20, batch_size=7)
    store = EventStore(redis_client, topo, namespace, check_server=False)
    aggregates = [new_aggregate() for _ in range(30)]
    per_aggregate = 8
    interleaved(store, aggregates, per_aggregate)
    recorder = OrderedRecorder(fail_rate=0.2, seed=7)
    consumers = [
        Consumer(
            redis_client,
            topo,
            namespace,
            topic=TOPIC,
            group=GROUP,
            handler=recorder,
            consumer_name=f"w{i}",
        )
        for i in range(3)
    ]
    total = len(aggregates) * per_aggregate
    run_consumers(consumers, lambda: recorder.total() >= total, f"{total} entries handled")
    for agg in aggregates:
        assert recorder.done[agg] == list(range(1, per_aggregate + 1)), agg
    assert sum(c.stats.retried for c in consumers) > 0  # failures did happen
    assert sum(c.stats.handled for c in consumers) == total
    assert sum(1 for c in consumers if c.stats.handled) >= 2  # the work was shared


def test_later_entries_wait_behind_a_dead_letter_until_it_is_requeued(
    redis_client: redis.Redis, namespace: str
) -> None:
    topo = topology()
    store = EventStore(redis_client, topo, namespace, check_server=False)
    stuck, free = new_aggregate(), new_aggregate()
    interleaved(store, [stuck, free], 4)
    rejected_once: set[int] = set()
    done: dict[str, list[int]] = defaultdict(list)

    def handler(event: EventEnvelope, delivery: Delivery) -> Reject | None:
        if event.stream_id == stuck and event.sequence_number == 2 and not rejected_once:
            rejected_once.add(2)
            return Reject("needs an operator")
        done[event.stream_id].append(event.sequence_number)
        return None

    consumer = Consumer(redis_client, topo, namespace, topic=TOPIC, group=GROUP, handler=handler)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: done[free] == [1, 2, 3, 4], "the other aggregate to flow")
        wait_for(lambda: len(consumer.parked()) == 2, "entries 3 and 4 parked")
        assert done[stuck] == [1]
        (pending,) = inspect.pending_info(redis_client, topo, namespace, TOPIC, GROUP)
        (parked,) = pending.parked
        assert parked.aggregate == stuck
        assert parked.held_as == "dead-lettered"
        assert parked.waiting == 2

        flt = dlq.DlqFilter(topic=TOPIC, group=GROUP, aggregate=stuck)
        preview = dlq.requeue(redis_client, topo, namespace, flt, dry_run=True)
        assert preview.count == 1
        assert not preview.moved
        result = dlq.requeue(redis_client, topo, namespace, flt)
        assert result.count == 1
        wait_for(lambda: done[stuck] == [1, 2, 3, 4], "the requeued entry, then 3 and 4")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert dlq.list_dead_letters(redis_client, topo, namespace, dlq.DlqFilter()) == []
    audit = dlq.audit_log(redis_client, namespace)
    assert audit[0]["action"] == "dlq.requeue"
    assert audit[0]["count"] == "1"
    assert inspect.pending_info(redis_client, topo, namespace, TOPIC, GROUP)[0].parked == []


def test_a_requeued_entry_is_not_redelivered_to_other_groups(
    redis_client: redis.Redis, namespace: str
) -> None:
    topo = topology()
    store = EventStore(redis_client, topo, namespace, check_server=False)
    agg = new_aggregate()
    store.append(agg, [alert(agg, 1)], 0)
    seen: dict[str, list[str]] = defaultdict(list)
    reject_first = [True]

    def for_group(name: str) -> Handler:
        def handler(event: EventEnvelope, delivery: Delivery) -> Reject | None:
            if name == GROUP and reject_first[0]:
                reject_first[0] = False
                return Reject("once")
            seen[name].append(str(event.event_id))
            return None

        return handler

    g = Consumer(redis_client, topo, namespace, topic=TOPIC, group=GROUP, handler=for_group(GROUP))
    other = Consumer(
        redis_client, topo, namespace, topic=TOPIC, group="other", handler=for_group("other")
    )
    for _ in range(3):
        g.step()
        other.step()
    assert len(dlq.list_dead_letters(redis_client, topo, namespace, dlq.DlqFilter())) == 1
    dlq.requeue(redis_client, topo, namespace, dlq.DlqFilter(group=GROUP))
    for _ in range(3):
        g.step()
        other.step()
    event_id = str(alert(agg, 1).event_id)
    assert seen[GROUP] == [event_id]  # same event id after the requeue
    assert seen["other"] == [event_id]  # once: the requeue was for group g only
    stream = Keys(namespace).topic(TOPIC, 0)
    assert redis_client.xpending(stream, "other")["pending"] == 0
    g.close()
    other.close()


def test_a_reader_dying_between_read_and_record_cannot_let_later_entries_jump_ahead(
    redis_client: redis.Redis, namespace: str
) -> None:
    topo = topology(claim_idle_ms=1000)
    store = EventStore(redis_client, topo, namespace, check_server=False)
    aggregates = [new_aggregate() for _ in range(3)]
    interleaved(store, aggregates, 1)
    pk = PartitionKeys.of(Keys(namespace), TOPIC, GROUP, 0)
    redis_client.xgroup_create(pk.stream, GROUP, id="0")
    # A reader reads natively (a big batch's way) and dies before recording.
    redis_client.xreadgroup(GROUP, "dead-reader", {pk.stream: ">"}, count=10)
    interleaved_from(store, aggregates, 2, 3)
    recorder = OrderedRecorder(fail_rate=0.0, seed=1)
    consumer = Consumer(
        redis_client,
        topo,
        namespace,
        topic=TOPIC,
        group=GROUP,
        handler=recorder,
        consumer_name="live",
        block_ms=20,
    )
    run_consumers([consumer], lambda: recorder.total() == 9, "all 9 entries handled")
    for agg in aggregates:
        assert recorder.done[agg] == [1, 2, 3]
    assert consumer.stats.claimed == 3  # the dead reader's entries, taken over in order


def test_two_readers_recording_out_of_order_keep_each_aggregate_in_order(
    redis_client: redis.Redis, namespace: str
) -> None:
    pk = PartitionKeys.of(Keys(namespace), TOPIC, GROUP, 0)
    redis_client.xgroup_create(pk.stream, GROUP, id="0", mkstream=True)
    ids = [decoded(redis_client.xadd(pk.stream, {"s": s})) for s in ["x", "y", "x", "y", "x"]]
    first: Any = redis_client.xreadgroup(GROUP, "a", {pk.stream: ">"}, count=2)
    second: Any = redis_client.xreadgroup(GROUP, "b", {pk.stream: ">"}, count=3)
    # b records first: a's entries, delivered before, take their places ahead of b's.
    assert ordering.record(redis_client, pk, "b", second[0][1]) == {0: ids[0], 1: ids[1], 2: ids[2]}
    assert ordering.record(redis_client, pk, "a", first[0][1]) == {}
    ordering.ack(redis_client, pk, [(ids[0], b"x", False), (ids[1], b"y", False)])
    assert ordering.waiting_for(redis_client, pk, [ids[2], ids[3], ids[4]]) == [
        "",
        "",
        f"p:{ids[2]}",
    ]


def interleaved_from(store: EventStore, aggregates: list[str], first: int, last: int) -> None:
    for n in range(first, last + 1):
        store.append_many([AppendRequest(a, [alert(a, n)], n - 1) for a in aggregates])


def test_order_holds_any_aggregate_name_and_the_ack_releases_it(
    redis_client: redis.Redis, namespace: str
) -> None:
    # Recording and ack pass a whole batch in a few arguments: aggregate names with commas,
    # several-byte characters or none at all must still land in (and leave) the right place.
    pk = PartitionKeys.of(Keys(namespace), TOPIC, GROUP, 0)
    redis_client.xgroup_create(pk.stream, GROUP, id="0", mkstream=True)
    names = ["a,b", "é-ü 🙂", "", "a,b", "plain", "é-ü 🙂", "a"]
    ids = [decoded(redis_client.xadd(pk.stream, {"s": s} if s else {"x": "1"})) for s in names]
    for count in (ordering.SMALL, ordering.SMALL + 1):  # read by the script, then natively
        group = f"g{count}"
        pk = PartitionKeys.of(Keys(namespace), TOPIC, group, 0)
        redis_client.xgroup_create(pk.stream, group, id="0")
        read = ordering.read(redis_client, pk, "reader", count)
        assert [decoded(eid) for eid, _ in read.rows] == ids
        assert read.waits == {3: ids[0], 5: ids[1]}
        tails = {decoded(k): decoded(v) for k, v in redis_client.hgetall(pk.tails).items() if k}
        assert tails == {"a,b": ids[3], "é-ü 🙂": ids[5], "plain": ids[4], "a": ids[6]}
        aggs = [s.encode() for s in names]
        ordering.ack(redis_client, pk, [(ids[i], aggs[i], False) for i in range(3)])
        assert ordering.waiting_for(redis_client, pk, [ids[3], ids[5]]) == ["", ""]
        ordering.ack(redis_client, pk, [(ids[i], aggs[i], i in (3, 5)) for i in range(3, 7)])
        # what is left: one field each that keeps them hash tables (see consume_read.lua)
        assert redis_client.hkeys(pk.tails) == [b""]
        assert redis_client.hkeys(pk.waits) == [b""]
        assert redis_client.xpending(pk.stream, group)["pending"] == 0
