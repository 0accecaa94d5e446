"""`cdb projections status`: per projection its version, checkpoint, head, lag, rows and state.

State: ``rebuilding`` while a new generation is being built; ``failed`` when the projector
cannot apply batches (its last error is shown), when the serving generation has dead letters
(events whose rows are missing until an operator acts) or when a table is missing; ``new``
before the projector ran once; ``live`` otherwise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
import redis

from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topology
from cdb.projections import checkpoints, deadletters, shadow
from cdb.projections.checkpoints import Checkpoint
from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.engine import connect
from cdb.projections.source import head, read_range, stream_positions


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    checkpoint: str
    head: str
    lag_events: int


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    version: int
    generation: int
    state: str
    partitions: tuple[PartitionStatus, ...]
    lag_events: int
    lag_seconds: float
    rows: dict[str, int | None]
    dead_letters: int
    last_error: str | None
    building_generation: int | None
    parked_generation: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def projection_status(
    definition: Definition,
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    conn: psycopg.Connection,
) -> ProjectionStatus:
    keys = Keys(namespace)
    state = checkpoints.read_state(conn, definition.name)
    generation = state.active_generation if state else 1
    cps = checkpoints.load(conn, definition.name, generation)
    parts: list[PartitionStatus] = []
    oldest_unapplied_ms: int | None = None
    for pos in stream_positions(definition, topology):
        last, length = head(client, keys, pos)
        cp = cps.get(pos, Checkpoint())
        lag = max(length - cp.events_applied, 0)
        parts.append(PartitionStatus(pos[0], pos[1], cp.last_entry_id, last, lag))
        if lag:
            nxt = read_range(client, keys, pos, cp.last_entry_id, count=1)
            if nxt:
                ms = checkpoints.entry_key(nxt[0].entry_id)[0]
                oldest_unapplied_ms = min(ms, oldest_unapplied_ms or ms)
    lag_seconds = max(time.time() - oldest_unapplied_ms / 1000, 0.0) if oldest_unapplied_ms else 0.0
    rows: dict[str, int | None] = {}
    for table in definition.tables:
        if shadow.table_exists(conn, shadow.LIVE, table):
            found = conn.execute(
                f"SELECT count(*) FROM {quote_ident(shadow.LIVE)}.{quote_ident(table)}"  # noqa: S608
            ).fetchone()
            rows[table] = int(found[0]) if found else 0
        else:
            rows[table] = None
    dead = deadletters.count(conn, definition.name, generation)
    if state is None:
        label = "new"
    elif state.building_generation is not None:
        label = "rebuilding"
    elif dead or None in rows.values() or state.state == "failed":
        label = "failed"
    else:
        label = state.state
    return ProjectionStatus(
        name=definition.name,
        version=definition.version,
        generation=generation,
        state=label,
        partitions=tuple(parts),
        lag_events=sum(p.lag_events for p in parts),
        lag_seconds=round(lag_seconds, 3),
        rows=rows,
        dead_letters=dead,
        last_error=state.last_error if state else None,
        building_generation=state.building_generation if state else None,
        parked_generation=state.parked_generation if state else None,
    )


def status_all(
    definitions: list[Definition],
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    database_url: str,
) -> list[ProjectionStatus]:
    with connect(database_url) as conn:
        return [projection_status(d, client, topology, namespace, conn) for d in definitions]
