"""Blue/green rebuild of one projection, and the scratch build behind `verify`.

1. Build: a new generation of the tables in a shadow schema, from offset 0 of every topic
   partition, in batches (one transaction each, checkpoint included), so memory stays flat and a
   crash or Ctrl-C resumes where the last batch committed. The live tables keep serving and the
   live projector keeps them up to date meanwhile.
2. Catch up: keep building until a round reads less than a batch.
3. Swap: in one transaction holding the projection's lock (the live projector waits), apply the
   last entries up to the head, move the live tables out and the new ones in, record the new
   active generation. Readers see either the old tables or the new ones, never a half-built one.
4. The old generation stays in ``cdb_old_<name>`` until ``--drop-old``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import redis

from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topology
from cdb.projections import checkpoints, shadow
from cdb.projections.apply import BatchOutcome, Entry, apply_entries
from cdb.projections.checkpoints import Checkpoint, StreamPos
from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.digest import Digest, projection_digest
from cdb.projections.engine import connect
from cdb.projections.source import head, read_range, stream_positions

VERIFY_GENERATION = 0  # checkpoints of a verify scratch build; never an active generation


@dataclass(frozen=True)
class Progress:
    phase: str  # build | swap
    done: int  # entries consumed by the new generation so far
    total: int  # entries in its topics when last measured
    dead_letters: int


@dataclass(frozen=True)
class RebuildReport:
    projection: str
    generation: int
    previous_generation: int | None
    events: int
    dead_letters: int
    seconds: float
    dropped_old: bool


class _Builder:
    """Reads topic partitions after a generation's checkpoints and applies them in batches."""

    def __init__(
        self,
        definition: Definition,
        client: redis.Redis,
        topology: Topology,
        namespace: str,
        *,
        conn: psycopg.Connection,
        schema: str,
        generation: int,
        batch_size: int,
        record_dead_letters: bool = True,
    ) -> None:
        self.definition = definition
        self.client = client
        self.keys = Keys(namespace)
        self.positions = stream_positions(definition, topology)
        self.conn = conn
        self.schema = schema
        self.generation = generation
        self.batch_size = batch_size
        self.record = record_dead_letters
        self.dead = 0
        with conn.transaction():
            self.cps = checkpoints.load(conn, definition.name, generation)

    def consumed(self) -> int:
        return sum(cp.events_applied for cp in self.cps.values())

    def total(self) -> int:
        return sum(head(self.client, self.keys, pos)[1] for pos in self.positions)

    def read_round(self, until: dict[StreamPos, str] | None = None) -> list[Entry]:
        """One batch from each partition (in causal topic order) after the checkpoints."""
        entries: list[Entry] = []
        for pos in self.positions:
            last = self.cps.get(pos, Checkpoint()).last_entry_id
            bound = "+" if until is None else until.get(pos, "0-0")
            if until is not None and checkpoints.entry_key(bound) <= checkpoints.entry_key(last):
                continue
            entries.extend(
                read_range(self.client, self.keys, pos, last, count=self.batch_size, until=bound)
            )
        return entries

    def apply(self, entries: list[Entry]) -> BatchOutcome:
        """Apply in the caller's transaction; the checkpoints move with it."""
        outcome = apply_entries(
            self.conn,
            self.definition,
            self.schema,
            self.generation,
            entries,
            record_dead_letters=self.record,
        )
        self.cps.update(outcome.checkpoints)
        self.dead += len(outcome.dead)
        return outcome

    def build(
        self,
        progress: Callable[[Progress], None] | None,
        until: dict[StreamPos, str] | None = None,
    ) -> None:
        """Batches (one transaction each) until a round reads less than a full batch."""
        total = self.total()
        while True:
            entries = self.read_round(until)
            if entries:
                with self.conn.transaction():
                    self.apply(entries)
                if progress is not None:
                    done = self.consumed()
                    progress(Progress("build", done, max(total, done), self.dead))
            if len(entries) < self.batch_size:
                return

    def drain(self, until: dict[StreamPos, str] | None = None) -> None:
        """Apply everything up to the head (or ``until``) in the caller's transaction."""
        while entries := self.read_round(until):
            self.apply(entries)


