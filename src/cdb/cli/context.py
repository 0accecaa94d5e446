"""Composition-root helpers every command uses: settings and the servers they point at.

With ``CDB_REDIS_URL`` / ``CDB_DATABASE_URL`` set (environment or secret file) those servers are
used and nothing is started. Otherwise the embedded servers under ``CDB_HOME`` (default
``.cdb/`` of the repository) are started if needed, or reused if already up.
"""

from __future__ import annotations

from typing import Any

import redis

from cdb.config import Settings
from cdb.config import load_settings as _load_settings
from cdb.embedded import EmbeddedServers

# One start-or-reuse check per process and server is enough.
_resolved: dict[tuple[str, str], str] = {}


def load_settings(**overrides: Any) -> Settings:
    """Settings from secret files and the environment; ``overrides`` (non-None) win.

    Raises :class:`cdb.errors.ConfigError` for a bad value.
    """
    return _load_settings(**overrides)


def embedded_servers(settings: Settings) -> EmbeddedServers:
    """The embedded servers of ``settings``' home (not started by this call)."""
    return EmbeddedServers(settings.resolved_home())


def redis_url(settings: Settings) -> str:
    """URL of the Redis to use (password included: never print it; see config.mask_url)."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    key = ("redis", str(settings.resolved_home()))
    if key not in _resolved:
        _resolved[key] = embedded_servers(settings).redis.ensure_running()
    return _resolved[key]


def database_url(settings: Settings) -> str:
    """``postgresql://`` URL of the database to use (embedded: database ``cdb``)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    key = ("postgres", str(settings.resolved_home()))
    if key not in _resolved:
        _resolved[key] = embedded_servers(settings).postgres.ensure_running()
    return _resolved[key]


def redis_client(settings: Settings, **options: Any) -> redis.Redis:
    """A client of the Redis to use; ``options`` go to ``redis.Redis.from_url``."""
    return redis.Redis.from_url(redis_url(settings), **options)


def forget_servers() -> None:
    """Drop this process's memory of started servers (after `cdb down`)."""
    _resolved.clear()
