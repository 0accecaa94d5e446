"""Several processes appending to the same aggregates, retrying on conflict: nothing lost.

Each worker process repeatedly reads an aggregate's version and appends one event expecting
that version; when another process got there first it gets a ConcurrencyError, re-reads and
tries again. Now and then it also re-sends an append that already succeeded (a producer
retrying after a lost reply), which must come back as a duplicate at its original position.
"""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

from cdb.domain.envelope import NewEvent
from cdb.errors import ConcurrencyError
from cdb.eventstore import EventStore
from cdb.eventstore.topology import load_topology
from tests.eventstore_events import alert

PROCESSES = 4
AGGREGATES = 10
APPENDS_PER_PROCESS = 60
DEADLINE_S = 60.0


@dataclass(frozen=True)
class Landed:
    stream_id: str
    event_id: str
    seq: int


@dataclass(frozen=True)
class WorkerReport:
    landed: list[Landed]
    conflicts: list[tuple[str, int, int, int]]  # stream, version read, expected, actual
    retries: list[tuple[Landed, int, int, bool]]  # original, first_seq, last_seq, duplicate


def worker(redis_url: str, namespace: str, worker_id: int, start: Any, results: Any) -> None:
    rng = random.Random(worker_id)
    client = redis.Redis.from_url(redis_url)
    store = EventStore(client, load_topology(), namespace)
    report = WorkerReport([], [], [])
    sent: list[tuple[Landed, NewEvent]] = []
    start.wait(timeout=DEADLINE_S)  # every process starts appending at the same moment
    try:
        for n in range(APPENDS_PER_PROCESS):
            stream_id = f"alert-agg{rng.randrange(AGGREGATES)}"
            event = alert(f"w{worker_id}", n)
            while True:
                version = store.version(stream_id)
                try:
                    result = store.append(stream_id, [event], expected_version=version)
                    break
                except ConcurrencyError as exc:
                    report.conflicts.append((exc.stream_id, version, exc.expected, exc.actual))
            landed = Landed(stream_id, str(event.event_id), result.first_seq)
            report.landed.append(landed)
            sent.append((landed, event))
            if rng.random() < 0.2:
                # a retry of an earlier append, with its now stale expected version
                old, old_event = rng.choice(sent)
                again = store.append(old.stream_id, [old_event], expected_version=old.seq - 1)
                report.retries.append((old, again.first_seq, again.last_seq, again.duplicate))
    finally:
        client.close()
        results.put(report)


def test_processes_racing_on_the_same_aggregates_leave_gapless_histories(
    redis_url: str, namespace: str, redis_client: redis.Redis
) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(redis_url, namespace, i, start, results))
        for i in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        reports: list[WorkerReport] = [results.get(timeout=DEADLINE_S) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=DEADLINE_S)
    assert [p.exitcode for p in processes] == [0] * PROCESSES

    conflicts = [c for report in reports for c in report.conflicts]
    assert conflicts, "the processes never raced: the test proved nothing"
    for stream_id, version_read, expected, actual in conflicts:
        assert stream_id.startswith("alert-agg")
        assert expected == version_read
        assert actual > expected
    retries = [r for report in reports for r in report.retries]
    assert retries
    for old, first_seq, last_seq, duplicate in retries:
        assert (first_seq, last_seq, duplicate) == (old.seq, old.seq, True)

    landed = [item for report in reports for item in report.landed]
    assert len(landed) == PROCESSES * APPENDS_PER_PROCESS

    store = EventStore(redis_client, load_topology(), namespace)
    per_aggregate = Counter(item.stream_id for item in landed)
    stored_ids: list[str] = []
    for index in range(AGGREGATES):
        stream_id = f"alert-agg{index}"
        events = store.read_aggregate(stream_id)
        # gapless 1..M, M == appends that succeeded on this aggregate
        assert [e.sequence_number for e in events] == list(range(1, per_aggregate[stream_id] + 1))
        assert store.version(stream_id) == per_aggregate[stream_id]
        # every event sits where its writer was told it landed
        told = {item.event_id: item.seq for item in landed if item.stream_id == stream_id}
        assert {str(e.event_id): e.sequence_number for e in events} == told
        stored_ids.extend(str(e.event_id) for e in events)

    assert len(stored_ids) == len(set(stored_ids)), "an event id was stored twice"
    assert set(stored_ids) == {item.event_id for item in landed}, "an event was lost"

    # The topic partition holds exactly the same events, each aggregate's in sequence order.
    on_topic = []
    after = "0-0"
    while page := store.read_topic("alerts", 0, after=after, count=500):
        on_topic.extend(page)
        after = page[-1].entry_id
    assert sorted(str(t.event.event_id) for t in on_topic) == sorted(stored_ids)
    for index in range(AGGREGATES):
        stream_id = f"alert-agg{index}"
        seqs = [t.event.sequence_number for t in on_topic if t.event.stream_id == stream_id]
        assert seqs == list(range(1, per_aggregate[stream_id] + 1))
