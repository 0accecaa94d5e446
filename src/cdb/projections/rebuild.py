"""Blue/green rebuild of one projection, and the scratch build behind `verify`.

1. Build: a new generation of the tables in a shadow schema, from offset 0 of every topic
   partition, in batches (one transaction each, checkpoint included), so memory stays flat and a
   crash or Ctrl-C resumes where the last batch committed. The live tables keep serving and the
   live projector keeps them up to date meanwhile. A reader thread fetches the next
   round (aligned in time across the partitions) while the current one is written; rows of keys
   new to the tables are folded and COPYed (``cdb.projections.fold``); secondary indexes and
   foreign keys are added after the load. With ``jobs`` > 1 the load up to the heads of the
   moment is split across processes by aggregate stream where the definition allows it
   (``cdb.projections.split``).
2. Catch up: keep building until the reader reaches the ends of the partitions.
3. Swap: in one transaction holding the projection's lock (the live projector waits), apply the
   last entries up to the head, move the live tables out and the new ones in, record the new
   active generation. Readers see either the old tables or the new ones, never a half-built one.
4. The old generation stays in ``cdb_old_<name>`` until ``--drop-old``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.sharedctypes import SynchronizedArray
from pathlib import Path

import psycopg
import redis

from cdb.errors import RebuildPartError, SplitUnsafeError
from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import Topology
from cdb.heap import frozen_heap
from cdb.projections import BUILD_BATCH, checkpoints, shadow, split
from cdb.projections.apply import BatchOutcome, Entry, apply_entries, optimistic
from cdb.projections.checkpoints import Checkpoint, StreamPos
from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.digest import Digest, projection_digest
from cdb.projections.engine import connect
from cdb.projections.source import head, read_pages, stream_positions

log = logging.getLogger(__name__)

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
    parts: int = 1  # processes the load was split across (--jobs)
    part_peak_rss_kb: int = 0  # the largest peak RSS of the processes started for it


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
        part: tuple[int, int] | None = None,
    ) -> None:
        self.definition = definition
        # In a split build (cdb.projections.split): which part of how many this builder applies,
        # the name its checkpoints go under, and where the placeholder rows go.
        self.part = part
        self.checkpoint_name = split.part_name(definition.name, *part) if part else definition.name
        self.diverted = split.diverted(definition, schema) if part else None
        self.client = client
        self.keys = Keys(namespace)
        self.positions = stream_positions(definition, topology)
        self.conn = conn
        self.schema = schema
        self.generation = generation
        self.batch_size = batch_size
        self.record = record_dead_letters
        # Whether the tables have foreign keys to check at the end of each batch (a rebuild
        # adds them after the load).
        self.deferred_checks = True
        self.dead = 0
        with conn.transaction():
            self.cps = checkpoints.load(conn, self.checkpoint_name, generation)

    def consumed(self) -> int:
        return sum(cp.events_applied for cp in self.cps.values())

    def total(self) -> int:
        return sum(head(self.client, self.keys, pos)[1] for pos in self.positions)

    def read_round(self, until: dict[StreamPos, str] | None = None) -> list[Entry]:
        """One batch from each partition (in causal topic order) after the checkpoints, all
        partitions in one round trip."""
        wanted: list[tuple[StreamPos, str, str]] = []
        for pos in self.positions:
            last = self.cps.get(pos, Checkpoint()).last_entry_id
            bound = "+" if until is None else until.get(pos, "0-0")
            if until is not None and checkpoints.entry_key(bound) <= checkpoints.entry_key(last):
                continue
            wanted.append((pos, last, bound))
        pages = read_pages(self.client, self.keys, wanted, count=self.batch_size, part=self.part)
        return [entry for page in pages for entry in page.entries]

    def apply(self, entries: list[Entry], *, isolate: bool = True) -> BatchOutcome:
        """Apply in the caller's transaction; see :meth:`advance` once it committed. A part of a
        split build is given its own entries only: its reads keep no others."""
        return apply_entries(
            self.conn,
            self.definition,
            self.schema,
            self.generation,
            entries,
            record_dead_letters=self.record,
            isolate=isolate,
            deferred_checks=self.deferred_checks,
            checkpoint_as=self.checkpoint_name,
            diverted=self.diverted,
        )

    def _batch(self, entries: list[Entry]) -> Callable[[bool], BatchOutcome]:
        return lambda isolate: self.apply(entries, isolate=isolate)

    def advance(self, outcome: BatchOutcome) -> None:
        self.cps.update(outcome.checkpoints)
        self.dead += len(outcome.dead)

    def build(
        self,
        progress: Callable[[Progress], None] | None,
        until: dict[StreamPos, str] | None = None,
    ) -> None:
        """Batches (one transaction each) until the partitions are read to their ends.

        A reader thread fetches the next round while this one is written (redis-py and psycopg
        release the GIL while they wait on their servers); at most one round waits for its
        turn, so memory stays flat. Decoding stays in this thread: measured, a second
        CPU-bound thread costs more in GIL hand-offs (each psycopg round trip waits for the GIL
        back) than it gains.
        """
        total = self.total()
        reader = _Reader(self, until)
        # Not waiting for the WAL flush at each commit: a build resumes from its last committed
        # checkpoint, so a commit lost to a server crash only means that batch is read and
        # applied again. (The swap, after this, commits durably.)
        self.conn.execute("SET synchronous_commit = off")
        with frozen_heap():
            reader.start()
            try:
                while True:
                    entries, last = reader.next_round()
                    if entries:
                        self.advance(optimistic(self.conn, self._batch(entries)))
                        if progress is not None:
                            done = self.consumed()
                            progress(Progress("build", done, max(total, done), self.dead))
                    if last:
                        return
            finally:
                reader.stop()
                # Best effort: a connection that failed is not used again anyway.
                with contextlib.suppress(psycopg.Error):
                    self.conn.execute("RESET synchronous_commit")

    def drain(self, until: dict[StreamPos, str] | None = None) -> None:
        """Apply everything up to the head (or ``until``) in the caller's transaction."""
        while entries := self.read_round(until):
            self.advance(self.apply(entries))


