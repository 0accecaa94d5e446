"""`cdb demo`: the whole pipeline over the shipped market data, then what it produced.

On the embedded servers (or the configured ones) it clears its own key namespace (``demo``) and
recreates its own database (``cdb_demo`` on the same PostgreSQL server), applies the migrations,
runs feed -> signal -> risk -> execution -> portfolio and the projectors in one process
(:mod:`cdb.services.laptop`, deterministic), then prints events per topic, signals, orders,
fills, blocked signals by reason, open positions, PnL, alerts, lag and pending per group, dead
letters and the projection digest. Safe to run twice: every run starts from scratch and gives
the same events and the same digest.

``--store-only`` runs the earlier walk-through of the event store instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Annotated, Any

import psycopg
import redis
import typer
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cdb.cli import context, demo_store
from cdb.cli.options import JsonOpt, NamespaceOpt
from cdb.cli.run import build_laptop, build_projectors, drain, load_ticks
from cdb.config import mask_url
from cdb.domain.contracts import (
    AlertV1,
    OrderResultV1,
    PortfolioSnapshotV1,
    PositionV1,
    SignalBlockedV1,
)
from cdb.domain.envelope import EventEnvelope
from cdb.domain.event_types import EventType
from cdb.errors import ConfigError
from cdb.eventstore.namespace import delete_namespace
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import db as projections_db
from cdb.projections.definitions import load_definitions
from cdb.projections.digest import projection_digest
from cdb.projections.engine import connect
from cdb.projections.status import status_all
from cdb.runtime.inspect import streams_info

DEMO_NAMESPACE = "demo"
FILL_TYPES = {EventType.ORDER_FILLED, EventType.ORDER_PARTIALLY_FILLED}


def register(app: typer.Typer) -> None:
    """Attach this family's commands to the root app."""
    app.command("demo")(demo)


@dataclass
class Report:
    namespace: str
    database: str
    ticks: int
    seconds: float
    events_per_topic: dict[str, int] = field(default_factory=dict)
    signals: int = 0
    orders: int = 0
    fills: int = 0
    results: dict[str, int] = field(default_factory=dict)
    blocked_by_reason: dict[str, int] = field(default_factory=dict)
    open_positions: list[dict[str, str]] = field(default_factory=list)
    pnl: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    projections: list[dict[str, Any]] = field(default_factory=list)
    digest: str = ""


