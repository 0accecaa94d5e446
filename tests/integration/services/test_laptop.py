"""`cdb run all`'s scheduler on real Redis gives exactly the in-memory reference run.

The window (ticks 2000-2900 of the shipped recording: evening of day 1) has signals, orders,
fills, opened and closed positions and a blocked signal; a tighter stop-loss adds stop-loss
orders and alerts.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict

import pytest
import redis

from cdb.domain.contracts import MarketDataV1
from cdb.domain.event_types import EventType
from cdb.domain.services.risk import RiskParams
from cdb.domain.services.sim import Pipeline, PipelineParams, simulate
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology
from cdb.services.catalog import build_all
from cdb.services.feed import FeedService
from cdb.services.laptop import Laptop

WINDOW = slice(2000, 2900)
ENV = {"STOP_LOSS_PCT": "0.004", "MAX_POSITION_PCT": "0.05", "MAX_DAILY_DRAWDOWN_PCT": "0.002"}


def _laptop(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    store: EventStore,
    ticks: list[MarketDataV1],
) -> Laptop:
    return Laptop(
        client,
        topology,
        namespace,
        build_all(ENV),
        FeedService(client, store, ticks),
        owner="test",
    )


def _reference(ticks: list[MarketDataV1]) -> Pipeline:
    return simulate(ticks, PipelineParams(risk=RiskParams.from_env(ENV)))


def _by_stream(pipe: Pipeline) -> dict[str, list[tuple[str, str, str]]]:
    out: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for item in pipe.events:
        if item.event_type is not EventType.MARKET_DATA_RECEIVED:
            out[item.stream_id].append(_row(item.event))
    return dict(out)


def _row(event: object) -> tuple[str, str, str]:
    from cdb.domain.envelope import NewEvent

    assert isinstance(event, NewEvent)
    meta = event.metadata.model_dump(exclude={"traceparent"})
    body = {"ts": event.timestamp.isoformat(), "payload": event.payload.model_dump(mode="json")}
    return str(event.event_id), event.event_type.value, json.dumps([body, meta], sort_keys=True)


def _stored(store: EventStore, streams: list[str]) -> dict[str, list[tuple[str, str, str]]]:
    return {s: [_row(e) for e in store.read_aggregate(s)] for s in streams}


def _all_streams(client: redis.Redis, store: EventStore) -> set[str]:
    prefix = store.keys.aggregate_pattern()
    found = set()
    for key in client.scan_iter(match=prefix, count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        found.add(name.split(":agg:", 1)[1])
    return found


def test_run_all_equals_the_reference_run(
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    store: EventStore,
    shipped_ticks: list[MarketDataV1],
) -> None:
    ticks = shipped_ticks[WINDOW]
    expected = _by_stream(_reference(ticks))
    kinds = {row[1] for rows in expected.values() for row in rows}
    assert {"ORDER_FILLED", "SIGNAL_BLOCKED", "POSITION_CLOSED", "CIRCUIT_BREAKER_RESET"} <= kinds

    laptop = _laptop(redis_client, topology, namespace, store, ticks)
    laptop.start()
    try:
        stats = laptop.run(threading.Event())
    finally:
        laptop.close()

    assert stats.ticks == len(ticks)
    assert _all_streams(redis_client, store) == set(expected)
    assert _stored(store, sorted(expected)) == expected
    assert redis_client.xlen(store.topic_key("market_data", 0)) == len(ticks)


def test_a_second_run_resumes_and_matches_one_uninterrupted_run(
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    store: EventStore,
    shipped_ticks: list[MarketDataV1],
) -> None:
    ticks = shipped_ticks[WINDOW]
    expected = _by_stream(_reference(ticks))
    stop = threading.Event()
    first = _laptop(redis_client, topology, namespace, store, ticks)
    first.start()
    try:
        first.run(stop, on_tick=lambda pos: stop.set() if pos >= 350 else None)
    finally:
        first.close()
    assert 0 < redis_client.xlen(store.topic_key("market_data", 0)) < len(ticks)

    second = _laptop(redis_client, topology, namespace, store, ticks)
    second.start()
    try:
        stats = second.run(threading.Event())
    finally:
        second.close()

    assert stats.resumed_at == 350
    assert stats.ticks == len(ticks) - 350
    assert redis_client.xlen(store.topic_key("market_data", 0)) == len(ticks)
    assert _stored(store, sorted(expected)) == expected


def test_a_service_already_active_elsewhere_is_refused(
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    store: EventStore,
    shipped_ticks: list[MarketDataV1],
) -> None:
    from cdb.errors import LeaseHeldError
    from cdb.services.lease import Lease

    other = Lease(redis_client, namespace, "risk", "someone-else")
    assert other.try_acquire()
    laptop = _laptop(redis_client, topology, namespace, store, shipped_ticks[:10])
    with pytest.raises(LeaseHeldError, match=r"risk.*someone-else"):
        laptop.start()
    # Nothing of ours is left holding a lease.
    assert Lease(redis_client, namespace, "feed", "x").try_acquire()
