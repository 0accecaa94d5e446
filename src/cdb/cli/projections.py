"""`cdb projections status|run|rebuild|verify|dead-letters`: the PostgreSQL read models."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cdb.cli import context
from cdb.cli.options import JobsOpt, JsonOpt, NamespaceOpt
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import BUILD_BATCH, deadletters
from cdb.projections.definitions import Definition, definition, load_definitions
from cdb.projections.engine import Projector, connect
from cdb.projections.rebuild import Progress as RebuildProgress
from cdb.projections.rebuild import rebuild as run_rebuild
from cdb.projections.rebuild import verify as run_verify
from cdb.projections.split import default_parts
from cdb.projections.status import status_all

projections_app = typer.Typer(help="Read models in PostgreSQL: status, run, rebuild, verify.")

NameArg = Annotated[str, typer.Argument(help="Projection name (see `cdb projections status`).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Entries per transaction.")]


class _Env:
    def __init__(self, namespace: str | None) -> None:
        overrides = {"namespace": namespace} if namespace else {}
        self.settings = context.load_settings(**overrides)
        self.client = context.redis_client(self.settings)
        self.database_url = context.database_url(self.settings)
        self.namespace = self.settings.namespace
        self.topology: Topology = load_topology(self.settings.topology_file)


def _selected(name: str | None) -> list[Definition]:
    return [definition(name)] if name else list(load_definitions().values())


@projections_app.command("status")
def status(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per projection: version, generation, checkpoint, head, lag (events, seconds), rows, state."""
    env = _Env(namespace)
    found = status_all(_selected(name), env.client, env.topology, env.namespace, env.database_url)
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in found], default=str))
        return
    table = Table(title="projections")
    for column in (
        "projection",
        "version",
        "gen",
        "state",
        "checkpoint → head",
        "lag",
        "lag s",
        "rows",
        "dead letters",
    ):
        table.add_column(column)
    for s in found:
        table.add_row(
            s.name,
            str(s.version),
            str(s.generation),
            s.state,
            "\n".join(f"{p.topic}/{p.partition}: {p.checkpoint} → {p.head}" for p in s.partitions),
            str(s.lag_events),
            f"{s.lag_seconds:.1f}",
            "\n".join(f"{t}: {'missing' if n is None else n}" for t, n in s.rows.items()),
            str(s.dead_letters) + (f"\n{s.last_error[:60]}" if s.last_error else ""),
        )
    Console().print(table)


@projections_app.command("run")
def run(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    namespace: NamespaceOpt = None,
    batch_size: BatchOpt = 1000,
    once: Annotated[
        bool, typer.Option("--once", help="Exit when nothing is left to read.")
    ] = False,
) -> None:
    """Run the live projector(s) until SIGTERM / Ctrl-C (one writer per projection)."""
    env = _Env(namespace)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    projectors = [
        Projector(
            d, env.client, env.topology, env.namespace, env.database_url, batch_size=batch_size
        )
        for d in _selected(name)
    ]
    threads = [
        threading.Thread(target=p.run, args=(stop,), kwargs={"idle_exit": once}, daemon=True)
        for p in projectors
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        for projector in projectors:
            projector.close()


@projections_app.command("rebuild")
def rebuild(
    name: NameArg,
    *,
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="Drop the previous generation after the swap.")
    ] = False,
    namespace: NamespaceOpt = None,
    batch_size: BatchOpt = BUILD_BATCH,
    jobs: JobsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Blue/green: build a new generation beside the live one, catch up, swap atomically."""
    env = _Env(namespace)
    chosen = definition(name)
    with _Bar(f"rebuild {name}", enabled=not as_json) as bar:
        report = run_rebuild(
            chosen,
            env.client,
            env.topology,
            env.namespace,
            env.database_url,
            batch_size=batch_size,
            drop_old=drop_old,
            progress=bar.update,
            jobs=jobs or default_parts(),
        )
    result = {
        "projection": report.projection,
        "generation": report.generation,
        "previous_generation": report.previous_generation,
        "events": report.events,
        "dead_letters": report.dead_letters,
        "seconds": round(report.seconds, 3),
        "events_per_s": round(report.events / report.seconds, 1) if report.seconds else None,
        "dropped_old": report.dropped_old,
        "processes": report.parts,
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        kept = (
            f"; previous generation {report.previous_generation} kept (--drop-old removes it)"
            if report.previous_generation is not None and not report.dropped_old
            else ""
        )
        typer.echo(
            f"{name}: generation {report.generation} live, {report.events} events in "
            f"{report.seconds:.1f}s ({report.parts} process{'es' if report.parts > 1 else ''}), "
            f"{report.dead_letters} dead letters{kept}"
        )


@projections_app.command("verify")
def verify(
    name: NameArg,
    namespace: NamespaceOpt = None,
    batch_size: BatchOpt = BUILD_BATCH,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild into a scratch schema and compare every row's digest; exit 1 on a mismatch."""
    env = _Env(namespace)
    with _Bar(f"verify {name}", enabled=not as_json) as bar:
        report = run_verify(
            definition(name),
            env.client,
            env.topology,
            env.namespace,
            env.database_url,
            batch_size=batch_size,
            progress=bar.update,
        )
    result = {
        "projection": name,
        "match": report.match,
        "live": report.live.sha256,
        "rebuilt": report.rebuilt.sha256,
        "events": report.events,
        "tables": {
            t.table: {"live_rows": t.rows, "rebuilt_rows": r.rows, "match": t.sha256 == r.sha256}
            for t, r in zip(report.live.tables, report.rebuilt.tables, strict=True)
        },
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        verdict = "match" if report.match else "MISMATCH"
        typer.echo(
            f"{name}: {verdict} (live {report.live.sha256[:16]}, rebuilt "
            f"{report.rebuilt.sha256[:16]}, {report.live.rows} rows)"
        )
    if not report.match:
        raise typer.Exit(1)


@projections_app.command("dead-letters")
def dead_letters(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Entries a projection could not apply, newest first, with the error."""
    env = _Env(namespace)
    with connect(env.database_url) as conn:
        letters = deadletters.list_letters(conn, name, limit)
    if as_json:
        typer.echo(json.dumps([vars(x) for x in letters], default=str))
        return
    table = Table(title="projection dead letters")
    for column in ("id", "projection", "gen", "entry", "event type", "error", "failed at"):
        table.add_column(column)
    for x in letters:
        table.add_row(
            str(x.id),
            x.projection,
            str(x.generation),
            f"{x.topic}/{x.entry_id}",
            x.event_type or "",
            x.error[:80],
            x.failed_at.isoformat(timespec="seconds"),
        )
    Console().print(table)


class _Bar:
    """A rich progress bar with events/s and ETA on a terminal; nothing otherwise."""

    def __init__(self, label: str, *, enabled: bool) -> None:
        self._label = label
        console = Console(stderr=True)
        self._enabled = enabled and console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} ev/s"),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._progress.add_task(label, total=None, rate="-")
        self._started: float | None = None

    def __enter__(self) -> _Bar:
        if self._enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._progress.stop()

    def update(self, progress: RebuildProgress) -> None:
        if not self._enabled:
            return
        import time

        now = time.monotonic()
        if self._started is None:
            self._started = now
        elapsed = max(now - self._started, 1e-6)
        self._progress.update(
            self._task,
            completed=progress.done,
            total=progress.total,
            description=f"{self._label} ({progress.phase})",
            rate=f"{progress.done / elapsed:,.0f}",
        )


def register(app: typer.Typer) -> None:
    app.add_typer(projections_app, name="projections")
