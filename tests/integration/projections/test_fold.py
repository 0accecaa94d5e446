"""Folding rows of new keys into direct COPYs leaves exactly the rows the upserts would leave."""

from __future__ import annotations

import pytest

from cdb.eventstore.keys import Keys
from cdb.projections import apply as apply_module
from cdb.projections import fold as fold_module
from cdb.projections import shadow
from cdb.projections.apply import Entry, apply_entries, apply_events, decode_for, optimistic
from cdb.projections.definitions import Definition
from cdb.projections.digest import Digest, projection_digest
from cdb.projections.engine import connect
from cdb.projections.source import read_range, stream_positions
from tests.integration.projections.conftest import Env, append_cycles


def _all_entries(env: Env, definition: Definition) -> dict[tuple[str, int], list[Entry]]:
    keys = Keys(env.namespace)
    return {
        pos: read_range(env.client, keys, pos, "0-0", count=1_000_000)
        for pos in stream_positions(definition, env.topology)
    }


def _project(
    env: Env,
    definition: Definition,
    batches: list[list[Entry]],
    *,
    fold: bool,
) -> Digest:
    schema = shadow.verify_schema(definition.name)
    with connect(env.url) as conn:
        try:
            with conn.transaction():
                shadow.create_tables(conn, definition, schema)
            for batch in batches:
                with conn.transaction():
                    apply_entries(
                        conn,
                        definition,
                        schema,
                        0,
                        batch,
                        record_dead_letters=False,
                        fold=fold,
                    )
            return projection_digest(conn, definition, schema)
        finally:
            with conn.transaction():
                shadow.drop_schema(conn, schema)
                conn.execute("DELETE FROM projection_checkpoints WHERE generation = 0")


def _rounds(by_pos: dict[tuple[str, int], list[Entry]], size: int) -> list[list[Entry]]:
    """Batches of ``size`` entries per partition, the partitions drifting apart over time."""
    longest = max(len(entries) for entries in by_pos.values())
    return [
        [e for entries in by_pos.values() for e in entries[start : start + size]]
        for start in range(0, longest, size)
    ]


@pytest.mark.parametrize("few_rows", [100, 0], ids=["values-lists", "copy"])
@pytest.mark.parametrize("name", ["trading", "positions", "portfolio_snapshots", "alerts"])
def test_folded_batches_give_the_same_rows_as_the_upserts(
    env: Env, name: str, few_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small groups of rows go as VALUES lists, larger ones through COPY: both paths, each way.
    monkeypatch.setattr(fold_module, "FEW_ROWS", few_rows)
    monkeypatch.setattr(apply_module, "FEW_ROWS", few_rows)
    definition = env.definitions[name]
    append_cycles(env.store, 90)
    by_pos = _all_entries(env, definition)
    for batches in (
        _rounds(by_pos, 7),  # topics drift: orders run ahead of their signals (stub rows)
        _rounds(by_pos, 1000),  # whole history in one batch: open and fills folded together
        # Children before parents: results first (an order known only by its state), then
        # orders onto existing rows, then signals onto their stubs.
        [entries for entries in reversed(list(by_pos.values()))],
    ):
        upserted = _project(env, definition, batches, fold=False)
        folded = _project(env, definition, batches, fold=True)
        assert upserted.rows > 0
        assert folded == upserted


def _apply_twice(
    env: Env,
    definition: Definition,
    entries: list[Entry],
    *,
    fold: bool,
    savepoints_first: bool = True,
) -> Digest:
    schema = shadow.verify_schema(definition.name)
    events = [
        e for e in (decode_for(definition, e) for e in entries) if not isinstance(e, Exception)
    ]
    with connect(env.url) as conn:
        try:
            with conn.transaction():
                shadow.create_tables(conn, definition, schema)
            for _ in range(2):
                # The second time through, without isolation the held keys abort the first
                # attempt and `optimistic` applies the batch again in savepoints.
                optimistic(
                    conn,
                    lambda isolated: apply_events(
                        conn,
                        definition,
                        schema,
                        events,
                        fold=fold,
                        isolate=isolated or savepoints_first,
                    ),
                )
            return projection_digest(conn, definition, schema)
        finally:
            with conn.transaction():
                shadow.drop_schema(conn, schema)


@pytest.mark.parametrize("name", ["alerts", "portfolio_snapshots", "trading"])
def test_an_event_applied_twice_gives_the_rows_the_upserts_give(env: Env, name: str) -> None:
    # Keyed by event id, rows are COPYed optimistically; a key already held (the same event
    # applied again, which checkpoints normally prevent) takes the lookup instead.
    definition = env.definitions[name]
    append_cycles(env.store, 60)
    entries = [e for page in _all_entries(env, definition).values() for e in page]
    upserted = _apply_twice(env, definition, entries, fold=False)
    assert upserted.rows > 0
    assert _apply_twice(env, definition, entries, fold=True) == upserted
    assert _apply_twice(env, definition, entries, fold=True, savepoints_first=False) == upserted


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "upserts"])
@pytest.mark.parametrize("name", ["trading", "positions", "portfolio_snapshots", "alerts"])
def test_the_rows_do_not_depend_on_the_order_the_entries_are_applied_in(
    env: Env, name: str, fold: bool
) -> None:
    # The definitions promise it (a child may come before its parent, whose placeholder row
    # its own event fills in later), and `verify` relies on it: live batches and a rebuild's
    # rounds cut the topics at different places.
    definition = env.definitions[name]
    append_cycles(env.store, 60)
    by_pos = _all_entries(env, definition)
    causal = _project(env, definition, [[e for page in by_pos.values() for e in page]], fold=fold)
    assert causal.rows > 0
    # Within a partition entries are applied in id order (the checkpoint skips anything older
    # than the last applied), so the orders that can differ are those across topics.
    children_first = list(reversed(list(by_pos.values())))
    for batches in (
        _rounds(by_pos, 7),
        children_first,  # results before their orders, orders before their signals
        [page[i : i + 7] for page in children_first for i in range(0, len(page), 7)],
    ):
        assert _project(env, definition, batches, fold=fold) == causal
