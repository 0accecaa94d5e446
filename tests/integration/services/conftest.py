"""Fixtures for the services on real Redis: the shipped recording's ticks, a store."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from cdb.domain.contracts import MarketDataV1
from cdb.domain.services.marketdata import read_market_data
from cdb.domain.services.marketgen import RECORDING, iter_csv_lines
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology, load_topology

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def shipped_ticks() -> list[MarketDataV1]:
    return list(read_market_data(iter_csv_lines((ROOT / RECORDING).read_bytes())))


@pytest.fixture
def topology() -> Topology:
    return load_topology()


@pytest.fixture
def store(redis_client: redis.Redis, topology: Topology, namespace: str) -> EventStore:
    return EventStore(redis_client, topology, namespace)
