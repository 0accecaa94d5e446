"""One batch of topic entries -> rows, checkpoint and dead letters, inside the caller's transaction.

Shared by the live projector, the rebuild and verify: the only differences between them are the
schema written to, the generation whose checkpoint moves, and where the entries come from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import NamedTuple, TypeVar

import psycopg

from cdb.errors import CdbError, ContractError
from cdb.eventstore.codec import RawFields
from cdb.projections import checkpoints
from cdb.projections.checkpoints import Checkpoint, StreamPos
from cdb.projections.deadletters import DeadLetter, record
from cdb.projections.decode import decode_entry
from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.fold import FEW_ROWS, fold_new_keys, row_values
from cdb.projections.mapping import (
    EventEnvelope,
    OrderFill,
    batch_rows,
    orders_of,
)

# Errors that belong to one event (bad data, a violated constraint) rather than to the batch or
# the server: the event is dead-lettered and the batch goes on without it. Of cdb's own errors
# only a ContractError is the event's: a SplitUnsafeError, say, is the rebuild's.
EVENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    ContractError,
    ArithmeticError,
)


class Entry(NamedTuple):
    # A named tuple: built once per entry read, where a frozen dataclass's __init__ costs
    # several times as much.
    topic: str
    partition: int
    entry_id: str
    fields: RawFields


def decode_any(fields: RawFields) -> EventEnvelope | CdbError:
    """The event of an entry's fields, or the error that dead-letters it."""
    try:
        event: EventEnvelope = decode_entry(fields)
    except CdbError as exc:
        return exc
    return event


def decode_for(definition: Definition, entry: Entry) -> EventEnvelope | CdbError:
    """The entry's event for this projection, or the error that dead-letters it."""
    event = decode_any(entry.fields)
    if isinstance(event, CdbError) or event.event_type in definition.event_types:
        return event
    return ContractError(
        definition.name,
        [("event_type", event.event_type.value, "not consumed by this projection")],
    )


@dataclass
class BatchOutcome:
    applied: int = 0
    skipped: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    checkpoints: dict[StreamPos, Checkpoint] = field(default_factory=dict)

    @property
    def consumed(self) -> int:
        return self.applied + len(self.dead)


def apply_entries(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    generation: int,
    entries: Sequence[Entry],
    *,
    record_dead_letters: bool = True,
    fold: bool = True,
    isolate: bool = True,
    deferred_checks: bool = True,
    checkpoint_as: str | None = None,
    diverted: Mapping[str, str] | None = None,
) -> BatchOutcome:
    """Apply the entries not yet covered by the generation's checkpoint; move the checkpoint.

    The caller owns the transaction (and the projection's advisory lock where it matters).

    With ``isolate`` (the default), the batch runs in a savepoint and an event that fails
    (:data:`EVENT_ERRORS`) is dead-lettered. Without it there are no savepoints (fewer round
    trips): such a failure propagates with the transaction aborted, and the caller rolls back
    and applies the batch again with ``isolate``, see :func:`optimistic`.
    ``deferred_checks=False`` when the tables have no foreign keys to defer.
    ``checkpoint_as`` keeps the checkpoint under another name (a part of a split rebuild, see
    ``cdb.projections.split``); ``diverted`` COPYs the rows of those ops into the tables named
    instead of applying them.
    """
    outcome = BatchOutcome()
    checkpoint_name = checkpoint_as or definition.name
    current = checkpoints.load(conn, checkpoint_name, generation)
    entry_key = checkpoints.entry_key
    covered = {pos: entry_key(cp.last_entry_id) for pos, cp in current.items()}
    order = {topic: i for i, topic in enumerate(definition.topics)}
    keyed: list[tuple[tuple[int, int, tuple[int, int]], Entry]] = []
    for entry in entries:
        key = entry_key(entry.entry_id)
        if key <= covered.get((entry.topic, entry.partition), (0, 0)):
            outcome.skipped += 1
        else:
            keyed.append(((order[entry.topic], entry.partition, key), entry))
    if not keyed:
        return outcome
    keyed.sort(key=itemgetter(0))
    fresh = [entry for _, entry in keyed]

    events: list[tuple[Entry, EventEnvelope]] = []
    for entry in fresh:
        result = decode_for(definition, entry)
        if isinstance(result, CdbError):
            outcome.dead.append(_letter(entry, None, result))
        else:
            events.append((entry, result))

    def write(batch: Sequence[EventEnvelope], *, isolate: bool = True) -> None:
        apply_events(
            conn,
            definition,
            schema,
            batch,
            fold=fold,
            isolate=isolate,
            deferred_checks=deferred_checks,
            diverted=diverted,
        )

    if isolate:
        _apply_isolated(conn, events, outcome, write)
    else:
        write([event for _, event in events], isolate=False)
        outcome.applied = len(events)

    if record_dead_letters:
        record(conn, definition.name, generation, outcome.dead)
    outcome.checkpoints = _advanced(current, fresh, events)
    checkpoints.save(conn, checkpoint_name, generation, outcome.checkpoints)
    return outcome


