"""A rebuild split across processes (``--jobs``): the rows of one process, resumable, loud."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from itertools import count
from typing import Any

import psycopg
import pytest

from cdb.domain.event_types import EventType
from cdb.errors import RebuildPartError
from cdb.eventstore.store import AppendRequest, AppendResult
from cdb.projections import rebuild as rebuild_module
from cdb.projections import shadow, split
from cdb.projections.sample import cycle
from tests.integration.projections.conftest import (
    Env,
    append_cycles,
    append_oversized_order,
    digests,
    interrupted_rebuild,
    project_live,
    rebuild_of,
)


def _leftovers(env: Env, name: str) -> tuple[int, bool]:
    """Part checkpoints left, and whether a placeholder side table is left."""
    with psycopg.connect(env.url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM projection_checkpoints WHERE starts_with(projection, %s)",
            (name + "/",),
        ).fetchone()
        side = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cdb_placeholders_%'"
        ).fetchone()
    assert row is not None
    assert side is not None
    return int(row[0]), bool(side[0])


@pytest.mark.parametrize("name", ["trading", "positions"])
def test_a_split_rebuild_gives_the_rows_of_one_process(env: Env, name: str) -> None:
    append_cycles(env.store, 60)
    # One order the orders table cannot hold: dead-lettered once, by the part it belongs to.
    append_oversized_order(env.store, datetime(2026, 1, 5, tzinfo=UTC))
    append_cycles(env.store, 60, start=60)
    before = project_live(env, name)

    report = rebuild_of(env, name, batch_size=50, jobs=3)

    assert report.parts == 3
    assert report.part_peak_rss_kb > 0
    assert report.dead_letters == (1 if name == "trading" else 0)
    assert digests(env, name) == before
    assert _leftovers(env, name) == (0, False)
    with psycopg.connect(env.url) as conn:
        applied = conn.execute(
            "SELECT sum(events_applied) FROM projection_checkpoints "
            "WHERE projection = %s AND generation = %s",
            (name, report.generation),
        ).fetchone()
    assert applied is not None
    assert applied[0] == report.events  # each entry counted once


def test_an_interrupted_split_rebuild_resumes_in_as_many_parts(env: Env) -> None:
    append_cycles(env.store, 100)
    before = project_live(env, "trading")
    interrupted_rebuild(env, "trading", after=3, batch_size=20, jobs=2)
    with psycopg.connect(env.url) as conn:
        assert split.parts_in_progress(conn, "trading", 2) == 2

    resumed: list[int] = []
    # Asked for one process: the split build goes on in its two parts.
    report = rebuild_of(env, "trading", batch_size=20, progress=lambda p: resumed.append(p.done))
    assert report.parts == 2
    assert resumed[0] > 0  # the parts went on from their committed batches, not from zero
    assert digests(env, "trading") == before
    assert _leftovers(env, "trading") == (0, False)


def test_without_fork_the_parts_run_one_after_another_in_this_process(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # E.g. an interrupted split resumed on a platform without fork: same rows, one process.
    append_cycles(env.store, 80)
    before = project_live(env, "trading")
    interrupted_rebuild(env, "trading", after=3, batch_size=20, jobs=2)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])

    report = rebuild_of(env, "trading", batch_size=20, jobs=2)

    assert report.parts == 2
    assert report.part_peak_rss_kb == 0  # no process was started
    assert digests(env, "trading") == before
    assert _leftovers(env, "trading") == (0, False)


def test_a_failing_part_fails_the_rebuild_and_a_second_run_completes_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_cycles(env.store, 60)
    before = project_live(env, "trading")
    real_part = rebuild_module._part

    def failing_part(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full (simulated)")

    # The parts are forked: the second process runs the patched function.
    monkeypatch.setattr(rebuild_module, "_part", failing_part)
    with pytest.raises(RebuildPartError, match=r"cdb-rebuild-trading-2of2 \(exit code 1\)"):
        rebuild_of(env, "trading", jobs=2)
    with psycopg.connect(env.url) as conn:
        state = conn.execute(
            "SELECT state FROM projection_state WHERE projection = 'trading'"
        ).fetchone()
        assert state == ("rebuilding",)
        assert shadow.schema_exists(conn, shadow.build_schema("trading"))

    monkeypatch.setattr(rebuild_module, "_part", real_part)
    assert rebuild_of(env, "trading", jobs=2).parts == 2
    assert digests(env, "trading") == before
    assert _leftovers(env, "trading") == (0, False)


@pytest.mark.parametrize("part", [0, 1], ids=["in-this-process", "in-a-forked-part"])
def test_a_history_that_cannot_be_split_is_rebuilt_in_one_process(env: Env, part: int) -> None:
    # Cycle 41's fills are stored on another order stream than their order's: the part of that
    # stream would write the order's row (and sum its fills) beside the order's own part.
    rogue = next(
        stream
        for n in count()
        if split.part_of({b"s": (stream := f"order-rogue{n}").encode()}, 2) == part
    )
    append_cycles(env.store, 41)
    fills = {EventType.ORDER_PARTIALLY_FILLED, EventType.ORDER_FILLED}
    moved = [
        AppendRequest(rogue, r.events, None) if r.events[0].event_type in fills else r
        for r in cycle(41)
    ]
    assert any(r.stream_id == rogue for r in moved)
    assert all(isinstance(r, AppendResult) for r in env.store.append_many(moved))
    append_cycles(env.store, 20, start=42)
    before = project_live(env, "trading")

    report = rebuild_of(env, "trading", jobs=2)

    assert report.parts == 1
    assert report.dead_letters == 0
    assert digests(env, "trading") == before
    assert _leftovers(env, "trading") == (0, False)
