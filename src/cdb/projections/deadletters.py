"""Dead letters of projections: entries a projection could not apply, kept with the error.

A dead letter is written in the batch transaction that moves the checkpoint past the entry, so
the projection goes on and the entry is never lost: it is in the table with its raw fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    entry_id: str
    event_id: str | None
    event_type: str | None
    error: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class StoredDeadLetter:
    id: int
    projection: str
    generation: int
    topic: str
    partition: int
    entry_id: str
    event_id: str | None
    event_type: str | None
    error: str
    failed_at: datetime


def record(
    conn: psycopg.Connection, projection: str, generation: int, letters: Sequence[DeadLetter]
) -> None:
    if not letters:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO projection_dead_letters (projection, generation, topic, partition, "
            "entry_id, event_id, event_type, error, fields) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT ON CONSTRAINT uq_projection_dead_letters_entry DO NOTHING",
            [
                (
                    projection,
                    generation,
                    letter.topic,
                    letter.partition,
                    letter.entry_id,
                    letter.event_id,
                    letter.event_type,
                    letter.error,
                    Jsonb(dict(letter.fields)),
                )
                for letter in letters
            ],
        )


def list_letters(
    conn: psycopg.Connection, projection: str | None = None, limit: int = 100
) -> list[StoredDeadLetter]:
    rows = conn.execute(
        "SELECT id, projection, generation, topic, partition, entry_id, event_id, event_type, "
        "error, failed_at FROM projection_dead_letters "
        "WHERE %(p)s::text IS NULL OR projection = %(p)s ORDER BY id DESC LIMIT %(n)s",
        {"p": projection, "n": limit},
    ).fetchall()
    return [StoredDeadLetter(*row) for row in rows]


def count(conn: psycopg.Connection, projection: str, generation: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM projection_dead_letters WHERE projection = %s AND generation = %s",
        (projection, generation),
    ).fetchone()
    return int(row[0]) if row else 0
