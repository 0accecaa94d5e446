"""`cdb bench append`: the event store's append path against raw pipelined XADD, same run.

Both sides write the same encoded entries (~440 bytes: ORDER_PLACED, an OrderV1 payload,
producer and correlation metadata) in pipelines of ``batch``:

* store: :meth:`EventStore.append_many`, one Lua call per append with an optimistic
  ``expected_version``, spread over ``aggregates`` order streams (each event lands in its
  aggregate stream, the ``orders`` topic partition and the id hash);
* raw: ``XADD key * <fields>`` to one stream, fields encoded before the clock starts.

Only the Redis round trips are timed on the raw side; the store side is timed from the
``NewEvent`` to the stored answer (its encoding is part of the store's work). Building the
events (the producer's work) is outside both clocks. Keys live in a throwaway namespace that is
deleted afterwards, whatever happens.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis

from cdb.domain.contracts import OrderType, OrderV1, Side
from cdb.domain.envelope import EventMetadata, NewEvent
from cdb.domain.event_types import EventType
from cdb.errors import ConfigError, StoreError
from cdb.eventstore.codec import encode_fields
from cdb.eventstore.keys import Keys
from cdb.eventstore.namespace import delete_namespace
from cdb.eventstore.store import AppendRequest, EventStore
from cdb.eventstore.topology import Topology

_SYMBOLS = ("BTC_USDT", "ETH_USDT", "SOL_USDT", "XRP_USDT", "DOGE_USDT")
_START = datetime(2026, 1, 1, tzinfo=UTC)
_PREFIX = "order-bench"


@dataclass(frozen=True)
class AppendBenchResult:
    events: int
    aggregates: int
    batch: int
    entry_bytes: float
    store_seconds: float
    raw_seconds: float
    store_events_per_s: float
    raw_events_per_s: float
    ratio: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def order_event(n: int, aggregate: int) -> tuple[str, NewEvent]:
    """A realistic ORDER_PLACED: the risk layer approved a momentum signal."""
    at = _START + timedelta(milliseconds=250 * n)
    order_id = f"ord-{aggregate:06d}-{n:08d}"
    payload = OrderV1(
        order_id=order_id,
        signal_id=f"sig-{n:08d}",
        strategy_id="momentum_v1",
        symbol=_SYMBOLS[n % len(_SYMBOLS)],
        side=Side.BUY if n % 2 else Side.SELL,
        quantity=Decimal("0.01") + Decimal(n % 97) / Decimal(1000),
        order_type=OrderType.LIMIT,
        target_price=Decimal("64250.50") + Decimal(n % 113),
        timestamp=at,
    )
    event = NewEvent(
        event_id=uuid.uuid4(),
        event_type=EventType.ORDER_PLACED,
        timestamp=at,
        payload=payload,
        metadata=EventMetadata(correlation_id=f"sig-{n:08d}", producer="risk"),
    )
    return f"{_PREFIX}{aggregate:06d}", event


def _batches(events: int, aggregates: int, batch: int) -> Iterator[list[tuple[str, NewEvent]]]:
    for start in range(0, events, batch):
        yield [order_event(n, n % aggregates) for n in range(start, min(events, start + batch))]


def run_append_bench(
    client: redis.Redis,
    topology: Topology,
    *,
    events: int,
    aggregates: int,
    batch: int,
    namespace: str | None = None,
) -> AppendBenchResult:
    """Run both sides; every key of ``namespace`` (default: a fresh one) is deleted after."""
    for name, value in (("events", events), ("aggregates", aggregates), ("batch", batch)):
        if value < 1:
            raise ConfigError(f"--{name} = {value}: must be >= 1")
    namespace = namespace or f"bench-{uuid.uuid4().hex[:10]}"
    keys = Keys(namespace)
    # Server settings are the operator's business here; the bench only measures.
    store = EventStore(client, topology, namespace, check_server=False)
    raw_key = keys.topic("bench_raw", 0)
    versions = [0] * aggregates
    store_seconds = raw_seconds = 0.0
    size = 0
    try:
        # Raw and store take turns batch by batch (and swap who goes first), so load from
        # elsewhere on the machine slows both alike and the ratio stays meaningful.
        for number, chunk in enumerate(_batches(events, aggregates, batch)):
            encoded = [encode_fields(event, stream_id, 1) for stream_id, event in chunk]
            size += sum(len(k) + len(v) for fields in encoded for k, v in fields.items())
            requests = []
            for stream_id, event in chunk:
                index = int(stream_id.removeprefix(_PREFIX))
                requests.append(AppendRequest(stream_id, (event,), versions[index]))
                versions[index] += 1
            if number % 2:
                store_seconds += _store_batch(store, requests)
                raw_seconds += _raw_batch(client, raw_key, encoded)
            else:
                raw_seconds += _raw_batch(client, raw_key, encoded)
                store_seconds += _store_batch(store, requests)
    finally:
        delete_namespace(client, keys.namespace)
    store_rate = events / store_seconds
    raw_rate = events / raw_seconds
    return AppendBenchResult(
        events=events,
        aggregates=aggregates,
        batch=batch,
        entry_bytes=round(size / events, 1),
        store_seconds=round(store_seconds, 3),
        raw_seconds=round(raw_seconds, 3),
        store_events_per_s=round(store_rate, 1),
        raw_events_per_s=round(raw_rate, 1),
        ratio=round(store_rate / raw_rate, 4),
    )


def _raw_batch(client: redis.Redis, key: str, encoded: list[dict[str, str | bytes]]) -> float:
    began = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for fields in encoded:
        pipe.xadd(key, fields)  # type: ignore[arg-type]
    pipe.execute()
    return time.perf_counter() - began


def _store_batch(store: EventStore, requests: list[AppendRequest]) -> float:
    began = time.perf_counter()
    results = store.append_many(requests)
    elapsed = time.perf_counter() - began
    failed = [r for r in results if isinstance(r, StoreError)]
    if failed:
        raise StoreError(f"bench append refused {len(failed)} appends, first: {failed[0]}")
    return elapsed
