"""`cdb bench project` runs end to end, brackets the rebuild with raw COPYs, and cleans up
(figures are not asserted: no timed tests)."""

from __future__ import annotations

import psycopg
import pytest
import redis

from cdb.bench.project import RAW_RUNS, run
from cdb.projections import db


def _bench_databases(database_url: str) -> list[str]:
    with psycopg.connect(db.libpq_url(database_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'cdb_bench_%'"
        ).fetchall()
    return [str(r[0]) for r in rows]


def test_the_ratios_rest_on_raw_copies_before_and_after_the_rebuild(
    redis_client: redis.Redis, redis_url: str, database_url: str
) -> None:
    keys_before = redis_client.dbsize()
    result = run(redis_client, redis_url, database_url, events=300, rebuild_events=2000, jobs=2)
    assert result.rows > 0
    assert result.rebuild_events >= 2000
    assert result.rebuild_rows > result.rows  # a longer history gives more rows
    fastest, slowest = result.raw_seconds_range
    # The median of all 2 x RAW_RUNS COPYs lies between the medians of either side's runs.
    low, high = sorted((result.raw_seconds_before, result.raw_seconds_after))
    assert fastest <= low <= result.raw_seconds <= high <= slowest
    assert RAW_RUNS >= 3
    # Ratios are rounded to 4 decimals and seconds to 3: compare within that rounding.
    assert result.rebuild_ratio == pytest.approx(
        result.rebuild_rows_per_s / result.raw_rows_per_s, rel=0.001, abs=1e-4
    )
    assert result.ratio == pytest.approx(
        result.live_rows_per_s / result.raw_rows_per_s, rel=0.001, abs=1e-4
    )
    assert result.rows / result.raw_rows_per_s == pytest.approx(result.raw_seconds, abs=6e-4)
    assert result.rebuild_peak_rss_mb > 0
    assert redis_client.dbsize() == keys_before
    assert _bench_databases(database_url) == []
