"""Checkpoints and state of projections in PostgreSQL, read and written inside batch transactions.

A checkpoint is the last topic entry id a projection generation has applied per topic partition,
plus how many entries that is. It is written in the same transaction as the rows, so after a
crash between commit and ack the redelivered entries are recognised and skipped.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime

import psycopg

StreamPos = tuple[str, int]  # (topic, partition)


def entry_key(entry_id: str) -> tuple[int, int]:
    """Stream entry ids order as (milliseconds, sequence) pairs, not as text."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def lock_key(projection: str) -> int:
    """Advisory-lock key of one projection: batches of its live projector and a rebuild's swap
    exclude each other through it."""
    return zlib.crc32(f"cdb.projection:{projection}".encode())


def owner_key(projection: str) -> int:
    """Session advisory-lock key held by the one live projector of a projection."""
    return zlib.crc32(f"cdb.projection.owner:{projection}".encode())


@dataclass(frozen=True)
class Checkpoint:
    last_entry_id: str = "0-0"
    events_applied: int = 0
    last_event_at: datetime | None = None

    def covers(self, entry_id: str) -> bool:
        return entry_key(entry_id) <= entry_key(self.last_entry_id)


@dataclass(frozen=True)
class State:
    projection: str
    definition_version: int
    active_generation: int
    building_generation: int | None
    parked_generation: int | None
    state: str
    last_error: str | None


def lock(conn: psycopg.Connection, projection: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(projection),))


def ensure_state(conn: psycopg.Connection, projection: str, version: int) -> State:
    conn.execute(
        "INSERT INTO projection_state (projection, definition_version) VALUES (%s, %s) "
        "ON CONFLICT (projection) DO NOTHING",
        (projection, version),
    )
    state = read_state(conn, projection)
    assert state is not None
    return state


def read_state(conn: psycopg.Connection, projection: str) -> State | None:
    row = conn.execute(
        "SELECT projection, definition_version, active_generation, building_generation, "
        "parked_generation, state, last_error FROM projection_state WHERE projection = %s",
        (projection,),
    ).fetchone()
    return None if row is None else State(*row)


def update_state(conn: psycopg.Connection, projection: str, **values: object) -> None:
    allowed = {
        "definition_version",
        "active_generation",
        "building_generation",
        "parked_generation",
        "state",
        "last_error",
    }
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown projection_state columns: {sorted(unknown)}")
    sets = ", ".join(f"{column} = %s" for column in values)
    conn.execute(
        f"UPDATE projection_state SET {sets}, updated_at = now() WHERE projection = %s",  # noqa: S608
        (*values.values(), projection),
    )


def load(conn: psycopg.Connection, projection: str, generation: int) -> dict[StreamPos, Checkpoint]:
    rows = conn.execute(
        "SELECT topic, partition, last_entry_id, events_applied, last_event_at "
        "FROM projection_checkpoints WHERE projection = %s AND generation = %s",
        (projection, generation),
    ).fetchall()
    return {(topic, part): Checkpoint(last, applied, at) for topic, part, last, applied, at in rows}


def save(
    conn: psycopg.Connection,
    projection: str,
    generation: int,
    updates: dict[StreamPos, Checkpoint],
) -> None:
    if not updates:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO projection_checkpoints (projection, generation, topic, partition, "
            "last_entry_id, events_applied, last_event_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (projection, generation, topic, partition) DO UPDATE SET "
            "last_entry_id = excluded.last_entry_id, events_applied = excluded.events_applied, "
            "last_event_at = excluded.last_event_at, updated_at = now()",
            [
                (
                    projection,
                    generation,
                    topic,
                    part,
                    cp.last_entry_id,
                    cp.events_applied,
                    cp.last_event_at,
                )
                for (topic, part), cp in updates.items()
            ],
        )


def delete(conn: psycopg.Connection, projection: str, generation: int) -> None:
    conn.execute(
        "DELETE FROM projection_checkpoints WHERE projection = %s AND generation = %s",
        (projection, generation),
    )
