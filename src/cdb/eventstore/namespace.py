"""Removing a whole key namespace (sandboxes, benches, demo re-runs, test teardown)."""

from __future__ import annotations

import redis

from cdb.eventstore.keys import Keys

_BATCH = 500


def delete_namespace(client: redis.Redis, namespace: str) -> int:
    """Delete every key of ``namespace``; returns how many went.

    Every key cdb writes starts with the namespace's hash tag, so one SCAN pattern finds them
    all. UNLINK frees memory in the background, so a large namespace does not stall Redis.
    """
    deleted = 0
    batch: list[bytes | str] = []
    for key in client.scan_iter(match=Keys(namespace).pattern(), count=1000):
        batch.append(key)
        if len(batch) >= _BATCH:
            deleted += int(client.unlink(*batch))
            batch = []
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted


def namespace_is_empty(client: redis.Redis, namespace: str) -> bool:
    return next(iter(client.scan_iter(match=Keys(namespace).pattern(), count=1000)), None) is None
