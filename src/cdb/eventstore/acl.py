"""Redis ACL users per service, derived from ``streams/topology.toml`` (never written twice).

Who may touch what follows from the topology alone:

* a topic's **producer** (``producer = "signal, risk"``; ``"*"`` = every service) may append to
  the topic's partitions and to the aggregate streams and event-id hashes of the aggregate types
  carried there (``append.lua`` writes all three), and read them back;
* a **consumer group** named after a service may read the topic partitions it is declared on and
  keep its group's own state there: consumer-group commands on the partition, and the group's
  dead letters, heartbeats, order lists, read lock and read mark (see :mod:`cdb.eventstore.keys`);
* every service owns its lease key (one active replica) and may write the ``health`` topic;
* ``operator`` (the CLI's ``pending``/``dlq``/``streams``) reads the whole namespace and may
  claim, requeue and purge; ``admin`` may do anything (migrations, replays, sandboxes).

How Redis enforces it, and where it cannot:

* Redis checks a script's declared ``KEYS`` against the caller's key patterns, and every
  ``redis.call`` inside the script against the caller's commands and key patterns. Measured on
  6.2.14 and 7.0.15: an ``EVAL`` whose inner ``XADD`` names a key outside the user's patterns
  fails with "The user executing the script can't access at least one of the keys". So the
  commands the Lua scripts run are granted explicitly, and a script cannot be used to reach a
  key the user may not touch directly.
* Redis 7 key permissions distinguish read (``%R~``) from write (``%W~``), but a consumer group
  lives inside the stream it reads: ``XACK``, ``XCLAIM``, ``XAUTOCLAIM`` and ``XGROUP CREATE``
  need *write* permission on the topic, and ``EVALSHA`` needs read and write on every declared
  key. Key permissions alone would therefore let a consumer ``XADD`` to its input topic. On
  Redis 7 each group's rights are expressed as selectors instead: one grants consumer-group
  commands (no ``XADD``, no deletes) on the input partitions and the group's keys, another
  grants state commands (``XADD`` to the dead-letter stream, hashes, lists) on the group's keys
  only. A command is allowed when one selector allows the command together with all its keys.
* Redis 6.2 has neither ``%R~``/``%W~`` nor selectors: a user has one command list and one key
  list (``~pattern``, read and write). There, a consumer *can* ``XADD`` to its input topics; it
  still cannot touch any key the topology does not give it (another service's topics, other
  namespaces) and cannot run any command outside its list (``FLUSHALL``, ``CONFIG``, ``KEYS``).
* Group names are not keys, so no ACL can tie a user to its own group: a service that may read
  a topic could read it under another group's name. The group's dead letters, heartbeats and
  order lists, however, are keys, and those of other groups stay out of reach.
* ``CONFIG`` is never granted to services (``CONFIG GET requirepass`` would reveal the server
  password): their start-up check of ``maxmemory-policy`` logs a warning that it could not be
  read. Check it with the admin user.

Passwords are not part of this module's output; :func:`setuser_args` takes one from the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cdb.domain.event_types import AGGREGATE_OF, AggregateType
from cdb.errors import ConfigError, TopologyError
from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topic, Topology

USER_PREFIX = "cdb-"
OPERATOR = "operator"
ADMIN = "admin"
EVERY_SERVICE = "*"

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")

# What every client needs: a liveness check, a database and a connection name.
_BASE = ("ping", "select", "client|setname", "client|getname")
_SCRIPTS = ("evalsha", "script|load")
# EventStore.publish (XADD) and the readers; append adds append.lua (HGET, HMGET, HSET).
_PUBLISH = ("xadd", "xlen", "xrange")
_APPEND = (*_SCRIPTS, *_PUBLISH, "hget", "hmget", "hset")
# Consumer groups on a topic partition (runtime, projector, state rebuild, consume_*.lua).
# Deliberately no XADD, XDEL, XTRIM, DEL: a consumer may not change what its input says.
_GROUP_OPS = (
    *_SCRIPTS,
    "xreadgroup",
    "xread",
    "xack",
    "xclaim",
    "xautoclaim",
    "xpending",
    "xgroup|create",
    "xgroup|delconsumer",
    "xinfo|groups",
    "xinfo|consumers",
    "xinfo|stream",
    "xrange",
    "xrevrange",
    "xlen",
    "exists",
)
# The group's own keys: dead letters (dead_letter.lua), heartbeats, order hashes, mark.
_GROUP_STATE = (
    "xadd",
    "xrange",
    "xlen",
    "get",
    "set",
    "del",
    "hget",
    "hmget",
    "hset",
    "hdel",
    "hexists",
    "hgetall",
)
# services/lease.py: SET NX PX, then renew/release scripts (GET, PEXPIRE, DEL).
_LEASE = (*_SCRIPTS, "get", "set", "pexpire", "del")
# cdb pending / dlq / streams, and dlq_requeue.lua / dlq_purge.lua.
_OPERATOR = (
    *_SCRIPTS,
    "exists",
    "xrange",
    "xrevrange",
    "xlen",
    "xinfo|groups",
    "xinfo|consumers",
    "xinfo|stream",
    "xpending",
    "xclaim",
    "xautoclaim",
    "xack",
    "xadd",
    "xdel",
    "get",
    "hget",
    "hgetall",
    "hset",
    "hdel",
    "hexists",
    "hmget",
)


@dataclass(frozen=True)
class Selector:
    """Commands allowed together with key patterns: all keys of a command must match."""

    purpose: str
    commands: tuple[str, ...]
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    def rules(self) -> list[str]:
        """Redis 7 rules: ``~p`` where read and write, else ``%R~p`` / ``%W~p``."""
        both = [p for p in self.read if p in self.write]
        out = [f"+{c}" for c in self.commands]
        out += [f"~{p}" for p in both]
        out += [f"%R~{p}" for p in self.read if p not in both]
        out += [f"%W~{p}" for p in self.write if p not in both]
        return out


@dataclass(frozen=True)
class AclUser:
    """One Redis user. ``selectors[0]`` is the root permission set (Redis 7)."""

    name: str
    service: str
    selectors: tuple[Selector, ...]
    superuser: bool = False

    @property
    def commands(self) -> tuple[str, ...]:
        return _union(s.commands for s in self.selectors)

    @property
    def read_patterns(self) -> tuple[str, ...]:
        return _union(s.read for s in self.selectors)

    @property
    def write_patterns(self) -> tuple[str, ...]:
        return _union(s.write for s in self.selectors)

    def rules(self, redis_version: int = 7) -> list[str]:
        """The ``ACL SETUSER`` rules after the password (one argument each).

        Redis 7: root rules, then one ``(...)`` selector argument per further selector.
        Redis 6.2: the union of the commands and of the key patterns, all ``~pattern``.
        """
        if redis_version not in (6, 7):
            raise ConfigError(f"redis_version = {redis_version!r}: must be 6 or 7")
        if self.superuser:
            return ["~*", "&*", "+@all"]
        head = ["resetkeys", "resetchannels", "-@all"]
        if redis_version == 6:
            patterns = _union((self.read_patterns, self.write_patterns))
            return [*head, *(f"+{c}" for c in self.commands), *(f"~{p}" for p in patterns)]
        root, *others = self.selectors
        return [*head, *root.rules(), *(f"({' '.join(s.rules())})" for s in others)]


def setuser_args(user: AclUser, password: str | None, redis_version: int = 7) -> list[str]:
    """Arguments of ``ACL SETUSER`` that make ``user`` exactly this (``reset`` first).

    ``password=None`` leaves the user without a password, so ``on`` is not given and the
    user cannot log in (``nopass`` is never used).
    """
    args = [user.name, "reset"]
    if password is not None:
        args += ["on", f">{password}"]
    return args + user.rules(redis_version)


def services_of(topology: Topology) -> list[str]:
    """Every service the topology names: producers (``*`` aside) and consumer groups."""
    names: set[str] = set()
    for topic in topology.topics.values():
        names.update(p for p in _producers(topic) if p != EVERY_SERVICE)
        names.update(topic.groups)
    return sorted(names)


def derive_acl(
    topology: Topology, namespace: str, services: Iterable[str] | None = None
) -> list[AclUser]:
    """The users of ``services`` (default: every service, then operator and admin)."""
    keys = Keys(namespace)
    known = services_of(topology)
    for topic in topology.topics.values():
        _check_name(topic.name, f"topics.{topic.name}", "topic name")
        for group in topic.groups:
            _check_name(group, f"topics.{topic.name}.groups", "group name")
    for name in known:
        _check_name(name, "producer", "service name")
    wanted = [*known, OPERATOR, ADMIN] if services is None else list(dict.fromkeys(services))
    users: list[AclUser] = []
    for name in wanted:
        if name == OPERATOR:
            users.append(_operator(keys))
        elif name == ADMIN:
            users.append(AclUser(USER_PREFIX + ADMIN, ADMIN, (), superuser=True))
        elif name in known:
            users.append(_service(topology, keys, name))
        else:
            choices = ", ".join([*known, OPERATOR, ADMIN])
            raise TopologyError(
                f"service '{name}' is neither a producer nor a consumer group in "
                f"{topology.source} (known: {choices})"
            )
    return users


def _service(topology: Topology, keys: Keys, service: str) -> AclUser:
    produced: list[str] = []
    aggregates: list[str] = []
    shared: list[str] = []  # topics every service writes ("*"), e.g. health
    for topic in topology.topics.values():
        producers = _producers(topic)
        if service not in producers and EVERY_SERVICE not in producers:
            continue
        partitions = [_exact(keys.topic(topic.name, k)) for k in range(topic.partitions)]
        if EVERY_SERVICE in producers and service not in producers:
            shared += partitions  # append only: never read the other services' entries
            continue
        produced += partitions
        for kind in _aggregate_types(topic):
            for k in range(topic.partitions):
                aggregates.append(_exact(keys.aggregate(k, f"{kind}-")) + "*")
                aggregates.append(_exact(keys.event_ids(k, f"{kind}-")) + "*")
    root = Selector(
        purpose="produce",
        commands=(*_BASE, *(_APPEND if aggregates else _PUBLISH if produced or shared else ())),
        read=tuple(produced + aggregates),
        write=tuple(produced + aggregates + shared),
    )
    selectors = [root]
    inputs: list[str] = []
    state: list[str] = []
    for topic in topology.topics.values():
        if service not in topic.groups:
            continue
        for k in range(topic.partitions):
            inputs.append(_exact(keys.topic(topic.name, k)))
            state += [
                _exact(keys.dead_letter(topic.name, service, k)),
                _exact(keys.heartbeats(topic.name, service, k)),
                _exact(keys.held(topic.name, service, k)),
                _exact(keys.tails(topic.name, service, k)),
                _exact(keys.waits(topic.name, service, k)),
                _exact(keys.registered(topic.name, service, k)),
            ]
    if inputs:
        both = tuple(inputs + state)
        selectors.append(Selector("consume", _GROUP_OPS, read=both, write=both))
        selectors.append(
            Selector("group-state", _GROUP_STATE, read=tuple(state), write=tuple(state))
        )
    lease = (_exact(keys.lease(service)),)
    selectors.append(Selector("lease", _LEASE, read=lease, write=lease))
    return AclUser(USER_PREFIX + service, service, tuple(selectors))


def _operator(keys: Keys) -> AclUser:
    everything = (_exact(keys.pattern()[:-1]) + "*",)  # '{ns:*': every key of the namespace
    return AclUser(
        USER_PREFIX + OPERATOR,
        OPERATOR,
        (Selector("operate", (*_BASE, *_OPERATOR), read=everything, write=everything),),
    )


def _producers(topic: Topic) -> list[str]:
    return [p.strip() for p in topic.producer.split(",") if p.strip()]


def _aggregate_types(topic: Topic) -> list[str]:
    # Market ticks are topic-only (EventStore.publish): no aggregate stream, no id hash.
    kinds = {AGGREGATE_OF[et] for et in topic.events} - {AggregateType.MARKET}
    return sorted(kind.value for kind in kinds)


def _exact(key: str) -> str:
    """``key`` as a glob that matches only itself."""
    return _GLOB_SPECIAL.sub(r"\\\1", key)


def _check_name(value: str, where: str, what: str) -> None:
    if not _NAME.match(value):
        raise TopologyError(
            f"{where}: {what} {value!r} must be 1-64 letters, digits, '_', '.', '-' "
            "(it becomes part of Redis key patterns and ACL user names)"
        )


def _union(groups: Iterable[Sequence[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for group in groups for item in group))
