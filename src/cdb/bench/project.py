"""`cdb bench project`: the projector against raw COPY of the same rows, and a large rebuild.

In one run, on throwaway databases and key namespaces (dropped afterwards, whatever happens):

* live: the sample trading history (``cdb.projections.sample``) is appended to the streams
  (outside the clock), then every projection's live projector consumes it from its consumer
  group until caught up. Rate = rows in the projection tables / seconds.
* raw: the very rows the projector produced, already in memory as Python tuples, are written
  with ``COPY .. FROM STDIN`` (psycopg ``write_row``) into equal tables (same columns, keys and
  indexes), :data:`RAW_RUNS` times right before the rebuild below and as many times right
  after it, so a machine whose speed drifts over the run moves both sides of the ratio.
  Rate = rows / median seconds of all of them. ``ratio`` = live rate / raw rate.
* rebuild: ``--rebuild-events`` events are appended to another namespace, then a child process
  rebuilds every projection from offset 0 into another database, split across ``--jobs``
  processes where the definition allows it, and reports the peak RSS (VmHWM) of itself plus
  that of the processes it started, so the bench's own memory does not count.
  ``rebuild_ratio`` = rebuild rate (rows / seconds) / raw rate.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from cdb.eventstore.namespace import delete_namespace
from cdb.eventstore.store import AppendResult, EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import BUILD_BATCH, db, shadow
from cdb.projections.definitions import load_definitions
from cdb.projections.engine import Projector, connect, wait_caught_up
from cdb.projections.rebuild import peak_rss_kb, rebuild
from cdb.projections.sample import requests

_CHUNK = 500  # cycles appended per pipeline
_EVENTS_PER_CYCLE = 4.84  # measured average of the sample history


@dataclass(frozen=True)
class ProjectBenchResult:
    events: int
    rows: int
    live_seconds: float
    raw_seconds: float  # median of the 2 x RAW_RUNS COPYs, before and after the rebuild
    raw_seconds_range: tuple[float, float]  # fastest and slowest of them
    raw_seconds_before: float  # median of the RAW_RUNS before the rebuild
    raw_seconds_after: float  # median of the RAW_RUNS after it
    live_rows_per_s: float
    live_events_per_s: float
    raw_rows_per_s: float
    ratio: float
    rebuild_events: int
    rebuild_rows: int
    rebuild_seconds: float
    rebuild_events_per_s: float
    rebuild_rows_per_s: float
    rebuild_ratio: float
    rebuild_peak_rss_mb: float
    rebuild_processes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def scratch_database(url: str, label: str) -> Iterator[str]:
    """A new database on the server of ``url`` (needs CREATEDB), dropped afterwards."""
    name = f"cdb_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = db.libpq_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        scratch = _with_database(admin, name)
        db.upgrade(scratch)
        yield scratch
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def scratch_namespace(client: redis.Redis, label: str) -> Iterator[str]:
    namespace = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    try:
        yield namespace
    finally:
        delete_namespace(client, namespace)


def append_history(store: EventStore, events: int) -> int:
    """Append sample cycles until about ``events`` events are stored; returns the count."""
    cycles = max(1, math.ceil(events / _EVENTS_PER_CYCLE))
    stored = 0
    for start in range(0, cycles, _CHUNK):
        results = store.append_many(list(requests(min(_CHUNK, cycles - start), start=start)))
        for result in results:
            if not isinstance(result, AppendResult):
                raise result
            stored += len(result.entry_ids)
    return stored


def _tables() -> list[str]:
    return [t for d in load_definitions().values() for t in d.tables]


def _live(client: redis.Redis, topology: Topology, namespace: str, url: str) -> float:
    started = time.perf_counter()
    for definition in load_definitions().values():
        projector = Projector(
            definition, client, topology, namespace, url, batch_size=1000, block_ms=0
        )
        wait_caught_up(projector, timeout_s=3600)
        projector.close()
    return time.perf_counter() - started


RAW_RUNS = 5
"""The raw COPY is timed this many times and the median counts: one run takes about a second,
and single runs on a shared machine differed by 1.5x."""


@dataclass(frozen=True)
class _RawRows:
    """The live tables' rows, in memory, with the COPY type of each column."""

    rows_of: dict[str, list[tuple[Any, ...]]]
    types_of: dict[str, list[int]]

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rows_of.values())


def _read_rows(url: str) -> _RawRows:
    with connect(url) as conn:
        rows_of: dict[str, list[tuple[Any, ...]]] = {}
        types_of: dict[str, list[int]] = {}
        for table in _tables():
            cur = conn.execute(f"SELECT * FROM public.{table}")  # noqa: S608
            types_of[table] = [column.type_code for column in cur.description or []]
            rows_of[table] = cur.fetchall()
    return _RawRows(rows_of, types_of)


def _raw_copy(url: str, raw: _RawRows) -> list[float]:
    """COPY ``raw`` into equal tables :data:`RAW_RUNS` times; the seconds of each, fastest
    first."""
    with connect(url) as conn:
        return sorted(_raw_copy_once(conn, raw.rows_of, raw.types_of) for _ in range(RAW_RUNS))


