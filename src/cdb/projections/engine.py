"""The live projector: batches from the projection's consumer group -> one transaction -> ack.

Per batch: take the projection's advisory lock (a rebuild's swap takes it too), skip entries the
checkpoint covers, apply the rest with multi-row upserts, record dead letters, move the
checkpoint, commit, then XACK. A failure of PostgreSQL or Redis is retried with exponential
backoff; nothing is acked before its commit, so nothing is lost.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import redis

from cdb.errors import ProjectionBusyError
from cdb.eventstore.topology import LINGER_BELOW, Topology
from cdb.heap import frozen_heap
from cdb.projections import checkpoints
from cdb.projections.apply import (
    BatchOutcome,
    Entry,
    apply_entries,
    fits_pipeline,
    optimistic,
)
from cdb.projections.checkpoints import owner_key
from cdb.projections.db import libpq_url
from cdb.projections.definitions import Definition
from cdb.projections.source import GroupSource

log = logging.getLogger(__name__)

LIVE_SCHEMA = "public"
STANDBY_POLL_S = 0.5
# Failures of the servers themselves (not of one event): retry the batch after a backoff.
TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.1
    cap_s: float = 5.0

    def delay(self, attempt: int) -> float:
        # Full jitter: many projectors reconnecting after an outage do not stampede.
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** max(attempt - 1, 0)))


PREPARE_AFTER = 5
"""The live projector prepares a statement on the server once it has run it this many times."""


def connect(database_url: str, *, prepare: bool = False) -> psycopg.Connection:
    """A connection for projection work. Autocommit: every transaction is an explicit
    ``conn.transaction()`` block.

    ``prepare`` lets the live projector keep its recurring statements prepared on the server
    (a small batch's statements are mostly parsed and planned afresh otherwise). A blue/green
    swap moves the tables those statements name, and that is safe: PostgreSQL invalidates a
    prepared statement when a table it uses is altered (the swap's ``ALTER TABLE .. SET
    SCHEMA``) and analyses it again at its next execution, resolving the names anew. A test
    swaps under a live projector holding prepared statements.
    """
    return psycopg.connect(
        libpq_url(database_url),
        autocommit=True,
        prepare_threshold=PREPARE_AFTER if prepare else None,
        connect_timeout=5,
    )


class Projector:
    """Runs one projection live."""

    def __init__(
        self,
        definition: Definition,
        client: redis.Redis,
        topology: Topology,
        namespace: str,
        database_url: str,
        *,
        batch_size: int = 1000,
        block_ms: int = 500,
        consumer: str = "projector-1",
        backoff: Backoff | None = None,
        on_batch: Callable[[BatchOutcome], None] | None = None,
    ) -> None:
        definition.check(topology)
        self.definition = definition
        self._database_url = database_url
        self._source = GroupSource(
            client,
            definition,
            topology,
            namespace,
            consumer=consumer,
            batch_size=batch_size,
            block_ms=block_ms,
        )
        # The longest linger of the projection's groups (see GroupPolicy.linger_ms): a batch's
        # transaction costs about the same whether it holds one event or ten.
        self._linger_s = (
            max(topology.topic(t).group(definition.group).linger_ms for t in definition.topics)
            / 1000
        )
        self._backoff = backoff or Backoff()
        self._conn: psycopg.Connection | None = None
        self._on_batch = on_batch
        self._groups_ready = False
        self._state_conn: psycopg.Connection | None = None  # has seen its state row committed
        self.failures = 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_once(self, *, block: bool = False) -> BatchOutcome:
        """Read one batch and apply it; an empty outcome means there was nothing to read.

        Raises :class:`ProjectionBusyError` while another projector owns the projection.
        """
        # Own the projection before reading: entries read by a second writer would be skipped
        # by the owner's checkpoint (it is "the last entry applied" per partition).
        self._connection()
        if not self._groups_ready:
            self._source.ensure_groups()
            self._groups_ready = True
        with frozen_heap():
            entries = self._source.read(block=block)
            if not entries:
                return BatchOutcome()
            outcome = self._commit(entries)
            self._source.ack(entries)
        if self._on_batch is not None:
            self._on_batch(outcome)
        return outcome

    def run(self, stop: threading.Event, *, idle_exit: bool = False) -> None:
        """Batches until ``stop`` is set (or, with ``idle_exit``, until nothing is left)."""
        attempt = 0
        while not stop.is_set():
            try:
                outcome = self.run_once(block=not idle_exit)
                attempt = 0
                read = outcome.consumed + outcome.skipped
                if idle_exit:
                    if read == 0:
                        return
                elif self._linger_s and 0 < read < LINGER_BELOW:
                    stop.wait(self._linger_s)  # a trickle: let the next few events gather
            except ProjectionBusyError:
                # A standby: take over soon after the owner's session ends.
                stop.wait(STANDBY_POLL_S)
            except TRANSIENT as exc:
                attempt += 1
                self.failures += 1
                delay = self._backoff.delay(attempt)
                log.warning(
                    "projection %s: %s; retrying in %.2fs (attempt %d)",
                    self.definition.name,
                    exc,
                    delay,
                    attempt,
                )
                self.close()
                self._source.recover()
                stop.wait(delay)
            except Exception as exc:
                # Not the servers and not one event (those are dead-lettered): e.g. a table
                # dropped under the projector. Say so in the status and keep trying slowly.
                attempt += 1
                self.failures += 1
                log.exception("projection %s failed", self.definition.name)
                self.close()
                self._source.recover()
                self._mark_failed(f"{type(exc).__name__}: {exc}")
                stop.wait(max(self._backoff.delay(attempt), self._backoff.cap_s))

    def _mark_failed(self, error: str) -> None:
        try:
            with connect(self._database_url) as conn, conn.transaction():
                checkpoints.ensure_state(conn, self.definition.name, self.definition.version)
                checkpoints.update_state(
                    conn, self.definition.name, state="failed", last_error=error[:2000]
                )
        except psycopg.Error:
            log.warning("projection %s: could not record its failure", self.definition.name)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = connect(self._database_url, prepare=True)
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (owner_key(self.definition.name),)
            ).fetchone()
            if not (row and row[0]):
                conn.close()
                raise ProjectionBusyError(self.definition.name)
            self._conn = conn
        return self._conn

    def _commit(self, entries: list[Entry]) -> BatchOutcome:
        conn = self._connection()

        def batch(isolate: bool) -> BatchOutcome:
            checkpoints.lock(conn, self.definition.name)
            # The row exists after this connection's first batch: reading it alone is one round
            # trip less per batch than inserting it again (which stays the fallback).
            state = (
                checkpoints.read_state(conn, self.definition.name)
                if self._state_conn is conn
                else None
            )
            if state is None:
                state = checkpoints.ensure_state(
                    conn, self.definition.name, self.definition.version
                )
            outcome = apply_entries(
                conn,
                self.definition,
                LIVE_SCHEMA,
                state.active_generation,
                entries,
                isolate=isolate,
            )
            if outcome.dead:
                last = outcome.dead[-1]
                checkpoints.update_state(
                    conn,
                    self.definition.name,
                    last_error=f"{last.topic}/{last.entry_id}: {last.error}"[:2000],
                )
            if state.state == "failed":
                checkpoints.update_state(conn, self.definition.name, state="live")
            return outcome

        try:
            outcome = optimistic(conn, batch, pipelined=fits_pipeline(entries))
            self._state_conn = conn
            return outcome
        except BaseException:
            # Whatever happened, the entries stay pending and are read again first.
            self._source.recover()
            raise


def wait_caught_up(projector: Projector, *, timeout_s: float = 30.0) -> None:
    """Run batches until a read returns nothing (helper for tests and the demo)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if projector.run_once().consumed == 0:
            return
    raise TimeoutError(f"projection {projector.definition.name} did not catch up in {timeout_s}s")
