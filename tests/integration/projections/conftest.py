"""Fixtures for the projection tests: a migrated database, an event store, the definitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import redis

from cdb.domain.contracts import OrderType, OrderV1, Side
from cdb.domain.envelope import NewEvent, derive_id
from cdb.domain.event_types import EventType
from cdb.eventstore.store import AppendResult, EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import db
from cdb.projections.definitions import Definition, load_definitions
from cdb.projections.digest import Digest, projection_digest
from cdb.projections.engine import Projector, connect, wait_caught_up
from cdb.projections.rebuild import Progress, RebuildReport, rebuild
from cdb.projections.sample import requests


@pytest.fixture
def migrated_db(fresh_database: str) -> str:
    db.upgrade(fresh_database)
    return fresh_database


@pytest.fixture
def topology() -> Topology:
    return load_topology()


@pytest.fixture
def store(redis_client: redis.Redis, topology: Topology, namespace: str) -> EventStore:
    return EventStore(redis_client, topology, namespace, check_server=False)


def append_cycles(store: EventStore, cycles: int, start: int = 0) -> int:
    """Append the sample history's cycles ``start..start+cycles``; returns the event count."""
    results = store.append_many(list(requests(cycles, start=start)))
    assert all(isinstance(r, AppendResult) for r in results), results
    return sum(len(r.entry_ids) for r in results if isinstance(r, AppendResult))


@dataclass(frozen=True)
class Env:
    """Everything a projection test works with: servers, namespace, definitions."""

    url: str  # migrated database
    store: EventStore
    client: redis.Redis
    topology: Topology
    namespace: str
    definitions: dict[str, Definition]


@pytest.fixture
def env(
    migrated_db: str,
    store: EventStore,
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
) -> Env:
    return Env(migrated_db, store, redis_client, topology, namespace, load_definitions())


def append_oversized_order(store: EventStore, at: datetime) -> None:
    """An ORDER_PLACED valid for its contract but too large for the orders column
    (numeric(18, 8)): PostgreSQL refuses it, so the projection must dead-letter it."""
    huge = OrderV1(
        order_id="huge",
        signal_id="ssample0",
        strategy_id="m1",
        symbol="BTC_USDT",
        side=Side.BUY,
        quantity=Decimal("1e15"),
        order_type=OrderType.MARKET,
        timestamp=at,
    )
    event = NewEvent(
        event_id=derive_id("huge"),
        event_type=EventType.ORDER_PLACED,
        timestamp=at,
        payload=huge,
    )
    store.append("order-huge", [event], 0)


def project_live(env: Env, *names: str) -> dict[str, Digest]:
    """Run the live projectors of ``names`` until caught up; the digests of their tables."""
    for name in names:
        projector = Projector(
            env.definitions[name], env.client, env.topology, env.namespace, env.url, block_ms=50
        )
        wait_caught_up(projector)
        projector.close()
    return digests(env, *names)


def digests(env: Env, *names: str) -> dict[str, Digest]:
    with connect(env.url) as conn:
        return {n: projection_digest(conn, env.definitions[n], "public") for n in names}


def rebuild_of(env: Env, name: str, **options: Any) -> RebuildReport:
    return rebuild(
        env.definitions[name], env.client, env.topology, env.namespace, env.url, **options
    )


def interrupted_rebuild(env: Env, name: str, *, after: int, **options: Any) -> list[int]:
    """A rebuild stopped by Ctrl-C once it reported progress ``after`` times; the progress
    it reported."""
    seen: list[int] = []

    def interrupt(progress: Progress) -> None:
        seen.append(progress.done)
        if len(seen) == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rebuild_of(env, name, progress=interrupt, **options)
    return seen
