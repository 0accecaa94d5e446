"""Folding a batch's rows of keys the tables do not hold yet into one row each, COPYed directly.

The ops of a projection run as set-based upserts, one per op and batch, in the order of the
definition. For a key that is not in the table yet, what those statements leave behind can be
computed in memory: e.g. an order's ``order_open`` then ``order_state`` rows become the one row
the INSERT followed by the UPDATE would have produced. Such rows are COPYed straight into the
table (no temporary table, no conflict handling, one write per row instead of an insert plus an
update); rows of keys the table already holds take the upsert statements as before.

Each fold below mirrors the SQL of one definition version (``projections/<name>.v<N>.toml``);
a definition version without a fold here takes the upserts for every row. A test projects the
same history with and without folding and compares the digests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import psycopg

from cdb.projections.definitions import Definition, quote_ident
from cdb.projections.mapping import Row

FEW_ROWS = 100
"""Up to this many rows go to their statement as a VALUES list, more through COPY."""

# Rows of one key per op -> the row the op statements would leave (None: cannot tell, use the
# statements). Only called for keys the table does not hold.
Combine = Callable[[Mapping[str, Row]], Row | None]


@dataclass(frozen=True)
class TableFold:
    table: str
    key: str  # primary-key column, also the key column of every op's rows
    ops: tuple[str, ...]  # the ops writing this table
    combine: Combine
    event_keys: bool = False  # the key is the id of the event the row comes from

    def __post_init__(self) -> None:
        # An event's row is written by that event alone and never changes: one insert-only
        # op (see fold_new_keys, which writes such rows as they are).
        if self.event_keys and len(self.ops) != 1:
            raise ValueError(f"fold of {self.table}: an event-keyed table has exactly one op")


def _coalesce(first: Any, second: Any) -> Any:
    return first if first is not None else second


def _signals(rows: Mapping[str, Row]) -> Row | None:
    # trading.v1: `signal` upserts, then `signal_blocked`, then `signal_stub` (DO NOTHING).
    signal = rows.get("signal")
    blocked = rows.get("signal_blocked")
    if signal is None:
        # Inserted by whichever comes first; a stub after a blocked row does nothing.
        return dict(blocked) if blocked is not None else {"id": rows["signal_stub"]["id"]}
    row = dict(signal)
    if blocked is not None:
        row["symbol"] = _coalesce(signal["symbol"], blocked["symbol"])
        later = signal["sequence_number"] < blocked["sequence_number"]
        row["block_reason"] = blocked["block_reason"] if later else None
        if later:
            row["status"] = blocked["status"]
        row["sequence_number"] = max(signal["sequence_number"], blocked["sequence_number"])
    return row


def _orders(rows: Mapping[str, Row]) -> Row | None:
    # trading.v1: `order_open` upserts, then `order_state` updates when its sequence is later.
    opened = rows.get("order_open")
    state = rows.get("order_state")
    if opened is None:
        return dict(state) if state is not None else None
    row = dict(opened)
    if state is None or not opened["sequence_number"] < state["sequence_number"]:
        return row
    for column in ("signal_id", "symbol", "side", "size"):
        row[column] = _coalesce(opened[column], state[column])
    row["status"] = state["status"]
    row["rejection_reason"] = _coalesce(state["rejection_reason"], opened["rejection_reason"])
    row["filled_size"] = state["filled_size"]
    row["avg_fill_price"] = state["avg_fill_price"]
    row["fees"] = state["fees"]
    row["filled_at"] = state["filled_at"]  # COALESCE with the opened row's NULL
    row["sequence_number"] = state["sequence_number"]
    return row


def _insert_only(op: str) -> Combine:
    # ON CONFLICT DO NOTHING: a new key gets its row as it is.
    def combine(rows: Mapping[str, Row]) -> Row | None:
        return dict(rows[op])

    return combine


FOLDS: dict[tuple[str, int], tuple[TableFold, ...]] = {
    ("trading", 1): (
        TableFold("signals", "id", ("signal", "signal_blocked", "signal_stub"), _signals),
        TableFold("orders", "order_id", ("order_open", "order_state"), _orders),
        TableFold("trades", "id", ("trade",), _insert_only("trade"), event_keys=True),
    ),
    ("alerts", 1): (TableFold("alerts", "id", ("alert",), _insert_only("alert"), event_keys=True),),
    ("portfolio_snapshots", 1): (
        TableFold(
            "portfolio_snapshots", "id", ("snapshot",), _insert_only("snapshot"), event_keys=True
        ),
    ),
}


def fold_new_keys(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    rows: dict[str, list[Row]],
    *,
    known: Mapping[str, tuple[set[Any], set[Any]]] | None = None,
    isolate: bool = True,
) -> None:
    """COPY the folded rows of keys the tables do not hold; leave the other rows in ``rows``.

    ``known`` maps a table to keys already looked up in it and those of them it holds.
    Without ``isolate``, a key held by a table keyed by event id raises UniqueViolation (the
    caller retries with ``isolate``) instead of costing a savepoint every batch.

    Runs before the op statements of the batch: a key is either new (all its rows folded here)
    or already in the table (all its rows left to the statements), so the two never overlap.
    """
    folds = FOLDS.get((definition.name, definition.version), ())
    types = {
        column: type_
        for statement in definition.statements
        for column, type_ in zip(statement.columns, statement.types, strict=True)
    }
    for fold in folds:
        if fold.event_keys and not isolate:
            # Keyed by event id: held only if that event was applied already, which the
            # checkpoint prevents; so written without looking. A held key aborts the
            # transaction, and the caller applies the batch again with ``isolate`` (below).
            _write_event_rows(conn, definition, schema, fold=fold, rows=rows, types=types)
            continue
        by_key: dict[Any, dict[str, Row]] = {}
        for op in fold.ops:
            for row in rows.get(op, ()):
                by_key.setdefault(row[fold.key], {})[op] = row
        if not by_key:
            continue
        table = f"{quote_ident(schema)}.{quote_ident(fold.table)}"
        done = None
        if fold.event_keys:
            # The same, in a savepoint: if a key was held, look them up and COPY the others.
            try:
                with conn.transaction():
                    done = _copy_folded(conn, fold, table, by_key, held=set(), types=types)
            except psycopg.errors.UniqueViolation:
                done = None
        looked_up, found = (known or {}).get(fold.table, (set(), set()))
        if done is None and by_key.keys() <= looked_up:
            done = _copy_folded(conn, fold, table, by_key, held=found, types=types)
        if done is None:
            held = {
                key
                for (key,) in conn.execute(
                    f"SELECT {quote_ident(fold.key)} FROM {table} "  # noqa: S608
                    f"WHERE {quote_ident(fold.key)} = ANY(%s)",
                    (list(by_key),),
                )
            }
            done = _copy_folded(conn, fold, table, by_key, held=held, types=types)
        if done:
            for op in fold.ops:
                if op in rows:
                    rows[op] = [row for row in rows[op] if row[fold.key] not in done]


def _write_event_rows(
    conn: psycopg.Connection,
    definition: Definition,
    schema: str,
    *,
    fold: TableFold,
    rows: dict[str, list[Row]],
    types: Mapping[str, str],
) -> None:
    """The rows of a table keyed by event id (one insert-only op: trades, alerts, snapshots),
    outside a savepoint: unique per key already (``batch_rows`` merges by key) and the table's
    rows as they are, so they go in without being grouped by key."""
    (op,) = fold.ops
    if op_rows := rows.pop(op, None):
        table = f"{quote_ident(schema)}.{quote_ident(fold.table)}"
        _write(conn, table, definition.statement(op).columns, op_rows, types)


def _copy_folded(
    conn: psycopg.Connection,
    fold: TableFold,
    table: str,
    by_key: Mapping[Any, Mapping[str, Row]],
    *,
    held: set[Any],
    types: Mapping[str, str],
) -> set[Any]:
    """COPY the folded row of every key not ``held``; returns the keys written."""
    folded: dict[tuple[str, ...], list[Row]] = {}
    done: set[Any] = set()
    for key, of_key in by_key.items():
        if key in held:
            continue
        combined = fold.combine(of_key)
        if combined is not None:
            folded.setdefault(tuple(combined), []).append(combined)
            done.add(key)
    for columns, group in folded.items():
        _write(conn, table, columns, group, types)
    return done


def _write(
    conn: psycopg.Connection,
    table: str,
    columns: tuple[str, ...],
    group: list[Row],
    types: Mapping[str, str],
) -> None:
    """Insert rows that all have ``columns``: COPY, or one INSERT for a few."""
    names = ", ".join(quote_ident(c) for c in columns)
    values = row_values(columns)
    if len(group) <= FEW_ROWS:
        # A live batch folds a handful of rows: one INSERT is one round trip where a COPY
        # takes two, and a small batch's time is mostly round trips. No casts: parameters
        # take the target columns' types (a JSON text into jsonb too).
        one_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        conn.execute(
            f"INSERT INTO {table} ({names}) VALUES "  # noqa: S608
            f"{', '.join([one_row] * len(group))}",
            [value for row in group for value in values(row)],
        )
        return
    with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        copy.set_types([types[c] for c in columns])
        for row in group:
            copy.write_row(values(row))


def row_values(columns: tuple[str, ...]) -> Callable[[Row], tuple[Any, ...]]:
    """A row's values in ``columns`` order, as one C call per row."""
    if len(columns) == 1:
        (column,) = columns
        return lambda row: (row[column],)
    return itemgetter(*columns)