_Round = tuple[list[Entry], bool]  # entries, whether they are the last


class _Reader:
    """Reads the rounds of a build one ahead of the writer, in a thread.

    Rounds are aligned in time across the partitions: each partition is read a page at a time
    into a buffer, and a round takes from every buffer the entries up to the earliest "last
    entry" of the partitions that may have more (entry ids start with the append time). So an
    order's ORDER_PLACED and its fills, on two topics, mostly land in the same round and fold
    into one row (see ``cdb.projections.fold``), instead of the results topic (two entries per
    order) falling further and further behind the orders topic. Any order of application gives
    the same rows: the definitions' statements are order-independent.
    """

    def __init__(self, builder: _Builder, until: dict[StreamPos, str] | None) -> None:
        self._builder = builder
        self._until = until
        # Where reading has got to; starts at the checkpoints, then runs ahead of them.
        self._after = {
            pos: builder.cps.get(pos, Checkpoint()).last_entry_id for pos in builder.positions
        }
        self._buffers: dict[StreamPos, list[Entry]] = {pos: [] for pos in builder.positions}
        self._more = dict.fromkeys(builder.positions, True)  # may the partition have more?
        self._rounds: queue.Queue[_Round | BaseException] = queue.Queue(1)
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"cdb-rebuild-{builder.definition.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def next_round(self) -> _Round:
        item = self._rounds.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def _put(self, item: _Round | BaseException) -> bool:
        while not self._stopped.is_set():
            try:
                self._rounds.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        """Top up every partition's buffer to a page, all partitions in one round trip."""
        size = self._builder.batch_size
        wanted: list[tuple[StreamPos, str, str]] = []
        for pos, buffer in self._buffers.items():
            if not self._more[pos] or len(buffer) >= size:
                continue
            bound = "+" if self._until is None else self._until.get(pos, "0-0")
            after = self._after[pos]
            if bound != "+" and checkpoints.entry_key(bound) <= checkpoints.entry_key(after):
                self._more[pos] = False
                continue
            wanted.append((pos, after, bound))
        builder = self._builder
        pages = read_pages(builder.client, builder.keys, wanted, count=size, part=builder.part)
        for (pos, _, _), page in zip(wanted, pages, strict=True):
            self._more[pos] = page.read == size
            self._buffers[pos].extend(page.entries)
            if page.last_id is not None:
                self._after[pos] = page.last_id

    def _take(self) -> tuple[list[Entry], bool]:
        # A split build's part buffers its own entries only: where a partition has been read
        # to is where its buffer's time ends.
        ends = [checkpoints.entry_key(self._after[pos]) for pos in self._buffers if self._more[pos]]
        cut = min(ends) if ends else None
        entries: list[Entry] = []
        for pos, buffer in self._buffers.items():
            taken = len(buffer)
            if cut is not None:
                while taken and checkpoints.entry_key(buffer[taken - 1].entry_id) > cut:
                    taken -= 1
            entries.extend(buffer[:taken])
            self._buffers[pos] = buffer[taken:]
        last = not any(self._more.values()) and not any(self._buffers.values())
        return entries, last

    def _run(self) -> None:
        try:
            last = False
            while not last and not self._stopped.is_set():
                self._fill()
                entries, last = self._take()
                if not self._put((entries, last)):
                    return
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(exc)


