"""`replay projections --from`: the offset is checked, then every read model is rebuilt."""

from __future__ import annotations

import json

import pytest

from cdb.cli import app as cli_app
from cdb.cli.app import main
from cdb.eventstore.store import EventStore
from cdb.projections import db
from cdb.projections.definitions import load_definitions


def test_projections_are_rebuilt_and_a_bad_offset_is_refused(
    *,
    recorded: EventStore,
    namespace: str,
    redis_url: str,
    fresh_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db.upgrade(fresh_database)
    cli_app._register()
    monkeypatch.setattr(cli_app, "_register", lambda: None)
    monkeypatch.setenv("CDB_REDIS_URL", redis_url)
    monkeypatch.setenv("CDB_DATABASE_URL", fresh_database)

    def cdb(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    third = recorded.read_topic("market_data", 0, count=3)[-1]
    code, out, err = cdb(
        "replay", "projections", "--from", "2025-03-03T00:01:00Z", "--json", "-n", namespace
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["from"]["entry_id"] == third.entry_id
    rebuilt = {p["projection"]: p for p in document["projections"]}
    assert set(rebuilt) == set(load_definitions())
    assert all(p["events"] > 0 for p in rebuilt.values())
    assert all(p["dead_letters"] == 0 for p in rebuilt.values())

    code, _, err = cdb("replay", "projections", "--from", "1-0", "-n", namespace)
    assert code == 2
    assert "'1-0'" in err
    assert "outside the stream" in err
