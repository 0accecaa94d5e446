"""Alembic environment: the target metadata is cdb's models, the URL comes from cdb's config."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from cdb.projections.db import sqlalchemy_url
from cdb.projections.models import metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CDB_DATABASE_URL")
    if not url:
        raise RuntimeError("no database URL: use `cdb db upgrade` or set CDB_DATABASE_URL")
    return sqlalchemy_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
