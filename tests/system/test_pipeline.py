"""The pipeline as separate processes on real servers, with one service killed (-9) mid-run.

`cdb run feed|signal|risk|execution|portfolio|projector` each in its own process over a slice
of the shipped recording (ticks 2000-2900, paced so the run lasts a few seconds; a tight
stop-loss and drawdown limit so stop-losses, blocks and the circuit breaker all happen). One
service is killed with SIGKILL while work is in flight and started again; its replacement takes
the lease over, rebuilds its state from the streams and adopts the pending entries.

Then, with every group caught up:

* every signal has exactly one decision (an order or a block);
* every order has exactly one terminal result;
* every position equals the sum of its fills;
* PostgreSQL agrees with the streams (counts, and a verify rebuild gives the live digest);
* no event id appears twice on any topic, nothing is dead-lettered;
* every process stops gracefully (exit 0) on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import psycopg
import redis

from cdb.domain.contracts import OrderResultV1, OrderV1, PositionV1, Side, SignalBlockedV1, SignalV1
from cdb.domain.envelope import EventEnvelope
from cdb.domain.event_types import EventType
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import db
from cdb.projections.definitions import load_definitions
from cdb.projections.rebuild import verify
from cdb.projections.status import status_all
from cdb.runtime.inspect import streams_info

ROOT = Path(__file__).resolve().parents[2]
START, TICKS = 2000, 900
SPEED = "3600"  # one minute of bars every 1/60 s: ~7.5 s for the slice
SERVICES = ("signal", "risk", "execution", "portfolio", "projector")
VICTIMS = ("risk", "execution", "feed", "portfolio", "signal")
"""Killed with SIGKILL one after the other (each restarted before the next), mid-run."""
PARAMS = {"STOP_LOSS_PCT": "0.004", "MAX_POSITION_PCT": "0.05", "MAX_DAILY_DRAWDOWN_PCT": "0.002"}
RESULT_TYPES = {
    EventType.ORDER_FILLED,
    EventType.ORDER_PARTIALLY_FILLED,
    EventType.ORDER_CANCELLED,
    EventType.ORDER_REJECTED,
}


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}")


class Fleet:
    """The pipeline's processes, each started with `cdb run NAME`."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *extra: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-c", "from cdb.cli.app import main; main()", "run", name, *extra],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop_all(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
        return codes

    def log_tail(self) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)


def topic_events(store: EventStore, topic: str) -> list[EventEnvelope]:
    out: list[EventEnvelope] = []
    after = "0-0"
    while True:
        page = store.read_topic(topic, 0, after=after, count=1000)
        out.extend(e.event for e in page)
        if len(page) < 1000:
            return out
        after = page[-1].entry_id


def _at_least(client: redis.Redis, key: str, n: int) -> Callable[[], bool]:
    return lambda: int(client.xlen(key)) >= n


def quiet(client: redis.Redis, topology: Topology, namespace: str) -> bool:
    infos = streams_info(client, topology, namespace)
    lengths = {i.topic: i.length for i in infos}
    if lengths.get("market_data") != TICKS:
        return False
    return all(_drained(i.last_id, g.last_delivered_id, g.pending) for i in infos for g in i.groups)


def caught_up(client: redis.Redis, topology: Topology, namespace: str, database_url: str) -> bool:
    if not quiet(client, topology, namespace):
        return False
    found = status_all(list(load_definitions().values()), client, topology, namespace, database_url)
    return all(s.lag_events == 0 for s in found)


