"""A digest of every row of a projection's tables, in key order, streamed (flat memory).

Two sets of tables have the same digest exactly when they hold the same rows: each row is
hashed in PostgreSQL's text form (``t::text``), ordered by primary key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import psycopg

from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.models import metadata


@dataclass(frozen=True)
class TableDigest:
    table: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class Digest:
    tables: tuple[TableDigest, ...]

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for t in self.tables:
            h.update(f"{t.table}:{t.rows}:{t.sha256}\n".encode())
        return h.hexdigest()

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def table_digest(conn: psycopg.Connection, schema: str, table: str) -> TableDigest:
    key = ", ".join(quote_ident(c.name) for c in metadata.tables[table].primary_key.columns)
    h = hashlib.sha256()
    rows = 0
    # A named (server-side) cursor streams the rows; it needs a transaction around it.
    with conn.transaction(), conn.cursor(name=f"cdb_digest_{table}") as cur:
        cur.itersize = 5000
        cur.execute(
            f"SELECT t::text FROM {quote_ident(schema)}.{quote_ident(table)} t "  # noqa: S608
            f"ORDER BY {key}"
        )
        for (text,) in cur:
            h.update(text.encode())
            h.update(b"\n")
            rows += 1
    return TableDigest(table, rows, h.hexdigest())


def projection_digest(conn: psycopg.Connection, definition: Definition, schema: str) -> Digest:
    return Digest(tuple(table_digest(conn, schema, table) for table in definition.tables))
