"""The consumer loop on real Redis: ack after outputs, retry, dead letter, order."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
import redis

from cdb.domain.envelope import EventEnvelope
from cdb.eventstore.codec import encode_fields
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import AppendRequest, EventStore
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Ack, Delivery, Reject
from tests.integration.runtime.support import (
    GROUP,
    TOPIC,
    alert,
    decoded,
    new_aggregate,
    topology,
    wait_for,
)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, event: EventEnvelope, _delivery: Delivery) -> None:
        with self.lock:
            self.seen.append((event.stream_id, event.sequence_number))


@pytest.fixture
def store(redis_client: redis.Redis, namespace: str) -> EventStore:
    return EventStore(redis_client, topology(), namespace, check_server=False)


def run_until(consumer: Consumer, condition: object, what: str) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(condition, what)  # type: ignore[arg-type]
    finally:
        stop.set()
        thread.join(timeout=10)


def test_every_entry_is_handled_once_and_acked(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    aggs = [new_aggregate() for _ in range(5)]
    for agg in aggs:
        store.append(agg, [alert(agg, n) for n in range(1, 5)], 0)
    recorder = Recorder()
    consumer = Consumer(
        redis_client, topology(), namespace, topic=TOPIC, group=GROUP, handler=recorder
    )
    run_until(consumer, lambda: len(recorder.seen) >= 20, "20 entries handled")
    assert sorted(recorder.seen) == sorted((a, n) for a in aggs for n in range(1, 5))
    stream = Keys(namespace).topic(TOPIC, 0)
    assert redis_client.xpending(stream, GROUP)["pending"] == 0


def test_a_failing_handler_is_retried_with_growing_delays_and_its_effect_happens_once(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    topo = topology(max_deliveries=6, backoff_base_ms=30, backoff_cap_ms=1000)
    agg = new_aggregate()
    store.append(agg, [alert(agg, 1)], 0)
    attempts: list[tuple[float, int]] = []
    effects: list[int] = []
    fail_times = 3

    def flaky(event: EventEnvelope, delivery: Delivery) -> None:
        attempts.append((time.monotonic(), delivery.delivery_count))
        if len(attempts) <= fail_times:
            raise RuntimeError("transient")
        effects.append(event.sequence_number)

    consumer = Consumer(redis_client, topo, namespace, topic=TOPIC, group=GROUP, handler=flaky)
    run_until(consumer, lambda: bool(effects), "the handler to succeed")
    assert effects == [1]
    assert [count for _, count in attempts] == [1, 2, 3, 4]  # Redis's own delivery count
    policy = topo.topic(TOPIC).group(GROUP)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(attempts)]
    for failed_count, gap in enumerate(gaps, start=1):
        assert gap >= policy.backoff_ms(failed_count) / 1000
    assert policy.backoff_ms(1) < policy.backoff_ms(2) < policy.backoff_ms(3)
    assert redis_client.xpending(Keys(namespace).topic(TOPIC, 0), GROUP)["pending"] == 0
    assert consumer.stats.retried == fail_times


def dead_letters(client: redis.Redis, namespace: str) -> list[dict[str, str]]:
    key = Keys(namespace).dead_letter(TOPIC, GROUP, 0)
    return [
        {decoded(k): decoded(v) for k, v in (fields or {}).items()}
        for _, fields in client.xrange(key) or []
    ]


def test_poison_entries_are_dead_lettered_at_once_and_the_group_keeps_flowing(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    stream = Keys(namespace).topic(TOPIC, 0)
    good = [new_aggregate() for _ in range(3)]
    store.append(good[0], [alert(good[0], 1)], 0)
    bad_json = decoded(
        redis_client.xadd(
            stream, {"id": "x", "n": "1", "s": "alert-bad", "t": "ALERT_RAISED", "v": "1", "d": "{"}
        )
    )
    unknown_fields = encode_fields(alert("alert-u", 1), "alert-u", 1)
    unknown_fields["v"] = "9"  # no contract registered for ALERT_RAISED@9
    unknown = decoded(redis_client.xadd(stream, unknown_fields))  # type: ignore[arg-type]
    rejected = new_aggregate()
    store.append(rejected, [alert(rejected, 1)], 0)
    store.append(good[1], [alert(good[1], 1)], 0)
    store.append(good[2], [alert(good[2], 1)], 0)
    handled: list[str] = []

    def handler(event: EventEnvelope, delivery: Delivery) -> Reject | None:
        if event.stream_id == rejected:
            return Reject("this alert can never be handled")
        handled.append(event.stream_id)
        return None

    consumer = Consumer(
        redis_client, topology(), namespace, topic=TOPIC, group=GROUP, handler=handler
    )
    run_until(
        consumer,
        lambda: len(handled) == 3 and len(dead_letters(redis_client, namespace)) == 3,
        "3 handled, 3 dead letters",
    )
    assert sorted(handled) == sorted(good)
    letters = {d["entry_id"]: d for d in dead_letters(redis_client, namespace)}
    assert letters[bad_json]["reason"] == "contract"
    assert letters[bad_json]["error_type"] == "ContractError"
    assert "must be JSON" in letters[bad_json]["error"]
    assert letters[unknown]["error_type"] == "UnknownEventTypeError"
    rejected_letter = next(d for d in letters.values() if d["aggregate"] == rejected)
    assert rejected_letter["reason"] == "rejected"
    assert rejected_letter["error"] == "this alert can never be handled"
    for letter in letters.values():
        assert letter["deliveries"] == "1"
        assert letter["group"] == GROUP
        assert letter["topic"] == TOPIC
        assert letter["consumer"] == consumer.name
        assert json.loads(letter["fields"])["s"] == letter["aggregate"]
        assert int(letter["at_ms"]) > 0
    assert redis_client.xpending(stream, GROUP)["pending"] == 0


def test_an_entry_that_keeps_failing_is_dead_lettered_after_max_deliveries(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    topo = topology(max_deliveries=3, backoff_base_ms=10, backoff_cap_ms=40)
    agg = new_aggregate()
    store.append(agg, [alert(agg, 1)], 0)
    counts: list[int] = []

    def broken(event: EventEnvelope, delivery: Delivery) -> None:
        counts.append(delivery.delivery_count)
        raise ValueError("still broken")

    consumer = Consumer(redis_client, topo, namespace, topic=TOPIC, group=GROUP, handler=broken)
    run_until(consumer, lambda: bool(dead_letters(redis_client, namespace)), "a dead letter")
    assert counts == [1, 2, 3]
    (letter,) = dead_letters(redis_client, namespace)
    assert letter["reason"] == "max_deliveries"
    assert letter["deliveries"] == "3"
    assert "ValueError: still broken" in letter["error"]


def test_outputs_are_appended_before_the_ack(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    source = new_aggregate()
    store.append(source, [alert(source, n) for n in range(1, 4)], 0)
    target = new_aggregate()

    def copy(event: EventEnvelope, delivery: Delivery) -> Ack:
        out = alert(target, event.sequence_number)
        if event.stream_id == target:
            return Ack()
        return Ack(outputs=[AppendRequest(target, [out], event.sequence_number - 1)])

    consumer = Consumer(
        redis_client, topology(), namespace, topic=TOPIC, group=GROUP, handler=copy, store=store
    )
    run_until(consumer, lambda: store.version(target) == 3, "3 outputs appended")
    assert [e.sequence_number for e in store.read_aggregate(target)] == [1, 2, 3]


def test_a_failed_commit_reruns_the_whole_cycle_in_order(
    redis_client: redis.Redis, namespace: str, store: EventStore
) -> None:
    agg = new_aggregate()
    store.append(agg, [alert(agg, n) for n in range(1, 4)], 0)
    staged: list[int] = []
    committed: list[int] = []
    commits = [0]

    def stage(event: EventEnvelope, _delivery: Delivery) -> None:
        staged.append(event.sequence_number)

    def commit() -> None:
        commits[0] += 1
        if commits[0] == 1:
            staged.clear()
            raise RuntimeError("database went away")
        committed.extend(staged)
        staged.clear()

    consumer = Consumer(
        redis_client,
        topology(),
        namespace,
        topic=TOPIC,
        group=GROUP,
        handler=stage,
        commit=commit,
    )
    run_until(consumer, lambda: committed == [1, 2, 3], "the cycle committed after a retry")
    assert consumer.stats.retried >= 1
    assert redis_client.xpending(Keys(namespace).topic(TOPIC, 0), GROUP)["pending"] == 0


def test_an_idle_wait_reads_new_entries_in_the_same_round_trip_and_a_stop_handles_them(
    redis_client: redis.Redis, namespace: str
) -> None:
    topo = topology()
    store = EventStore(redis_client, topo, namespace, check_server=False)
    recorder = Recorder()
    consumer = Consumer(
        redis_client, topo, namespace, topic=TOPIC, group=GROUP, handler=recorder, block_ms=20
    )
    assert consumer.step() == 0  # empty: the read says where the stream ends, then a wait
    aggregates = [new_aggregate() for _ in range(3)]
    store.append_many([AppendRequest(a, [alert(a, 1)], 0) for a in aggregates])
    consumer._wait()  # wakes at once: the new entries are read behind the wait
    assert consumer.has_work()
    assert recorder.seen == []
    stop = threading.Event()
    stop.set()
    consumer.run(stop)  # stopped before any step: what the wait read is still handled
    assert sorted(recorder.seen) == sorted((a, 1) for a in aggregates)
    stream = Keys(namespace).topic(TOPIC, 0)
    assert redis_client.xpending(stream, GROUP)["pending"] == 0
