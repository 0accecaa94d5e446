"""Throw-away servers and databases for test sessions (used by ``tests/conftest.py``).

Each server lives in the directory it is given (its own home), on a free 127.0.0.1 port, and is
stopped when the ``with`` block ends, whatever happens inside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from cdb.embedded.postgres_server import EmbeddedPostgres
from cdb.embedded.redis_server import EmbeddedRedis


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A fresh embedded Redis (AOF on, noeviction, password) in ``directory``; yields its URL."""
    server = EmbeddedRedis(directory)
    try:
        yield server.ensure_running()
    finally:
        server.stop()


@contextlib.contextmanager
def postgres_server(directory: Path) -> Iterator[str]:
    """A fresh embedded PostgreSQL in ``directory``; yields a superuser URL (CREATE DATABASE).

    Scratch cluster: fsync is off, as nothing in it needs to survive a machine crash.
    """
    cluster_dir = _cluster_dir_outside_pytest()
    server = EmbeddedPostgres(directory, durable=False, server_dir=cluster_dir)
    try:
        yield server.ensure_running_admin()
    finally:
        try:
            server.stop()
        finally:
            if cluster_dir is not None:
                shutil.rmtree(cluster_dir, ignore_errors=True)


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """CREATE a database with a unique name, yield its URL, DROP it (WITH (FORCE)) afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _cluster_dir_outside_pytest() -> Path | None:
    """Under root, a cluster directory in the system temp dir rather than under pytest's.

    As root, PostgreSQL runs as an unprivileged user that must traverse the path to its data.
    pytest resets its base temp dir (``/tmp/pytest-of-root``) to mode 0700 whenever another
    pytest session starts, which would cut a running cluster off its own files.
    """
    if os.geteuid() != 0:
        return None
    return Path(tempfile.mkdtemp(prefix="cdb-test-pg-"))


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))
