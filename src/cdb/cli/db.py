"""`cdb db upgrade|downgrade|current`: Alembic migrations of cdb's PostgreSQL tables."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cdb.cli import context
from cdb.cli.options import JsonOpt
from cdb.projections import db as migrations

db_app = typer.Typer(help="PostgreSQL schema: Alembic migrations (Alembic owns every table).")


def _url() -> str:
    return context.database_url(context.load_settings())


@db_app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to REVISION (default: head)."""
    url = _url()
    migrations.upgrade(url, revision)
    typer.echo(f"database at revision {migrations.current(url) or 'base'}")


@db_app.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision ('base' = empty).")],
) -> None:
    """Migrate the database down to REVISION (e.g. 'base' removes every table)."""
    url = _url()
    migrations.downgrade(url, revision)
    typer.echo(f"database at revision {migrations.current(url) or 'base'}")


@db_app.command("current")
def current(as_json: JsonOpt = False) -> None:
    """Show the revision the database is at and the newest one; exit 1 when behind."""
    revision = migrations.current(_url())
    newest = migrations.head()
    if as_json:
        typer.echo(json.dumps({"current": revision, "head": newest}))
    else:
        typer.echo(f"current: {revision or 'base'}  head: {newest}")
    if revision != newest:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
