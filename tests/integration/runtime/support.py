"""Helpers for the runtime's tests: a small topology, events, and waiting on conditions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdb.domain.contracts import AlertV1
from cdb.domain.envelope import EventMetadata, NewEvent, derive_id
from cdb.domain.event_types import EventType
from cdb.eventstore.topology import Topology, parse_topology

TOPIC = "alerts"
GROUP = "g"


def topology(partitions: int = 1, **policy: int) -> Topology:
    group = {
        "max_deliveries": 5,
        "backoff_base_ms": 20,
        "backoff_cap_ms": 200,
        "claim_idle_ms": 1000,
        "batch_size": 50,
    }
    group.update(policy)
    raw: dict[str, Any] = {
        "topics": {
            TOPIC: {
                "partitions": partitions,
                "events": ["ALERT_RAISED"],
                "groups": {GROUP: group, "other": dict(group)},
            }
        }
    }
    return parse_topology(raw, Path("test"))


def alert(aggregate: str, n: int, *, traceparent: str | None = None) -> NewEvent:
    return NewEvent(
        event_id=derive_id(aggregate, str(n)),
        event_type=EventType.ALERT_RAISED,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        payload=AlertV1(
            level="INFO",
            code="TEST",
            message=f"{aggregate} #{n}",
            context={"n": str(n)},
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        ),
        metadata=EventMetadata(producer="test", traceparent=traceparent),
    )


def new_aggregate() -> str:
    return f"alert-{uuid.uuid4().hex[:12]}"


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Poll ``condition`` until true; fail naming ``what`` when the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}")


def decoded(value: object) -> str:
    """A Redis reply value as text (the test client returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
