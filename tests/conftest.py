"""Shared fixtures: real servers, one key namespace and one database per test.

Servers come from CDB_TEST_REDIS_URL / CDB_TEST_DATABASE_URL when set (CI's second pass uses
the machine's Redis and PostgreSQL); otherwise embedded servers are started once per test
session in a temporary directory and stopped at its end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cdb.embedded import testing as embedded_testing
from cdb.eventstore.namespace import delete_namespace


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("CDB_TEST_REDIS_URL")
    if url:
        yield url
        return
    with embedded_testing.redis_server(Path(tmp_path_factory.mktemp("redis"))) as server_url:
        yield server_url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a database where the tests may CREATE and DROP DATABASE."""
    url = os.environ.get("CDB_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with embedded_testing.postgres_server(Path(tmp_path_factory.mktemp("pg"))) as server_url:
        yield server_url


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A key namespace of this test's own; every key in it is deleted afterwards."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    try:
        delete_namespace(client, ns)
    finally:
        client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    """URL of a new empty database, dropped after the test."""
    with embedded_testing.scratch_database(database_url) as url:
        yield url
