"""`cdb run` and `cdb demo` as a user runs them (subprocesses on the test servers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from cdb.cli.demo import _database_name

ROOT = Path(__file__).resolve().parents[3]


def cdb(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from cdb.cli.app import main; main()", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_run_refuses_an_unknown_service(redis_url: str, namespace: str) -> None:
    done = cdb("run", "nonsense", env={"CDB_REDIS_URL": redis_url, "CDB_NAMESPACE": namespace})
    assert done.returncode == 2
    assert "NAME must be one of feed, signal, risk, execution, portfolio" in done.stderr


def test_live_trading_refuses_to_start_with_a_clear_message(redis_url: str, namespace: str) -> None:
    base = {"CDB_REDIS_URL": redis_url, "CDB_NAMESPACE": namespace, "CDB_TRADING_MODE": "live"}
    unconfirmed = cdb("run", "execution", env=base)
    assert unconfirmed.returncode == 2
    assert "CDB_LIVE_CONFIRM=I_UNDERSTAND_LIVE_TRADING" in unconfirmed.stderr
    confirmed = cdb(
        "run", "execution", env={**base, "CDB_LIVE_CONFIRM": "I_UNDERSTAND_LIVE_TRADING"}
    )
    assert confirmed.returncode == 2
    assert "no live exchange adapter" in confirmed.stderr


def test_the_demo_runs_twice_with_the_same_outcome(
    redis_url: str, database_url: str, namespace: str
) -> None:
    env = {"CDB_REDIS_URL": redis_url, "CDB_DATABASE_URL": database_url}
    try:
        runs = [
            cdb("demo", "--namespace", namespace, "--ticks", "2900", "--json", env=env)
            for _ in range(2)
        ]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(_database_name(namespace))
                )
            )
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["events_per_topic"]["market_data"] == 2900
    assert first["signals"] > 0
    assert first["orders"] + sum(first["blocked_by_reason"].values()) >= first["signals"]
    assert first["fills"] > 0
    assert first["dead_letters"] == 0
    assert all(g["lag"] == 0 and g["pending"] == 0 for g in first["groups"])
    assert all(p["lag"] == 0 for p in first["projections"])
    drop = ("seconds",)
    assert {k: v for k, v in first.items() if k not in drop} == {
        k: v for k, v in second.items() if k not in drop
    }
