"""The store's verdict on a Redis server's settings (the decision alone, no server)."""

from __future__ import annotations

import pytest

from cdb.eventstore.server_checks import judge


def test_noeviction_with_aof_is_accepted_silently() -> None:
    verdict = judge("noeviction", "yes")
    assert verdict.refusal is None
    assert verdict.warnings == ()


@pytest.mark.parametrize(
    "policy", ["allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"]
)
def test_an_evicting_policy_is_refused_with_the_fix(policy: str) -> None:
    verdict = judge(policy, "yes")
    assert verdict.refusal is not None
    assert f"'{policy}'" in verdict.refusal
    assert "CONFIG SET maxmemory-policy noeviction" in verdict.refusal
    assert "redis.conf" in verdict.refusal


def test_aof_off_is_a_warning_not_a_refusal() -> None:
    verdict = judge("noeviction", "no")
    assert verdict.refusal is None
    assert len(verdict.warnings) == 1
    assert "appendonly yes" in verdict.warnings[0]


def test_settings_that_cannot_be_read_are_warned_about_not_refused() -> None:
    verdict = judge(None, None)
    assert verdict.refusal is None
    assert len(verdict.warnings) == 2
    assert all("could not read" in warning for warning in verdict.warnings)
