"""A consumer's heartbeat: a background thread that says "alive" while handlers run.

Each beat records the time in the group's heartbeat hash (shown by ``cdb pending``) and resets
the idle time of every entry the consumer owns (``consume_touch.lua``), so claimers, which only
take entries idle past ``claim_idle_ms``, never rob a slow but alive consumer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import redis

from cdb.eventstore.lua import LuaScript
from cdb.runtime._util import now_ms
from cdb.runtime.ordering import PartitionKeys

_TOUCH = LuaScript("consume_touch")
log = logging.getLogger(__name__)


def beat(client: redis.Redis, pk: PartitionKeys, consumer: str) -> int:
    """One heartbeat on one partition; returns how many owned entries were touched."""
    return int(_TOUCH.call(client, [pk.stream, pk.heartbeats], [pk.group, consumer, str(now_ms())]))


def interval_ms(claim_idle_ms: int) -> int:
    # Several beats fit in one claim timeout, so one late beat never loses entries.
    return max(20, min(1000, claim_idle_ms // 4))


class Heartbeat:
    """Beats every ``every_ms`` on every partition until stopped."""

    def __init__(
        self,
        client: redis.Redis,
        partitions: Sequence[PartitionKeys],
        consumer: str,
        every_ms: int,
    ) -> None:
        self._client = client
        self._partitions = list(partitions)
        self._consumer = consumer
        self._every_s = every_ms / 1000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{consumer}", daemon=True)

    def beat_now(self) -> None:
        for pk in self._partitions:
            beat(self._client, pk, self._consumer)

    def start(self) -> None:
        self.beat_now()
        self._thread.start()

    def stop(self, *, forget: bool = False) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if forget:
            # A graceful exit: say so, so nobody waits for a heartbeat that will not come.
            for pk in self._partitions:
                try:
                    self._client.hdel(pk.heartbeats, self._consumer)
                except redis.RedisError:
                    log.debug("could not clear heartbeat of %s", self._consumer)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.beat_now()
            except redis.RedisError as exc:
                # The consumer loop reports outages; a missed beat is harmless while the
                # claim timeout is several beats long.
                log.debug("heartbeat of %s failed: %s", self._consumer, exc)