def _apply_isolated(
    conn: psycopg.Connection,
    events: Sequence[tuple[Entry, EventEnvelope]],
    outcome: BatchOutcome,
    write: Callable[[Sequence[EventEnvelope]], None],
) -> None:
    """The events in a savepoint; if one fails, a savepoint per event, in order (so later
    events see earlier ones), and the failing ones become dead letters."""
    try:
        with conn.transaction():
            write([event for _, event in events])
        outcome.applied = len(events)
    except EVENT_ERRORS:
        for entry, event in events:
            try:
                with conn.transaction():
                    write([event])
                outcome.applied += 1
            except EVENT_ERRORS as exc:
                outcome.dead.append(_letter(entry, event, exc))


def fits_pipeline(entries: Sequence[Entry]) -> bool:
    """Whether a batch of these entries is written without COPY, which a pipeline does not
    allow (see :func:`optimistic`): an op gets at most one row per event, and up to
    ``FEW_ROWS`` rows go to their statement as a VALUES list."""
    return len(entries) <= FEW_ROWS


T = TypeVar("T")


def optimistic(
    conn: psycopg.Connection, batch: Callable[[bool], T], *, pipelined: bool = False
) -> T:
    """Run ``batch(isolate)`` in a transaction, first without savepoints; if an event fails,
    roll that back and run it again with them (which dead-letters the culprits).

    A batch commits far more often than it holds a bad event: the savepoints (two round trips
    each, plus one around every conflict-checked COPY) are paid only when needed.

    ``pipelined`` runs that first attempt in pipeline mode: statements whose results it does
    not read (the writes, the commit) go out without waiting for one another. Only for a batch
    small enough to write without COPY, which a pipeline does not allow.
    """
    try:
        with conn.pipeline() if pipelined else nullcontext(), conn.transaction():
            return batch(False)
    except EVENT_ERRORS:
        pass
    with conn.transaction():
        return batch(True)


def _advanced(
    current: Mapping[StreamPos, Checkpoint],
    fresh: Sequence[Entry],
    events: Sequence[tuple[Entry, EventEnvelope]],
) -> dict[StreamPos, Checkpoint]:
    """The checkpoints after ``fresh`` (sorted by entry id per partition) were consumed."""
    counts: dict[StreamPos, int] = {}
    last_id: dict[StreamPos, str] = {}
    for entry in fresh:
        pos = (entry.topic, entry.partition)
        counts[pos] = counts.get(pos, 0) + 1
        last_id[pos] = entry.entry_id
    # The time of each partition's last decoded event: from the end, until every partition
    # that has one was seen (a batch spans a handful of partitions, and holds thousands).
    last_at: dict[StreamPos, datetime] = {}
    for entry, event in reversed(events):
        pos = (entry.topic, entry.partition)
        if pos not in last_at:
            last_at[pos] = event.timestamp
            if len(last_at) == len(counts):
                break
    advanced: dict[StreamPos, Checkpoint] = {}
    for pos, count in counts.items():
        before = current.get(pos, Checkpoint())
        advanced[pos] = Checkpoint(
            last_entry_id=last_id[pos],
            events_applied=before.events_applied + count,
            last_event_at=last_at.get(pos, before.last_event_at),
        )
    return advanced


