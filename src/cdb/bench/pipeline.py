"""`cdb bench pipeline`: the whole pipeline as separate processes, throughput and latency.

Every service (signal, risk, execution, portfolio) and the projector run as their own
``cdb run NAME`` processes on a throwaway key namespace and database (removed afterwards,
whatever happens). Two phases, each on fresh ones:

* throughput: ``--ticks`` seeded 1-minute bars (:mod:`cdb.domain.services.marketgen`) are
  published as fast as possible; the clock runs from the first publish until every consumer
  group has no lag and nothing pending and every projection has applied everything.
  ``ticks_per_s`` = ticks / seconds; ``ratio`` = ticks_per_s / 10,000 (the target).
* latency: the shipped recording is published at a fixed ``--rate`` (1,000 ticks/s) with a
  livelier strategy (0.3 % over 5 minutes, 5-minute cooldown: ~370 fills). For each row that
  appears in the ``trades`` table, latency = when its commit was notified (a trigger the bench
  adds to its throwaway database: ``pg_notify`` at insert, delivered at commit) - when the tick
  that caused it (the chain's correlation id) was published.
  ``p50_ms`` / ``p99_ms`` over those rows; target p99 < 50 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

from cdb.domain.contracts import MarketDataV1
from cdb.domain.services.marketdata import read_market_data, to_market_data
from cdb.domain.services.marketgen import RECORDING, generate, iter_csv_lines
from cdb.eventstore.keys import Keys
from cdb.eventstore.namespace import delete_namespace
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import db
from cdb.projections.definitions import load_definitions
from cdb.projections.status import status_all
from cdb.runtime.inspect import streams_info
from cdb.services.feed import FeedService

TARGET_TICKS_PER_S = 10_000.0
TARGET_P99_MS = 50.0
SERVICES = ("signal", "risk", "execution", "portfolio", "projector")
LIVELY = {"SIGNAL_THRESHOLD_PCT": "0.3", "SIGNAL_COOLDOWN_MIN": "5", "SIGNAL_LOOKBACK_MIN": "5"}
ROOT = Path(__file__).resolve().parents[3]
NOTIFY_CHANNEL = "cdb_bench_trades"
WAIT_S = 0.05
"""How long the trade watcher waits for a notification before it looks at its stop flag."""


@dataclass(frozen=True)
class PipelineBenchResult:
    ticks: int
    seconds: float
    ticks_per_s: float
    ratio: float
    target_ticks_per_s: float
    latency_ticks: int
    rate: float
    trades: int
    p50_ms: float
    p99_ms: float
    target_p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(
    redis_url: str,
    admin_database_url: str,
    *,
    ticks: int = 20_000,
    rate: float = 1000.0,
    timeout_s: float = 300.0,
) -> PipelineBenchResult:
    client = redis.Redis.from_url(redis_url)
    topology = load_topology()
    try:
        bars = generate(days=max(1, -(-ticks // 2880)))[:ticks]
        throughput_ticks = [to_market_data(b) for b in bars]
        with (
            _sandbox(client, admin_database_url) as (ns, database_url),
            _fleet(redis_url, ns, database_url, {}),
        ):
            _wait_started(client, topology, ns, timeout_s)
            seconds = _throughput(
                client,
                topology,
                ns,
                database_url=database_url,
                ticks=throughput_ticks,
                timeout_s=timeout_s,
            )
        recorded = list(read_market_data(iter_csv_lines((ROOT / RECORDING).read_bytes())))
        with (
            _sandbox(client, admin_database_url) as (ns, database_url),
            _fleet(redis_url, ns, database_url, LIVELY),
        ):
            _wait_started(client, topology, ns, timeout_s)
            latencies = _latency(
                client,
                topology,
                ns,
                database_url=database_url,
                ticks=recorded,
                rate=rate,
                timeout_s=timeout_s,
            )
    finally:
        client.close()
    per_s = len(throughput_ticks) / seconds
    ordered = sorted(latencies)
    return PipelineBenchResult(
        ticks=len(throughput_ticks),
        seconds=round(seconds, 3),
        ticks_per_s=round(per_s, 1),
        ratio=round(per_s / TARGET_TICKS_PER_S, 4),
        target_ticks_per_s=TARGET_TICKS_PER_S,
        latency_ticks=len(recorded),
        rate=rate,
        trades=len(ordered),
        p50_ms=round(statistics.median(ordered), 2) if ordered else float("nan"),
        p99_ms=round(_percentile(ordered, 0.99), 2) if ordered else float("nan"),
        target_p99_ms=TARGET_P99_MS,
    )


def _percentile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@contextmanager
def _sandbox(client: redis.Redis, admin_url: str) -> Iterator[tuple[str, str]]:
    """A new key namespace and a new migrated database; both removed afterwards."""
    from cdb.embedded.testing import with_database

    ns = f"bench-pipe-{uuid.uuid4().hex[:8]}"
    name = f"cdb_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = with_database(admin_url, name)
        db.upgrade(url)
        yield ns, url
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        delete_namespace(client, ns)


@contextmanager
def _fleet(
    redis_url: str, namespace: str, database_url: str, params: Mapping[str, str]
) -> Iterator[None]:
    env = {
        **os.environ,
        **params,
        "CDB_REDIS_URL": redis_url,
        "CDB_DATABASE_URL": database_url,
        "CDB_NAMESPACE": namespace,
        "CDB_LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "from cdb.cli.app import main; main()", "run", name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in SERVICES
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float, poll_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll_s)
    raise TimeoutError(f"bench pipeline: timed out after {timeout_s:.0f}s waiting for {what}")


def _wait_started(client: redis.Redis, topology: Topology, ns: str, timeout_s: float) -> None:
    """Every service holds its lease and every group exists (the projector's included)."""
    keys = Keys(ns)

    def ready() -> bool:
        if not all(client.exists(keys.lease(s)) for s in SERVICES if s != "projector"):
            return False
        infos = streams_info(client, topology, ns)
        return all(g.last_delivered_id != "-" for i in infos for g in i.groups)

    _wait_until(ready, "the services to start", timeout_s, 0.05)


def _caught_up(
    client: redis.Redis, topology: Topology, ns: str, database_url: str, ticks: int
) -> bool:
    infos = streams_info(client, topology, ns)
    if sum(i.length for i in infos if i.topic == "market_data") < ticks:
        return False
    if not all(
        _drained(i.last_id, g.last_delivered_id, g.pending) for i in infos for g in i.groups
    ):
        return False
    found = status_all(list(load_definitions().values()), client, topology, ns, database_url)
    return all(s.lag_events == 0 for s in found)


def _throughput(
    client: redis.Redis,
    topology: Topology,
    ns: str,
    *,
    database_url: str,
    ticks: list[MarketDataV1],
    timeout_s: float,
) -> float:
    feed = FeedService(client, EventStore(client, topology, ns), ticks)
    started = time.perf_counter()
    feed.run(threading.Event())  # as fast as possible: pipelined batches
    _wait_until(
        lambda: _caught_up(client, topology, ns, database_url, len(ticks)),
        "the pipeline and projections to catch up",
        timeout_s,
        0.01,
    )
    return time.perf_counter() - started


def _latency(
    client: redis.Redis,
    topology: Topology,
    ns: str,
    *,
    database_url: str,
    ticks: list[MarketDataV1],
    rate: float,
    timeout_s: float,
) -> list[float]:
    store = EventStore(client, topology, ns)
    feed = FeedService(client, store, ticks)
    published: dict[str, float] = {}
    stop = threading.Event()
    watcher = _TradeWatcher(database_url, stop)
    watcher.start()
    try:
        _publish_at(feed, rate, published)
        deadline = time.monotonic() + timeout_s
        while not _caught_up(client, topology, ns, database_url, len(ticks)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"bench pipeline: timed out after {timeout_s:.0f}s waiting for the latency "
                    "phase to drain"
                )
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(timeout=10)
    if watcher.error is not None:
        raise watcher.error
    latencies: list[float] = []
    for order_id, at in watcher.seen.items():
        events = store.read_aggregate(f"order-{order_id}", 1, 1)
        if not events:
            continue
        origin = published.get(events[0].metadata.correlation_id or "")
        if origin is not None:
            latencies.append((at - origin) * 1000)
    return latencies


def _publish_at(feed: FeedService, rate: float, published: dict[str, float]) -> None:
    """Tick i is due ``i / rate`` seconds after the start. Ticks that fell due while the last
    append was in flight go out together in one pipeline, so a slow round trip on the shared
    cores does not make the feed fall ever further behind its rate (and the latency measured
    would then be the feed's backlog, not the pipeline's). Each tick's time is taken when its
    append returned: the latency is from a tick on the stream to its trade row committed."""
    interval = 1.0 / rate
    start = time.perf_counter()
    while not feed.done:
        now = time.perf_counter()
        due = int((now - start) / interval) + 1 - feed.position
        if due <= 0:
            time.sleep(start + feed.position * interval - now)
            continue
        first = feed.position
        feed.publish_batch(due)
        at = time.perf_counter()
        for item in feed.events[first : feed.position]:
            published[str(item.event.event_id)] = at


class _TradeWatcher(threading.Thread):
    """Notes when each trade row's commit is notified, on its own connection, whatever the
    publishing loop is doing.

    A trigger on ``trades`` (added to the bench's throwaway database only) notifies each new
    row's order id; PostgreSQL delivers a notification when its transaction commits. Earlier
    the watcher polled the table every 2 ms: 500 queries a second on the two cores the
    pipeline shares, which slowed the very thing it measured.
    """

    def __init__(self, database_url: str, stop: threading.Event) -> None:
        super().__init__(name="bench-trade-watcher", daemon=True)
        self._url = database_url
        self._stop_event = stop
        self._listening = threading.Event()
        self.seen: dict[str, float] = {}
        self.error: BaseException | None = None

    def start(self) -> None:
        super().start()
        # Rows committed before LISTEN would never be notified: publishing waits for it.
        while not self._listening.wait(0.1):
            if not self.is_alive():
                raise RuntimeError(f"bench pipeline: the trade watcher failed: {self.error!r}")

    def run(self) -> None:
        try:
            with psycopg.connect(self._url, autocommit=True) as conn:
                install_trade_notify(conn)
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
                self._listening.set()
                while not self._stop_event.is_set():
                    for note in conn.notifies(timeout=WAIT_S):
                        self.seen.setdefault(note.payload, time.perf_counter())
                # Anything committed but not notified yet (there should be nothing) counts
                # as seen now.
                now = time.perf_counter()
                for (order_id,) in conn.execute("SELECT order_id FROM trades").fetchall():
                    self.seen.setdefault(str(order_id), now)
        except BaseException as exc:  # reported by the caller, not lost in the thread
            self.error = exc


def install_trade_notify(conn: psycopg.Connection[Any]) -> None:
    """A trigger that notifies each new ``trades`` row's order id (delivered at commit)."""
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION cdb_bench_trade_notify() RETURNS trigger"
            " LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify({}, NEW.order_id); RETURN NULL;"
            " END $$"
        ).format(sql.Literal(NOTIFY_CHANNEL))
    )
    conn.execute(
        "CREATE OR REPLACE TRIGGER cdb_bench_trade_notify AFTER INSERT ON public.trades"
        " FOR EACH ROW EXECUTE FUNCTION cdb_bench_trade_notify()"
    )


def _drained(last_id: str | None, last_delivered: str, pending: int) -> bool:
    """Everything on the partition was delivered to the group and acked (Redis 6 and 7)."""
    return pending == 0 and (last_id is None or last_delivered == last_id)