def _raw_copy_once(
    conn: psycopg.Connection,
    rows_of: dict[str, list[tuple[Any, ...]]],
    types_of: dict[str, list[int]],
) -> float:
    """One timed COPY of every row into new equal tables (dropped afterwards)."""
    for definition in load_definitions().values():
        with conn.transaction():
            shadow.create_tables(conn, definition, "bench_raw")
            shadow.create_indexes(conn, definition, "bench_raw")
            conn.execute("SET CONSTRAINTS ALL DEFERRED")
            # Tables of several projections share the schema name: move each set aside.
            conn.execute(f"ALTER SCHEMA bench_raw RENAME TO bench_raw_{definition.name}")
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("SET CONSTRAINTS ALL DEFERRED")
        for definition in load_definitions().values():
            for table in definition.tables:
                target = f"bench_raw_{definition.name}.{table}"
                with conn.cursor().copy(f"COPY {target} FROM STDIN") as copy:
                    copy.set_types(types_of[table])
                    for row in rows_of[table]:
                        copy.write_row(row)
    seconds = time.perf_counter() - started
    for definition in load_definitions().values():
        with conn.transaction():
            shadow.drop_schema(conn, f"bench_raw_{definition.name}")
    return seconds


def _count_rows(url: str) -> int:
    with connect(url) as conn:
        total = 0
        for table in _tables():
            row = conn.execute(f"SELECT count(*) FROM public.{table}").fetchone()  # noqa: S608
            total += int(row[0]) if row else 0
        return total


def _rebuild_child(redis_url: str, database_url: str, namespace: str, jobs: int) -> dict[str, Any]:
    """Run in a child process: rebuild every projection, report seconds and rows."""
    client = redis.Redis.from_url(redis_url)
    topology = load_topology()
    started = time.perf_counter()
    events = 0
    part_peak_kb = 0
    for definition in load_definitions().values():
        report = rebuild(
            definition,
            client,
            topology,
            namespace,
            database_url,
            batch_size=BUILD_BATCH,
            jobs=jobs,
        )
        events += report.events
        part_peak_kb = max(part_peak_kb, report.part_peak_rss_kb * (report.parts - 1))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "events": events,
        "rows": _count_rows(database_url),
        # This process and the processes a split rebuild started, all at their peaks at once
        # (they were not: an upper bound).
        "peak_rss_kb": _peak_rss_kb() + part_peak_kb,
    }


def _peak_rss_kb() -> int:
    """This process's peak RSS. Linux keeps ``ru_maxrss`` across exec (a child would report
    its parent's peak), so the kernel's per-address-space high-water mark is read first."""
    return peak_rss_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(
    client: redis.Redis,
    redis_url: str,
    database_url: str,
    *,
    events: int = 100_000,
    rebuild_events: int = 1_000_000,
    jobs: int = 1,
) -> ProjectBenchResult:
    topology = load_topology()
    with (
        scratch_namespace(client, "live") as namespace,
        scratch_database(database_url, "live") as url,
    ):
        store = EventStore(client, topology, namespace, check_server=False)
        stored = append_history(store, events)
        live_seconds = _live(client, topology, namespace, url)
        rows = _count_rows(url)
        raw = _read_rows(url)
        assert raw.count == rows
        delete_namespace(client, namespace)  # its memory would weigh on the rebuild's Redis
        with (
            scratch_namespace(client, "rebuild") as rebuild_namespace,
            scratch_database(database_url, "rebuild") as rebuild_url,
        ):
            store = EventStore(client, topology, rebuild_namespace, check_server=False)
            rebuild_stored = append_history(store, rebuild_events)
            before = _raw_copy(url, raw)
            rebuilt = _rebuild_in_child(redis_url, rebuild_url, rebuild_namespace, jobs)
            after = _raw_copy(url, raw)
    raw_runs = sorted(before + after)
    peak_kb = int(rebuilt["peak_rss_kb"])
    live_rate = rows / live_seconds
    raw_seconds = statistics.median(raw_runs)
    raw_rate = rows / raw_seconds
    rebuild_rate = rebuilt["rows"] / rebuilt["seconds"]
    return ProjectBenchResult(
        events=stored,
        rows=rows,
        live_seconds=round(live_seconds, 3),
        raw_seconds=round(raw_seconds, 3),
        raw_seconds_range=(round(raw_runs[0], 3), round(raw_runs[-1], 3)),
        raw_seconds_before=round(statistics.median(before), 3),
        raw_seconds_after=round(statistics.median(after), 3),
        live_rows_per_s=round(live_rate, 1),
        live_events_per_s=round(stored / live_seconds, 1),
        raw_rows_per_s=round(raw_rate, 1),
        ratio=round(live_rate / raw_rate, 4),
        rebuild_events=rebuild_stored,
        rebuild_rows=int(rebuilt["rows"]),
        rebuild_seconds=round(rebuilt["seconds"], 3),
        rebuild_events_per_s=round(rebuilt["events"] / rebuilt["seconds"], 1),
        rebuild_rows_per_s=round(rebuild_rate, 1),
        rebuild_ratio=round(rebuild_rate / raw_rate, 4),
        rebuild_peak_rss_mb=round(peak_kb / 1024, 1),
        rebuild_processes=jobs,
    )


def _rebuild_in_child(redis_url: str, database_url: str, namespace: str, jobs: int) -> Any:
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdb.bench.project",
            json.dumps(
                {
                    "redis_url": redis_url,
                    "database_url": database_url,
                    "namespace": namespace,
                    "jobs": jobs,
                }
            ),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"rebuild child failed:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    print(
        json.dumps(
            _rebuild_child(args["redis_url"], args["database_url"], args["namespace"], args["jobs"])
        )
    )
