"""`cdb replay aggregate|topic|projections`: rebuild state from stream offsets or times.

* ``aggregate STREAM_ID [--to-seq N | --at TIME]`` -- an aggregate's state at that point and the
  events that made it;
* ``topic TOPIC --from OFFSET|TIME [--to OFFSET|TIME] --service NAME`` -- re-run a service's
  logic over the recorded range in a sandbox namespace and diff its outputs with the recorded
  ones; exit 1 on any difference;
* ``projections [NAME] --from OFFSET|TIME`` -- rebuild the read models from that point on
  (blue/green, ``cdb.projections.rewind``): the live tables serve until the atomic swap.

OFFSET: an entry id (``1730443200000-0``), ``0`` or ``-`` (first entry), ``$`` (head).
TIME: ISO-8601 UTC (``2025-03-03T19:35:00Z``), compared with the events' timestamps.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from cdb.cli import context
from cdb.cli.options import JsonOpt, NamespaceOpt
from cdb.errors import ContractError
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections import BUILD_BATCH
from cdb.services.replay.aggregate import event_dict, replay_aggregate
from cdb.services.replay.positions import Edge, EntryId, parse_bound
from cdb.services.replay.runners import SERVICES, params_from_env
from cdb.services.replay.topic import Progress as ReplayProgress
from cdb.services.replay.topic import TopicReplayReport, locate, replay_topic

replay_app = typer.Typer(
    help="Rebuild state from stream offsets or times; prove the logic deterministic.",
    no_args_is_help=True,
)

FromOpt = Annotated[
    str,
    typer.Option(
        "--from",
        help="OFFSET (entry id like 1730443200000-0, 0 or - = first, $ = head) or ISO-8601 "
        "UTC TIME (first event at or after it).",
    ),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help="OFFSET or TIME (last event at or before it); default: the head."),
]


@dataclass(frozen=True)
class _Env:
    client: redis.Redis
    topology: Topology
    namespace: str


def _env(namespace: str | None) -> _Env:
    settings = context.load_settings(namespace=namespace)
    return _Env(
        context.redis_client(settings), load_topology(settings.topology_file), settings.namespace
    )


def _echo_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, default=str))


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


@replay_app.command("aggregate")
def aggregate(
    stream_id: Annotated[str, typer.Argument(help="Aggregate stream id, e.g. order-<uuid>.")],
    to_seq: Annotated[
        int | None, typer.Option("--to-seq", help="Fold up to this sequence number.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="ISO-8601 UTC time: fold up to the last event at or before it."),
    ] = None,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An aggregate's state at a point of its history, with the events that made it."""
    env = _env(namespace)
    store = EventStore(env.client, env.topology, env.namespace, check_server=False)
    result = replay_aggregate(store, stream_id, to_seq=to_seq, at=at)
    if as_json:
        _echo_json(result.as_dict())
        return
    state = Table(
        title=f"{stream_id} at version {result.version} of {result.head}"
        + ("" if result.folded else " (no fold for this aggregate: version and last event)"),
        title_justify="left",
    )
    state.add_column("field")
    state.add_column("value", overflow="fold")
    for name, value in result.state.items():
        # One row per field of a nested object (the order of an order state ...).
        for key, item in value.items() if isinstance(value, dict) and value else [(None, value)]:
            state.add_row(name if key is None else f"{name}.{key}", _short(item, 100))
    events = Table(title="events folded", title_justify="left")
    for column in ("seq", "timestamp", "event type", "event id", "payload"):
        events.add_column(column, overflow="fold")
    for event in result.events:
        row = event_dict(event)
        events.add_row(
            str(row["sequence_number"]),
            row["timestamp"],
            row["event_type"],
            row["event_id"],
            _short(row["payload"], 80),
        )
    console = _console()
    console.print(state)
    console.print(events)


