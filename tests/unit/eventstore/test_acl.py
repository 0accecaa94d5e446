"""ACL users derived from the topology: what each service may read, write and run."""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from cdb.errors import ConfigError, TopologyError
from cdb.eventstore.acl import AclUser, derive_acl, services_of, setuser_args
from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topology, load_topology, parse_topology

NS = "prod"
POLICY = {
    "max_deliveries": 5,
    "backoff_base_ms": 200,
    "backoff_cap_ms": 30000,
    "claim_idle_ms": 30000,
    "batch_size": 200,
}
K = Keys(NS)


def user(name: str, topology: Topology | None = None) -> AclUser:
    (found,) = derive_acl(topology or load_topology(), NS, [name])
    return found


def matches(patterns: tuple[str, ...], key: str) -> bool:
    # Names are restricted to [A-Za-z0-9_.-], so no pattern here needs Redis's '\' escapes.
    return any(fnmatchcase(key, p) for p in patterns)


def may(u: AclUser, command: str, key: str, *, read: bool, write: bool) -> bool:
    """Redis 7: some selector allows ``command`` on ``key`` with the access it needs."""
    return any(
        command in s.commands
        and (not read or matches(s.read, key))
        and (not write or matches(s.write, key))
        for s in u.selectors
    )


def test_the_services_are_the_producers_and_groups_of_the_topology() -> None:
    assert services_of(load_topology()) == [
        "execution",
        "feed",
        "portfolio",
        "projector",
        "risk",
        "signal",
    ]
    names = [u.name for u in derive_acl(load_topology(), NS)]
    assert names[-2:] == ["cdb-operator", "cdb-admin"]
    assert "cdb-signal" in names


def test_signal_may_write_the_signals_topic_but_not_orders() -> None:
    signal = user("signal")
    assert matches(signal.write_patterns, K.topic("signals", 0))
    assert matches(signal.write_patterns, K.aggregate(0, "signal-abc"))
    assert matches(signal.write_patterns, K.event_ids(0, "signal-abc"))
    for key in (K.topic("orders", 0), K.aggregate(0, "order-abc"), K.event_ids(0, "order-1")):
        assert not matches(signal.write_patterns, key)
        assert not matches(signal.read_patterns, key)
    # The append script declares all three keys and needs read and write on each.
    for key in (K.aggregate(0, "signal-x"), K.event_ids(0, "signal-x"), K.topic("signals", 0)):
        assert may(signal, "evalsha", key, read=True, write=True)


def test_a_consumer_reads_its_input_but_may_not_append_to_it_on_redis_7() -> None:
    signal = user("signal")
    market = K.topic("market_data", 0)
    assert may(signal, "xreadgroup", market, read=True, write=False)
    assert may(signal, "xack", market, read=False, write=True)
    assert may(signal, "xgroup|create", market, read=False, write=True)
    assert not may(signal, "xadd", market, read=False, write=True)
    assert not may(signal, "del", market, read=False, write=True)
    # Its dead letters and heartbeats are its own to write.
    assert may(signal, "xadd", K.dead_letter("market_data", "signal", 0), read=False, write=True)
    assert may(signal, "hset", K.heartbeats("market_data", "signal", 0), read=False, write=True)
    # ... but not another group's.
    assert not matches(signal.write_patterns, K.dead_letter("market_data", "risk", 0))


def test_a_topic_with_two_producers_is_writable_by_both() -> None:
    for name in ("signal", "risk"):
        assert matches(user(name).write_patterns, K.topic("signals", 0)), name
    assert not matches(user("execution").write_patterns, K.topic("signals", 0))


def test_every_service_appends_to_health_and_reads_no_other_heartbeats() -> None:
    health = K.topic("health", 0)
    for name in services_of(load_topology()):
        u = user(name)
        assert may(u, "xadd", health, read=False, write=True), name
        assert not matches(u.read_patterns, health), name


def test_the_feed_publishes_ticks_without_aggregate_streams() -> None:
    feed = user("feed")
    assert matches(feed.write_patterns, K.topic("market_data", 0))
    assert not any(":agg:" in p or ":ids:" in p for p in feed.write_patterns)
    assert "evalsha" not in feed.selectors[0].commands  # publish is a plain XADD


