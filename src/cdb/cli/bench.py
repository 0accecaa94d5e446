"""`cdb bench ...`: performance, each figure a ratio against a baseline measured in the same run.

One function per benchmark, attached to ``bench_app``; with ``--json`` every benchmark prints
exactly one JSON object whose ``ratio`` field is its headline figure. Add a benchmark by
writing its function here and one line in :func:`register`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cdb.bench.append import run_append_bench
from cdb.bench.consume import run as run_consume_bench
from cdb.bench.pipeline import run as run_pipeline_bench
from cdb.bench.project import run as run_project_bench
from cdb.cli import context
from cdb.cli.options import JobsOpt, JsonOpt
from cdb.eventstore.topology import load_topology
from cdb.projections.split import default_parts

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks: each prints a ratio against a baseline measured in the same run.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Attach this family's commands to the root app."""
    for name, function in (
        ("append", append),
        ("consume", consume),
        ("project", project),
        ("pipeline", pipeline),
    ):
        bench_app.command(name)(function)
    app.add_typer(bench_app, name="bench")


R = TypeVar("R", bound="_Result")


class _Result(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


def _measure(json_output: bool, status: str, measure: Callable[[], R]) -> R | None:
    """Run a benchmark: with ``--json`` print its one JSON object and return None (the caller
    is done), otherwise run it under a spinner saying ``status`` and return the result."""
    if json_output:
        print(json.dumps(measure().as_dict()))
        return None
    with Console().status(status):
        return measure()


def append(
    events: Annotated[int, typer.Option(min=1, help="Events to append on each side.")] = 200_000,
    aggregates: Annotated[
        int, typer.Option(min=1, help="Order aggregates the events spread over.")
    ] = 1000,
    batch: Annotated[int, typer.Option(min=1, help="Appends (and raw XADDs) per pipeline.")] = 500,
    json_output: JsonOpt = False,
) -> None:
    """Store appends (Lua: concurrency + idempotency + topic) vs raw pipelined XADD.

    Uses a throwaway key namespace on the configured (or embedded) Redis and deletes it after.
    Target: the store at >= 40% of raw XADD.
    """
    settings = context.load_settings()
    client = context.redis_client(settings)
    try:
        result = _measure(
            json_output,
            f"appending {events:,} events twice (store, raw XADD) ...",
            lambda: run_append_bench(
                client, load_topology(), events=events, aggregates=aggregates, batch=batch
            ),
        )
    finally:
        client.close()
    if result is None:
        return
    console = Console()
    table = Table(title=f"append: {events:,} ORDER_PLACED events, ~{result.entry_bytes:.0f} bytes")
    table.add_column("path")
    table.add_column("events/s", justify="right")
    table.add_column("seconds", justify="right")
    table.add_row(
        f"store.append_many ({aggregates} aggregates, {batch}/pipeline)",
        f"{result.store_events_per_s:,.0f}",
        f"{result.store_seconds:.2f}",
    )
    table.add_row(
        f"raw XADD (1 stream, {batch}/pipeline)",
        f"{result.raw_events_per_s:,.0f}",
        f"{result.raw_seconds:.2f}",
    )
    console.print(table)
    verdict = "meets" if result.ratio >= 0.40 else "BELOW"
    console.print(f"ratio store/raw: [bold]{result.ratio:.2f}[/bold] ({verdict} the 0.40 target)")


def consume(
    entries: Annotated[
        int, typer.Option(min=100, help="Entries on the topic (each path reads all).")
    ] = 20_000,
    repeat: Annotated[
        int, typer.Option(min=1, max=5, help="Runs per path (1-5); the best one counts.")
    ] = 3,
    json_output: JsonOpt = False,
) -> None:
    """Consumer runtime vs a raw XREADGROUP COUNT 1000 + XACK loop (JSON decoded), in one run.

    Runtime paths: no-op handler (contracts decoded) and a handler appending one event per
    input, each with 1 and 2 worker processes. Targets: no-op >= 40% of raw; 2 workers >= 1.4x.
    """
    settings = context.load_settings()
    client = context.redis_client(settings)
    url = context.redis_url(settings)
    try:
        result = _measure(
            json_output,
            f"consuming {entries:,} entries along 5 paths, {repeat}x ...",
            lambda: run_consume_bench(client, url, entries, repeat),
        )
    finally:
        client.close()
    if result is None:
        return
    console = Console()
    doc = result.as_dict()
    table = Table(title=f"consume: {entries:,} ALERT_RAISED entries, batches of 1000")
    table.add_column("path")
    table.add_column("entries/s", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column(f"cores busy (of {result.cpus})", justify="right")
    table.add_column("Redis cores", justify="right")
    for name, rate in doc["entries_per_s"].items():
        used = result.usage.get(name)
        table.add_row(
            name,
            f"{rate:,.0f}",
            f"{result.seconds[name]:.2f}",
            f"{used.busy_cores:.2f}" if used else "",
            f"{used.redis_cores:.2f}" if used else "",
        )
    console.print(table)
    verdict = "meets" if doc["ratio"] >= 0.40 else "BELOW"
    console.print(f"ratio runtime no-op/raw: [bold]{doc['ratio']:.2f}[/bold] ({verdict} 0.40)")
    for mode, ceiling in doc["scale_ceiling"].items():
        key = f"scale_{mode}_2_vs_1"
        verdict = "meets" if doc[key] >= 1.4 else "BELOW"
        console.print(
            f"{key}: [bold]{doc[key]:.2f}[/bold] ({verdict} 1.4; at one worker's CPU per "
            f"entry, {result.cpus} CPUs allow about {ceiling:.2f})"
        )


def project(
    events: Annotated[
        int, typer.Option("--events", min=100, help="Events the live projector consumes.")
    ] = 100_000,
    rebuild_events: Annotated[
        int, typer.Option("--rebuild-events", min=1000, help="Events of the rebuild run.")
    ] = 1_000_000,
    jobs: JobsOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Live projector vs raw COPY of the same rows, and a rebuild (events/s, peak RSS).

    Uses throwaway databases (the configured server needs CREATEDB) and key namespaces, dropped
    after. Targets: live >= 15% of raw COPY; rebuild >= 35% of raw COPY, peak RSS < 300 MB.
    """
    settings = context.load_settings()
    client = context.redis_client(settings)
    redis_url = context.redis_url(settings)
    database_url = context.database_url(settings)
    try:
        result = _measure(
            json_output,
            f"projecting {events:,} events, raw COPY, rebuilding {rebuild_events:,} events ...",
            lambda: run_project_bench(
                client,
                redis_url,
                database_url,
                events=events,
                rebuild_events=rebuild_events,
                jobs=jobs or default_parts(),
            ),
        )
    finally:
        client.close()
    if result is None:
        return
    console = Console()
    table = Table(title=f"project: {result.events:,} events -> {result.rows:,} rows")
    table.add_column("path")
    table.add_column("rows/s", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("seconds", justify="right")
    fastest, slowest = result.raw_seconds_range
    table.add_row(
        f"raw COPY (same rows, equal tables; median of {fastest:.2f}-{slowest:.2f} s; "
        f"{result.raw_seconds_before:.2f} s before the rebuild, "
        f"{result.raw_seconds_after:.2f} s after)",
        f"{result.raw_rows_per_s:,.0f}",
        "",
        f"{result.raw_seconds:.2f}",
    )
    table.add_row(
        "live projector (consumer groups)",
        f"{result.live_rows_per_s:,.0f}",
        f"{result.live_events_per_s:,.0f}",
        f"{result.live_seconds:.2f}",
    )
    table.add_row(
        f"rebuild ({result.rebuild_events:,} events, --jobs {result.rebuild_processes}, "
        f"peak RSS {result.rebuild_peak_rss_mb:.0f} MB)",
        f"{result.rebuild_rows_per_s:,.0f}",
        f"{result.rebuild_events_per_s:,.0f}",
        f"{result.rebuild_seconds:.2f}",
    )
    console.print(table)
    live = "meets" if result.ratio >= 0.15 else "BELOW"
    rebuilt = "meets" if result.rebuild_ratio >= 0.35 else "BELOW"
    rss = "meets" if result.rebuild_peak_rss_mb < 300 else "ABOVE"
    console.print(f"ratio live/raw: [bold]{result.ratio:.2f}[/bold] ({live} the 0.15 target)")
    console.print(
        f"ratio rebuild/raw: [bold]{result.rebuild_ratio:.2f}[/bold] ({rebuilt} the 0.35 target); "
        f"peak RSS {result.rebuild_peak_rss_mb:.0f} MB ({rss} the 300 MB limit)"
    )


def pipeline(
    ticks: Annotated[
        int, typer.Option("--ticks", min=100, help="Ticks of the throughput phase.")
    ] = 20_000,
    rate: Annotated[
        float, typer.Option("--rate", min=1, help="Ticks/s of the latency phase.")
    ] = 1000.0,
    json_output: JsonOpt = False,
) -> None:
    """Every service as its own process: ticks/s feed -> caught-up projections, and p50/p99
    latency tick published -> trade row committed at a fixed rate.

    ``ratio`` = ticks_per_s / 10,000 (the target); the latency target is p99 < 50 ms. Uses
    throwaway databases (the configured server needs CREATEDB) and key namespaces.
    """
    settings = context.load_settings()
    redis_url = context.redis_url(settings)
    database_url = context.database_url(settings)
    result = _measure(
        json_output,
        f"pipeline: {ticks:,} ticks flat out, then the recording at {rate:,.0f}/s",
        lambda: run_pipeline_bench(redis_url, database_url, ticks=ticks, rate=rate),
    )
    if result is None:
        return
    console = Console()
    table = Table(title="pipeline: signal, risk, execution, portfolio, projector (processes)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        f"ticks/s feed -> caught-up projections ({result.ticks:,} ticks)",
        f"{result.ticks_per_s:,.0f}",
        f"{result.target_ticks_per_s:,.0f}",
    )
    table.add_row(
        f"p50 tick -> trade row ({result.trades} trades at {result.rate:,.0f} ticks/s)",
        f"{result.p50_ms:.1f} ms",
        "",
    )
    table.add_row(
        "p99 tick -> trade row", f"{result.p99_ms:.1f} ms", f"< {result.target_p99_ms:.0f} ms"
    )
    console.print(table)
    console.print(f"ratio ticks_per_s / 10,000: [bold]{result.ratio:.3f}[/bold]")