def demo(
    namespace: NamespaceOpt = None,
    ticks: Annotated[
        int | None,
        typer.Option(
            "--ticks",
            min=1,
            help="Replay only the first N ticks of the recording (default: all of it, "
            "2 days x 2 symbols = 5,760 one-minute bars).",
        ),
    ] = None,
    store_only: Annotated[
        bool, typer.Option("--store-only", help="The event-store walk-through instead.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline over the shipped market data and show what it produced."""
    if store_only:
        demo_store.walk_through(namespace)
        return
    settings = context.load_settings(namespace=namespace)
    ns = settings.namespace if "namespace" in settings.model_fields_set else DEMO_NAMESPACE
    console = Console(highlight=False, stderr=as_json)
    url = context.redis_url(settings)
    database_name = _database_name(ns)
    database_url = _fresh_database(context.database_url(settings), database_name)
    topology = load_topology(settings.topology_file)
    client = redis.Redis.from_url(url)
    try:
        if not as_json:
            console.rule("[bold]cdb demo: the trading pipeline on Redis Streams")
            console.print(
                f"Redis {mask_url(url)}  namespace [bold]{ns}[/bold]  "
                f"PostgreSQL database [bold]{database_name}[/bold]"
            )
        cleared = delete_namespace(client, ns)
        projections_db.upgrade(database_url)
        recorded = load_ticks(None, 0, ticks)
        started = time.perf_counter()
        _run_pipeline(
            console,
            client,
            topology,
            ns,
            database_url=database_url,
            recorded=recorded,
            quiet=as_json,
        )
        seconds = time.perf_counter() - started
        report = _report(
            client,
            topology,
            ns,
            database_url=database_url,
            database_name=database_name,
            ticks=len(recorded),
            seconds=seconds,
        )
    finally:
        client.close()
    if as_json:
        typer.echo(json.dumps(asdict(report), default=str))
        return
    if cleared:
        console.print(f"(cleared {cleared} keys of the previous demo run first)")
    _print(console, report)


def _database_name(namespace: str) -> str:
    suffix = (
        "" if namespace == DEMO_NAMESPACE else "_" + re.sub(r"[^a-z0-9_]", "_", namespace.lower())
    )
    return f"cdb_demo{suffix}"[:63]


def _fresh_database(server_url: str, name: str) -> str:
    from cdb.embedded.testing import with_database

    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise ConfigError(
            f"the demo needs its own database '{name}' on the PostgreSQL server of "
            f"{mask_url(server_url)} and could not (re)create it: {str(exc).strip()}"
        ) from None
    return with_database(server_url, name)


def _run_pipeline(
    console: Console,
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    *,
    database_url: str,
    recorded: list[Any],
    quiet: bool,
) -> None:
    owner = f"demo-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    laptop = build_laptop(client, topology, namespace, dict(os.environ), recorded, owner=owner)
    projectors = build_projectors(client, topology, namespace, database_url)
    stop = threading.Event()
    laptop.start()
    try:
        with Progress(
            TextColumn("[bold]pipeline"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ticks"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]}"),
            console=console,
            disable=quiet,
            transient=False,
        ) as progress:
            task = progress.add_task("ticks", total=len(recorded), rate="")
            t0 = time.perf_counter()

            def on_tick(position: int) -> None:
                if position % 20 == 0 or position == len(recorded):
                    rate = position / max(time.perf_counter() - t0, 1e-9)
                    progress.update(task, completed=position, rate=f"{rate:,.0f} ticks/s")

            laptop.run(stop, on_tick=on_tick, checkpoint=lambda: drain(projectors))
    finally:
        laptop.close()
        for projector in projectors:
            projector.close()


def _lag(client: redis.Redis, key: str, last_delivered: str) -> int:
    """Entries after the group's last delivered one (Redis 6 has no ``lag`` in XINFO)."""
    start = "-" if last_delivered in ("-", "0-0") else f"({last_delivered}"
    return len(client.xrange(key, start, "+", count=1_000_000) or [])


def _topic_events(store: EventStore, topic: str) -> list[EventEnvelope]:
    events: list[EventEnvelope] = []
    for partition in range(store.topology.topic(topic).partitions):
        after = "0-0"
        while True:
            page = store.read_topic(topic, partition, after=after, count=1000)
            events.extend(e.event for e in page)
            if len(page) < 1000:
                break
            after = page[-1].entry_id
    return events


def _report(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    *,
    database_url: str,
    database_name: str,
    ticks: int,
    seconds: float,
) -> Report:
    store = EventStore(client, topology, namespace, check_server=False)
    report = Report(namespace, database_name, ticks, round(seconds, 2))
    infos = streams_info(client, topology, namespace)
    for info in infos:
        report.events_per_topic[info.topic] = (
            report.events_per_topic.get(info.topic, 0) + info.length
        )
        for g in info.groups:
            report.groups.append(
                {
                    "topic": info.topic,
                    "partition": info.partition,
                    "group": g.name,
                    "lag": g.lag
                    if g.lag is not None
                    else _lag(client, info.key, g.last_delivered_id),
                    "pending": g.pending,
                    "dead_letters": g.dead_letters,
                }
            )
            report.dead_letters += g.dead_letters
    signals = _topic_events(store, "signals")
    report.signals = sum(1 for e in signals if e.event_type is EventType.SIGNAL_GENERATED)
    blocked = Counter(
        e.payload.reason_code.value for e in signals if isinstance(e.payload, SignalBlockedV1)
    )
    report.blocked_by_reason = dict(sorted(blocked.items()))
    report.orders = len(_topic_events(store, "orders"))
    results = _topic_events(store, "order_results")
    report.results = dict(sorted(Counter(e.event_type.value for e in results).items()))
    report.fills = sum(1 for e in results if e.event_type in FILL_TYPES)
    fees = sum((e.payload.fee for e in results if isinstance(e.payload, OrderResultV1)), Decimal(0))
    latest: dict[str, PositionV1] = {}
    for e in _topic_events(store, "positions"):
        if isinstance(e.payload, PositionV1):
            latest[e.stream_id] = e.payload
    realised = sum((p.realised_pnl for p in latest.values()), Decimal(0))
    for p in latest.values():
        if p.quantity > 0:
            report.open_positions.append(
                {
                    "strategy_id": p.strategy_id,
                    "symbol": p.symbol,
                    "side": str(p.side.value if p.side is not None else "-"),
                    "quantity": str(p.quantity),
                    "avg_entry_price": str(p.avg_entry_price),
                    "unrealised_pnl": str(p.unrealised_pnl),
                }
            )
    snapshots = [
        e.payload
        for e in _topic_events(store, "portfolio_snapshots")
        if isinstance(e.payload, PortfolioSnapshotV1)
    ]
    report.pnl = {"realised_pnl (positions, net of fees)": str(realised), "fees_paid": str(fees)}
    if snapshots:
        last = snapshots[-1]
        report.pnl |= {
            "last snapshot at": last.timestamp.isoformat(),
            "equity": str(last.equity),
            "cash": str(last.cash),
            "unrealised_pnl": str(last.unrealised_pnl),
            "daily_pnl": str(last.daily_pnl),
            "max drawdown % (of a day's peak)": str(max(s.drawdown_pct for s in snapshots)),
        }
    alerts = Counter(
        f"{e.payload.level.value} {e.payload.code}"
        for e in _topic_events(store, "alerts")
        if isinstance(e.payload, AlertV1)
    )
    alerts.update(
        e.event_type.value
        for e in _topic_events(store, "alerts")
        if e.event_type is not EventType.ALERT_RAISED
    )
    report.alerts = dict(sorted(alerts.items()))
    definitions = list(load_definitions().values())
    for status in status_all(definitions, client, topology, namespace, database_url):
        report.projections.append(
            {
                "projection": status.name,
                "state": status.state,
                "lag": status.lag_events,
                "rows": status.rows,
                "dead_letters": status.dead_letters,
            }
        )
        report.dead_letters += status.dead_letters
    h = hashlib.sha256()
    with connect(database_url) as conn:
        for d in definitions:
            digest = projection_digest(conn, d, "public")
            h.update(f"{d.name}:{digest.sha256}\n".encode())
            for row in report.projections:
                if row["projection"] == d.name:
                    row["digest"] = digest.sha256
    report.digest = h.hexdigest()
    return report


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    return table


def _print(console: Console, r: Report) -> None:
    rate = r.ticks / r.seconds if r.seconds else 0.0
    console.print(
        f"\n[bold]{r.ticks:,} ticks[/bold] through the pipeline and the projections in "
        f"[bold]{r.seconds:.1f} s[/bold] ({rate:,.0f} ticks/s)\n"
    )
    console.print(
        _table("events per topic", ("topic", "entries"), list(r.events_per_topic.items()))
    )
    console.print(
        _table(
            "\ntrading",
            ("signals", "orders", "fills", "results", "blocked"),
            [
                (
                    r.signals,
                    r.orders,
                    r.fills,
                    ", ".join(f"{k} {v}" for k, v in r.results.items()) or "-",
                    sum(r.blocked_by_reason.values()),
                )
            ],
        )
    )
    console.print(
        _table(
            "\nblocked signals by reason",
            ("reason", "signals"),
            list(r.blocked_by_reason.items()) or [("-", 0)],
        )
    )
    console.print(
        _table(
            "\nopen positions",
            ("strategy", "symbol", "side", "quantity", "avg entry", "unrealised"),
            [
                (
                    p["strategy_id"],
                    p["symbol"],
                    p["side"],
                    p["quantity"],
                    p["avg_entry_price"],
                    p["unrealised_pnl"],
                )
                for p in r.open_positions
            ]
            or [("-", "-", "-", "-", "-", "-")],
        )
    )
    console.print(_table("\nPnL (USDT)", ("", "value"), list(r.pnl.items())))
    console.print(
        _table("\nalerts", ("level / kind", "count"), list(r.alerts.items()) or [("-", 0)])
    )
    console.print(
        _table(
            "\nconsumer groups",
            ("topic", "group", "lag", "pending", "dead letters"),
            [(g["topic"], g["group"], g["lag"], g["pending"], g["dead_letters"]) for g in r.groups],
        )
    )
    console.print(
        _table(
            "\nprojections (PostgreSQL)",
            ("projection", "state", "lag", "rows", "dead letters", "digest"),
            [
                (
                    p["projection"],
                    p["state"],
                    p["lag"],
                    ", ".join(f"{t} {n}" for t, n in p["rows"].items()),
                    p["dead_letters"],
                    str(p.get("digest", ""))[:16],
                )
                for p in r.projections
            ],
        )
    )
    console.print(f"\ndead letters: [bold]{r.dead_letters}[/bold]")
    console.print(f"projection digest: [bold]{r.digest}[/bold]")
