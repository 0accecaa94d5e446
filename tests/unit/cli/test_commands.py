"""The lazy command table: each call loads only its family, yet every command stays reachable."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from cdb.cli import commands


def _names(app: typer.Typer) -> set[str]:
    return commands.registered(app)


def test_owners_name_exactly_the_registered_commands() -> None:
    app = typer.Typer()
    commands.register(app)
    assert _names(app) == set(commands.OWNERS)
    assert set(commands.OWNERS.values()) == set(commands.FAMILIES)


@pytest.mark.parametrize("command", sorted(commands.OWNERS))
def test_a_command_loads_only_its_own_family(command: str) -> None:
    app = typer.Typer()
    commands.register_for(app, [command, "--json"])
    assert command in _names(app)
    owner = commands.OWNERS[command]
    assert _names(app) == {c for c, family in commands.OWNERS.items() if family == owner}


def test_registering_twice_adds_nothing() -> None:
    app = typer.Typer()
    commands.register(app)
    count = len(app.registered_commands) + len(app.registered_groups)
    commands.register_for(app, ["pending"])
    commands.register(app)
    assert len(app.registered_commands) + len(app.registered_groups) == count


@pytest.mark.parametrize("argv", [[], ["--help"], ["nosuch"], ["--help", "pending"]])
def test_help_and_unknown_names_load_every_family(argv: list[str]) -> None:
    app = typer.Typer()
    commands.register_for(app, argv)
    assert _names(app) == set(commands.OWNERS)


def test_a_status_call_does_not_import_the_database_or_bench_code() -> None:
    code = (
        "import sys; from cdb.cli import app, commands; "
        "commands.register_for(app.app, ['pending', '--help']); "
        "print(sorted(m for m in ('alembic', 'sqlalchemy', 'cdb.bench.pipeline') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
