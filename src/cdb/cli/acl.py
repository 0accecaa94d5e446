"""`cdb acl show|apply`: Redis ACL users per service, derived from the stream topology.

``show`` prints the ``ACL SETUSER`` lines (the password as a placeholder, never a value);
``apply --password-dir DIR`` sets them on the configured Redis, each user's password read from
``DIR/<user>`` (e.g. ``DIR/cdb-signal``, as a ``/run/secrets`` mount provides them). The
default user is left alone: switch it off yourself once every client logs in as its own user.
ACLs live on each server: on a Redis Cluster apply them to every node (or use an ACL file).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.table import Table

from cdb.cli import context
from cdb.cli.options import JsonOpt, NamespaceOpt
from cdb.errors import ConfigError, StoreError
from cdb.eventstore.acl import AclUser, derive_acl, setuser_args
from cdb.eventstore.topology import load_topology

PLACEHOLDER = "<from file>"

ServiceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--service",
        "-s",
        help="Only this service (repeatable); 'operator' and 'admin' are users too.",
    ),
]
VersionOpt = Annotated[
    int | None,
    typer.Option(
        "--redis-version",
        help="6 (one key list, no read/write split) or 7 (%R~/%W~ and selectors).",
    ),
]
PasswordDirOpt = Annotated[
    Path,
    typer.Option(
        "--password-dir",
        help="Directory with one file per user, named like the user (cdb-signal, ...).",
    ),
]

_SAFE = re.compile(r"^[A-Za-z0-9_.:%~*{}|+\-@&>]+$")


def register(app: typer.Typer) -> None:
    """Attach this family's commands to the root app."""
    family = typer.Typer(
        name="acl",
        help="Redis ACL users per service, derived from streams/topology.toml.",
        no_args_is_help=True,
    )
    family.command("show")(show)
    family.command("apply")(apply)
    app.add_typer(family)


def show(
    service: ServiceOpt = None,
    redis_version: VersionOpt = None,
    namespace: NamespaceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Print the ACL SETUSER line of each user (passwords as a placeholder)."""
    version = _version(redis_version if redis_version is not None else 7)
    users = _users(namespace, service)
    if json_output:
        print(json.dumps({"redis_version": version, "users": [_doc(u, version) for u in users]}))
        return
    for user in users:
        print(setuser_line(user, version))


def apply(
    password_dir: PasswordDirOpt,
    service: ServiceOpt = None,
    redis_version: VersionOpt = None,
    namespace: NamespaceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Create or replace each user on the configured Redis; passwords from --password-dir."""
    users = _users(namespace, service)
    passwords = {user.name: read_password(password_dir, user.name) for user in users}
    client = context.redis_client(context.load_settings(namespace=namespace))
    try:
        version = _version(redis_version if redis_version is not None else server_major(client))
        for user in users:
            apply_user(client, user, passwords[user.name], version)
    finally:
        client.close()
    if json_output:
        print(json.dumps({"redis_version": version, "applied": [u.name for u in users]}))
        return
    table = Table(title=f"ACL users applied (Redis {version} rules)")
    table.add_column("user")
    table.add_column("commands", justify="right")
    table.add_column("key patterns", justify="right")
    for user in users:
        patterns = {*user.read_patterns, *user.write_patterns}
        table.add_row(
            user.name,
            "all" if user.superuser else str(len(user.commands)),
            "all" if user.superuser else str(len(patterns)),
        )
    Console().print(table)


def setuser_line(user: AclUser, redis_version: int) -> str:
    """``ACL SETUSER ...`` as redis-cli takes it, the password replaced by a placeholder."""
    args = setuser_args(user, PLACEHOLDER, redis_version)
    return "ACL SETUSER " + " ".join(_quote(a) for a in args)


def apply_user(client: redis.Redis, user: AclUser, password: str, redis_version: int) -> None:
    try:
        args = setuser_args(user, password, redis_version)
        client.execute_command("ACL", "SETUSER", *args)  # type: ignore[no-untyped-call]
    except redis.ResponseError as exc:
        # The message names the rule Redis refused; it never contains the password argument.
        raise StoreError(f"ACL SETUSER {user.name} refused by the server: {exc}") from None


def read_password(directory: Path, user: str) -> str:
    path = directory / user
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"password file {path} for user '{user}' does not exist") from None
    except OSError as exc:
        raise ConfigError(f"password file {path}: {exc.strerror}") from None
    if not value or any(c.isspace() for c in value):
        raise ConfigError(
            f"password file {path}: must hold one non-empty password without whitespace"
        )
    return value


def server_major(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("server")
    return 7 if int(str(info["redis_version"]).split(".")[0]) >= 7 else 6


def _users(namespace: str | None, services: list[str] | None) -> list[AclUser]:
    settings = context.load_settings(namespace=namespace)
    topology = load_topology(settings.topology_file)
    return derive_acl(topology, settings.namespace, services or None)


def _version(value: int) -> int:
    if value not in (6, 7):
        raise ConfigError(f"--redis-version {value}: must be 6 or 7")
    return value


def _doc(user: AclUser, version: int) -> dict[str, Any]:
    return {
        "name": user.name,
        "service": user.service,
        "superuser": user.superuser,
        "commands": list(user.commands),
        "read_patterns": list(user.read_patterns),
        "write_patterns": list(user.write_patterns),
        "selectors": [asdict(s) for s in user.selectors],
        "setuser": setuser_line(user, version),
    }


def _quote(arg: str) -> str:
    return arg if _SAFE.match(arg) else '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
