"""Durations and times as operators type them."""

from __future__ import annotations

import pytest

from cdb.cli.ops_common import duration_ms, time_ms
from cdb.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("60s", 60_000),
        ("500ms", 500),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("2", 2000),
        ("1.5s", 1500),
        ("1d", 86_400_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert duration_ms(text, "--idle") == ms


def test_a_bad_duration_names_the_option_and_the_rule() -> None:
    with pytest.raises(ConfigError, match=r"'--idle' = 'soon'.*duration"):
        duration_ms("soon", "--idle")


def test_times_are_iso_or_a_duration_ago() -> None:
    now = 1_800_000_000_000
    assert time_ms(None, "--since", now) is None
    assert time_ms("10m", "--since", now) == now - 600_000
    assert time_ms("2026-01-01T00:00:00Z", "--since", now) == 1_767_225_600_000
    assert time_ms("2026-01-01T00:00:00", "--since", now) == 1_767_225_600_000  # UTC assumed
    with pytest.raises(ConfigError, match="--until"):
        time_ms("yesterday", "--until", now)
