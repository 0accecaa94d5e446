"""Rebuild a projection from a point of its history (``cdb replay projections --from``).

After a projection bug that damaged rows from some point X on is fixed, the history from X is
applied again without folding everything before X, while the live tables keep serving:

1. The cut. X is either the millisecond of a stream entry id (entry ids are append times on the
   one Redis clock, so the same millisecond is the same point on every topic: on each partition
   the projection reads, the cut falls before its first entry at or after that millisecond), or
   an event TIME (on each partition, before the first entry whose event timestamp is at or after
   it). Everything from the cut on (the suffix) is re-applied; a few entries of X's own
   millisecond before X are re-applied too, which is harmless (see 3).
2. Prepare, in one REPEATABLE READ transaction (the live projector is not blocked): a new
   generation in the shadow schema is seeded with a copy of the live rows; the heads are read
   after the snapshot, so the copy holds nothing past them. The suffix up to those heads is
   scanned and every row it writes is rewound: deleted, then rebuilt from the events of the
   same aggregate that lie before the cut, read from the aggregate's own stream (an order's
   placement and earlier fills, a position's earlier events; rows keyed by the event id --
   trades, alerts, snapshots -- need nothing). The generation's checkpoints are set to the
   last entry before the cut on every partition.
3. The rebuild machinery (``cdb.projections.rebuild``) resumes that generation: it applies the
   suffix and whatever arrived since, in batches (resumable), adds indexes and foreign keys,
   and swaps it in atomically.

Why this ends in the rows of a full fold: the definitions' statements are order-independent
and each row depends only on the events that write it (its aggregate's events, or the one event
it is keyed by; a trade also on its order's prior fill, which the order's rewind restores).
Rows the suffix does not write keep the live values, which is the premise of ``--from``:
the history before X was applied right. Rows it writes get exactly their aggregate's events
before the cut, then the suffix. Re-applying an event over a row that already contains it
changes nothing (sequence-number guards, ``ON CONFLICT DO NOTHING`` on event ids), which covers
entries the live projector applied past the heads. A projection with an op whose rows cannot be
rewound this way is refused, naming the op (``refusal``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis

from cdb.errors import CdbError, ContractError
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology
from cdb.projections import BUILD_BATCH, checkpoints, shadow
from cdb.projections.apply import EVENT_ERRORS, apply_events, decode_for
from cdb.projections.checkpoints import Checkpoint, StreamPos
from cdb.projections.decode import decode_entry
from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.engine import connect
from cdb.projections.mapping import OP_KEYS, OP_ROLES, EventEnvelope, batch_rows
from cdb.projections.rebuild import Progress, rebuild
from cdb.projections.source import head, read_ranges, stream_positions

_TABLE = re.compile(r"INSERT\s+INTO\s+\{schema\}\.([a-z_][a-z0-9_]*)", re.IGNORECASE)
_PAGE = 1000
_AGGREGATE_CHUNK = 500
_REFOLD_CHUNK = 1000

From = int | datetime
"""Where to rebuild from: the millisecond of an entry id, or an event time (aware, UTC)."""


def table_of(definition: Definition, op: str) -> str | None:
    match = _TABLE.search(definition.statement(op).sql)
    return match.group(1) if match and match.group(1) in definition.tables else None


def refusal(definition: Definition) -> str | None:
    """Why ``--from`` cannot rebuild this projection, or None."""
    for statement in definition.statements:
        if statement.op not in OP_ROLES:
            return (
                f"op '{statement.op}' has no rewind rule (cdb.projections.mapping.OP_ROLES), so "
                "its rows cannot be restored to their state before --from"
            )
        if table_of(definition, statement.op) is None:
            return f"op '{statement.op}' writes no table of the projection that can be told"
    return None


def _refuse(definition: Definition, reason: str) -> ContractError:
    return ContractError(
        "replay",
        [
            (
                "projection",
                definition.name,
                f"cannot be rebuilt from an offset: {reason}; rebuild it whole instead "
                f"(cdb projections rebuild {definition.name}, or replay projections --from 0)",
            )
        ],
    )


@dataclass(frozen=True)
class RewindReport:
    projection: str
    generation: int
    previous_generation: int | None
    resumed: bool  # an interrupted run was finished; the cut and counts below are unknown
    cut: dict[str, str]  # "topic/partition" -> last entry id before the cut ("0-0": none)
    events_before_cut: int | None
    replayed: int | None  # entries applied from the cut on, up to the head at the swap
    rewound_rows: int | None
    refolded_events: int | None
    dead_letters: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "generation": self.generation,
            "previous_generation": self.previous_generation,
            "resumed": self.resumed,
            "cut": self.cut,
            "events_before_cut": self.events_before_cut,
            "replayed": self.replayed,
            "rewound_rows": self.rewound_rows,
            "refolded_events": self.refolded_events,
            "dead_letters": self.dead_letters,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Plan:
    generation: int
    cut: dict[StreamPos, str]
    before_cut: int = 0
    rewound_rows: int = 0
    refolded: int = 0
    suffix_ids: set[str] = field(default_factory=set)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def cut_points(
    client: redis.Redis,
    keys: Keys,
    positions: Sequence[StreamPos],
    start: From,
    *,
    projection: str,
) -> dict[StreamPos, str]:
    """Per partition, the last entry id before the cut (``0-0`` when the cut is at the start).

    A TIME after every event of the projection's partitions is refused with their range.
    """
    if isinstance(start, int):
        cut: dict[StreamPos, str] = {}
        for pos in positions:
            rows: Any = client.xrevrange(keys.topic(*pos), f"({start}-0", "-", count=1)
            cut[pos] = _text(rows[0][0]) if rows else "0-0"
        return cut
    cut = {}
    found = False
    count, low, high = 0, None, None
    for pos in positions:
        after, previous, hit = "0-0", "0-0", False
        while not hit:
            page = read_ranges(client, keys, [(pos, after, "+")], count=_PAGE)
            for entry in page:
                try:
                    stamp = decode_entry(entry.fields).timestamp
                except CdbError:
                    previous = entry.entry_id
                    continue
                count += 1
                low = stamp if low is None or stamp < low else low
                high = stamp if high is None or stamp > high else high
                if stamp >= start:
                    hit = True
                    break
                previous = entry.entry_id
            if len(page) < _PAGE:
                break
            after = page[-1].entry_id
        found = found or hit
        cut[pos] = previous
    if not found:
        topics = ", ".join(sorted({topic for topic, _ in positions}))
        span = (
            "has no events"
            if low is None or high is None
            else f"has events up to {_iso(high)} (from {_iso(low)})"
        )
        raise ContractError(
            "replay",
            [
                (
                    "--from",
                    _iso(start),
                    f"is after the last event of projection {projection}: its topics "
                    f"({topics}) {span}",
                )
            ],
        )
    return cut


def _touched(tables: dict[str, str], event: EventEnvelope) -> list[tuple[str, Any, str | None]]:
    """(table, key, aggregate stream or None) of every row the event writes, stubs aside."""
    try:
        rows = batch_rows([event])
    except EVENT_ERRORS:
        return []  # dead-lettered by the build as by a full fold: it writes no row
    out: list[tuple[str, Any, str | None]] = []
    for op, op_rows in rows.items():
        role = OP_ROLES[op]
        if role == "stub":
            continue
        for row in op_rows:
            out.append(
                (tables[op], row[OP_KEYS[op]], event.stream_id if role == "aggregate" else None)
            )
    return out


def _scan_suffix(
    *,
    client: redis.Redis,
    keys: Keys,
    definition: Definition,
    cut: dict[StreamPos, str],
    heads: dict[StreamPos, str],
    plan: _Plan,
) -> tuple[dict[str, set[Any]], set[str], dict[StreamPos, int]]:
    tables = {s.op: t for s in definition.statements if (t := table_of(definition, s.op))}
    rows: dict[str, set[Any]] = {}
    aggregates: set[str] = set()
    counts: dict[StreamPos, int] = {}
    for pos, start in cut.items():
        bound, after = heads[pos], start
        counts[pos] = 0
        while checkpoints.entry_key(bound) > checkpoints.entry_key(after):
            page = read_ranges(client, keys, [(pos, after, bound)], count=_PAGE)
            for entry in page:
                counts[pos] += 1
                event = decode_for(definition, entry)
                if isinstance(event, CdbError):
                    continue
                plan.suffix_ids.add(str(event.event_id))
                for table, key, aggregate in _touched(tables, event):
                    rows.setdefault(table, set()).add(key)
                    if aggregate is not None:
                        aggregates.add(aggregate)
            if len(page) < _PAGE:
                break
            after = page[-1].entry_id
    return rows, aggregates, counts


def _aggregate_events(
    client: redis.Redis, store: EventStore, streams: Iterable[str]
) -> list[EventEnvelope]:
    """Every event of the given aggregate streams, pipelined."""
    events: list[EventEnvelope] = []
    ordered = sorted(streams)
    for i in range(0, len(ordered), _AGGREGATE_CHUNK):
        chunk = ordered[i : i + _AGGREGATE_CHUNK]
        pipe = client.pipeline(transaction=False)
        for stream_id in chunk:
            pipe.xrange(store.aggregate_key(stream_id), "-", "+")
        replies: list[Any] = pipe.execute()
        for reply in replies:
            for _, fields in reply or []:
                try:
                    events.append(decode_entry(fields))
                except CdbError:
                    continue  # a malformed event writes no row in a full fold either
    return events


def _later_ids(client: redis.Redis, keys: Keys, heads: dict[StreamPos, str]) -> set[str]:
    """Event ids of the entries appended after ``heads`` (the build applies them)."""
    ids: set[str] = set()
    for pos, start in heads.items():
        after = start
        while True:
            page = read_ranges(client, keys, [(pos, after, "+")], count=_PAGE)
            for entry in page:
                fields: dict[Any, Any] = dict(entry.fields)
                ids.add(_text(fields.get(b"id", fields.get("id", ""))))
            if len(page) < _PAGE:
                break
            after = page[-1].entry_id
    return ids


def _refold(
    conn: psycopg.Connection, definition: Definition, schema: str, events: list[EventEnvelope]
) -> int:
    """Apply the events in chunks; an event that fails alone is left out, as a full fold
    dead-letters it. Returns how many were applied."""
    applied = 0
    for i in range(0, len(events), _REFOLD_CHUNK):
        chunk = events[i : i + _REFOLD_CHUNK]
        try:
            with conn.transaction():
                apply_events(conn, definition, schema, chunk)
            applied += len(chunk)
        except EVENT_ERRORS:
            for event in chunk:
                try:
                    with conn.transaction():
                        apply_events(conn, definition, schema, [event])
                    applied += 1
                except EVENT_ERRORS:
                    continue
    return applied


def _prepare(
    conn: psycopg.Connection,
    *,
    definition: Definition,
    client: redis.Redis,
    store: EventStore,
    keys: Keys,
    positions: Sequence[StreamPos],
    start: From,
) -> _Plan:
    name = definition.name
    build = shadow.build_schema(name)
    with conn.transaction():
        # One snapshot of the live tables for the copy, without blocking the live projector.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        state = checkpoints.ensure_state(conn, name, definition.version)
        for table in definition.tables:
            if not shadow.table_exists(conn, shadow.LIVE, table):
                raise _refuse(definition, f"its live table {table} is missing, nothing to keep")
        # Read after the snapshot: everything the copy holds was appended before them.
        heads = {pos: head(client, keys, pos) for pos in positions}
        cut = cut_points(client, keys, positions, start, projection=name)
        plan = _Plan(max(state.active_generation, state.parked_generation or 0) + 1, cut)
        shadow.create_tables(conn, definition, build, foreign_keys=False)
        checkpoints.delete(conn, name, plan.generation)
        for table in definition.tables:
            conn.execute(
                f"INSERT INTO {quote_ident(build)}.{quote_ident(table)} "  # noqa: S608
                f"SELECT * FROM {quote_ident(shadow.LIVE)}.{quote_ident(table)}"
            )
        touched, aggregates, counts = _scan_suffix(
            client=client,
            keys=keys,
            definition=definition,
            cut=cut,
            heads={p: h[0] for p, h in heads.items()},
            plan=plan,
        )
        history = _aggregate_events(client, store, aggregates)
        later = _later_ids(client, keys, {p: h[0] for p, h in heads.items()})
        pk: dict[str, str] = {}
        for statement in definition.statements:
            table_name = table_of(definition, statement.op)
            if table_name is not None:
                pk[table_name] = OP_KEYS[statement.op]
        for table, row_keys in touched.items():
            cur = conn.execute(
                f"DELETE FROM {quote_ident(build)}.{quote_ident(table)} "  # noqa: S608
                f"WHERE {quote_ident(pk[table])} = ANY(%s)",
                (sorted(row_keys),),
            )
            plan.rewound_rows += cur.rowcount
        rank = {et: i for i, events in enumerate(definition.topics.values()) for et in events}
        before = [
            e
            for e in history
            if e.event_type in definition.event_types
            and str(e.event_id) not in plan.suffix_ids
            and str(e.event_id) not in later
        ]
        before.sort(key=lambda e: (rank[e.event_type], e.stream_id, e.sequence_number))
        plan.refolded = _refold(conn, definition, build, before)
        saved = {}
        for pos in positions:
            prior = heads[pos][1] - counts.get(pos, 0)
            plan.before_cut += prior
            saved[pos] = Checkpoint(last_entry_id=cut[pos], events_applied=prior)
        checkpoints.save(conn, name, plan.generation, saved)
    with conn.transaction():
        checkpoints.lock(conn, name)
        checkpoints.update_state(
            conn, name, building_generation=plan.generation, state="rebuilding"
        )
    return plan


def rewind(
    definition: Definition,
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    database_url: str,
    *,
    start: From,
    batch_size: int = BUILD_BATCH,
    drop_old: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> RewindReport:
    """Rebuild the projection from ``start`` (see the module doc); resumes an interrupted
    run (a rewind's or a full rebuild's) instead of starting another."""
    definition.check(topology)
    reason = refusal(definition)
    if reason is not None:
        raise _refuse(definition, reason)
    started = time.monotonic()
    keys = Keys(namespace)
    positions = stream_positions(definition, topology)
    store = EventStore(client, topology, namespace, check_server=False)
    plan: _Plan | None = None
    with connect(database_url) as conn:
        with conn.transaction():
            state = checkpoints.ensure_state(conn, definition.name, definition.version)
            resuming = state.building_generation is not None and shadow.schema_exists(
                conn, shadow.build_schema(definition.name)
            )
        if not resuming:
            plan = _prepare(
                conn,
                definition=definition,
                client=client,
                store=store,
                keys=keys,
                positions=positions,
                start=start,
            )

    def relay(p: Progress) -> None:
        # Count from the cut: the bar's rate and ETA are about what is re-applied.
        if progress is not None:
            base = plan.before_cut if plan is not None else 0
            progress(Progress(p.phase, p.done - base, p.total - base, p.dead_letters))

    report = rebuild(
        definition,
        client,
        topology,
        namespace,
        database_url,
        batch_size=batch_size,
        drop_old=drop_old,
        progress=relay,
    )
    return RewindReport(
        projection=definition.name,
        generation=report.generation,
        previous_generation=report.previous_generation,
        resumed=plan is None,
        cut={} if plan is None else {f"{t}/{p}": e for (t, p), e in plan.cut.items()},
        events_before_cut=None if plan is None else plan.before_cut,
        replayed=None if plan is None else report.events - plan.before_cut,
        rewound_rows=None if plan is None else plan.rewound_rows,
        refolded_events=None if plan is None else plan.refolded,
        dead_letters=report.dead_letters,
        seconds=time.monotonic() - started,
    )
