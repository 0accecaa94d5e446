"""Shadow schemas: where a projection's next generation (or a verify scratch copy) is built.

The live tables are in ``public`` (Alembic's). A rebuild builds into ``cdb_build_<name>``, the
swap moves the live tables to ``cdb_old_<name>`` and the built ones into ``public`` in one
transaction (``ALTER TABLE .. SET SCHEMA`` keeps constraint and index names, and foreign keys
follow the tables). The shadow tables are created from the models, which a test proves equal to
the migrations; a rebuild adds the secondary indexes and foreign keys after the bulk load,
before the swap.
"""

from __future__ import annotations

import psycopg
from sqlalchemy import ForeignKeyConstraint, MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import AddConstraint, CreateIndex, CreateTable, ExecutableDDLElement

from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.models import NAMING_CONVENTION, metadata

LIVE = "public"


def build_schema(name: str) -> str:
    return f"cdb_build_{name}"


def old_schema(name: str) -> str:
    return f"cdb_old_{name}"


def verify_schema(name: str) -> str:
    return f"cdb_verify_{name}"


def _copies(definition: Definition, schema: str) -> list[Table]:
    target = MetaData(naming_convention=NAMING_CONVENTION)
    return [metadata.tables[t].to_metadata(target, schema=schema) for t in definition.tables]


def schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
    ).fetchone()
    return row is not None


def table_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"{quote_ident(schema)}.{quote_ident(table)}",))
    found = row.fetchone()
    return found is not None and found[0] is not None


def create_tables(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    *,
    foreign_keys: bool = True,
) -> None:
    """Fresh schema with the projection's tables: keys and constraints, no secondary indexes
    (and, with ``foreign_keys=False``, no foreign keys: :func:`create_foreign_keys` adds them)."""
    drop_schema(conn, schema)
    conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in _copies(definition, schema):
        inline: list[ForeignKeyConstraint] | None = None if foreign_keys else []
        conn.execute(_sql(CreateTable(table, include_foreign_key_constraints=inline), dialect))


def create_foreign_keys(conn: psycopg.Connection, definition: Definition, schema: str) -> None:
    """The foreign keys :func:`create_tables` left out; each checks every row at once (one join
    instead of a trigger per row written). Skips those already there (a resumed rebuild)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in _copies(definition, schema):
        for fk in table.foreign_key_constraints:
            ddl = _sql(AddConstraint(fk), dialect)
            found = conn.execute(
                "SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                "WHERE n.nspname = %s AND c.conname = %s",
                (schema, str(fk.name)),
            ).fetchone()
            if found is None:
                conn.execute(ddl)


def has_foreign_keys(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = %s AND c.contype = 'f' LIMIT 1",
        (schema,),
    ).fetchone()
    return row is not None


def create_indexes(conn: psycopg.Connection, definition: Definition, schema: str) -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    for table in _copies(definition, schema):
        for index in table.indexes:
            ddl = CreateIndex(index, if_not_exists=True)
            conn.execute(_sql(ddl, dialect))


def _sql(ddl: ExecutableDDLElement, dialect: Dialect) -> str:
    # DDL compiled by SQLAlchemy from our own models: no user input reaches it.
    return str(ddl.compile(dialect=dialect))


def drop_schema(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")


def move_tables(conn: psycopg.Connection, definition: Definition, source: str, target: str) -> int:
    """Move every table of the projection that exists in ``source``; returns how many moved."""
    moved = 0
    for table in definition.tables:
        if table_exists(conn, source, table):
            conn.execute(
                f"ALTER TABLE {quote_ident(source)}.{quote_ident(table)} "
                f"SET SCHEMA {quote_ident(target)}"
            )
            moved += 1
    return moved