class _Bar:
    """A rich progress bar on a terminal (stderr); silent otherwise or with --json."""

    def __init__(self, label: str, *, enabled: bool, rate: bool = False) -> None:
        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        columns: list[ProgressColumn] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
        if rate:
            columns.append(_Rate())
        self._progress = Progress(*columns, TimeRemainingColumn(), console=console)
        self._task = self._progress.add_task(label, total=None)

    def update(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=total)

    @contextmanager
    def running(self) -> Iterator[ReplayProgress | None]:
        if not self.enabled:
            yield None
            return
        with self._progress:
            yield self.update


@replay_app.command("topic")
def topic_cmd(
    topic: Annotated[str, typer.Argument(help="Input topic of the service.")],
    *,
    start: FromOpt,
    service: Annotated[
        str, typer.Option("--service", "-s", help=f"One of: {', '.join(SERVICES)}.")
    ],
    end: ToOpt = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the sandbox namespace (replay-<random>).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Differences to show.")] = 20,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run a service over a recorded range in a sandbox; diff its outputs (exit 1 if any)."""
    env = _env(namespace)
    params = params_from_env(os.environ)
    sandbox = f"replay-{secrets.token_hex(6)}"
    bar = _Bar(f"replay {service} over {topic}", enabled=not as_json)
    with bar.running() as progress:
        report = replay_topic(
            env.client,
            env.topology,
            env.namespace,
            sandbox=sandbox,
            topic=topic,
            service=service,
            start=("--from", start),
            end=None if end is None else ("--to", end),
            params=params,
            keep=keep,
            progress=progress,
        )
    if as_json:
        _echo_json(report.as_dict(limit))
    else:
        _print_report(report, limit)
    if not report.identical:
        raise typer.Exit(1)


def _console() -> Console:
    # Piped output is read by people grepping for ids: do not fold it at 80 columns.
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _print_report(report: TopicReplayReport, limit: int) -> None:
    console = _console()
    verdict = "[green]identical[/]" if report.identical else "[red]DIFFERENT[/]"
    console.print(
        f"replay of {report.service} over {report.topic} "
        f"{report.first_entry} .. {report.last_entry} "
        f"({report.first_time} .. {report.last_time}): {verdict}\n"
        f"  state folded from {report.folded_before} earlier events; {report.inputs} inputs "
        f"replayed; {report.replayed_outputs} outputs replayed, {report.recorded_outputs} "
        "recorded\n"
        f"  sandbox {report.sandbox}: " + ("kept" if report.kept else "deleted"),
        highlight=False,
    )
    if report.unfinished:
        console.print(
            f"  [yellow]{len(report.unfinished)} input(s) still waiting at the end[/] "
            f"(e.g. {report.unfinished[0]}): their market data is not in the range"
        )
    if report.differences:
        shown = report.differences[:limit]
        table = Table(
            title=f"first {len(shown)} of {len(report.differences)} differences",
            title_justify="left",
        )
        table.add_column("event id", no_wrap=True, min_width=36)
        for column in ("kind", "field", "recorded", "replayed"):
            table.add_column(column, overflow="fold")
        for d in shown:
            table.add_row(
                d.event_id,
                d.kind.value,
                d.field,
                _short(d.recorded or "-"),
                _short(d.replayed or "-"),
            )
        console.print(table)


# -- projections ------------------------------------------------------------------------------
# --from 0 is the full blue/green rebuild of cdb.projections.rebuild; any later point goes
# through cdb.projections.rewind: a new generation seeded with the live rows, the rows the
# history from the cut writes rewound, then the same build / catch-up / swap from the cut on.


class _Rate(ProgressColumn):
    """Events per second of the task (rich's own speed columns count bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s")


@replay_app.command("projections")
def projections(
    name: Annotated[str | None, typer.Argument(help="One projection (default: all).")] = None,
    *,
    start: FromOpt,
    topic_name: Annotated[
        str,
        typer.Option(
            "--topic",
            help="Topic an entry-id --from names (its millisecond is the cut on every topic).",
        ),
    ] = "market_data",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Entries per build transaction.")
    ] = BUILD_BATCH,
    drop_old: Annotated[
        bool, typer.Option("--drop-old", help="Drop the previous generation after the swap.")
    ] = False,
    namespace: NamespaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild read models from --from on (blue/green): the rows the history from there writes
    are rewound and that history applied again; the live tables serve until the atomic swap.

    --from OFFSET: an entry id of --topic; on every topic the projection reads, the entries
    appended from that millisecond on are re-applied (0 = a full rebuild). --from TIME: on each
    partition, from the first event at or after it. An interrupted run resumes when run again.
    """
    from cdb.projections.definitions import definition, load_definitions
    from cdb.projections.rebuild import Progress as BuildProgress
    from cdb.projections.rebuild import rebuild
    from cdb.projections.rewind import From, refusal, rewind

    env = _env(namespace)
    bound = parse_bound(start, "--from")
    chosen = [definition(name)] if name else list(load_definitions().values())
    cut: From | None = None
    document: dict[str, Any] = {"from": {"value": start}}
    if isinstance(bound, datetime):
        cut = bound
        document["from"].update({"time": bound.isoformat()})
    elif bound is not Edge.FIRST:
        entry = locate(
            env.client, env.topology, env.namespace, topic=topic_name, option="--from", value=start
        )
        cut = EntryId.parse(entry.entry_id).ms
        document["from"].update(
            {
                "topic": topic_name,
                "entry_id": entry.entry_id,
                "time": entry.event.timestamp.isoformat(),
                "cut_ms": cut,
            }
        )
    if cut is not None:
        for d in chosen:  # before anything is built
            reason = refusal(d)
            if reason is not None:
                raise ContractError(
                    "replay",
                    [("projection", d.name, f"{reason}; rebuild it whole: --from 0")],
                )
    database_url = context.database_url(context.load_settings(namespace=namespace))
    results: list[dict[str, Any]] = []
    for d in chosen:
        bar = _Bar(f"{d.name} from {start}", enabled=not as_json, rate=True)
        with bar.running() as update:

            def relay(p: BuildProgress, update: ReplayProgress | None = update) -> None:
                if update is not None:
                    update(p.done, p.total)

            if cut is None:
                full = rebuild(
                    d,
                    env.client,
                    env.topology,
                    env.namespace,
                    database_url,
                    batch_size=batch_size,
                    drop_old=drop_old,
                    progress=relay,
                )
                results.append(
                    {
                        "projection": full.projection,
                        "generation": full.generation,
                        "previous_generation": full.previous_generation,
                        "full_rebuild": True,
                        "replayed": full.events,
                        "dead_letters": full.dead_letters,
                    }
                )
                continue
            report = rewind(
                d,
                env.client,
                env.topology,
                env.namespace,
                database_url,
                start=cut,
                batch_size=batch_size,
                drop_old=drop_old,
                progress=relay,
            )
            results.append({**report.as_dict(), "full_rebuild": False})
    document["projections"] = results
    if as_json:
        _echo_json(document)
        return
    where = document["from"]
    typer.echo(
        f"--from {start}: "
        + (
            "full rebuild from offset 0"
            if cut is None
            else f"{where['topic']} entry {where['entry_id']}, cut at millisecond {cut}"
            if "entry_id" in where
            else f"event time {where['time']}, cut per partition"
        )
    )
    for r in results:
        if r.get("resumed"):
            typer.echo(
                f"{r['projection']}: resumed an interrupted run; generation "
                f"{r['generation']} live, {r['dead_letters']} dead letters"
            )
            continue
        typer.echo(
            f"{r['projection']}: generation {r['generation']} live; {r['replayed']} entries "
            "re-applied"
            + (
                ""
                if r["full_rebuild"]
                else f" from the cut ({r['events_before_cut']} before it kept), "
                f"{r['rewound_rows']} rows rewound, {r['refolded_events']} earlier events "
                "of their aggregates refolded"
            )
            + f"; {r['dead_letters']} dead letters"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(replay_app, name="replay")
