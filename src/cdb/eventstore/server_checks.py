"""Refuse a Redis that could lose history; warn about one that could lose the last second.

An evicting ``maxmemory-policy`` silently deletes keys under memory pressure, and an evicted
aggregate stream is lost history: the store refuses to start on such a server. Without AOF a
crash loses what was written since the last RDB snapshot: that is worth a warning, not a
refusal (a throwaway sandbox may want it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from cdb.errors import UnsafeServerError

log = logging.getLogger(__name__)

_warned: set[str] = set()


@dataclass(frozen=True)
class ServerVerdict:
    """What to do about a server's settings; ``None`` means the setting could not be read."""

    refusal: str | None
    warnings: tuple[str, ...]


def judge(maxmemory_policy: str | None, appendonly: str | None) -> ServerVerdict:
    """The pure decision: refuse an evicting policy, warn when AOF is off or unknown."""
    warnings: list[str] = []
    refusal: str | None = None
    if maxmemory_policy is None:
        warnings.append(
            "could not read maxmemory-policy (CONFIG not permitted?); make sure it is "
            "'noeviction', or evicted streams are lost history"
        )
    elif maxmemory_policy != "noeviction":
        refusal = (
            f"Redis maxmemory-policy is '{maxmemory_policy}': keys may be evicted and an evicted "
            "stream is lost history. Fix: run `CONFIG SET maxmemory-policy noeviction` (and "
            "`CONFIG REWRITE`), or set `maxmemory-policy noeviction` in redis.conf"
        )
    if appendonly is None:
        warnings.append("could not read appendonly (CONFIG not permitted?); AOF state unknown")
    elif appendonly != "yes":
        warnings.append(
            "Redis runs without AOF (appendonly no): a crash loses events written since the last "
            "snapshot. Fix: `CONFIG SET appendonly yes`, or `appendonly yes` in redis.conf"
        )
    return ServerVerdict(refusal=refusal, warnings=tuple(warnings))


def check_server(client: redis.Redis) -> ServerVerdict:
    """Read the settings, log each warning once per process, raise if history is at risk."""
    verdict = judge(_config(client, "maxmemory-policy"), _config(client, "appendonly"))
    for warning in verdict.warnings:
        if warning not in _warned:
            _warned.add(warning)
            log.warning(warning)
    if verdict.refusal is not None:
        raise UnsafeServerError(verdict.refusal)
    return verdict


def _config(client: redis.Redis, name: str) -> str | None:
    try:
        reply = client.config_get(name)
    except redis.ResponseError:
        # ACL without +config, or a managed Redis that renames/blocks CONFIG.
        return None
    values: dict[Any, Any] = dict(reply or {})
    value = values.get(name, values.get(name.encode()))  # str keys today; bytes in older clients
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
