"""Probes of servers cdb does not manage (CDB_REDIS_URL / CDB_DATABASE_URL): up, version, pid."""

from __future__ import annotations

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cdb.config import mask_url
from cdb.embedded.state import ServerStatus


def probe_redis(url: str) -> ServerStatus:
    client = redis.Redis.from_url(
        url, socket_timeout=3.0, socket_connect_timeout=3.0, retry=Retry(NoBackoff(), 0)
    )
    try:
        info = client.info("server")
    except redis.RedisError as exc:
        return ServerStatus("redis", "external", False, mask_url(url), error=_safe(exc, url))
    finally:
        client.close()
    return ServerStatus(
        "redis",
        "external",
        True,
        mask_url(url),
        version=str(info.get("redis_version")),
        pid=_int(info.get("process_id")),
        port=_int(info.get("tcp_port")),
    )


def probe_postgres(url: str) -> ServerStatus:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            row = conn.execute("SELECT current_setting('server_version'), inet_server_port()")
            version, port = row.fetchone() or (None, None)
    except psycopg.Error as exc:
        return ServerStatus("postgres", "external", False, mask_url(url), error=_safe(exc, url))
    return ServerStatus(
        "postgres",
        "external",
        True,
        mask_url(url),
        version=str(version).split(" ", 1)[0],
        port=_int(port),
    )


def libpq_url(url: str) -> str:
    """A SQLAlchemy-style ``postgresql+psycopg://`` URL as libpq/psycopg accept it."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _safe(exc: Exception, url: str) -> str:
    # Driver messages may quote the connection string; never let the password through.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.replace(url, mask_url(url))
