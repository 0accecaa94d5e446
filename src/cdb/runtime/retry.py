"""When a failed entry runs again, and re-delivering it so Redis counts the attempt.

The delivery count lives in Redis (XPENDING), so it survives a crash: a failed entry stays
pending; when its backoff has elapsed the owner XCLAIMs it to itself, which bumps the count.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from cdb.eventstore.topology import GroupPolicy
from cdb.runtime._util import fields_text, text
from cdb.runtime.ordering import PartitionKeys


@dataclass(order=True)
class _Due:
    due_ms: int
    entry_id: str = field(compare=True)
    aggregate: bytes = field(compare=False, default=b"")
    delivery_count: int = field(compare=False, default=1)


class RetrySchedule:
    """Entries waiting for their backoff, soonest first."""

    def __init__(self) -> None:
        self._heap: list[_Due] = []
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._ids

    def schedule(
        self,
        entry_id: str,
        aggregate: bytes,
        delivery_count: int,
        policy: GroupPolicy,
        now_ms: int,
    ) -> int:
        due = now_ms + policy.backoff_ms(delivery_count)
        heapq.heappush(self._heap, _Due(due, entry_id, aggregate, delivery_count))
        self._ids.add(entry_id)
        return due

    def next_due_ms(self) -> int | None:
        return self._heap[0].due_ms if self._heap else None

    def pop_due(self, now_ms: int) -> list[tuple[str, bytes, int]]:
        """``(entry id, aggregate, delivery count so far)`` of every entry whose backoff elapsed."""
        out: list[tuple[str, bytes, int]] = []
        while self._heap and self._heap[0].due_ms <= now_ms:
            item = heapq.heappop(self._heap)
            self._ids.discard(item.entry_id)
            out.append((item.entry_id, item.aggregate, item.delivery_count))
        return out

    def ids(self) -> set[str]:
        return set(self._ids)


def redeliver(
    client: redis.Redis, pk: PartitionKeys, consumer: str, entry_ids: Sequence[str]
) -> dict[str, dict[str, str] | None]:
    """XCLAIM own entries (bumping their delivery count); None for an entry deleted meanwhile."""
    if not entry_ids:
        return {}
    reply = client.xclaim(pk.stream, pk.group, consumer, 0, list(entry_ids))
    got: dict[str, dict[str, str] | None] = {eid: None for eid in entry_ids}
    for item in reply or []:
        if item is None:
            continue
        eid, raw = item[0], item[1]
        got[text(eid)] = fields_text(raw) if raw is not None else None
    return got


def delivery_counts(
    client: redis.Redis, pk: PartitionKeys, entry_ids: Sequence[str]
) -> dict[str, int]:
    """Redis's delivery count of each pending entry (absent ones are not pending)."""
    out: dict[str, int] = {}
    pipe = client.pipeline(transaction=False)
    for eid in entry_ids:
        pipe.xpending_range(pk.stream, pk.group, min=eid, max=eid, count=1)
    for eid, rows in zip(entry_ids, pipe.execute(), strict=True):
        if rows:
            out[eid] = int(rows[0]["times_delivered"])
    return out
