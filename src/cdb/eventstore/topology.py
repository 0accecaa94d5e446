"""Loads and checks ``streams/topology.toml``: topics, partitions, event types, groups, policies."""

from __future__ import annotations

import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdb.domain.event_types import AGGREGATE_OF, AggregateType, EventType
from cdb.errors import TopologyError

# A linger longer than this would look like a stall to an operator, not like batching.
LINGER_MAX_MS = 1000
# Only a cycle that handled fewer entries than this is followed by the linger: a consumer
# behind a queue reads big batches anyway, and lingering there only adds delay (measured at
# 1,000 ticks/s on 2 cores: p50 +40 ms with a linger after every cycle).
LINGER_BELOW = 4

_POLICY_KEYS = (
    "max_deliveries",
    "backoff_base_ms",
    "backoff_cap_ms",
    "claim_idle_ms",
    "batch_size",
)


@dataclass(frozen=True)
class GroupPolicy:
    name: str
    max_deliveries: int
    backoff_base_ms: int
    backoff_cap_ms: int
    claim_idle_ms: int
    batch_size: int
    # After a cycle of fewer than LINGER_BELOW entries, wait this long before the next read
    # so that a trickle is handled a few entries per cycle instead of one: every cycle costs
    # the same round trips and scripts whatever it holds. 0 = read again at once.
    linger_ms: int = 0

    def backoff_ms(self, delivery_count: int) -> int:
        """Delay before re-running an entry delivered ``delivery_count`` times so far."""
        if delivery_count <= 1:
            return self.backoff_base_ms
        return int(min(self.backoff_cap_ms, self.backoff_base_ms * 2 ** (delivery_count - 1)))


@dataclass(frozen=True)
class Topic:
    name: str
    description: str
    producer: str
    partitions: int
    events: tuple[EventType, ...]
    groups: dict[str, GroupPolicy] = field(default_factory=dict)

    def group(self, name: str) -> GroupPolicy:
        try:
            return self.groups[name]
        except KeyError:
            known = ", ".join(sorted(self.groups)) or "none"
            raise TopologyError(
                f"topic '{self.name}' has no consumer group '{name}' (known: {known})"
            ) from None

    def partition_of(self, key: str) -> int:
        """The partition an aggregate (or tick symbol) maps to; stable across processes."""
        if self.partitions == 1:
            return 0
        return zlib.crc32(key.encode()) % self.partitions


@dataclass(frozen=True)
class Topology:
    topics: dict[str, Topic]
    source: Path

    def topic(self, name: str) -> Topic:
        try:
            return self.topics[name]
        except KeyError:
            known = ", ".join(sorted(self.topics))
            raise TopologyError(f"unknown topic '{name}' (known: {known})") from None

    def topic_for(self, event_type: EventType | str) -> Topic:
        et = EventType(event_type)
        for topic in self.topics.values():
            if et in topic.events:
                return topic
        raise TopologyError(f"event type '{et}' is not declared on any topic in {self.source}")


def default_topology_path() -> Path:
    # src/cdb/eventstore/topology.py -> repository root / streams / topology.toml
    return Path(__file__).resolve().parents[3] / "streams" / "topology.toml"


def load_topology(path: Path | None = None) -> Topology:
    path = path or default_topology_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TopologyError(f"topology file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{path}: {exc}") from None
    return parse_topology(raw, path)


def parse_topology(raw: dict[str, Any], source: Path) -> Topology:
    defaults = raw.get("defaults", {})
    topics_raw = raw.get("topics")
    if not isinstance(topics_raw, dict) or not topics_raw:
        raise TopologyError(f"{source}: no [topics.*] declared")
    topics: dict[str, Topic] = {}
    owner: dict[EventType, str] = {}
    for name, spec in topics_raw.items():
        where = f"{source}: topics.{name}"
        partitions = _int(
            spec.get("partitions", defaults.get("partitions", 1)), f"{where}.partitions"
        )
        if partitions < 1:
            raise TopologyError(f"{where}.partitions = {partitions}: must be >= 1")
        events: list[EventType] = []
        for ev in spec.get("events", []):
            try:
                et = EventType(ev)
            except ValueError:
                raise TopologyError(f"{where}.events: unknown event type '{ev}'") from None
            if et in owner:
                raise TopologyError(f"{where}.events: '{ev}' is already on topic '{owner[et]}'")
            owner[et] = name
            events.append(et)
        groups: dict[str, GroupPolicy] = {}
        for gname, gspec in (spec.get("groups") or {}).items():
            values = {
                key: _int(gspec.get(key, defaults.get(key)), f"{where}.groups.{gname}.{key}")
                for key in _POLICY_KEYS
            }
            unknown = set(gspec) - {*_POLICY_KEYS, "linger_ms"}
            if unknown:
                raise TopologyError(f"{where}.groups.{gname}: unknown keys {sorted(unknown)}")
            if values["max_deliveries"] < 1:
                raise TopologyError(f"{where}.groups.{gname}.max_deliveries must be >= 1")
            linger = _int(
                gspec.get("linger_ms", defaults.get("linger_ms", 0)),
                f"{where}.groups.{gname}.linger_ms",
            )
            if not 0 <= linger <= LINGER_MAX_MS:
                raise TopologyError(
                    f"{where}.groups.{gname}.linger_ms = {linger}: must be between 0 and "
                    f"{LINGER_MAX_MS}"
                )
            groups[gname] = GroupPolicy(name=gname, linger_ms=linger, **values)
        topics[name] = Topic(
            name=name,
            description=str(spec.get("description", "")),
            producer=str(spec.get("producer", "")),
            partitions=partitions,
            events=tuple(events),
            groups=groups,
        )
    _check_aggregate_partitions(topics, source)
    return Topology(topics=topics, source=source)


def _check_aggregate_partitions(topics: dict[str, Topic], source: Path) -> None:
    # An aggregate's stream shares a hash slot with its topic partition; that only works when
    # every topic carrying that aggregate type agrees on the partition count.
    seen: dict[AggregateType, tuple[str, int]] = {}
    for topic in topics.values():
        for et in topic.events:
            agg = AGGREGATE_OF[et]
            if agg in seen and seen[agg][1] != topic.partitions:
                other, count = seen[agg]
                raise TopologyError(
                    f"{source}: aggregate type '{agg}' appears on topic '{other}' "
                    f"({count} partitions) and '{topic.name}' ({topic.partitions}); "
                    "they must have the same partition count"
                )
            seen.setdefault(agg, (topic.name, topic.partitions))


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TopologyError(f"{where} = {value!r}: must be an integer")
    return value
