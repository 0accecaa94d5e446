"""One active replica per service: a lease in Redis, renewed while the holder lives.

Every pipeline service keeps state (signal: price windows; risk: positions, orders in flight,
the breaker; execution: recent ticks; portfolio: positions and cash), and each decision depends
on having seen *every* input of its topics in order. Two replicas splitting a consumer group
would each see half the ticks and decide differently, so replicas do not share the work: the
one holding the lease is active, the others are standbys that poll for it. When the active one
dies (kill -9, lost host), its lease expires after ``ttl_ms`` and a standby takes over: it
rebuilds its state from the streams and resumes the group's pending entries. Scale-out beyond
one active replica per service is by topic partitions, not by replicas of the same state.

The lease is a key holding the owner's token with a TTL (``SET NX PX``); renewing and releasing
check the token first (in Lua), so a replica that lost its lease can never extend or delete
the new owner's. Time is Redis's (the TTL), never this process's clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import redis

from cdb.eventstore.keys import Keys

log = logging.getLogger(__name__)

DEFAULT_TTL_MS = 5000

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """The lease of one service in one namespace, held under ``owner``."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        service: str,
        owner: str,
        ttl_ms: int = DEFAULT_TTL_MS,
    ) -> None:
        if ttl_ms < 100:
            raise ValueError(f"lease ttl_ms must be >= 100, got {ttl_ms}")
        self.client = client
        self.key = Keys(namespace).lease(service)
        self.service = service
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def try_acquire(self) -> bool:
        """Take the lease if it is free (or already ours); True when we hold it now."""
        if self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            return True
        return self.renew()

    def renew(self) -> bool:
        """Extend our lease; False when it is not ours (expired and taken, or never held)."""
        return bool(self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]))

    def release(self) -> None:
        """Give the lease up (only if it is still ours), so a standby takes over at once."""
        self._release(keys=[self.key], args=[self.owner])

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def acquire(
        self, stop: threading.Event, on_wait: Callable[[str | None], None] | None = None
    ) -> bool:
        """Wait (as a standby) until the lease is ours or ``stop`` is set; True if acquired."""
        announced = False
        while not stop.is_set():
            if self.try_acquire():
                return True
            if not announced:
                announced = True
                if on_wait is not None:
                    on_wait(self.holder())
            stop.wait(self.ttl_ms / 4000)
        return False


class LeaseKeeper:
    """Renews leases every third of their TTL in a thread; calls ``on_lost`` if one is lost."""

    def __init__(self, leases: Sequence[Lease], on_lost: Callable[[Lease], None]) -> None:
        if not leases:
            raise ValueError("LeaseKeeper needs at least one lease")
        self.leases = list(leases)
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cdb-lease", daemon=True)
        self.lost: Lease | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if release:
            for lease in self.leases:
                try:
                    lease.release()
                except redis.RedisError as exc:  # it expires by itself anyway
                    log.warning("could not release lease %s: %s", lease.key, exc)

    def _run(self) -> None:
        interval = min(lease.ttl_ms for lease in self.leases) / 3000
        while not self._stop.wait(interval):
            for lease in self.leases:
                try:
                    held = lease.renew()
                except redis.RedisError as exc:
                    # A blip shorter than the TTL keeps the lease; a longer one loses it.
                    log.warning("lease %s: renew failed (%s); trying again", lease.key, exc)
                    continue
                if not held:
                    log.error("lease %s lost: another replica is active now", lease.key)
                    self.lost = lease
                    self._on_lost(lease)
                    return
