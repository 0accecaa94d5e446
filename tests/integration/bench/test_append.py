"""`cdb bench append` runs end to end and cleans up (figures are not asserted: no timed tests)."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from cdb.bench.append import run_append_bench
from cdb.cli.app import _register, app
from cdb.errors import ConfigError
from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import load_topology


def test_the_bench_reports_both_sides_and_leaves_no_keys(
    redis_client: redis.Redis, namespace: str
) -> None:
    result = run_append_bench(
        redis_client, load_topology(), events=300, aggregates=7, batch=50, namespace=namespace
    )
    assert result.events == 300
    assert result.store_events_per_s > 0
    assert result.raw_events_per_s > 0
    assert result.ratio == pytest.approx(
        result.store_events_per_s / result.raw_events_per_s, rel=0.01
    )
    assert 250 < result.entry_bytes < 700
    assert list(redis_client.scan_iter(match=Keys(namespace).pattern())) == []


def test_bad_sizes_are_refused_by_name(redis_client: redis.Redis) -> None:
    with pytest.raises(ConfigError, match="--batch = 0"):
        run_append_bench(redis_client, load_topology(), events=10, aggregates=1, batch=0)


def test_cli_json_is_one_object_with_the_ratio(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDB_REDIS_URL", redis_url)
    _register()
    outcome = CliRunner().invoke(
        app, ["bench", "append", "--events", "200", "--aggregates", "5", "--batch", "40", "--json"]
    )
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert {"ratio", "store_events_per_s", "raw_events_per_s", "events"} <= set(report)
    assert report["events"] == 200
