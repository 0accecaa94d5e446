"""`cdb run NAME`: one pipeline service as its own process; `cdb run all` for one box.

Every service holds a lease in Redis while it is active: start as many replicas as you like,
one works and the others are hot standbys that take over (rebuilding their state from the
streams) within the lease's TTL after it dies. SIGTERM/SIGINT stop gracefully: reading stops,
in-flight entries are finished, their outputs appended and acked, the lease released.

`cdb run all` runs the feed, every service and the projectors in one process with a
deterministic scheduler (one tick, then every group drained), so its result equals the
in-memory reference run; see :mod:`cdb.services.laptop`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Annotated

import redis
import typer

from cdb.cli import context
from cdb.cli.options import NamespaceOpt
from cdb.config import Settings
from cdb.domain.contracts import MarketDataV1
from cdb.domain.services.marketdata import RecordedFeed
from cdb.domain.services.marketgen import RECORDING, iter_csv_lines
from cdb.errors import ConfigError
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import db as projections_db
from cdb.projections.definitions import load_definitions
from cdb.projections.engine import Projector
from cdb.runtime.signals import GracefulStop
from cdb.services import catalog
from cdb.services.feed import FeedService
from cdb.services.laptop import Laptop
from cdb.services.lease import DEFAULT_TTL_MS
from cdb.services.process import run_feed, run_service

log = logging.getLogger(__name__)

NAMES = ("feed", "signal", "risk", "execution", "portfolio", "projector", "all")
REPO_ROOT = Path(__file__).resolve().parents[3]

NameArg = Annotated[
    str, typer.Argument(help="feed, signal, risk, execution, portfolio, projector, or all.")
]
SpeedOpt = Annotated[
    float | None,
    typer.Option(
        "--speed",
        min=0.001,
        help="Feed pace as a multiple of real time (60 = a minute of bars per second); "
        "default: as fast as possible.",
    ),
]
StartOpt = Annotated[
    int, typer.Option("--start", min=0, help="Skip the recording's first N ticks.")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Publish at most N ticks of the recording.")
]
RecordingOpt = Annotated[
    Path | None,
    typer.Option("--recording", help="Market-data recording (.csv or .csv.gz); default: shipped."),
]
LeaseOpt = Annotated[
    int | None,
    typer.Option(
        "--lease-ttl-ms",
        min=100,
        help="Lease TTL: how soon a standby takes over a dead replica (CDB_LEASE_TTL_MS, 5000).",
    ),
]
ExitOpt = Annotated[
    bool,
    typer.Option("--exit-at-end", help="feed / all: exit once the recording is published."),
]


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(  # noqa: PLR0917 (a Typer command: its options are parameters)
    name: NameArg,
    namespace: NamespaceOpt = None,
    speed: SpeedOpt = None,
    start: StartOpt = 0,
    limit: LimitOpt = None,
    recording: RecordingOpt = None,
    lease_ttl_ms: LeaseOpt = None,
    exit_at_end: ExitOpt = False,
) -> None:
    """Run one service until SIGTERM / Ctrl-C (any number of replicas; one is active)."""
    if name not in NAMES:
        raise ConfigError(f"cdb run {name!r}: NAME must be one of {', '.join(NAMES)}")
    settings = context.load_settings(**({"namespace": namespace} if namespace else {}))
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    env = dict(os.environ)
    ttl = lease_ttl_ms or _env_int(env, "CDB_LEASE_TTL_MS", DEFAULT_TTL_MS)
    topology = load_topology(settings.topology_file)
    client = context.redis_client(settings)
    owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    graceful = GracefulStop().install()
    stop = graceful.event
    code = 0
    try:
        if name == "all":
            ticks = load_ticks(recording, start, limit)
            database_url = context.database_url(settings)
            projections_db.upgrade(database_url)
            laptop = build_laptop(
                client, topology, settings.namespace, env, ticks, owner=owner, lease_ttl_ms=ttl
            )
            projectors = build_projectors(client, topology, settings.namespace, database_url)
            laptop.start()
            try:
                stats = laptop.run(stop, speed=speed, checkpoint=lambda: drain(projectors))
                log.info(
                    "run all: %d ticks published, %d were there", stats.ticks, stats.resumed_at
                )
                while not exit_at_end and not stop.is_set():
                    stop.wait(0.5)
                    laptop.drain(stop)
                    drain(projectors)
            finally:
                laptop.close()
                for projector in projectors:
                    projector.close()
        elif name == "feed":
            store = EventStore(client, topology, settings.namespace)
            feed = FeedService(client, store, load_ticks(recording, start, limit))
            code = run_feed(
                client,
                feed,
                settings.namespace,
                stop,
                owner=owner,
                speed=speed,
                lease_ttl_ms=ttl,
                exit_at_end=exit_at_end,
            )
        elif name == "projector":
            run_projectors(client, topology, settings, stop)
        else:
            service = catalog.build(name, env)
            code = run_service(
                client, topology, settings.namespace, service, stop, owner=owner, lease_ttl_ms=ttl
            )
    finally:
        graceful.cancel_timer()
        client.close()
    if code:
        raise typer.Exit(code)


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 100:
        raise ConfigError(f"{name}={raw!r}: must be a whole number of milliseconds >= 100")
    return int(raw)


def load_ticks(
    recording: Path | None, start: int = 0, limit: int | None = None
) -> list[MarketDataV1]:
    """The recording's ticks ``start .. start+limit`` (ContractError names a bad line)."""
    path = recording or REPO_ROOT / RECORDING
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--recording {path}: cannot read it ({exc.strerror})") from None
    ticks = list(RecordedFeed(list(iter_csv_lines(data))).ticks())
    end = None if limit is None else start + limit
    return ticks[start:end]


def build_laptop(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    env: dict[str, str],
    ticks: list[MarketDataV1],
    *,
    owner: str,
    lease_ttl_ms: int = DEFAULT_TTL_MS,
) -> Laptop:
    store = EventStore(client, topology, namespace)
    return Laptop(
        client,
        topology,
        namespace,
        catalog.build_all(env),
        FeedService(client, store, ticks),
        owner=owner,
        lease_ttl_ms=lease_ttl_ms,
    )


def build_projectors(
    client: redis.Redis, topology: Topology, namespace: str, database_url: str
) -> list[Projector]:
    return [
        Projector(d, client, topology, namespace, database_url) for d in load_definitions().values()
    ]


def drain(projectors: list[Projector]) -> None:
    """Run each projector until a read returns nothing (it is caught up with the streams)."""
    for projector in projectors:
        while projector.run_once().consumed:
            pass


def run_projectors(
    client: redis.Redis, topology: Topology, settings: Settings, stop: threading.Event
) -> None:
    database_url = context.database_url(settings)
    projectors = [
        Projector(d, client, topology, settings.namespace, database_url)
        for d in load_definitions().values()
    ]
    threads = [threading.Thread(target=p.run, args=(stop,), daemon=True) for p in projectors]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        for projector in projectors:
            projector.close()
