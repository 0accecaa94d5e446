"""One active replica per service: the lease in Redis."""

from __future__ import annotations

import threading

import redis

from cdb.services.lease import Lease, LeaseKeeper
from tests.integration.runtime.support import wait_for


def test_only_one_owner_holds_a_lease_and_only_it_can_renew_or_release(
    redis_client: redis.Redis, namespace: str
) -> None:
    a = Lease(redis_client, namespace, "risk", "a", ttl_ms=5000)
    b = Lease(redis_client, namespace, "risk", "b", ttl_ms=5000)
    assert a.try_acquire()
    assert a.try_acquire()  # already ours: renewed
    assert not b.try_acquire()
    assert not b.renew()
    b.release()  # not b's: nothing happens
    assert a.holder() == "a"
    a.release()
    assert b.try_acquire()
    assert b.holder() == "b"


def test_an_expired_lease_goes_to_a_standby_and_the_old_holder_learns_it_lost(
    redis_client: redis.Redis, namespace: str
) -> None:
    old = Lease(redis_client, namespace, "portfolio", "old", ttl_ms=300)
    assert old.try_acquire()
    # The winner's TTL is long, so a slow machine cannot let it expire before the end.
    standby = Lease(redis_client, namespace, "portfolio", "new", ttl_ms=3000)
    stop = threading.Event()
    assert standby.acquire(stop)  # waits until the old one's TTL runs out
    assert standby.holder() == "new"
    lost: list[str] = []
    keeper = LeaseKeeper([old], lambda lease: lost.append(lease.owner))
    keeper.start()
    wait_for(lambda: lost == ["old"], "the keeper to notice the lease is gone")
    keeper.stop()
    assert standby.holder() == "new"  # stopping the loser did not release the winner's lease


def test_a_kept_lease_outlives_its_ttl(redis_client: redis.Redis, namespace: str) -> None:
    # Renewed every third of the TTL: a stalled thread (a loaded CI host) has 2/3 s of slack.
    lease = Lease(redis_client, namespace, "signal", "me", ttl_ms=1000)
    assert lease.try_acquire()
    keeper = LeaseKeeper([lease], lambda _: None)
    keeper.start()
    other = Lease(redis_client, namespace, "signal", "other", ttl_ms=1000)
    stop = threading.Event()
    timer = threading.Timer(3.0, stop.set)
    timer.start()
    try:
        assert not other.acquire(stop)  # three TTLs of trying: never free
    finally:
        timer.cancel()
    keeper.stop()
    assert lease.holder() is None  # released on stop: a standby takes over at once