def rebuild(
    definition: Definition,
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    database_url: str,
    *,
    batch_size: int = BUILD_BATCH,
    drop_old: bool = False,
    progress: Callable[[Progress], None] | None = None,
    jobs: int = 1,
) -> RebuildReport:
    """Build the projection's next generation, swap it in; resumes an interrupted rebuild.

    ``jobs`` > 1 splits the load across that many processes where the definition allows it
    (``cdb.projections.split``); an interrupted split build resumes split, in as many parts.
    """
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
                _start_generation(conn, definition, generation)
                checkpoints.update_state(
                    conn, name, building_generation=generation, state="rebuilding"
                )
            parts = split.parts_in_progress(conn, name, generation)
            loaded = shadow.has_foreign_keys(conn, build)  # an earlier run finished the load
        if parts is None and jobs > 1 and definition.splits_by_stream and not loaded:
            parts = jobs
        job = _Job(definition, client, topology, namespace, build, generation, batch_size)
        split_report = _SplitReport()
        if parts is not None:
            split_report = _build_split(job, database_url, conn, parts=parts, progress=progress)
        if split_report.unsafe is not None:
            # Rows already written may be wrong (an order's fills split between parts): start
            # the generation over, in one process.
            log.warning(
                "rebuild of %s: %s; starting over in one process", name, split_report.unsafe
            )
            with conn.transaction():
                checkpoints.lock(conn, name)
                shadow.drop_schema(conn, build)
                _start_generation(conn, definition, generation)
            parts, split_report = None, _SplitReport()
        builder = job.builder(conn)
        # The build tables get their foreign keys after the load (unless an earlier run got
        # that far): until then there is nothing to defer and check at the end of each batch.
        builder.deferred_checks = loaded
        builder.build(progress)
        with conn.transaction():
            shadow.create_indexes(conn, definition, build)
            shadow.create_foreign_keys(conn, definition, build)
        builder.deferred_checks = True
        previous = _swap(conn, builder, definition, progress)
        events = builder.consumed()
        if drop_old:
            drop_old_generation(conn, definition)
    return RebuildReport(
        projection=name,
        generation=generation,
        previous_generation=previous,
        events=events,
        dead_letters=builder.dead + split_report.dead_letters,
        seconds=time.monotonic() - started,
        dropped_old=drop_old,
        parts=parts or 1,
        part_peak_rss_kb=split_report.peak_rss_kb,
    )


def _start_generation(conn: psycopg.Connection, definition: Definition, generation: int) -> None:
    """Empty build tables and no checkpoints for ``generation`` (in the caller's transaction).

    Foreign keys come after the load, like the secondary indexes: rows always bring their
    parents (placeholder rows), so one check of the whole table at the end replaces a trigger
    per row written.
    """
    shadow.create_tables(conn, definition, shadow.build_schema(definition.name), foreign_keys=False)
    checkpoints.delete(conn, definition.name, generation)
    split.forget(conn, definition.name, generation)


@dataclass(frozen=True)
class _Job:
    """What every builder of one rebuild shares."""

    definition: Definition
    client: redis.Redis
    topology: Topology
    namespace: str
    schema: str
    generation: int
    batch_size: int

    def builder(self, conn: psycopg.Connection, part: tuple[int, int] | None = None) -> _Builder:
        builder = _Builder(
            self.definition,
            self.client,
            self.topology,
            self.namespace,
            conn=conn,
            schema=self.schema,
            generation=self.generation,
            batch_size=self.batch_size,
            part=part,
        )
        if part is not None:
            builder.deferred_checks = False  # a split is the load, before the foreign keys
        return builder


