"""`cdb run NAME` underneath: a replica waits as standby, takes over, rebuilds, stops cleanly."""

from __future__ import annotations

import threading

import redis

from cdb.domain.contracts import MarketDataV1
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology
from cdb.services.feed import FeedService
from cdb.services.process import run_feed, run_service
from cdb.services.signal import SignalService
from tests.integration.runtime.support import wait_for


def _start(target: object, *args: object, **kwargs: object) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []

    def body() -> None:
        codes.append(target(*args, **kwargs))  # type: ignore[operator]

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, codes


def test_a_standby_takes_over_and_resumes_where_the_active_one_stopped(
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    store: EventStore,
    shipped_ticks: list[MarketDataV1],
) -> None:
    ticks = shipped_ticks[2000:2400]
    feed = FeedService(redis_client, store, ticks)
    assert (
        run_feed(redis_client, feed, namespace, threading.Event(), owner="f", exit_at_end=True) == 0
    )
    signals_key = store.topic_key("signals", 0)

    first_stop, second_stop = threading.Event(), threading.Event()
    became_active: list[str] = []
    first, first_codes = _start(
        run_service,
        redis_client,
        topology,
        namespace,
        SignalService(),
        first_stop,
        owner="one",
        lease_ttl_ms=2000,
        on_active=lambda n: became_active.append(f"one:{n}"),
    )
    wait_for(lambda: became_active == ["one:0"], "the first replica to become active")
    second, second_codes = _start(
        run_service,
        redis_client,
        topology,
        namespace,
        SignalService(),
        second_stop,
        owner="two",
        lease_ttl_ms=2000,
        on_active=lambda n: became_active.append(f"two:{n}"),
    )
    wait_for(
        lambda: _lag(redis_client, store, "signal") == 0, "the active replica to read every tick"
    )
    assert became_active == ["one:0"]  # the second one is a standby
    produced = redis_client.xlen(signals_key)
    assert produced > 0

    first_stop.set()
    first.join(10)
    assert first_codes == [0]
    wait_for(lambda: len(became_active) == 2, "the standby to take over")
    assert became_active[1] == f"two:{len(ticks)}"  # rebuilt from every finished tick
    # Resumed, not redone: no tick is handled twice, so no signal is emitted twice.
    assert redis_client.xlen(signals_key) == produced
    second_stop.set()
    second.join(10)
    assert second_codes == [0]


def _lag(client: redis.Redis, store: EventStore, group: str) -> int:
    """Entries of market_data not yet finished by ``group`` (works on Redis 6 and 7)."""
    key = store.topic_key("market_data", 0)
    for g in client.xinfo_groups(key):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == group:
            last = g["last-delivered-id"]
            last = last.decode() if isinstance(last, bytes) else str(last)
            undelivered = client.xrange(key, "-" if last == "0-0" else f"({last}", "+")
            return len(undelivered or []) + int(g["pending"])
    return -1


def test_the_feed_resumes_after_what_is_already_on_the_topic(
    redis_client: redis.Redis, store: EventStore, namespace: str, shipped_ticks: list[MarketDataV1]
) -> None:
    ticks = shipped_ticks[:50]
    key = store.topic_key("market_data", 0)
    first = FeedService(redis_client, store, ticks)
    stop = threading.Event()
    first.run(stop, on_tick=lambda _: stop.set() if first.position >= 20 else None)
    assert redis_client.xlen(key) == 20

    again = FeedService(redis_client, store, ticks)
    assert again.resume() == 20
    assert (
        run_feed(redis_client, again, namespace, threading.Event(), owner="f", exit_at_end=True)
        == 0
    )
    assert redis_client.xlen(key) == 50
    ids = [e.event.event_id for e in store.read_topic("market_data", 0, count=100)]
    assert ids == [e.event.event_id for e in FeedService(redis_client, store, ticks).events]


def test_a_paced_feed_stops_at_once_when_asked(
    redis_client: redis.Redis, store: EventStore, shipped_ticks: list[MarketDataV1]
) -> None:
    feed = FeedService(redis_client, store, shipped_ticks[:10])
    stop = threading.Event()
    # One minute of market time per real minute: after the first bar it would wait 60 s.
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    assert feed.run(stop, speed=1.0) == 2  # both symbols of the first minute, then the wait
    timer.cancel()
