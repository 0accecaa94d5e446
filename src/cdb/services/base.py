"""What every pipeline service on the runtime has in common.

A service owns one consumer group per topic it reads (the group is named after the service, as
``streams/topology.toml`` declares), one handler per topic, and state that it rebuilds from the
streams at start (:meth:`Service.rebuild`). Handlers call the pure logic of
:mod:`cdb.domain.services` and return its outputs in :class:`~cdb.runtime.handler.Ack`, so the
runtime appends them durably before it acks the input. Each output is its own append: event ids
are deterministic, so a redelivered input re-emits the same ids and the store answers
"duplicate" instead of storing them twice.

The handlers of one service may run on several threads (one consumer per topic): a lock
serialises them around the shared state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cdb.domain.envelope import EventEnvelope
from cdb.domain.services.events import Emit
from cdb.eventstore.store import AppendRequest
from cdb.runtime.handler import Ack, Delivery, Handler, Outcome
from cdb.services.state import History

SERVICE_NAMES = ("feed", "signal", "risk", "execution", "portfolio")
"""Every pipeline service, upstream first (``cdb run NAME``)."""

_ACK = Ack()


def requests(emits: Iterable[Emit]) -> list[AppendRequest]:
    """One append per event, in emission order (a partly stored batch would be refused)."""
    return [AppendRequest(e.stream_id, (e.event,), None) for e in emits]


def ack(emits: Sequence[Emit]) -> Ack:
    return Ack(requests(emits)) if emits else _ACK


@dataclass(frozen=True)
class Subscription:
    """One (topic, group) the service reads, and what handles its entries."""

    topic: str
    handler: Handler


class Service:
    """Base of the consuming services: a name (= consumer group), handlers, state, a lock."""

    name: str = ""

    def __init__(self) -> None:
        self.lock = threading.RLock()

    def subscriptions(self) -> list[Subscription]:
        raise NotImplementedError

    def use_threads(self) -> None:
        """Called before the service's consumers start on threads of their own (``cdb run
        NAME``): from then on one topic's handler may wait for another topic's consumer to
        fold something. Single-threaded runs (``cdb run all``) never call it."""

    def rebuild(self, history: History) -> int:
        """Fold the service's history into its state; returns how many events were folded."""
        raise NotImplementedError

    def _locked(self, fn: Callable[[EventEnvelope], Outcome]) -> Handler:
        def handle(event: EventEnvelope, delivery: Delivery, /) -> Outcome:  # noqa: ARG001
            with self.lock:
                return fn(event)

        return handle

    def _ignore(self) -> Handler:
        """For groups whose events the state already holds (own outputs): ack, do nothing."""

        def handle(event: EventEnvelope, delivery: Delivery, /) -> Outcome:  # noqa: ARG001
            return _ACK

        return handle
