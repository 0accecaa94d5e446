"""What a handler is and what it may answer, declared as data.

A handler gets one decoded event and its delivery, and answers with an outcome:

- :class:`Ack` (or ``None``): done; ``outputs`` are appended durably *before* the entry is acked;
- :class:`Retry`: a transient failure; re-run after the group's backoff (so does any exception);
- :class:`Reject` (or raising :class:`cdb.errors.HandlerRejected`): can never succeed; the entry
  is dead-lettered at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from cdb.domain.envelope import EventEnvelope
from cdb.eventstore.store import AppendRequest


class Delivery(NamedTuple):
    """Where an entry came from and how often Redis has delivered it (a tuple: cheap per entry)."""

    topic: str
    partition: int
    group: str
    consumer: str
    entry_id: str
    delivery_count: int
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Ack:
    outputs: Sequence[AppendRequest] = field(default_factory=tuple)


@dataclass(frozen=True)
class Retry:
    reason: str


@dataclass(frozen=True)
class Reject:
    reason: str


Outcome = Ack | Retry | Reject


class Handler(Protocol):
    def __call__(self, event: EventEnvelope, delivery: Delivery, /) -> Outcome | None: ...
