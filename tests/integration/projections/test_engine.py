"""The live projector: batches, exactly-once effect through the checkpoint, dead letters."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest

from cdb.domain.contracts import AlertLevel, AlertV1
from cdb.domain.envelope import NewEvent, derive_id
from cdb.domain.event_types import EventType
from cdb.errors import ProjectionBusyError
from cdb.eventstore.topology import parse_topology
from cdb.projections.definitions import Definition
from cdb.projections.digest import projection_digest
from cdb.projections.engine import Backoff, Projector, connect, wait_caught_up
from cdb.projections.rebuild import rebuild, verify
from cdb.projections.status import ProjectionStatus, status_all
from tests.integration.projections.conftest import Env, append_cycles, append_oversized_order

AT = datetime(2026, 1, 5, tzinfo=UTC)


def _projector(definition: Definition, env: Env) -> Projector:
    return Projector(definition, env.client, env.topology, env.namespace, env.url, block_ms=50)


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def test_a_projector_writes_linked_rows_in_batches(env: Env) -> None:
    append_cycles(env.store, 40)
    projector = _projector(env.definitions["trading"], env)
    wait_caught_up(projector)
    projector.close()
    with psycopg.connect(env.url) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM orders o LEFT JOIN signals s ON s.id = o.signal_id "
            "WHERE s.id IS NULL OR s.symbol IS NULL"
        ).fetchone()
        trades = conn.execute(
            "SELECT count(*), count(DISTINCT t.order_id), min(t.slippage_bps) "
            "FROM trades t JOIN orders o USING (order_id) WHERE o.status = 'filled'"
        ).fetchone()
        statuses: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall()
        )
    assert orphans == (0,)
    assert trades is not None
    assert trades[0] == 2 * trades[1]  # one partial and one final fill per filled order
    assert trades[2] is not None
    assert statuses == {"filled": 36, "rejected": 2}  # 2 of the 40 signals were blocked


def test_a_redelivered_batch_is_skipped_by_the_checkpoint(env: Env) -> None:
    events = append_cycles(env.store, 20)
    trading = env.definitions["trading"]
    crashed = _projector(trading, env)
    crashed._source.ensure_groups()
    entries = crashed._source.read(block=False)
    # Commit without ack: what a crash between commit and XACK leaves behind.
    first = crashed._commit(entries)
    crashed.close()
    assert first.applied == len(entries) > 0
    with connect(env.url) as conn:
        before = projection_digest(conn, trading, "public")

    restarted = _projector(trading, env)
    again = restarted.run_once()
    assert again.skipped == len(entries)
    assert again.applied == 0
    wait_caught_up(restarted)
    restarted.close()
    with connect(env.url) as conn:
        after = projection_digest(conn, trading, "public")
    assert after == before
    pending = env.client.xpending(f"{{{env.namespace}:0}}:topic:signals", "projector")
    assert pending["pending"] == 0
    assert first.applied <= events


def test_a_failing_event_is_dead_lettered_and_the_rest_goes_on(env: Env) -> None:
    append_cycles(env.store, 10)
    append_oversized_order(env.store, AT)
    append_cycles(env.store, 10, start=10)
    env.store.append(
        "alert-a1",
        [
            NewEvent(
                event_id=derive_id("a1"),
                event_type=EventType.ALERT_RAISED,
                timestamp=AT,
                payload=AlertV1(level=AlertLevel.INFO, code="X", message="m", timestamp=AT),
            )
        ],
        0,
    )

    stop = threading.Event()
    for definition in env.definitions.values():
        projector = _projector(definition, env)
        projector.run(stop, idle_exit=True)
        projector.close()

    assert _count(env.url, "orders") == 19  # 20 cycles, one blocked signal, no "huge"
    assert _count(env.url, "alerts") == 2
    with psycopg.connect(env.url) as conn:
        letters = conn.execute(
            "SELECT projection, topic, event_type, error FROM projection_dead_letters"
        ).fetchall()
    assert len(letters) == 1
    projection, topic, event_type, error = letters[0]
    assert (projection, topic, event_type) == ("trading", "orders", "ORDER_PLACED")
    assert "numeric field overflow" in error

    statuses = {
        s.name: s
        for s in status_all(
            list(env.definitions.values()), env.client, env.topology, env.namespace, env.url
        )
    }
    assert statuses["trading"].state == "failed"
    assert statuses["trading"].dead_letters == 1
    assert statuses["trading"].lag_events == 0
    assert "numeric field overflow" in (statuses["trading"].last_error or "")
    assert {s.state for n, s in statuses.items() if n != "trading"} == {"live"}


def test_status_shows_lag_until_the_projector_catches_up(env: Env) -> None:
    events = append_cycles(env.store, 5)
    alerts = env.definitions["alerts"]
    (before,) = status_all([alerts], env.client, env.topology, env.namespace, env.url)
    assert before.state == "new"
    assert before.lag_events == 1
    assert before.lag_seconds > 0
    projector = _projector(alerts, env)
    wait_caught_up(projector)
    projector.close()
    (after,) = status_all([alerts], env.client, env.topology, env.namespace, env.url)
    assert (after.state, after.lag_events, after.rows) == ("live", 0, {"alerts": 1})
    assert after.partitions[0].checkpoint == after.partitions[0].head
    assert events > 0


def test_a_projector_that_cannot_write_shows_failed_until_a_rebuild_repairs_it(env: Env) -> None:
    trading = env.definitions["trading"]
    append_cycles(env.store, 5)
    projector = Projector(
        trading,
        env.client,
        env.topology,
        env.namespace,
        env.url,
        block_ms=20,
        backoff=Backoff(base_s=0.01, cap_s=0.05),
    )
    wait_caught_up(projector)
    with psycopg.connect(env.url) as conn:
        conn.execute("DROP TABLE trades")
    append_cycles(env.store, 5, start=5)

    def state() -> ProjectionStatus:
        (found,) = status_all([trading], env.client, env.topology, env.namespace, env.url)
        return found

    stop = threading.Event()
    runner = threading.Thread(target=projector.run, args=(stop,))
    runner.start()
    try:
        wait_until(lambda: "trades" in (state().last_error or ""), "the failure to show")
        assert state().state == "failed"
        assert state().rows["trades"] is None
        rebuild(trading, env.client, env.topology, env.namespace, env.url)
        wait_until(lambda: state().state == "live" and state().lag_events == 0, "recovery")
    finally:
        stop.set()
        runner.join()
        projector.close()
    assert verify(trading, env.client, env.topology, env.namespace, env.url).match


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def test_one_projection_has_one_live_writer(env: Env) -> None:
    alerts = env.definitions["alerts"]
    append_cycles(env.store, 3)
    owner = _projector(alerts, env)
    standby = _projector(alerts, env)
    owner.run_once()
    with pytest.raises(ProjectionBusyError, match="'alerts' is already run"):
        standby.run_once()
    owner.close()
    standby.run_once()  # the owner's session ended: the standby takes over
    standby.close()


def test_a_lingering_projector_writes_a_trickle_in_one_transaction(env: Env) -> None:
    # A live batch costs about the same transaction whether it holds one event or five: after a
    # short batch the projector lingers (the groups' linger_ms; 1 s here, the most allowed, as
    # slack for a slow host) so the events that trickle in meanwhile share the next one.
    raw = tomllib.loads(env.topology.source.read_text())
    raw["defaults"]["linger_ms"] = 1000
    topology = parse_topology(raw, env.topology.source)
    batches: list[int] = []
    projector = Projector(
        env.definitions["alerts"],
        env.client,
        topology,
        env.namespace,
        env.url,
        block_ms=50,
        on_batch=lambda outcome: batches.append(outcome.applied),
    )

    def alert(n: int) -> None:
        event = NewEvent(
            event_id=derive_id("linger", str(n)),
            event_type=EventType.ALERT_RAISED,
            timestamp=AT,
            payload=AlertV1(level=AlertLevel.INFO, code="X", message=f"m{n}", timestamp=AT),
        )
        env.store.append(f"alert-linger{n}", [event], 0)

    stop = threading.Event()
    worker = threading.Thread(target=projector.run, args=(stop,))
    worker.start()
    try:
        alert(1)
        wait_until(lambda: _count(env.url, "alerts") == 1, "the first alert")
        for n in range(2, 7):
            stop.wait(0.02)  # the producer's pace: the trickle this test is about
            alert(n)
        wait_until(lambda: _count(env.url, "alerts") == 6, "the trickle")
    finally:
        stop.set()
        worker.join(timeout=10)
        projector.close()
    assert batches == [1, 5]