def apply_events(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    events: Sequence[EventEnvelope],
    *,
    fold: bool = True,
    isolate: bool = True,
    deferred_checks: bool = True,
    diverted: Mapping[str, str] | None = None,
) -> None:
    if not events:
        return
    # With folding, the same lookup tells which orders of the batch the table holds already.
    fills, looked_up = _prior_fills(conn, definition, schema, events, placed=fold)
    # A split build's part must only write rows of its own streams (placeholders aside).
    rows = batch_rows(events, fills, own_keys_only=diverted is not None)
    for op, target in (diverted or {}).items():
        if op_rows := rows.pop(op, None):
            statement = definition.statement(op)
            values = row_values(statement.columns)
            with conn.cursor().copy(f"COPY {target} FROM STDIN") as copy:
                copy.set_types(list(statement.types))
                for row in op_rows:
                    copy.write_row(values(row))
    # Without ``isolate`` the foreign keys (all initially deferred) are left to the commit: a
    # violation fails it, and ``optimistic`` applies the batch again isolated, which checks
    # them here and narrows the failure to an event. Two statements fewer per batch.
    deferred_checks = deferred_checks and isolate
    if deferred_checks:
        conn.execute("SET CONSTRAINTS ALL DEFERRED")
    if fold:
        # Keys new to the tables: one COPYed row each; the statements get the other rows.
        fold_new_keys(
            conn,
            definition,
            schema,
            rows,
            known={"orders": (looked_up, set(fills))},
            isolate=isolate,
        )
    for statement in definition.statements:
        op_rows = rows.get(statement.op)
        if not op_rows:
            continue
        values = row_values(statement.columns)
        if len(op_rows) <= FEW_ROWS:
            # A few rows (keys already in the tables, mostly): one statement reading them from
            # a VALUES list named like the temporary table, one round trip instead of four.
            conn.execute(
                statement.render_with_values(schema, len(op_rows)),
                [value for row in op_rows for value in values(row)],
            )
            continue
        # COPY the rows into a temporary table, then one set-based upsert reads them from it.
        # (Emptied first: an earlier batch or event of this transaction left rows in it.)
        conn.execute(
            f"{statement.create_rows_table()}; DELETE FROM {statement.rows_table}"  # noqa: S608
        )
        with conn.cursor().copy(f"COPY {statement.rows_table} FROM STDIN") as copy:
            copy.set_types(list(statement.types))
            for row in op_rows:
                copy.write_row(values(row))
        conn.execute(statement.render(schema))
    # Check the deferred foreign keys now, inside the savepoint, so a violation belongs to this
    # batch (and can be narrowed to an event) rather than failing the commit.
    if deferred_checks:
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _prior_fills(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    events: Sequence[EventEnvelope],
    *,
    placed: bool,
) -> tuple[Mapping[str, OrderFill], set[str]]:
    """What the reported orders (and, with ``placed``, the placed ones) have filled so far,
    for those the table holds; and the ids looked up."""
    if "orders" not in definition.tables:
        return {}, set()
    ids = orders_of(events, placed=placed)
    if not ids:
        return {}, ids
    rows = conn.execute(
        f"SELECT order_id, filled_size, fees FROM {quote_ident(schema)}.orders "  # noqa: S608
        "WHERE order_id = ANY(%s)",
        (sorted(ids),),
    ).fetchall()
    return {order_id: OrderFill(filled, fees) for order_id, filled, fees in rows}, ids


def _letter(entry: Entry, event: EventEnvelope | None, exc: BaseException) -> DeadLetter:
    fields = {_text(k): _text(v) for k, v in entry.fields.items()}
    return DeadLetter(
        topic=entry.topic,
        partition=entry.partition,
        entry_id=entry.entry_id,
        event_id=str(event.event_id) if event else fields.get("id"),
        event_type=event.event_type.value if event else fields.get("t"),
        error=f"{type(exc).__name__}: {exc}".strip()[:4000],
        fields=fields,
    )


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
