"""Alembic owns every table: empty -> head -> base works, and the models equal the migrations."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from cdb.errors import ConfigError
from cdb.projections import db
from cdb.projections.models import metadata


def _diff(url: str) -> list[object]:
    engine = db.make_engine(url, pooled=False)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url, pooled=False)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_migrations_run_from_empty_to_head_and_back_to_base(fresh_database: str) -> None:
    assert db.current(fresh_database) is None
    db.upgrade(fresh_database)
    assert db.current(fresh_database) == db.head()
    assert _tables(fresh_database) >= {
        "signals",
        "orders",
        "trades",
        "positions",
        "portfolio_snapshots",
        "alerts",
        "projection_checkpoints",
        "projection_dead_letters",
        "projection_state",
    }
    db.downgrade(fresh_database, "base")
    assert db.current(fresh_database) is None
    assert _tables(fresh_database) == {"alembic_version"}
    db.upgrade(fresh_database)
    assert db.current(fresh_database) == db.head()


def test_models_match_the_migrations(fresh_database: str) -> None:
    db.upgrade(fresh_database)
    assert _diff(fresh_database) == []


def test_postgresql_urls_from_config_are_driven_by_psycopg_3() -> None:
    url = db.sqlalchemy_url("postgresql://u:p%40ss@127.0.0.1:5432/cdb")
    assert url.startswith("postgresql+psycopg://")
    assert db.libpq_url(url) == "postgresql://u:p%40ss@127.0.0.1:5432/cdb"


def test_a_database_url_of_another_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        db.sqlalchemy_url("mysql://u@h/x")


def test_the_foreign_keys_link_orders_to_signals_and_trades_to_orders(
    fresh_database: str,
) -> None:
    db.upgrade(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute(
            "SELECT conname, conrelid::regclass::text, confrelid::regclass::text, condeferrable "
            "FROM pg_constraint WHERE contype = 'f' ORDER BY conname"
        ).fetchall()
    assert rows == [
        ("fk_orders_signal_id_signals", "orders", "signals", True),
        ("fk_trades_order_id_orders", "trades", "orders", True),
    ]
