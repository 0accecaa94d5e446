"""`cdb db` and `cdb projections` end to end, in-process, against the test servers."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from cdb.cli.app import main
from cdb.eventstore.store import EventStore
from tests.integration.projections.conftest import append_cycles


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    fresh_database: str,
    namespace: str,
    tmp_path: Path,
) -> str:
    monkeypatch.setenv("CDB_REDIS_URL", redis_url)
    monkeypatch.setenv("CDB_DATABASE_URL", fresh_database)
    monkeypatch.setenv("CDB_NAMESPACE", namespace)
    monkeypatch.setenv("CDB_HOME", str(tmp_path))
    return fresh_database


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_db_upgrade_then_current_says_head(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["db", "current"]) == 1  # an empty database is behind
    assert run(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert run(["db", "current", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["current"] == doc["head"] is not None


def test_run_status_rebuild_and_verify(
    cli_env: str, store: EventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["db", "upgrade"]) == 0
    append_cycles(store, 30)
    assert run(["projections", "run", "--once"]) == 0
    capsys.readouterr()

    assert run(["projections", "status", "--json"]) == 0
    status = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert status["trading"]["rows"]["signals"] == 30
    assert {s["state"] for s in status.values()} == {"live"}
    assert {s["lag_events"] for s in status.values()} == {0}

    assert run(["projections", "verify", "trading", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["match"] is True

    assert run(["projections", "rebuild", "trading", "--drop-old", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["generation"], report["dropped_old"]) == (2, True)

    with psycopg.connect(cli_env) as conn:
        conn.execute("DELETE FROM trades WHERE status = 'partial'")
    assert run(["projections", "verify", "trading"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_an_unknown_projection_is_one_clear_error(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["projections", "verify", "nope"]) == 2
    assert "unknown projection 'nope'" in capsys.readouterr().err
