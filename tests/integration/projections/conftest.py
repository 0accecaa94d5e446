"""Fixtures for the projection tests: a migrated database, an event store, the definitions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis

from cdb.eventstore.store import AppendResult, EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import db
from cdb.projections.definitions import Definition, load_definitions
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