@dataclass(frozen=True)
class _SplitReport:
    dead_letters: int = 0
    peak_rss_kb: int = 0  # the largest of the started processes'
    unsafe: str | None = None  # why the history cannot be split (see SplitUnsafeError)


# Exit code of a part that met a SplitUnsafeError (any other failure exits with 1).
_UNSAFE_EXIT = 3


_PART_POLL_S = 0.5


def _build_split(
    job: _Job,
    database_url: str,
    conn: psycopg.Connection,
    *,
    parts: int,
    progress: Callable[[Progress], None] | None,
) -> _SplitReport:
    """Load the history up to the current heads in ``parts`` processes (this one is part 0),
    then merge their checkpoints into the generation's (see ``cdb.projections.split``)."""
    definition, schema, generation = job.definition, job.schema, job.generation
    with conn.transaction():
        split.prepare(conn, definition, schema, generation, parts)
    keys = Keys(job.namespace)
    until = {
        pos: head(job.client, keys, pos)[0] for pos in stream_positions(definition, job.topology)
    }
    # Forked, not spawned: a part needs the Redis client it was given (a fork reconnects it,
    # redis-py checks the pid) and starts without importing everything again. Where there is no
    # fork, this process runs the parts one after another: the same rows, one core.
    forking = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if forking else None)
    done = context.Array("q", parts, lock=False)  # events consumed per part
    dead = context.Array("q", parts, lock=False)
    peak = context.Array("q", parts, lock=False)
    others = [
        context.Process(
            target=_part,
            args=(job, database_url, (index, parts), until, (done, dead, peak)),
            name=f"cdb-rebuild-{definition.name}-{index + 1}of{parts}",
            daemon=True,
        )
        for index in range(1, parts if forking else 1)
    ]
    total = job.builder(conn, (0, parts)).total()

    def report(index: int | None = None, own: Progress | None = None) -> None:
        if index is not None and own is not None:
            done[index], dead[index] = own.done, own.dead_letters
        if progress is not None:
            consumed = sum(done)
            progress(Progress("build", consumed, max(total, consumed), sum(dead)))

    for process in others:
        process.start()
    try:
        try:
            for index in range(1 if forking else parts):
                job.builder(conn, (index, parts)).build(partial(report, index), until=until)
        except SplitUnsafeError as exc:
            return _SplitReport(unsafe=str(exc))
        for process in others:
            while process.is_alive():
                process.join(_PART_POLL_S)
                report()
        if any(p.exitcode == _UNSAFE_EXIT for p in others):
            return _SplitReport(unsafe="a part met an event writing a row of another stream")
        failed = [p for p in others if p.exitcode != 0]
        if failed:
            raise RebuildPartError(
                definition.name,
                [(p.name, p.exitcode if p.exitcode is not None else -1) for p in failed],
            )
    finally:
        for process in others:
            if process.is_alive():
                process.terminate()
                process.join()
    with conn.transaction():
        checkpoints.lock(conn, definition.name)
        split.merge(conn, definition, schema, generation, parts=parts, until=until)
    return _SplitReport(dead_letters=sum(dead), peak_rss_kb=max(peak[1:], default=0))


def _part(
    job: _Job,
    database_url: str,
    part: tuple[int, int],
    until: dict[StreamPos, str],
    counters: tuple[SynchronizedArray[int], SynchronizedArray[int], SynchronizedArray[int]],
) -> None:
    """One part of a split build, in a process of its own."""
    done, dead, peak = counters
    index = part[0]

    def report(own: Progress) -> None:
        done[index], dead[index] = own.done, own.dead_letters

    with connect(database_url) as conn:
        try:
            job.builder(conn, part).build(report, until=until)
        except SplitUnsafeError as exc:
            log.warning("%s", exc)
            sys.exit(_UNSAFE_EXIT)
    peak[index] = peak_rss_kb()


def peak_rss_kb() -> int:
    """This process's peak RSS (the kernel's high-water mark of its address space; 0 where
    there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


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
    batch_size: int = BUILD_BATCH,
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
