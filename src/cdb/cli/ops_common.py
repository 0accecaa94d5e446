"""Shared by the operator commands (`cdb streams`, `cdb pending`, `cdb dlq`): context,
durations and times, and printing one JSON document or rich tables."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from cdb.cli import context
from cdb.errors import ConfigError
from cdb.eventstore.topology import Topology, load_topology

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class Ops:
    client: redis.Redis
    topology: Topology
    namespace: str


def ops(namespace: str | None) -> Ops:
    settings = context.load_settings(namespace=namespace)
    return Ops(
        client=context.redis_client(settings),
        topology=load_topology(settings.topology_file),
        namespace=settings.namespace,
    )


def duration_ms(value: str, option: str) -> int:
    """``60s``, ``500ms``, ``2m``, ``1h``, ``1d``; a bare number is seconds."""
    match = _DURATION.match(value)
    if not match:
        raise ConfigError(
            f"option '{option}' = {value!r}: must be a duration such as 500ms, 60s, 5m, 1h"
        )
    number, unit = float(match.group(1)), match.group(2) or "s"
    return int(number * _UNIT_MS[unit])


def time_ms(value: str | None, option: str, now_ms: int) -> int | None:
    """An ISO-8601 time (UTC if no offset) or a duration ago (``10m`` = ten minutes ago)."""
    if value is None:
        return None
    if _DURATION.match(value):
        return now_ms - duration_ms(value, option)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"option '{option}' = {value!r}: must be an ISO time (2026-01-31T12:00:00Z) "
            "or a duration ago (10m)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(ms: int | None) -> str:
    if ms is None:
        return "never"
    if ms < 1000:
        return f"{ms}ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f}s"
    return f"{ms / 60_000:.1f}m"


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=True, default=str))


def table(title: str, *columns: str) -> Table:
    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column)
    return t


def show(*renderables: Any) -> None:
    console = Console()
    for r in renderables:
        console.print(r)