def test_the_pipeline_survives_kill_9_of_each_service_in_turn(
    redis_url: str,
    redis_client: redis.Redis,
    namespace: str,
    fresh_database: str,
    tmp_path: Path,
) -> None:
    db.upgrade(fresh_database)
    topology = load_topology()
    env = {
        **os.environ,
        **PARAMS,
        "CDB_REDIS_URL": redis_url,
        "CDB_DATABASE_URL": fresh_database,
        "CDB_NAMESPACE": namespace,
        "CDB_LEASE_TTL_MS": "600",
        "CDB_LOG_LEVEL": "INFO",
    }
    fleet = Fleet(env, tmp_path)
    store = EventStore(redis_client, topology, namespace, check_server=False)
    feed_args = ("--start", str(START), "--limit", str(TICKS), "--speed", SPEED)
    ticks = store.topic_key("market_data", 0)
    try:
        for name in SERVICES:
            fleet.start(name)
        fleet.start("feed", *feed_args)
        for n, victim in enumerate(VICTIMS, start=1):
            at = n * TICKS // (len(VICTIMS) + 2)
            wait_for(
                _at_least(redis_client, ticks, at),
                f"{at} ticks on market_data before killing {victim}",
                timeout_s=30,
            )
            assert int(redis_client.xlen(ticks)) < TICKS, f"{victim} killed too late"
            fleet.kill(victim)
            fleet.start(victim, *(feed_args if victim == "feed" else ()))
        wait_for(
            lambda: caught_up(redis_client, topology, namespace, fresh_database),
            "every group and projection to catch up with the whole slice",
            timeout_s=40,
        )
        assert sorted(fleet.alive()) == sorted([*SERVICES, "feed"]), fleet.log_tail()
    except BaseException:
        sys.stderr.write(fleet.log_tail() + "\n")
        raise
    finally:
        codes = fleet.stop_all()
    assert all(code == 0 for code in codes.values()), (codes, fleet.log_tail())

    signals = topic_events(store, "signals")
    orders = topic_events(store, "orders")
    results = topic_events(store, "order_results")
    positions = topic_events(store, "positions")
    for topic in ("signals", "orders", "order_results", "positions", "alerts"):
        ids = Counter(e.event_id for e in topic_events(store, topic))
        assert not [i for i, n in ids.items() if n > 1], f"duplicate event ids on {topic}"

    # Every signal: exactly one decision.
    generated = [e.payload.signal_id for e in signals if isinstance(e.payload, SignalV1)]
    assert len(generated) >= 10
    decisions: Counter[str] = Counter()
    decisions.update(e.payload.signal_id for e in signals if isinstance(e.payload, SignalBlockedV1))
    decisions.update(e.payload.signal_id for e in orders if isinstance(e.payload, OrderV1))
    assert {s: decisions[s] for s in generated} == dict.fromkeys(generated, 1)
    assert any(isinstance(e.payload, SignalBlockedV1) for e in signals)

    # Every order: exactly one terminal result.
    order_ids = [e.payload.order_id for e in orders if isinstance(e.payload, OrderV1)]
    answered = Counter(e.payload.order_id for e in results if isinstance(e.payload, OrderResultV1))
    assert answered == Counter(order_ids)
    assert {e.event_type for e in results} <= RESULT_TYPES

    # Every position: the sum of its fills.
    net: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in results:
        r = e.payload
        if isinstance(r, OrderResultV1) and e.event_type in (
            EventType.ORDER_FILLED,
            EventType.ORDER_PARTIALLY_FILLED,
        ):
            net[(r.strategy_id, r.symbol)] += r.filled_quantity * (1 if r.side is Side.BUY else -1)
    last: dict[tuple[str, str], Decimal] = {}
    for e in positions:
        p = e.payload
        assert isinstance(p, PositionV1)
        sign = -1 if p.side is not None and p.side.value == "SHORT" else 1
        last[(p.strategy_id, p.symbol)] = p.quantity * sign
    assert last == dict(net)

    # PostgreSQL agrees with the streams.
    fills = sum(
        1
        for e in results
        if e.event_type in RESULT_TYPES - {EventType.ORDER_CANCELLED, EventType.ORDER_REJECTED}
    )
    with psycopg.connect(fresh_database) as conn:

        def count(table: str) -> int:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            assert row is not None
            return int(row[0])

        assert count("orders") == len(order_ids)
        assert count("trades") == fills
        assert count("alerts") == len(topic_events(store, "alerts"))
        assert count("portfolio_snapshots") == len(topic_events(store, "portfolio_snapshots"))
    for definition in load_definitions().values():
        report = verify(definition, redis_client, topology, namespace, fresh_database)
        assert report.match, f"{definition.name}: live rows differ from a rebuild"

    assert all(
        g.dead_letters == 0
        for i in streams_info(redis_client, topology, namespace)
        for g in i.groups
    )


def _drained(last_id: str | None, last_delivered: str, pending: int) -> bool:
    """Everything on the partition was delivered to the group and acked (Redis 6 and 7)."""
    return pending == 0 and (last_id is None or last_delivered == last_id)
