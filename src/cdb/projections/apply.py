"""One batch of topic entries -> rows, checkpoint and dead letters, inside the caller's transaction.

Shared by the live projector, the rebuild and verify: the only differences between them are the
schema written to, the generation whose checkpoint moves, and where the entries come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from cdb.errors import CdbError, ContractError
from cdb.eventstore.codec import RawFields
from cdb.projections import checkpoints
from cdb.projections.checkpoints import Checkpoint, StreamPos
from cdb.projections.deadletters import DeadLetter, record
from cdb.projections.decode import decode_entry
from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.mapping import EventEnvelope, OrderFill, batch_rows, orders_reported

# Errors that belong to one event (bad data, a violated constraint) rather than to the batch or
# the server: the event is dead-lettered and the batch goes on without it.
EVENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    CdbError,
    ArithmeticError,
)


@dataclass(frozen=True)
class Entry:
    topic: str
    partition: int
    entry_id: str
    fields: RawFields


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
) -> BatchOutcome:
    """Apply the entries not yet covered by the generation's checkpoint; move the checkpoint.

    The caller owns the transaction (and the projection's advisory lock where it matters).
    """
    outcome = BatchOutcome()
    current = checkpoints.load(conn, definition.name, generation)
    fresh: list[Entry] = []
    for entry in entries:
        if current.get((entry.topic, entry.partition), Checkpoint()).covers(entry.entry_id):
            outcome.skipped += 1
        else:
            fresh.append(entry)
    if not fresh:
        return outcome
    order = {topic: i for i, topic in enumerate(definition.topics)}
    fresh.sort(key=lambda e: (order[e.topic], e.partition, checkpoints.entry_key(e.entry_id)))

    decoded: list[tuple[Entry, EventEnvelope]] = []
    for entry in fresh:
        try:
            event: EventEnvelope = decode_entry(entry.fields)
            if event.event_type not in definition.event_types:
                raise ContractError(
                    definition.name,
                    [("event_type", event.event_type.value, "not consumed by this projection")],
                )
            decoded.append((entry, event))
        except CdbError as exc:
            outcome.dead.append(_letter(entry, None, exc))

    try:
        with conn.transaction():
            apply_events(conn, definition, schema, [event for _, event in decoded])
        outcome.applied = len(decoded)
    except EVENT_ERRORS:
        # Find the culprits: one savepoint per event, in order, so later events see earlier ones.
        for entry, event in decoded:
            try:
                with conn.transaction():
                    apply_events(conn, definition, schema, [event])
                outcome.applied += 1
            except EVENT_ERRORS as exc:
                outcome.dead.append(_letter(entry, event, exc))

    if record_dead_letters:
        record(conn, definition.name, generation, outcome.dead)
    last_at = {(e.topic, e.partition): ev.timestamp for e, ev in decoded}
    for entry in fresh:
        pos = (entry.topic, entry.partition)
        before = outcome.checkpoints.get(pos) or current.get(pos, Checkpoint())
        outcome.checkpoints[pos] = Checkpoint(
            last_entry_id=entry.entry_id,
            events_applied=before.events_applied + 1,
            last_event_at=last_at.get(pos, before.last_event_at),
        )
    checkpoints.save(conn, definition.name, generation, outcome.checkpoints)
    return outcome


def apply_events(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    events: Sequence[EventEnvelope],
) -> None:
    if not events:
        return
    fills = _prior_fills(conn, definition, schema, events)
    rows = batch_rows(events, fills)
    conn.execute("SET CONSTRAINTS ALL DEFERRED")
    for statement in definition.statements:
        op_rows = rows.get(statement.op)
        if not op_rows:
            continue
        # COPY the rows into a temporary table, then one set-based upsert reads them from it.
        conn.execute(statement.create_rows_table())
        conn.execute(f"DELETE FROM {statement.rows_table}")  # noqa: S608
        columns = statement.columns
        with conn.cursor().copy(f"COPY {statement.rows_table} FROM STDIN") as copy:
            copy.set_types(list(statement.types))
            for row in op_rows:
                copy.write_row([row[column] for column in columns])
        conn.execute(statement.render(schema))
    # Check the deferred foreign keys now, inside the savepoint, so a violation belongs to this
    # batch (and can be narrowed to an event) rather than failing the commit.
    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _prior_fills(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    events: Sequence[EventEnvelope],
) -> Mapping[str, OrderFill]:
    if "orders" not in definition.tables:
        return {}
    ids = orders_reported(events)
    if not ids:
        return {}
    rows = conn.execute(
        f"SELECT order_id, filled_size, fees FROM {quote_ident(schema)}.orders "  # noqa: S608
        "WHERE order_id = ANY(%s)",
        (sorted(ids),),
    ).fetchall()
    return {order_id: OrderFill(filled, fees) for order_id, filled, fees in rows}


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
