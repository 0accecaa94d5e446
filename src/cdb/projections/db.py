"""Database URLs, engines and the Alembic commands behind `cdb db`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, pool
from sqlalchemy.engine import make_url

from cdb.errors import ConfigError

_DRIVER = "postgresql+psycopg"


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` (config) -> ``postgresql+psycopg://`` (SQLAlchemy on psycopg 3)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"database URL {_masked(url)!r}: not a URL ({exc})") from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(
            f"database URL {_masked(url)!r}: scheme must be postgresql:// (PostgreSQL only)"
        )
    return parsed.set(drivername=_DRIVER).render_as_string(hide_password=False)


def make_engine(url: str, *, pooled: bool = True) -> Engine:
    if pooled:
        return create_engine(sqlalchemy_url(url), pool_pre_ping=True)
    return create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable>"


def alembic_ini() -> Path:
    # src/cdb/projections/db.py -> repository root / alembic.ini
    return Path(__file__).resolve().parents[3] / "alembic.ini"


def _alembic_config(url: str) -> Config:
    cfg = Config(str(alembic_ini()))
    # configparser interpolates '%': a percent-encoded password must survive it.
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    cfg = _alembic_config(url)
    command.upgrade(cfg, revision)


def downgrade(url: str, revision: str = "base") -> None:
    cfg = _alembic_config(url)
    command.downgrade(cfg, revision)


def current(url: str) -> str | None:
    """The revision the database is at (None: never migrated)."""
    engine = make_engine(url, pooled=False)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    return ScriptDirectory.from_config(Config(str(alembic_ini()))).get_current_head()


def libpq_url(url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy) -> ``postgresql://`` (psycopg / libpq)."""
    parsed = make_url(sqlalchemy_url(url))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)
