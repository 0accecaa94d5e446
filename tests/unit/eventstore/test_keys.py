"""Key names: one namespace per deployment, and a shared hash slot per aggregate and partition."""

from __future__ import annotations

import pytest

from cdb.errors import ConfigError
from cdb.eventstore.keys import Keys, check_namespace


def hash_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes (the first non-empty ``{...}``), per the spec."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def test_aggregate_its_ids_its_topic_and_dead_letters_share_one_hash_slot() -> None:
    keys = Keys("prod")
    same_slot = {
        hash_tag(keys.aggregate(3, "order-abc")),
        hash_tag(keys.event_ids(3, "order-abc")),
        hash_tag(keys.topic("orders", 3)),
        hash_tag(keys.dead_letter("orders", "execution", 3)),
        hash_tag(keys.heartbeats("orders", "execution", 3)),
    }
    assert same_slot == {"prod:3"}


def test_partitions_get_different_slots() -> None:
    keys = Keys("prod")
    assert hash_tag(keys.topic("orders", 0)) != hash_tag(keys.topic("orders", 1))


def test_a_stream_id_with_braces_does_not_change_the_slot() -> None:
    keys = Keys("prod")
    assert hash_tag(keys.aggregate(0, "order-{x}")) == "prod:0"


def test_namespaces_never_share_a_key() -> None:
    a, b = Keys("a"), Keys("b")
    assert a.aggregate(0, "order-1") != b.aggregate(0, "order-1")
    assert a.topic("orders", 0) != b.topic("orders", 0)
    assert a.audit() != b.audit()


def test_patterns_match_only_their_namespace() -> None:
    keys = Keys("ns1")
    assert keys.pattern() == "{ns1:*"
    assert keys.aggregate(0, "order-1").startswith(keys.pattern()[:-1])
    assert not Keys("ns10").aggregate(0, "order-1").startswith("{ns1:")


@pytest.mark.parametrize("bad", ["", "has space", "a:b", "{x}", "x" * 65, "ümlaut"])
def test_a_malformed_namespace_is_refused_with_the_rule(bad: str) -> None:
    with pytest.raises(ConfigError, match="namespace"):
        check_namespace(bad)
    with pytest.raises(ConfigError, match="1-64 characters"):
        Keys(bad)


@pytest.mark.parametrize("good", ["cdb", "t1a2b3", "demo_1.x-y", "x" * 64])
def test_plain_namespaces_are_accepted(good: str) -> None:
    assert Keys(good).namespace == good