def test_the_projector_reads_every_projected_topic_and_produces_nothing() -> None:
    projector = user("projector")
    for topic in ("signals", "orders", "order_results", "positions", "alerts"):
        assert may(projector, "xreadgroup", K.topic(topic, 0), read=True, write=False)
        assert not may(projector, "xadd", K.topic(topic, 0), read=False, write=True)
    assert not matches(projector.read_patterns, K.topic("market_data", 0))


def test_services_may_not_run_server_wide_or_secret_revealing_commands() -> None:
    for u in derive_acl(load_topology(), NS):
        if u.superuser:
            continue
        for forbidden in ("config", "config|get", "flushall", "flushdb", "keys", "eval", "acl"):
            assert forbidden not in u.commands, (u.name, forbidden)
        assert not any(c.startswith("@") for c in u.commands)
        assert all(p.startswith(f"{{{NS}:") for p in u.read_patterns + u.write_patterns)


def test_the_operator_sees_the_whole_namespace_and_only_it() -> None:
    operator = user("operator")
    assert matches(operator.read_patterns, K.dead_letter("orders", "execution", 0))
    assert matches(operator.read_patterns, K.audit())
    assert not matches(operator.read_patterns, Keys("other").topic("orders", 0))
    assert "xdel" in operator.commands
    assert "del" not in operator.commands


def test_partitions_get_one_pattern_each() -> None:
    raw: dict[str, Any] = {
        "defaults": POLICY,
        "topics": {
            "orders": {"partitions": 3, "producer": "risk", "events": ["ORDER_PLACED"]},
            "order_results": {
                "partitions": 3,
                "producer": "execution",
                "events": ["ORDER_FILLED"],
                "groups": {"risk": {}},
            },
        },
    }
    topology = parse_topology(raw, Path("t.toml"))
    risk = user("risk", topology)
    for k in range(3):
        assert matches(risk.write_patterns, K.topic("orders", k))
        assert matches(risk.write_patterns, K.aggregate(k, "order-1"))
        assert may(risk, "xreadgroup", K.topic("order_results", k), read=True, write=False)
    assert not matches(risk.write_patterns, K.topic("orders", 3))


def test_redis_7_rules_use_read_write_prefixes_and_selectors() -> None:
    rules = user("signal").rules(7)
    assert rules[:3] == ["resetkeys", "resetchannels", "-@all"]
    assert f"~{K.topic('signals', 0)}" in rules
    assert f"%W~{K.topic('health', 0)}" in rules
    selectors = [r for r in rules if r.startswith("(")]
    assert len(selectors) == 3  # consume, group state, lease
    assert all(r.endswith(")") for r in selectors)


def test_redis_6_rules_are_one_command_list_and_one_key_list() -> None:
    signal = user("signal")
    rules = signal.rules(6)
    assert not any(r.startswith(("%", "(")) for r in rules)
    assert {r[1:] for r in rules if r.startswith("+")} == set(signal.commands)
    assert f"~{K.topic('market_data', 0)}" in rules
    assert f"~{K.topic('orders', 0)}" not in rules
    with pytest.raises(ConfigError, match="must be 6 or 7"):
        signal.rules(8)


def test_setuser_args_reset_first_and_hold_the_password_only_when_given() -> None:
    signal = user("signal")
    assert setuser_args(signal, None)[:2] == ["cdb-signal", "reset"]
    assert "on" not in setuser_args(signal, None)  # no password: the user cannot log in
    with_password = setuser_args(signal, "s3cret")
    assert with_password[:4] == ["cdb-signal", "reset", "on", ">s3cret"]
    assert not any("s3cret" in r for r in signal.rules(7) + signal.rules(6))
    assert user("admin").rules(7) == ["~*", "&*", "+@all"]


def test_an_unknown_service_names_the_known_ones() -> None:
    with pytest.raises(TopologyError, match=r"service 'nope'.*known: execution, feed"):
        derive_acl(load_topology(), NS, ["nope"])


def test_a_name_that_cannot_be_a_key_pattern_is_refused() -> None:
    raw: dict[str, Any] = {
        "defaults": POLICY,
        "topics": {"orders": {"producer": "risk", "events": [], "groups": {"bad*group": {}}}},
    }
    with pytest.raises(TopologyError, match=r"group name 'bad\*group'"):
        derive_acl(parse_topology(raw, Path("t.toml")), NS)
