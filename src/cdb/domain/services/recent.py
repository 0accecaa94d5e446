"""Bounded memories for idempotency: the last N ids (or id -> value) a fold has seen.

A fold must recognise a redelivered input (a signal already decided, an order already
answered, a fill already counted), but remembering every id forever makes state grow without
bound and every immutable update copy it all. Redeliveries come within the consumer group's
claim and retry windows (seconds to minutes), so the last ``limit`` ids are enough: the default
of 10 000 covers far more than that at any realistic signal and order rate. The oldest entry
is forgotten first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

V = TypeVar("V")

DEFAULT_LIMIT = 10_000


@dataclass(frozen=True)  # no slots: slotted generic dataclasses break RecentMap[int](...)
class RecentMap(Generic[V]):
    """An insertion-ordered mapping of at most ``limit`` entries; ``put`` returns a new one."""

    entries: Mapping[str, V] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT

    def put(self, key: str, value: V) -> RecentMap[V]:
        entries = dict(self.entries)
        entries.pop(key, None)  # a re-put counts as recent again
        entries[key] = value
        while len(entries) > self.limit:
            del entries[next(iter(entries))]
        return RecentMap(entries, self.limit)

    def get(self, key: str) -> V | None:
        return self.entries.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)


@dataclass(frozen=True, slots=True)
class RecentIds:
    """A set of at most ``limit`` ids, forgetting the oldest first."""

    ids: RecentMap[None] = field(default_factory=RecentMap)

    def add(self, key: str) -> RecentIds:
        if key in self.ids:
            return self
        return RecentIds(self.ids.put(key, None))

    def __contains__(self, key: object) -> bool:
        return key in self.ids

    def __len__(self) -> int:
        return len(self.ids)
