"""Attaches every command family to the root app. Add a family here and nowhere else.

``cdb NAME ...`` imports only the family that owns NAME (:data:`OWNERS`): the families pull in
redis, SQLAlchemy, Alembic, psycopg and the bench code, and importing all of them for every
call made each command start a second later than it needs to. Help and unknown names load
every family, so both always show the whole command set. ``tests/unit/cli`` checks that
:data:`OWNERS` names exactly the commands the families register.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

import typer

FAMILIES = (
    "servers",
    "demo",
    "streams",
    "pending",
    "dlq",
    "projections",
    "replay",
    "run",
    "db",
    "schema",
    "bench",
    "acl",
)
"""The command-family modules of :mod:`cdb.cli`, in the order ``cdb --help`` lists them."""

OWNERS = {
    "up": "servers",
    "down": "servers",
    "status": "servers",
    "demo": "demo",
    "streams": "streams",
    "pending": "pending",
    "dlq": "dlq",
    "projections": "projections",
    "replay": "replay",
    "run": "run",
    "db": "db",
    "schema": "schema",
    "bench": "bench",
    "acl": "acl",
}
"""Top-level command name -> the family module that registers it."""


def _family(name: str) -> ModuleType:
    return importlib.import_module(f"cdb.cli.{name}")


def registered(app: typer.Typer) -> set[str]:
    """The top-level command names ``app`` has now."""
    names = {info.name for info in app.registered_commands if info.name}
    for group in app.registered_groups:
        name = group.name or (group.typer_instance.info.name if group.typer_instance else None)
        if isinstance(name, str):
            names.add(name)
    return names


def _load(app: typer.Typer, families: Sequence[str]) -> None:
    # A family already there (a test registered everything first) is not registered twice.
    present = registered(app)
    for name in families:
        if not any(family == name and command in present for command, family in OWNERS.items()):
            _family(name).register(app)


def register(app: typer.Typer) -> None:
    """Every family (help, tests, and anything that needs the whole command set)."""
    _load(app, FAMILIES)


def register_for(app: typer.Typer, argv: Sequence[str]) -> None:
    """Only the family that owns the command ``argv`` names, or every family if it names none."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    owner = OWNERS.get(command) if command is not None else None
    if owner is None or any(arg in ("--help", "-h") for arg in argv[: argv.index(command)]):
        register(app)
        return
    _load(app, [owner])
