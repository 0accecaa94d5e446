"""The event store on a real Redis: appends, concurrency, idempotency, readers, server checks."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import cdb.eventstore.store as store_module
from cdb.domain.envelope import EventEnvelope, NewEvent
from cdb.embedded import testing as embedded_testing
from cdb.errors import (
    ConcurrencyError,
    ContractError,
    DuplicateBatchError,
    StoreUnavailableError,
    TopologyError,
    UnsafeServerError,
)
from cdb.eventstore import AppendRequest, AppendResult, EventStore
from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import load_topology, parse_topology
from tests.eventstore_events import alert, order_filled, order_placed, signal, tick


@pytest.fixture
def store(redis_client: redis.Redis, namespace: str) -> EventStore:
    return EventStore(redis_client, load_topology(), namespace)


def lengths(client: redis.Redis, store: EventStore, stream_id: str, topic: str) -> tuple[int, ...]:
    """Aggregate stream, its id hash and its topic partition: how many entries each holds."""
    partition = store.partition_of(stream_id)
    keys = Keys(store.namespace)
    return (
        int(client.xlen(keys.aggregate(partition, stream_id))),
        int(client.hlen(keys.event_ids(partition, stream_id))),
        int(client.xlen(keys.topic(topic, partition))),
    )


def same_event(stored: EventEnvelope, sent: NewEvent, stream_id: str, seq: int) -> None:
    assert stored.event_id == sent.event_id
    assert stored.event_type == sent.event_type
    assert stored.timestamp == sent.timestamp
    assert stored.schema_version == sent.schema_version
    assert stored.payload == sent.payload
    assert type(stored.payload) is type(sent.payload)
    assert stored.metadata == sent.metadata
    assert stored.stream_id == stream_id
    assert stored.sequence_number == seq


def test_append_and_read_back_every_envelope_field(store: EventStore) -> None:
    placed, filled = order_placed("o-1"), order_filled("o-1")

    first = store.append("order-o-1", [placed], expected_version=0)
    second = store.append("order-o-1", [filled], expected_version=1)

    assert (first.first_seq, first.last_seq, first.duplicate) == (1, 1, False)
    assert (second.first_seq, second.last_seq, second.duplicate) == (2, 2, False)
    stored = store.read_aggregate("order-o-1")
    assert len(stored) == 2
    same_event(stored[0], placed, "order-o-1", 1)
    same_event(stored[1], filled, "order-o-1", 2)
    assert store.version("order-o-1") == 2

    # Each event is also on its own topic, at the entry id the append reported.
    (on_orders,) = store.read_topic("orders")
    (on_results,) = store.read_topic("order_results")
    assert on_orders.entry_id == first.entry_ids[0]
    assert on_results.entry_id == second.entry_ids[0]
    assert on_orders.event == stored[0]
    assert on_results.event == stored[1]


def test_a_batch_gets_consecutive_sequence_numbers(store: EventStore) -> None:
    events = [alert("batch", n) for n in range(5)]
    result = store.append("alert-batch", events, expected_version=0)
    assert (result.first_seq, result.last_seq) == (1, 5)
    assert len(result.entry_ids) == 5
    stored = store.read_aggregate("alert-batch")
    assert [e.sequence_number for e in stored] == [1, 2, 3, 4, 5]
    assert [e.event_id for e in stored] == [e.event_id for e in events]
    assert [t.entry_id for t in store.read_topic("alerts")] == list(result.entry_ids)


def test_a_version_conflict_names_stream_expected_and_actual_and_writes_nothing(
    store: EventStore, redis_client: redis.Redis
) -> None:
    store.append("order-o-2", [order_placed("o-2")], expected_version=0)
    before = lengths(redis_client, store, "order-o-2", "order_results")

    with pytest.raises(ConcurrencyError) as caught:
        store.append("order-o-2", [order_filled("o-2")], expected_version=0)

    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
        "order-o-2",
        0,
        1,
    )
    assert "stream 'order-o-2': expected version 0, actual version 1" in str(caught.value)
    assert lengths(redis_client, store, "order-o-2", "order_results") == before
    with pytest.raises(ConcurrencyError, match="expected version 5, actual version 1"):
        store.append("order-o-2", [order_filled("o-2")], expected_version=5)
    assert store.version("order-o-2") == 1


def test_a_retried_append_returns_its_original_position_and_writes_nothing(
    store: EventStore, redis_client: redis.Redis
) -> None:
    events = [alert("retry", n) for n in range(3)]
    store.append("alert-retry", [alert("retry", 99)], expected_version=0)
    original = store.append("alert-retry", events, expected_version=1)
    before = lengths(redis_client, store, "alert-retry", "alerts")

    again = store.append("alert-retry", events, expected_version=1)  # same expected version
    any_version = store.append("alert-retry", events, expected_version=None)
    stale = store.append("alert-retry", events[1:2], expected_version=0)  # one of them, stale

    for retry in (again, any_version):
        assert retry == AppendResult("alert-retry", 2, 4, (), duplicate=True)
    assert (stale.first_seq, stale.last_seq, stale.duplicate) == (3, 3, True)
    assert (original.first_seq, original.last_seq, original.duplicate) == (2, 4, False)
    assert lengths(redis_client, store, "alert-retry", "alerts") == before == (4, 4, 4)


def test_a_batch_mixing_stored_and_new_event_ids_is_refused_whole(
    store: EventStore, redis_client: redis.Redis
) -> None:
    store.append("alert-mixed", [alert("mixed", 1)], expected_version=0)
    before = lengths(redis_client, store, "alert-mixed", "alerts")

    with pytest.raises(DuplicateBatchError, match="1 of 2 event ids are already stored"):
        store.append("alert-mixed", [alert("mixed", 1), alert("mixed", 2)], expected_version=1)

    assert lengths(redis_client, store, "alert-mixed", "alerts") == before


@pytest.mark.parametrize(
    ("stream_id", "events", "field", "rule"),
    [
        ("order-o-3", [signal("s-1")], "stream_id", "belongs to 'signal-<id>' streams"),
        ("signal-", [signal("s-1")], "stream_id", "belongs to 'signal-<id>' streams"),
        ("orders", [order_placed("o-3")], "stream_id", "belongs to 'order-<id>' streams"),
        ("market-BTC", [tick("BTC_USDT", 1)], "event_type", "use publish()"),
        (
            "order-o-3",
            [order_placed("o-3"), order_filled("o-3")],
            "events",
            "one append writes one topic",
        ),
        ("order-o-3", [], "events", "at least one event"),
        ("alert-a", [alert("a", 1), alert("a", 1)], "event_id", "appears twice"),
        ("order-" + "x" * 200, [order_placed("o-3")], "stream_id", "1-200 characters"),
    ],
)
def test_a_malformed_append_is_a_contract_error_and_writes_nothing(  # noqa: PLR0917
    store: EventStore,
    redis_client: redis.Redis,
    stream_id: str,
    events: list[NewEvent],
    field: str,
    rule: str,
) -> None:
    with pytest.raises(ContractError) as caught:
        store.append(stream_id, events, expected_version=0)
    assert [p[0] for p in caught.value.problems] == [field]
    assert rule in str(caught.value)
    assert list(redis_client.scan_iter(match=store.keys.pattern())) == []


def test_a_negative_expected_version_is_refused(store: EventStore) -> None:
    with pytest.raises(ContractError, match="expected_version"):
        store.append("order-o-4", [order_placed("o-4")], expected_version=-1)


def test_append_many_answers_each_request_in_order(store: EventStore) -> None:
    store.append("order-m-2", [order_placed("m-2")], expected_version=0)
    results = store.append_many(
        [
            AppendRequest("order-m-1", [order_placed("m-1")], 0),
            AppendRequest("order-m-2", [order_filled("m-2")], 0),  # stale: conflict
            AppendRequest("order-m-2", [order_placed("m-2")], None),  # a retry: duplicate
            AppendRequest("order-m-1", [order_filled("m-1")], 1),  # sees the first request
        ]
    )
    assert isinstance(results[0], AppendResult)
    assert (results[0].first_seq, results[0].duplicate) == (1, False)
    assert isinstance(results[1], ConcurrencyError)
    assert (results[1].expected, results[1].actual) == (0, 1)
    assert isinstance(results[2], AppendResult)
    assert (results[2].first_seq, results[2].duplicate) == (1, True)
    assert isinstance(results[3], AppendResult)
    assert (results[3].first_seq, results[3].duplicate) == (2, False)
    assert store.append_many([]) == []


def test_a_big_append_many_leaves_the_garbage_collector_as_it_found_it(
    store: EventStore, redis_client: redis.Redis
) -> None:
    # Big calls run with the long-lived heap frozen (cdb.heap): the collector's settings must
    # be back afterwards, whether the call succeeded or refused a request.
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    requests = [AppendRequest(f"order-g-{n}", [order_placed(f"g-{n}")], 0) for n in range(150)]
    results = store.append_many(requests)
    assert all(isinstance(r, AppendResult) and r.first_seq == 1 for r in results)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
    with pytest.raises(ContractError):
        store.append_many([*requests, AppendRequest("order-bad", [signal("s-9")], 0)])
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
    assert len(store.read_topic("orders", 0, count=1000)) == 150  # the refused call wrote nothing


def test_a_malformed_request_in_append_many_stops_the_whole_batch_before_sending(
    store: EventStore, redis_client: redis.Redis
) -> None:
    with pytest.raises(ContractError):
        store.append_many(
            [
                AppendRequest("order-ok", [order_placed("ok")], 0),
                AppendRequest("order-bad", [signal("s-9")], 0),
            ]
        )
    assert list(redis_client.scan_iter(match=store.keys.pattern())) == []


def test_read_aggregate_ranges(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append("alert-r", [alert("r", n) for n in range(1, 8)], expected_version=0)
    monkeypatch.setattr(store_module, "_PAGE", 3)  # make the reader page several times

    def seqs(from_seq: int = 1, to_seq: int | None = None) -> list[int]:
        return [e.sequence_number for e in store.read_aggregate("alert-r", from_seq, to_seq)]

    assert seqs() == [1, 2, 3, 4, 5, 6, 7]
    assert seqs(2, 4) == [2, 3, 4]
    assert seqs(3, 3) == [3]
    assert seqs(5) == [5, 6, 7]
    assert seqs(6, 100) == [6, 7]
    assert seqs(8) == []
    assert seqs(4, 2) == []
    assert store.read_aggregate("alert-none") == []
    with pytest.raises(ContractError, match="from_seq"):
        store.read_aggregate("alert-r", 0)


def test_load_folds_events_into_state_and_returns_the_version(store: EventStore) -> None:
    store.append("order-l-1", [order_placed("l-1")], expected_version=0)
    store.append("order-l-1", [order_filled("l-1")], expected_version=1)

    def fold(state: list[str], event: EventEnvelope) -> list[str]:
        return [*state, f"{event.sequence_number}:{event.event_type}"]

    empty: list[str] = []
    assert store.load("order-l-1", fold, empty) == (["1:ORDER_PLACED", "2:ORDER_FILLED"], 2)
    assert store.load("order-l-1", fold, empty, to_seq=1) == (["1:ORDER_PLACED"], 1)
    assert store.load("order-l-new", fold, empty) == ([], 0)
    # the version load returns is the one to append at next
    _, version = store.load("order-l-1", fold, empty)
    with pytest.raises(ConcurrencyError):
        store.append("order-l-1", [order_filled("l-1", n=5)], expected_version=version - 1)


def test_read_topic_pages_a_catch_up_reader_through_everything_in_order(
    store: EventStore,
) -> None:
    written: list[str] = []
    for n in range(23):
        result = store.append(f"alert-c{n % 4}", [alert(f"c{n % 4}", n)], expected_version=None)
        written.extend(result.entry_ids)

    seen: list[str] = []
    after = "0-0"
    while page := store.read_topic("alerts", 0, after=after, count=5):
        assert len(page) <= 5
        seen.extend(entry.entry_id for entry in page)
        after = page[-1].entry_id
    assert seen == written
    assert store.read_topic("alerts", after=written[-1]) == []
    assert [e.entry_id for e in store.read_topic("alerts", after=written[10], count=3)] == (
        written[11:14]
    )


def test_topic_names_and_partitions_are_checked(store: EventStore) -> None:
    with pytest.raises(TopologyError, match="unknown topic 'nope'"):
        store.read_topic("nope")
    with pytest.raises(TopologyError, match=r"partition 1 is out of range 0\.\.0"):
        store.read_topic("orders", partition=1)
    assert store.topic_key("orders", 0) == Keys(store.namespace).topic("orders", 0)
    with pytest.raises(ContractError, match="after"):
        store.read_topic("orders", after="yesterday")
    with pytest.raises(ContractError, match="count"):
        store.read_topic("orders", count=0)


def test_publish_writes_topic_only_events_with_sequence_zero(
    store: EventStore, redis_client: redis.Redis
) -> None:
    ticks = [tick("BTC_USDT", n) for n in range(3)]
    entry_ids = store.publish("market_data", "market-BTC_USDT", ticks)

    read = store.read_topic("market_data")
    assert [t.entry_id for t in read] == entry_ids
    for entry, sent in zip(read, ticks, strict=True):
        same_event(entry.event, sent, "market-BTC_USDT", 0)
    # no aggregate stream, no id hash: only the topic partition exists
    assert [k.decode() for k in redis_client.scan_iter(match=store.keys.pattern())] == [
        store.topic_key("market_data", 0)
    ]
    with pytest.raises(ContractError, match="belongs on topic 'orders'"):
        store.publish("market_data", "market-BTC_USDT", [order_placed("o-p")])
    with pytest.raises(ContractError, match=r"has an aggregate stream: use append\(\)"):
        store.publish("orders", "order-o-p", [order_placed("o-p")])
    assert store.publish("market_data", "market-BTC_USDT", []) == []


def test_publish_many_keeps_the_order_over_symbols_and_chunks_and_checks_first(
    store: EventStore,
) -> None:
    # More than one send chunk (64 commands), two symbols interleaved.
    items = [
        (f"market-{symbol}", tick(symbol, n))
        for n in range(50)
        for symbol in ("BTC_USDT", "ETH_USDT")
    ]
    entry_ids = store.publish_many("market_data", items)
    read = store.read_topic("market_data", count=1000)
    assert [t.entry_id for t in read] == entry_ids
    assert len(read) == len(items)
    for entry, (stream_id, sent) in zip(read, items, strict=True):
        same_event(entry.event, sent, stream_id, 0)
    # One bad event refuses the whole call before anything is sent.
    with pytest.raises(ContractError, match="belongs on topic 'orders'"):
        store.publish_many(
            "market_data",
            [("market-BTC_USDT", tick("BTC_USDT", 99)), ("market-X", order_placed("o-q"))],
        )
    with pytest.raises(ContractError, match="stream_id"):
        store.publish_many("market_data", [("", tick("BTC_USDT", 98))])
    assert len(store.read_topic("market_data", count=1000)) == len(items)


def test_a_client_that_decodes_responses_reads_the_same(
    redis_url: str, namespace: str, store: EventStore
) -> None:
    result = store.append("order-d-1", [order_placed("d-1")], expected_version=0)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        text_store = EventStore(client, load_topology(), namespace)
        assert text_store.read_aggregate("order-d-1") == store.read_aggregate("order-d-1")
        again = text_store.append("order-d-1", [order_placed("d-1")], expected_version=0)
        assert again.duplicate
        second = text_store.append("order-d-1", [order_filled("d-1")], expected_version=1)
        assert second.entry_ids[0] > result.entry_ids[0]
    finally:
        client.close()


def test_an_unreachable_redis_is_store_unavailable_after_bounded_retries() -> None:
    # No client-side retries: the store's own bounded retry is what is under test.
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(StoreUnavailableError, match="unreachable"):
        EventStore(client, load_topology(), "nowhere", retry_for_s=0.3)
    store = EventStore(client, load_topology(), "nowhere", check_server=False, retry_for_s=0.3)
    with pytest.raises(StoreUnavailableError):
        store.append("order-x", [order_placed("x")], expected_version=0)
    with pytest.raises(StoreUnavailableError):
        store.read_aggregate("order-x")


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A Redis of this module's own: these tests change its settings and flush its scripts."""
    with embedded_testing.redis_server(Path(tmp_path_factory.mktemp("own-redis"))) as url:
        client = redis.Redis.from_url(url)
        yield client
        client.close()


