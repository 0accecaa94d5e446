"""Blue/green rebuild and verify: same digest from the streams, atomic swap, resumable."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest
import redis
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from cdb.eventstore.topology import Topology
from cdb.projections import db, shadow
from cdb.projections.definitions import Definition
from cdb.projections.digest import Digest, projection_digest
from cdb.projections.engine import Projector, connect, wait_caught_up
from cdb.projections.models import metadata
from cdb.projections.rebuild import Progress, rebuild, verify
from tests.integration.projections.conftest import (
    Env,
    append_cycles,
    append_oversized_order,
    interrupted_rebuild,
)


def _project_all(
    definitions: dict[str, Definition],
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    url: str,
) -> None:
    for definition in definitions.values():
        projector = Projector(definition, client, topology, namespace, url, block_ms=50)
        wait_caught_up(projector)
        projector.close()


def _digests(definitions: dict[str, Definition], url: str) -> dict[str, Digest]:
    with connect(url) as conn:
        return {name: projection_digest(conn, d, "public") for name, d in definitions.items()}


def test_dropping_every_projection_table_and_rebuilding_gives_the_same_digest(env: Env) -> None:
    append_cycles(env.store, 120)
    _project_all(env.definitions, env.client, env.topology, env.namespace, env.url)
    before = _digests(env.definitions, env.url)
    assert before["trading"].rows > 300

    with psycopg.connect(env.url, autocommit=True) as conn:
        for definition in env.definitions.values():
            for table in definition.tables:
                conn.execute(f"DROP TABLE {table} CASCADE")
    for definition in env.definitions.values():
        report = rebuild(
            definition, env.client, env.topology, env.namespace, env.url, batch_size=100
        )
        assert report.previous_generation is None  # nothing was left to park

    assert _digests(env.definitions, env.url) == before


def test_a_rebuild_swaps_while_the_live_projector_keeps_serving(env: Env) -> None:
    trading = env.definitions["trading"]
    append_cycles(env.store, 60)
    live = Projector(trading, env.client, env.topology, env.namespace, env.url, block_ms=20)
    wait_caught_up(live)
    stop = threading.Event()
    runner = threading.Thread(target=live.run, args=(stop,))
    runner.start()
    appended = [0]

    def more_events(progress: Progress) -> None:
        # New history arrives while the new generation is being built.
        if progress.phase == "build" and appended[0] < 3:
            appended[0] += 1
            append_cycles(env.store, 10, start=60 + 10 * appended[0])

    try:
        report = rebuild(
            trading,
            env.client,
            env.topology,
            env.namespace,
            env.url,
            batch_size=50,
            progress=more_events,
        )
    finally:
        stop.set()
        runner.join()
    assert report.generation == 2
    assert report.previous_generation == 1
    wait_caught_up(live)
    live.close()

    result = verify(trading, env.client, env.topology, env.namespace, env.url)
    assert result.match, (result.live, result.rebuilt)
    assert result.live.rows > 0
    with psycopg.connect(env.url) as conn:
        generation = conn.execute(
            "SELECT active_generation, parked_generation, building_generation, state "
            "FROM projection_state WHERE projection = 'trading'"
        ).fetchone()
        kept = conn.execute(
            "SELECT count(*) FROM cdb_old_trading.signals"  # the old generation stays
        ).fetchone()
    assert generation == (2, 1, None, "live")
    assert kept is not None
    assert kept[0] > 0

    # The swapped-in tables are exactly what Alembic would create: no autogenerate diff.
    engine = db.make_engine(env.url, pooled=False)
    with engine.connect() as sa_conn:
        assert list(compare_metadata(MigrationContext.configure(sa_conn), metadata)) == []
    engine.dispose()

    rebuild(trading, env.client, env.topology, env.namespace, env.url, drop_old=True)
    with connect(env.url) as conn:
        assert not shadow.schema_exists(conn, shadow.old_schema("trading"))
        assert not shadow.schema_exists(conn, shadow.build_schema("trading"))


def test_a_live_projector_with_prepared_statements_writes_into_the_swapped_in_tables(
    env: Env,
) -> None:
    trading = env.definitions["trading"]
    append_cycles(env.store, 40)
    # Small batches: each statement runs often enough to be prepared on the server.
    live = Projector(trading, env.client, env.topology, env.namespace, env.url, batch_size=4)
    wait_caught_up(live)
    conn = live._connection()  # the projector's own session: prepared statements are per session
    row = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert row is not None
    assert row[0] > 0

    rebuild(trading, env.client, env.topology, env.namespace, env.url)
    with connect(env.url) as check:
        before = check.execute("SELECT count(*) FROM cdb_old_trading.signals").fetchone()
    append_cycles(env.store, 20, start=40)
    wait_caught_up(live)
    live.close()

    # The rows of the events after the swap are in the swapped-in tables, none in the old ones.
    result = verify(trading, env.client, env.topology, env.namespace, env.url)
    assert result.match, (result.live, result.rebuilt)
    with connect(env.url) as check:
        after = check.execute("SELECT count(*) FROM cdb_old_trading.signals").fetchone()
        live_rows = check.execute("SELECT count(*) FROM public.signals").fetchone()
    assert after == before
    assert before is not None
    assert live_rows is not None
    assert live_rows[0] > before[0]


@pytest.mark.parametrize("keys_added", [False, True])
def test_an_interrupted_rebuild_resumes_where_it_stopped(env: Env, keys_added: bool) -> None:
    # keys_added: interrupted after the foreign keys were added to the build tables (they
    # are then checked at the end of each resumed batch again).
    trading = env.definitions["trading"]
    append_cycles(env.store, 80)
    _project_all({"trading": trading}, env.client, env.topology, env.namespace, env.url)
    before = _digests({"trading": trading}, env.url)
    seen = interrupted_rebuild(env, "trading", after=2, batch_size=20)
    with psycopg.connect(env.url) as conn:
        state = conn.execute(
            "SELECT state, building_generation FROM projection_state WHERE projection = 'trading'"
        ).fetchone()
    assert state == ("rebuilding", 2)
    if keys_added:
        with connect(env.url) as conn, conn.transaction():
            shadow.create_foreign_keys(conn, trading, shadow.build_schema("trading"))

    resumed: list[int] = []
    rebuild(
        trading,
        env.client,
        env.topology,
        env.namespace,
        env.url,
        batch_size=20,
        progress=lambda p: resumed.append(p.done),
    )
    assert resumed[0] > seen[-1]  # it went on from the committed batches, not from zero
    assert _digests({"trading": trading}, env.url) == before


def test_verify_notices_a_row_that_differs_from_the_streams(env: Env) -> None:
    positions = env.definitions["positions"]
    append_cycles(env.store, 30)
    _project_all({"positions": positions}, env.client, env.topology, env.namespace, env.url)
    assert verify(positions, env.client, env.topology, env.namespace, env.url).match
    with psycopg.connect(env.url) as conn:
        conn.execute("UPDATE positions SET size = size + 1 WHERE symbol = 'BTC_USDT'")
    result = verify(positions, env.client, env.topology, env.namespace, env.url)
    assert not result.match
    assert result.live.rows == result.rebuilt.rows
    with connect(env.url) as conn:
        assert not shadow.schema_exists(conn, shadow.verify_schema("positions"))


def test_a_rebuild_dead_letters_a_failing_event_and_goes_on(env: Env) -> None:
    # Valid for the contract, too large for the column: the build's batch is retried in
    # savepoints, the order is dead-lettered for the new generation, the rest is applied.
    trading = env.definitions["trading"]
    append_cycles(env.store, 10)
    append_oversized_order(env.store, datetime(2026, 1, 5, tzinfo=UTC))
    append_cycles(env.store, 10, start=10)
    _project_all({"trading": trading}, env.client, env.topology, env.namespace, env.url)
    before = _digests({"trading": trading}, env.url)

    report = rebuild(trading, env.client, env.topology, env.namespace, env.url, batch_size=1000)

    assert report.dead_letters == 1
    assert _digests({"trading": trading}, env.url) == before
    with psycopg.connect(env.url) as conn:
        letters = conn.execute(
            "SELECT generation, event_type, error FROM projection_dead_letters "
            "WHERE projection = 'trading' ORDER BY generation"
        ).fetchall()
    assert [(g, t) for g, t, _ in letters] == [
        (1, "ORDER_PLACED"),
        (report.generation, "ORDER_PLACED"),
    ]
    assert all("numeric field overflow" in error for _, _, error in letters)
