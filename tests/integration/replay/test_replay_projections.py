"""`replay projections --from`: rebuilt from the cut on, same digest as a full rebuild, damaged
rows after the cut repaired, the live tables serving meanwhile, a bad offset refused."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis

from cdb.cli import app as cli_app
from cdb.cli.app import main
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import AppendResult, EventStore
from cdb.eventstore.topology import load_topology
from cdb.projections import db
from cdb.projections.definitions import Definition, load_definitions
from cdb.projections.digest import Digest, projection_digest
from cdb.projections.engine import Projector, connect, wait_caught_up
from cdb.projections.rebuild import Progress, rebuild
from cdb.projections.rewind import rewind
from cdb.projections.sample import requests
from cdb.projections.source import stream_positions

LATER = "2026-01-05T00:01:00Z"  # cycle 60 of the sample history on (one cycle a second)
Cdb = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cdb(
    redis_url: str,
    fresh_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cdb:
    db.upgrade(fresh_database)
    cli_app._register()
    monkeypatch.setattr(cli_app, "_register", lambda: None)
    monkeypatch.setenv("CDB_REDIS_URL", redis_url)
    monkeypatch.setenv("CDB_DATABASE_URL", fresh_database)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _project(definitions: dict[str, Definition], env: tuple[Any, ...]) -> None:
    client, topology, namespace, url = env
    for definition in definitions.values():
        projector = Projector(definition, client, topology, namespace, url, block_ms=20)
        wait_caught_up(projector)
        projector.close()


def _digests(definitions: dict[str, Definition], url: str) -> dict[str, Digest]:
    with connect(url) as conn:
        return {n: projection_digest(conn, d, "public") for n, d in definitions.items()}


def _append(store: EventStore, cycles: int, start: int = 0) -> None:
    results = store.append_many(list(requests(cycles, start=start)))
    assert all(isinstance(r, AppendResult) for r in results), results


def test_a_bad_offset_is_refused_with_the_valid_range(
    *, recorded: EventStore, namespace: str, cdb: Cdb
) -> None:
    third = recorded.read_topic("market_data", 0, count=3)[-1]
    code, _, err = cdb("replay", "projections", "--from", "1-0", "-n", namespace)
    assert code == 2
    assert "'1-0'" in err
    assert "outside the stream" in err
    assert "market_data" in err
    code, _, err = cdb("replay", "projections", "--from", "2025-13-03T00:00Z", "-n", namespace)
    assert code == 2
    assert "2025-13-03T00:00Z" in err
    assert "ISO-8601" in err
    code, _, err = cdb("replay", "projections", "--from", "2099-01-01T00:00:00Z", "-n", namespace)
    assert code == 2
    assert "after the last event" in err
    # A good offset on the recorded pipeline: every projection from there, nothing dead.
    code, out, err = cdb(
        "replay", "projections", "--from", third.entry_id, "--json", "-n", namespace
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["from"]["entry_id"] == third.entry_id
    assert {p["projection"] for p in document["projections"]} == set(load_definitions())
    assert all(p["dead_letters"] == 0 for p in document["projections"])


def test_from_an_offset_repairs_the_rows_after_it_and_matches_a_full_rebuild(
    *,
    namespace: str,
    redis_client: redis.Redis,
    redis_url: str,
    fresh_database: str,
    cdb: Cdb,
) -> None:
    topology = load_topology()
    store = EventStore(redis_client, topology, namespace, check_server=False)
    definitions = load_definitions()
    env = (redis_client, topology, namespace, fresh_database)
    _append(store, 60)
    # X: the first entry of the second half; every later entry is appended after its ms.
    keys = Keys(namespace)
    cut_entry = None
    _append(store, 60, start=60)
    rows: Any = redis_client.xrange(keys.topic("signals", 0), "-", "+")
    for row in rows:
        if json.loads(row[1][b"d"])["payload"]["signal_id"] == "ssample60":
            cut_entry = row[0].decode()
    assert cut_entry is not None
    _project(definitions, env)
    healthy = _digests(definitions, fresh_database)

    # The bug: rows written by events after X are wrong in the live tables.
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE positions SET size = size + 1, realized_pnl = 0")
        conn.execute("UPDATE trades SET size = size * 2 WHERE timestamp >= %s", (LATER,))
        conn.execute(
            "UPDATE orders SET filled_size = 0, status = 'submitted' "
            "WHERE order_id IN ('osample61', 'osample95', 'osample118')"
        )
        conn.execute("UPDATE alerts SET message = 'wrong' WHERE timestamp >= %s", (LATER,))
        conn.execute("DELETE FROM portfolio_snapshots WHERE timestamp >= %s", (LATER,))
    damaged = _digests(definitions, fresh_database)
    assert all(damaged[name] != healthy[name] for name in definitions)

    # Readers of the live tables are served during the run (and see whole generations).
    stop = threading.Event()
    reads: list[int] = []
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            with psycopg.connect(fresh_database, autocommit=True) as conn:
                while not stop.is_set():
                    row = conn.execute("SELECT count(*) FROM orders").fetchone()
                    assert row is not None
                    reads.append(int(row[0]))
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        code, out, err = cdb(
            "replay",
            "projections",
            "--from",
            cut_entry,
            "--topic",
            "signals",
            "--json",
            "-n",
            namespace,
        )
    finally:
        stop.set()
        thread.join()
    assert code == 0, err
    assert not failures, failures
    assert len(reads) > 0
    document = json.loads(out)
    cut_ms = int(cut_entry.split("-")[0])
    assert document["from"]["cut_ms"] == cut_ms

    # Only the entries from the cut on were applied: count them in the streams.
    for report in document["projections"]:
        definition = definitions[report["projection"]]
        after = before = 0
        for pos in stream_positions(definition, topology):
            ids: Any = redis_client.xrange(keys.topic(*pos), "-", "+")
            for entry_id, _ in ids:
                ms = int(entry_id.decode().split("-")[0])
                after += ms >= cut_ms
                before += ms < cut_ms
        assert report["replayed"] == after, report
        assert report["events_before_cut"] == before, report
        assert report["dead_letters"] == 0

    repaired = _digests(definitions, fresh_database)
    assert repaired == healthy
    for definition in definitions.values():
        rebuild(definition, redis_client, topology, namespace, fresh_database)
    assert _digests(definitions, fresh_database) == repaired


def test_an_interrupted_run_resumes_and_the_live_projector_keeps_up(
    *, namespace: str, redis_client: redis.Redis, fresh_database: str
) -> None:
    db.upgrade(fresh_database)
    topology = load_topology()
    store = EventStore(redis_client, topology, namespace, check_server=False)
    trading = load_definitions()["trading"]
    _append(store, 80)
    _project({"trading": trading}, (redis_client, topology, namespace, fresh_database))
    healthy = _digests({"trading": trading}, fresh_database)
    middle: Any = redis_client.xrange(Keys(namespace).topic("orders", 0), "-", "+")
    cut_ms = int(middle[len(middle) // 2][0].decode().split("-")[0])

    seen: list[Progress] = []

    def interrupt(progress: Progress) -> None:
        seen.append(progress)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rewind(
            trading,
            redis_client,
            topology,
            namespace,
            fresh_database,
            start=cut_ms,
            batch_size=10,
            progress=interrupt,
        )
    assert seen[0].done < seen[0].total  # counted from the cut
    # More history arrives; the live projector applies it to the live tables meanwhile.
    _append(store, 20, start=80)
    live = Projector(trading, redis_client, topology, namespace, fresh_database, block_ms=20)
    wait_caught_up(live)
    report = rewind(
        trading, redis_client, topology, namespace, fresh_database, start=cut_ms, batch_size=10
    )
    assert report.resumed
    wait_caught_up(live)
    live.close()
    after = _digests({"trading": trading}, fresh_database)
    rebuild(trading, redis_client, topology, namespace, fresh_database)
    assert _digests({"trading": trading}, fresh_database) == after
    assert after != healthy  # the 20 later cycles are in