def test_an_evicting_redis_is_refused_with_the_fix(own_redis: redis.Redis) -> None:
    own_redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(UnsafeServerError) as caught:
            EventStore(own_redis, load_topology(), "evict")
        assert "'allkeys-lru'" in str(caught.value)
        assert "CONFIG SET maxmemory-policy noeviction" in str(caught.value)
    finally:
        own_redis.config_set("maxmemory-policy", "noeviction")
    EventStore(own_redis, load_topology(), "evict")  # fixed: accepted


def test_aof_off_is_logged_as_a_warning(
    own_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    from cdb.eventstore import server_checks

    # Left off afterwards: turning AOF back on starts a rewrite that delays the server's
    # shutdown, and this server is thrown away after these tests anyway.
    own_redis.config_set("appendonly", "no")
    server_checks._warned.clear()
    with caplog.at_level(logging.WARNING, logger="cdb.eventstore.server_checks"):
        EventStore(own_redis, load_topology(), "aof")
        EventStore(own_redis, load_topology(), "aof")
    warnings = [r.getMessage() for r in caplog.records if "appendonly" in r.getMessage()]
    assert len(warnings) == 1  # once per process, not once per store
    assert "without AOF" in warnings[0]


def test_a_lost_script_cache_is_reloaded(own_redis: redis.Redis) -> None:
    store = EventStore(own_redis, load_topology(), "noscript")
    store.append("order-n-1", [order_placed("n-1")], expected_version=0)
    own_redis.script_flush()
    result = store.append("order-n-1", [order_filled("n-1")], expected_version=1)
    assert (result.first_seq, result.duplicate) == (2, False)
    own_redis.script_flush()
    results = store.append_many(
        [
            AppendRequest("order-n-2", [order_placed("n-2")], 0),
            AppendRequest("order-n-1", [order_filled("n-1")], 1),
        ]
    )
    assert [(r.first_seq, r.duplicate) for r in results if isinstance(r, AppendResult)] == [
        (1, False),
        (2, True),
    ]


def test_a_batch_larger_than_the_scripts_chunk_appends_and_retries_whole(
    store: EventStore, redis_client: redis.Redis
) -> None:
    events = [alert("big", n) for n in range(2500)]
    store.append("alert-big", [alert("big", -1)], expected_version=0)
    result = store.append("alert-big", events, expected_version=1)
    assert (result.first_seq, result.last_seq, len(result.entry_ids)) == (2, 2501, 2500)

    again = store.append("alert-big", events, expected_version=1)
    assert (again.first_seq, again.last_seq, again.duplicate) == (2, 2501, True)
    with pytest.raises(DuplicateBatchError, match="2500 of 2501"):
        store.append("alert-big", [*events, alert("big", 9999)], expected_version=2501)
    assert lengths(redis_client, store, "alert-big", "alerts") == (2501, 2501, 2501)


def test_partitioned_topics_keep_an_aggregate_on_one_partition(
    redis_client: redis.Redis, namespace: str
) -> None:
    raw = {
        "topics": {
            "orders": {"events": ["ORDER_PLACED"], "partitions": 4},
            "order_results": {"events": ["ORDER_FILLED"], "partitions": 4},
        }
    }
    topology = parse_topology(raw, Path("four-partitions.toml"))
    store = EventStore(redis_client, topology, namespace)
    orders = [f"order-p{n}" for n in range(12)]
    for order in orders:
        store.append(order, [order_placed(order)], expected_version=0)
        store.append(order, [order_filled(order)], expected_version=1)

    used = set()
    for order in orders:
        partition = store.partition_of(order)
        used.add(partition)
        assert store.aggregate_key(order).startswith(f"{{{namespace}:{partition}}}:")
        on_orders = [t.event.stream_id for t in store.read_topic("orders", partition)]
        on_results = [t.event.stream_id for t in store.read_topic("order_results", partition)]
        assert order in on_orders
        assert order in on_results
        assert [e.sequence_number for e in store.read_aggregate(order)] == [1, 2]
    assert len(used) > 1
    total = sum(len(store.read_topic("orders", p)) for p in range(4))
    assert total == len(orders)


def test_a_user_without_config_rights_gets_a_warning_not_a_crash(
    own_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    from cdb.eventstore import server_checks

    own_redis.acl_setuser(
        "no-config",
        enabled=True,
        passwords=["+s3cret-no-config"],
        keys=["*"],
        commands=["+@all", "-config"],
    )
    kwargs = own_redis.connection_pool.connection_kwargs
    limited = redis.Redis(
        host=kwargs["host"], port=kwargs["port"], username="no-config", password="s3cret-no-config"
    )
    server_checks._warned.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="cdb.eventstore.server_checks"):
            store = EventStore(limited, load_topology(), "acl")
        assert store.append("order-acl", [order_placed("acl")], expected_version=0).first_seq == 1
    finally:
        limited.close()
        own_redis.acl_deluser("no-config")
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "could not read maxmemory-policy" in messages


def test_a_lua_script_call_loads_the_script_when_the_server_lacks_it(
    own_redis: redis.Redis,
) -> None:
    from cdb.eventstore.lua import LuaScript

    own_redis.script_flush()
    script = LuaScript("append")
    keys = ["{lua:0}:agg:order-l", "{lua:0}:ids:order-l", "{lua:0}:topic:orders"]
    args = ["0", "order-l", "e-1", "ORDER_PLACED", "1", "{}"]
    assert script.call(own_redis, keys, args)[:2] == [1, 1]
    assert script.call(own_redis, keys, args) == [2, 1, 1]  # an exact retry: duplicate
    assert own_redis.script_exists(script.sha) == [True]
