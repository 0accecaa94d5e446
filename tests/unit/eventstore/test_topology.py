"""The stream topology as data: streams/topology.toml parsed, checked and queried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdb.domain.event_types import AGGREGATE_OF, EventType
from cdb.errors import TopologyError
from cdb.eventstore.topology import load_topology, parse_topology

SRC = Path("test.toml")


def test_the_shipped_topology_puts_every_aggregate_event_type_on_exactly_one_topic() -> None:
    topology = load_topology()
    for event_type in EventType:
        assert topology.topic_for(event_type).name in topology.topics
    orders = topology.topic("orders")
    assert EventType.ORDER_PLACED in orders.events
    assert topology.topic_for(EventType.ORDER_FILLED).name == "order_results"
    assert topology.topic_for("MARKET_DATA_RECEIVED").name == "market_data"


def test_topics_of_one_aggregate_type_agree_on_partitions_in_the_shipped_file() -> None:
    topology = load_topology()
    counts: dict[str, set[int]] = {}
    for topic in topology.topics.values():
        for event_type in topic.events:
            counts.setdefault(AGGREGATE_OF[event_type], set()).add(topic.partitions)
    assert all(len(found) == 1 for found in counts.values()), counts


def test_unknown_topic_and_group_are_named() -> None:
    topology = load_topology()
    with pytest.raises(TopologyError, match="unknown topic 'nope'"):
        topology.topic("nope")
    with pytest.raises(TopologyError, match="no consumer group 'nope'"):
        topology.topic("orders").group("nope")


def _raw(**topic: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"events": ["ORDER_PLACED"], **topic}
    return {"defaults": {"partitions": 1}, "topics": {"orders": spec}}


def test_partition_of_is_stable_and_in_range() -> None:
    topic = parse_topology(_raw(partitions=4), SRC).topic("orders")
    seen = {topic.partition_of(f"order-{i}") for i in range(200)}
    assert seen == {0, 1, 2, 3}
    assert topic.partition_of("order-42") == topic.partition_of("order-42")
    single = parse_topology(_raw(), SRC).topic("orders")
    assert single.partition_of("order-42") == 0


def test_group_policy_defaults_and_backoff_grows_to_its_cap() -> None:
    raw = _raw(groups={"execution": {"backoff_base_ms": 100, "backoff_cap_ms": 1000}})
    raw["defaults"].update(
        max_deliveries=5, backoff_base_ms=1, backoff_cap_ms=1, claim_idle_ms=30000, batch_size=10
    )
    policy = parse_topology(raw, SRC).topic("orders").group("execution")
    assert policy.max_deliveries == 5
    assert [policy.backoff_ms(n) for n in (1, 2, 3, 4, 5, 6)] == [100, 200, 400, 800, 1000, 1000]
    assert policy.linger_ms == 0  # not declared anywhere: read again at once


def test_linger_comes_from_the_group_else_the_defaults() -> None:
    raw = _raw(groups={"execution": {"linger_ms": 7}, "risk": {}})
    raw["defaults"].update(
        max_deliveries=5, backoff_base_ms=1, backoff_cap_ms=1, claim_idle_ms=1, batch_size=1
    )
    raw["defaults"]["linger_ms"] = 3
    topic = parse_topology(raw, SRC).topic("orders")
    assert topic.group("execution").linger_ms == 7
    assert topic.group("risk").linger_ms == 3


# The hops from a tick to its trade row: each adds its group's linger to a trade's latency.
TRADE_PATH = {
    ("market_data", "signal"),
    ("market_data", "execution"),  # an order waits until execution has folded its tick
    ("signals", "risk"),
    ("order_results", "risk"),  # a fill moves the exposure the next decision checks
    ("orders", "execution"),
    ("signals", "projector"),
    ("orders", "projector"),
    ("order_results", "projector"),
    ("alerts", "execution"),  # a tripped breaker must stop execution at once
}


def test_the_shipped_topology_lingers_briefly_on_the_trade_path_and_longer_off_it() -> None:
    lingers = {
        (topic.name, name): policy.linger_ms
        for topic in load_topology().topics.values()
        for name, policy in topic.groups.items()
    }
    assert lingers.keys() >= TRADE_PATH  # every hop of the path is declared
    for place, linger in lingers.items():
        if place in TRADE_PATH:
            assert linger <= 5, place
        else:
            assert 0 < linger <= 100, place


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"topics": {}}, "no \\[topics"),
        (_raw(partitions=0), "partitions = 0: must be >= 1"),
        (_raw(partitions="2"), "must be an integer"),
        ({"topics": {"orders": {"events": ["NOPE"]}}}, "unknown event type 'NOPE'"),
        (
            {"topics": {"a": {"events": ["ORDER_PLACED"]}, "b": {"events": ["ORDER_PLACED"]}}},
            "already on topic 'a'",
        ),
        (
            {
                "topics": {
                    "a": {"events": ["ORDER_PLACED"], "partitions": 2},
                    "b": {"events": ["ORDER_FILLED"], "partitions": 3},
                }
            },
            "same partition count",
        ),
        (_raw(groups={"g": {"bogus": 1}}), "unknown keys"),
        (_raw(groups={"g": {"max_deliveries": 0}}), "max_deliveries must be >= 1"),
        (_raw(groups={"g": {"linger_ms": -1}}), r"groups.g.linger_ms = -1: must be between 0"),
        (_raw(groups={"g": {"linger_ms": 5000}}), r"linger_ms = 5000: must be between 0 and 1000"),
        (_raw(groups={"g": {"linger_ms": 0.5}}), r"groups.g.linger_ms = 0.5: must be an integer"),
    ],
)
def test_malformed_topologies_are_refused_with_the_place_named(
    raw: dict[str, Any], message: str
) -> None:
    policy = {"max_deliveries": 5, "backoff_base_ms": 1, "backoff_cap_ms": 1}
    policy |= {"claim_idle_ms": 1, "batch_size": 1}
    raw = {**raw, "defaults": {**raw.get("defaults", {}), **policy}}
    with pytest.raises(TopologyError, match=message):
        parse_topology(raw, SRC)


def test_a_missing_or_broken_file_is_a_topology_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="not found"):
        load_topology(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[topics\n", encoding="utf-8")
    with pytest.raises(TopologyError, match=r"broken\.toml"):
        load_topology(broken)
