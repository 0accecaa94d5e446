"""The projector under faults: kill -9 mid-batch, and PostgreSQL restarted under it.

Both end with `verify`: a scratch rebuild of the same streams (an uninterrupted run) must have
exactly the digest of the tables the faulty run produced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis

from cdb.embedded.postgres_server import EmbeddedPostgres
from cdb.embedded.testing import with_database
from cdb.eventstore.store import AppendResult, EventStore
from cdb.eventstore.topology import load_topology
from cdb.projections import db
from cdb.projections.definitions import definition
from cdb.projections.engine import Backoff, Projector
from cdb.projections.rebuild import verify
from cdb.projections.sample import requests
from cdb.projections.status import status_all

ROOT = Path(__file__).resolve().parents[2]
CDB = Path(sys.executable).with_name("cdb")


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def append(store: EventStore, cycles: int, start: int = 0) -> None:
    results = store.append_many(list(requests(cycles, start=start)))
    assert all(isinstance(r, AppendResult) for r in results)


def applied(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(events_applied), 0) FROM projection_checkpoints "
            "WHERE projection = 'trading'"
        ).fetchone()
    return int(row[0]) if row else 0


def start_projector(
    redis_url: str, database_url: str, namespace: str, home: Path, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CDB_REDIS_URL": redis_url,
        "CDB_DATABASE_URL": database_url,
        "CDB_NAMESPACE": namespace,
        "CDB_HOME": str(home),
    }
    return subprocess.Popen(
        [str(CDB), "projections", "run", "trading", "--batch-size", "10"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
def test_kill_9_mid_batch_then_restart_gives_the_uninterrupted_digest(
    redis_url: str,
    redis_client: redis.Redis,
    fresh_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    db.upgrade(fresh_database)
    topology = load_topology()
    store = EventStore(redis_client, topology, namespace, check_server=False)
    append(store, 400)
    trading = definition("trading")
    total = sum(redis_client.xlen(f"{{{namespace}:0}}:topic:{t}") for t in trading.topics)

    log = tmp_path / "projector.log"
    first = start_projector(redis_url, fresh_database, namespace, tmp_path, log)
    try:
        wait_until(lambda: applied(fresh_database) > 0, "the first committed batch")
        # Hold the projection's checkpoint rows: the projector's next batch writes its rows and
        # then waits for them, inside its transaction. Then kill it right there.
        with psycopg.connect(fresh_database) as blocker:
            blocker.execute(
                "SELECT * FROM projection_checkpoints WHERE projection = 'trading' FOR UPDATE"
            )

            def projector_waits() -> bool:
                with psycopg.connect(fresh_database) as probe:
                    row = probe.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE '%projection_checkpoints%'"
                    ).fetchone()
                return bool(row and row[0])

            wait_until(projector_waits, "the projector blocked mid-batch")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            blocker.rollback()
    finally:
        if first.poll() is None:
            first.kill()
    interrupted_at = applied(fresh_database)
    assert 0 < interrupted_at < total, (interrupted_at, total)
    pending = redis_client.xpending(f"{{{namespace}:0}}:topic:signals", "projector")
    assert (
        pending["pending"]
        + sum(
            redis_client.xpending(f"{{{namespace}:0}}:topic:{t}", "projector")["pending"]
            for t in ("orders", "order_results")
        )
        > 0
    )  # the killed batch was delivered and never acked

    second = start_projector(redis_url, fresh_database, namespace, tmp_path, log)
    try:
        wait_until(lambda: applied(fresh_database) == total, "the restarted projector to finish")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)

    result = verify(trading, redis_client, topology, namespace, fresh_database)
    assert result.match, log.read_text()
    assert result.live.rows > 1000


@pytest.mark.slow
def test_postgres_restarted_mid_run_the_projector_retries_and_loses_nothing(
    redis_client: redis.Redis,
    namespace: str,
    tmp_path: Path,
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", durable=False)
    admin = server.ensure_running_admin()
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE proj")
        url = with_database(admin, "proj")
        db.upgrade(url)
        topology = load_topology()
        store = EventStore(redis_client, topology, namespace, check_server=False)
        trading = definition("trading")
        projector = Projector(
            trading,
            redis_client,
            topology,
            namespace,
            url,
            batch_size=20,
            block_ms=20,
            backoff=Backoff(base_s=0.05, cap_s=0.5),
        )
        stop = threading.Event()
        runner = threading.Thread(target=projector.run, args=(stop,))
        runner.start()
        try:
            append(store, 50)
            wait_until(lambda: applied(url) > 0, "the projector to start applying")
            server.stop()
            append(store, 50, start=50)  # history keeps arriving while PostgreSQL is down
            wait_until(lambda: projector.failures > 0, "the projector to notice the outage")
            assert server.ensure_running_admin() == admin  # same port: same URL
            append(store, 50, start=100)

            def caught_up() -> bool:
                (status,) = status_all([trading], redis_client, topology, namespace, url)
                return status.lag_events == 0

            wait_until(caught_up, "the projector to catch up after the restart")
        finally:
            stop.set()
            runner.join()
            projector.close()
        assert projector.failures > 0
        result = verify(trading, redis_client, topology, namespace, url)
        assert result.match
        assert result.live.tables[0].rows == 150  # every signal of the three appends
    finally:
        server.stop()
