"""`cdb up`, `cdb down`, `cdb status`: the embedded Redis and PostgreSQL, or the configured ones."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdb.cli import context
from cdb.cli.options import JsonOpt
from cdb.config import Settings
from cdb.embedded import ServerStatus
from cdb.embedded.external import probe_postgres, probe_redis


def register(app: typer.Typer) -> None:
    """Attach this family's commands to the root app."""
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)


def up(json_output: JsonOpt = False) -> None:
    """Start the embedded servers (or reuse them if already up); configured servers are used."""
    settings = context.load_settings()
    servers = context.embedded_servers(settings)
    if not settings.uses_external_redis:
        servers.redis.ensure_running()
    if not settings.uses_external_database:
        servers.postgres.ensure_running()
    _show(settings, _statuses(settings), json_output)


def down(json_output: JsonOpt = False) -> None:
    """Stop the embedded servers of CDB_HOME (configured external servers are never touched)."""
    settings = context.load_settings()
    stopped = context.embedded_servers(settings).down()
    context.forget_servers()
    if json_output:
        print(json.dumps({"home": str(settings.resolved_home()), "stopped": stopped}))
        return
    for name, was_running in stopped.items():
        print(f"{name}: {'stopped' if was_running else 'was not running'}")
    external = [
        name
        for name, used in (
            ("redis", settings.uses_external_redis),
            ("postgres", settings.uses_external_database),
        )
        if used
    ]
    if external:
        print(f"external {' and '.join(external)} (configured by URL) left alone")


def status(json_output: JsonOpt = False) -> None:
    """Show the servers cdb uses: embedded or external, URL (password masked), version, pid."""
    settings = context.load_settings()
    _show(settings, _statuses(settings), json_output)


def _statuses(settings: Settings) -> list[ServerStatus]:
    servers = context.embedded_servers(settings)
    redis_status = (
        probe_redis(settings.redis_url.get_secret_value())
        if settings.redis_url is not None
        else servers.redis.status()
    )
    postgres_status = (
        probe_postgres(settings.database_url.get_secret_value())
        if settings.database_url is not None
        else servers.postgres.status()
    )
    return [redis_status, postgres_status]


def _show(settings: Settings, statuses: list[ServerStatus], json_output: bool) -> None:
    home = str(settings.resolved_home())
    if json_output:
        document: dict[str, Any] = {
            "home": home,
            "servers": {item.name: item.to_json() for item in statuses},
        }
        print(json.dumps(document))
        return
    table = Table(title=f"cdb servers (home {home})", show_lines=False)
    table.add_column("", style="bold", no_wrap=True)
    for item in statuses:
        table.add_column(item.name, overflow="fold")
    rows: list[tuple[str, list[str]]] = [
        ("mode", [item.mode for item in statuses]),
        (
            "state",
            [
                ("[green]up[/green]" if item.up else "[red]down[/red]")
                + (f" ({escape(item.error)})" if item.error else "")
                for item in statuses
            ],
        ),
        ("url", [escape(item.url) or "-" for item in statuses]),
        ("version", [item.version or "-" for item in statuses]),
        ("pid", [str(item.pid) if item.pid else "-" for item in statuses]),
        ("data dir", [escape(item.data_dir or "-") for item in statuses]),
        ("log", [escape(item.log_file or "-") for item in statuses]),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    Console().print(table)
