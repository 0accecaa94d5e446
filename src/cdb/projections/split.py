"""A rebuild split across processes by aggregate stream (``cdb projections rebuild --jobs N``).

A rebuild is bound by one core: decoding, mapping and COPY formatting are Python. A definition
that declares ``[rebuild] split = "stream"`` promises that every row it writes is written by
the events of one aggregate stream only (keyed by the stream's id or by the event's own), and
that what a mapping carries from one event to the next (an order's fills so far) stays within
one stream. Then N processes can build the same shadow tables at once, part ``i`` applying the
entries whose stream id hashes to ``i``: no two parts write the same row, so they never wait on
each other's locks, and the rows are those of a single build, because the definitions'
statements do not depend on the order across streams (a test checks it).

The exception are placeholder rows (ops of role ``stub`` in ``cdb.projections.mapping``): an
order's stream writes a placeholder for its signal, whose own row belongs to another part. A
split build COPYs those rows into a side table of the build schema and, once every part is done,
runs the placeholder statement over them: a placeholder never changes a row that exists, so
writing them last gives the rows writing them in their place would have.

Each part keeps its own checkpoints (``<name>/<i>of<n>``, seeded from the generation's own), so
a crash or Ctrl-C resumes every part where it committed. Every part reads to the same bound
(the heads when the split started); then one transaction merges the parts' checkpoints into
the generation's, writes the placeholders and drops the side tables, and the build goes on in
one process to the current head.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Any

import psycopg

from cdb.eventstore.codec import RawFields
from cdb.projections import checkpoints
from cdb.projections.checkpoints import Checkpoint, StreamPos, entry_key
from cdb.projections.definitions import Definition, quote_ident

MAX_DEFAULT_PARTS = 4


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_parts() -> int:
    """Parts of a split rebuild when not told: the CPUs this process may run on, at most
    :data:`MAX_DEFAULT_PARTS` (PostgreSQL needs a share of them too)."""
    return max(1, min(MAX_DEFAULT_PARTS, usable_cpus()))


_PART = re.compile(r"^(?P<name>.+)/(?P<index>[0-9]+)of(?P<parts>[0-9]+)$")


def part_name(projection: str, index: int, parts: int) -> str:
    """The name part ``index`` (0-based) of ``parts`` keeps its checkpoints under."""
    return f"{projection}/{index + 1}of{parts}"


def part_of(fields: RawFields, parts: int) -> int:
    """The part an entry belongs to: a hash of its aggregate stream id (field ``s``). An entry
    without one (malformed: it is dead-lettered) goes to the first part, so to exactly one."""
    raw: Any = fields
    return part_of_stream(raw.get(b"s") if b"s" in raw else raw.get("s"), parts)


def part_of_stream(stream: bytes | str | None, parts: int) -> int:
    """:func:`part_of` of an entry whose field ``s`` is ``stream`` (None: it has none)."""
    if stream is None:
        return 0
    data = stream if isinstance(stream, bytes) else str(stream).encode()
    return zlib.crc32(data) % parts


def placeholder_table(schema: str, op: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident('cdb_placeholders_' + op)}"


def diverted(definition: Definition, schema: str) -> dict[str, str]:
    """Placeholder op -> the side table its rows go to during a split build."""
    return {op: placeholder_table(schema, op) for op in definition.placeholders}


def parts_in_progress(conn: psycopg.Connection, projection: str, generation: int) -> int | None:
    """How many parts an unfinished split build of this generation has (None: none)."""
    rows = conn.execute(
        "SELECT DISTINCT projection FROM projection_checkpoints "
        "WHERE generation = %s AND starts_with(projection, %s)",
        (generation, projection + "/"),
    ).fetchall()
    found = {int(m["parts"]) for (name,) in rows if (m := _PART.match(name))}
    return max(found) if found else None


def forget(conn: psycopg.Connection, projection: str, generation: int) -> None:
    """Drop the part checkpoints of a generation (its split build is merged or abandoned)."""
    conn.execute(
        "DELETE FROM projection_checkpoints WHERE generation = %s AND starts_with(projection, %s)",
        (generation, projection + "/"),
    )


def prepare(
    conn: psycopg.Connection, definition: Definition, schema: str, generation: int, parts: int
) -> None:
    """Side tables for the placeholders, and each part's checkpoints where it has none yet:
    the generation's own (a split may start after a build in one process got somewhere), with
    no events applied, as the merge adds the parts' counts to the generation's."""
    for op in definition.placeholders:
        statement = definition.statement(op)
        columns = ", ".join(
            f"{quote_ident(c)} {t}" for c, t in zip(statement.columns, statement.types, strict=True)
        )
        # Logged, like the build tables: the parts' checkpoints count these rows as written,
        # and an unlogged table would be emptied by a server crash.
        conn.execute(f"CREATE TABLE IF NOT EXISTS {placeholder_table(schema, op)} ({columns})")
    start = {
        pos: Checkpoint(cp.last_entry_id, 0, cp.last_event_at)
        for pos, cp in checkpoints.load(conn, definition.name, generation).items()
    }
    for index in range(parts):
        name = part_name(definition.name, index, parts)
        if not checkpoints.load(conn, name, generation):
            checkpoints.save(conn, name, generation, start)


def merge(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    generation: int,
    *,
    parts: int,
    until: dict[StreamPos, str],
) -> None:
    """Every part has applied its entries up to ``until``: the generation's checkpoints move
    there, the placeholders are written and the side tables and part checkpoints go."""
    own = checkpoints.load(conn, definition.name, generation)
    of_parts = [
        checkpoints.load(conn, part_name(definition.name, i, parts), generation)
        for i in range(parts)
    ]
    merged: dict[StreamPos, Checkpoint] = {}
    for pos, bound in until.items():
        base = own.get(pos, Checkpoint())
        found = [cps[pos] for cps in (own, *of_parts) if pos in cps]
        stamps = [cp.last_event_at for cp in found if cp.last_event_at is not None]
        merged[pos] = Checkpoint(
            max(bound, base.last_entry_id, key=entry_key),
            base.events_applied
            + sum(cps.get(pos, Checkpoint()).events_applied for cps in of_parts),
            max(stamps) if stamps else None,
        )
    checkpoints.save(conn, definition.name, generation, merged)
    forget(conn, definition.name, generation)
    for op in definition.placeholders:
        statement = definition.statement(op)
        side = placeholder_table(schema, op)
        conn.execute(statement.create_rows_table())
        conn.execute(f"INSERT INTO {statement.rows_table} SELECT DISTINCT * FROM {side}")  # noqa: S608
        conn.execute(statement.render(schema))
        conn.execute(f"DROP TABLE {side}")