def rebuild(
    definition: Definition,
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    database_url: str,
    *,
    batch_size: int = 1000,
    drop_old: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> RebuildReport:
    """Build the projection's next generation, swap it in; resumes an interrupted rebuild."""
    definition.check(topology)
    started = time.monotonic()
    name = definition.name
    build = shadow.build_schema(name)
    with connect(database_url) as conn:
        with conn.transaction():
            checkpoints.lock(conn, name)
            state = checkpoints.ensure_state(conn, name, definition.version)
            generation = state.building_generation
            if generation is None or not shadow.schema_exists(conn, build):
                generation = max(state.active_generation, state.parked_generation or 0) + 1
                shadow.create_tables(conn, definition, build)
                checkpoints.delete(conn, name, generation)
                checkpoints.update_state(
                    conn, name, building_generation=generation, state="rebuilding"
                )
        builder = _Builder(
            definition,
            client,
            topology,
            namespace,
            conn=conn,
            schema=build,
            generation=generation,
            batch_size=batch_size,
        )
        builder.build(progress)
        with conn.transaction():
            shadow.create_indexes(conn, definition, build)
        previous = _swap(conn, builder, definition, progress)
        events = builder.consumed()
        if drop_old:
            drop_old_generation(conn, definition)
    return RebuildReport(
        projection=name,
        generation=generation,
        previous_generation=previous,
        events=events,
        dead_letters=builder.dead,
        seconds=time.monotonic() - started,
        dropped_old=drop_old,
    )


def _swap(
    conn: psycopg.Connection,
    builder: _Builder,
    definition: Definition,
    progress: Callable[[Progress], None] | None,
) -> int | None:
    name = definition.name
    with conn.transaction():
        checkpoints.lock(conn, name)
        # Up to the heads as they are now: the live projector cannot commit while the lock is
        # held, so everything it applied is at or before them; later entries it applies to the
        # new generation after the swap. Bounded, so a busy producer cannot keep the swap open.
        builder.drain(
            until={pos: head(builder.client, builder.keys, pos)[0] for pos in builder.positions}
        )
        state = checkpoints.read_state(conn, name)
        assert state is not None
        if state.parked_generation is not None:
            shadow.drop_schema(conn, shadow.old_schema(name))
            checkpoints.delete(conn, name, state.parked_generation)
        conn.execute(f"CREATE SCHEMA {quote_ident(shadow.old_schema(name))}")
        moved_out = shadow.move_tables(conn, definition, shadow.LIVE, shadow.old_schema(name))
        shadow.move_tables(conn, definition, shadow.build_schema(name), shadow.LIVE)
        shadow.drop_schema(conn, shadow.build_schema(name))
        previous = state.active_generation if moved_out else None
        if previous is None:
            shadow.drop_schema(conn, shadow.old_schema(name))
            checkpoints.delete(conn, name, state.active_generation)
        checkpoints.update_state(
            conn,
            name,
            definition_version=definition.version,
            active_generation=builder.generation,
            building_generation=None,
            parked_generation=previous,
            state="live",
            last_error=None,
        )
    if progress is not None:
        done = builder.consumed()
        progress(Progress("swap", done, done, builder.dead))
    return previous


def drop_old_generation(conn: psycopg.Connection, definition: Definition) -> int | None:
    """Drop the parked previous generation (tables and checkpoints); returns its number."""
    with conn.transaction():
        checkpoints.lock(conn, definition.name)
        state = checkpoints.read_state(conn, definition.name)
        if state is None or state.parked_generation is None:
            shadow.drop_schema(conn, shadow.old_schema(definition.name))
            return None
        shadow.drop_schema(conn, shadow.old_schema(definition.name))
        checkpoints.delete(conn, definition.name, state.parked_generation)
        checkpoints.update_state(conn, definition.name, parked_generation=None)
        return state.parked_generation


@dataclass(frozen=True)
class VerifyReport:
    projection: str
    live: Digest
    rebuilt: Digest
    events: int

    @property
    def match(self) -> bool:
        return self.live.sha256 == self.rebuilt.sha256


def verify(
    definition: Definition,
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    database_url: str,
    *,
    batch_size: int = 1000,
    progress: Callable[[Progress], None] | None = None,
) -> VerifyReport:
    """Rebuild into a scratch schema up to the live checkpoint and compare digests."""
    definition.check(topology)
    name = definition.name
    scratch = shadow.verify_schema(name)
    with connect(database_url) as conn:
        with conn.transaction():
            state = checkpoints.ensure_state(conn, name, definition.version)
            shadow.create_tables(conn, definition, scratch)
            checkpoints.delete(conn, name, VERIFY_GENERATION)
            live_cps = checkpoints.load(conn, name, state.active_generation)
        try:
            builder = _Builder(
                definition,
                client,
                topology,
                namespace,
                conn=conn,
                schema=scratch,
                generation=VERIFY_GENERATION,
                batch_size=batch_size,
                record_dead_letters=False,
            )
            builder.build(progress, until={p: cp.last_entry_id for p, cp in live_cps.items()})
            with conn.transaction():
                # The live projector waits while both sides are read at the same position.
                checkpoints.lock(conn, name)
                current = checkpoints.read_state(conn, name)
                assert current is not None
                live_cps = checkpoints.load(conn, name, current.active_generation)
                builder.drain(until={p: cp.last_entry_id for p, cp in live_cps.items()})
                live = projection_digest(conn, definition, shadow.LIVE)
                rebuilt = projection_digest(conn, definition, scratch)
            return VerifyReport(name, live, rebuilt, builder.consumed())
        finally:
            with conn.transaction():
                shadow.drop_schema(conn, scratch)
                checkpoints.delete(conn, name, VERIFY_GENERATION)
