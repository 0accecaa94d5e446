"""Small helpers shared by the runtime modules (bytes/str replies, clock)."""

from __future__ import annotations

import time
from typing import Any


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def fields_text(raw: Any) -> dict[str, str]:
    """Stream entry fields as str -> str, from a redis-py dict or a Lua flat list."""
    if isinstance(raw, dict):
        return {text(k): text(v) for k, v in raw.items()}
    items = list(raw)
    return {text(items[i]): text(items[i + 1]) for i in range(0, len(items), 2)}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def id_key(entry_id: str) -> tuple[int, int]:
    """Sort key of a stream entry id ``ms-seq``."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
