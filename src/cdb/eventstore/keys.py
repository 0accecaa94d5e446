"""Every Redis key cdb uses, in one module.

Layout (``ns`` is the configurable namespace, ``k`` the partition index)::

    {ns:k}:agg:<stream_id>          aggregate stream; entry id 0-N is sequence number N
    {ns:k}:ids:<stream_id>          hash event_id -> sequence number (idempotent appends)
    {ns:k}:topic:<topic>            topic partition stream (the Pub/Sub channel's replacement)
    {ns:k}:dlq:<topic>:<group>      dead letters of one group on one partition
    {ns:k}:hb:<topic>:<group>       hash consumer -> last heartbeat (ms)
    {ns:k}:tail:<topic>:<group>     hash aggregate -> its newest delivered, unfinished entry id
    {ns:k}:waits:<topic>:<group>    hash entry id -> the entry of its aggregate it waits behind
    {ns:k}:held:<topic>:<group>     hash entry id -> why it holds its place while not pending
    {ns:k}:reg:<topic>:<group>      id up to which delivered entries have their place in line
    {ns:meta}:audit                 operator actions (dlq requeue/purge, claims)
    {ns:meta}:lease:<service>       the owner token of the one active replica of a service

The ``{ns:k}`` hash tag puts an aggregate stream, its topic partition and that partition's
dead letters in one Redis Cluster slot, so an append or a dead-letter move is one atomic step.
"""

from __future__ import annotations

import re

from cdb.errors import ConfigError

_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def check_namespace(namespace: str) -> str:
    if not _NAMESPACE.match(namespace):
        raise ConfigError(
            f"namespace {namespace!r}: must be 1-64 characters of letters, digits, '_', '.', '-'"
        )
    return namespace


class Keys:
    """Key names for one namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = check_namespace(namespace)

    def tag(self, partition: int) -> str:
        return f"{{{self.namespace}:{partition}}}"

    def aggregate(self, partition: int, stream_id: str) -> str:
        return f"{self.tag(partition)}:agg:{stream_id}"

    def event_ids(self, partition: int, stream_id: str) -> str:
        return f"{self.tag(partition)}:ids:{stream_id}"

    def topic(self, topic: str, partition: int) -> str:
        return f"{self.tag(partition)}:topic:{topic}"

    def dead_letter(self, topic: str, group: str, partition: int) -> str:
        return f"{self.tag(partition)}:dlq:{topic}:{group}"

    def heartbeats(self, topic: str, group: str, partition: int) -> str:
        return f"{self.tag(partition)}:hb:{topic}:{group}"

    def tails(self, topic: str, group: str, partition: int) -> str:
        return f"{self.tag(partition)}:tail:{topic}:{group}"

    def waits(self, topic: str, group: str, partition: int) -> str:
        return f"{self.tag(partition)}:waits:{topic}:{group}"

    def held(self, topic: str, group: str, partition: int) -> str:
        return f"{self.tag(partition)}:held:{topic}:{group}"

    def registered(self, topic: str, group: str, partition: int) -> str:
        return f"{self.tag(partition)}:reg:{topic}:{group}"

    def audit(self) -> str:
        return f"{{{self.namespace}:meta}}:audit"

    def lease(self, service: str) -> str:
        """Owner of the active replica of ``service`` (see :mod:`cdb.services.lease`)."""
        return f"{{{self.namespace}:meta}}:lease:{service}"

    def pattern(self) -> str:
        """Glob matching every key of this namespace (for cleanup and listings)."""
        return f"{{{self.namespace}:*"

    def aggregate_pattern(self) -> str:
        return f"{{{self.namespace}:*}}:agg:*"
