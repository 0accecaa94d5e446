"""Projection definitions, loaded from ``projections/<name>.v<version>.toml``.

A definition names the projection, its version, the consumer group it reads with, the topics
and event types it consumes (in causal order: parents before children), the tables it owns and
the SQL of each op. The newest version of each name is the one in force.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from cdb.domain.event_types import EventType
from cdb.errors import ConfigError, TopologyError
from cdb.eventstore.topology import Topology
from cdb.projections.mapping import OP_KEYS, OP_ROLES

_FILE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>[0-9]+)\.toml$")
_COLUMN = re.compile(r"^([a-z_][a-z0-9_]*) ([a-z][a-z0-9]*)$")


@dataclass(frozen=True)
class Statement:
    """One op: its rows are COPYed into a temporary table, then ``sql`` reads them from it."""

    op: str
    sql: str  # with {schema} and {rows} placeholders
    columns: tuple[str, ...]
    types: tuple[str, ...]  # PostgreSQL type of each column of the temporary table

    @property
    def rows_table(self) -> str:
        return f"_cdb_rows_{self.op}"

    def render(self, schema: str) -> str:
        return self.sql.replace("{schema}", quote_ident(schema)).replace("{rows}", self.rows_table)

    def render_with_values(self, schema: str, rows: int) -> str:
        """The statement reading ``rows`` rows of parameters (one per column, each cast to its
        column's type) from a VALUES list named like the temporary table."""
        row = "(" + ", ".join(f"%s::{t}" for t in self.types) + ")"
        return (
            f"WITH {self.rows_table} ({', '.join(self.columns)}) AS "
            f"(VALUES {', '.join([row] * rows)}) {self.render(schema)}"
        )

    def create_rows_table(self) -> str:
        columns = ", ".join(f"{c} {t}" for c, t in zip(self.columns, self.types, strict=True))
        return (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {self.rows_table} ({columns}) "
            "ON COMMIT DELETE ROWS"
        )


@dataclass(frozen=True)
class Definition:
    name: str
    version: int
    group: str
    topics: dict[str, tuple[EventType, ...]]  # insertion order = causal read order
    tables: tuple[str, ...]  # parents first
    statements: tuple[Statement, ...]  # run in this order each batch
    source: Path
    # A rebuild may split the history across processes by aggregate stream (see
    # cdb.projections.split): every row is written by the events of one stream only, except
    # the placeholders, which a split rebuild gathers and writes last.
    splits_by_stream: bool = False

    @cached_property
    def placeholders(self) -> tuple[str, ...]:
        """The ops writing key-only placeholder rows (role ``stub`` in ``OP_ROLES``)."""
        return tuple(s.op for s in self.statements if OP_ROLES.get(s.op) == "stub")

    def statement(self, op: str) -> Statement:
        return next(s for s in self.statements if s.op == op)

    @cached_property
    def event_types(self) -> frozenset[EventType]:
        return frozenset(et for events in self.topics.values() for et in events)

    def check(self, topology: Topology) -> None:
        """Every topic, event type and group named here must exist in the topology."""
        for topic_name, events in self.topics.items():
            topic = topology.topic(topic_name)
            topic.group(self.group)
            stray = [et.value for et in events if et not in topic.events]
            if stray:
                raise TopologyError(
                    f"{self.source}: topic '{topic_name}' does not carry {', '.join(stray)}"
                )


def quote_ident(name: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ConfigError(f"identifier {name!r}: must be lower-case letters, digits and '_'")
    return f'"{name}"'


def definitions_dir() -> Path:
    # src/cdb/projections/definitions.py -> repository root / projections
    return Path(__file__).resolve().parents[3] / "projections"


@cache
def load_definitions(directory: Path | None = None) -> dict[str, Definition]:
    """The newest version of every projection definition, by name."""
    directory = directory or definitions_dir()
    found: dict[str, Definition] = {}
    for path in sorted(directory.glob("*.toml")):
        match = _FILE.match(path.name)
        if match is None:
            raise ConfigError(f"{path}: name must be <projection>.v<version>.toml")
        definition = parse_definition(path)
        if (definition.name, definition.version) != (match["name"], int(match["version"])):
            raise ConfigError(f"{path}: name/version inside differ from the file name")
        current = found.get(definition.name)
        if current is None or current.version < definition.version:
            found[definition.name] = definition
    owners: dict[tuple[str, str], str] = {}
    for definition in found.values():
        for topic in definition.topics:
            owner = owners.setdefault((topic, definition.group), definition.name)
            if owner != definition.name:
                raise ConfigError(
                    f"projections '{owner}' and '{definition.name}' both read topic '{topic}' "
                    f"with group '{definition.group}': each projection needs a group of its own"
                )
    return found


def definition(name: str) -> Definition:
    known = load_definitions()
    try:
        return known[name]
    except KeyError:
        raise ConfigError(
            f"unknown projection '{name}' (known: {', '.join(sorted(known))})"
        ) from None


def parse_definition(path: Path) -> Definition:
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        topics = {
            str(topic): tuple(EventType(et) for et in events)
            for topic, events in raw["topics"].items()
        }
        sql: dict[str, str] = raw["sql"]
        statements = []
        for op in raw["ops"]:
            if op not in OP_KEYS:
                raise ConfigError(f"{path}: op '{op}' has no row mapping in cdb.projections")
            columns: list[str] = []
            types: list[str] = []
            for declared in str(raw["columns"][op]).split(","):
                match = _COLUMN.match(declared.strip())
                if match is None:
                    raise ConfigError(
                        f"{path}: columns.{op}: {declared.strip()!r} is not '<name> <type>'"
                    )
                columns.append(match[1])
                types.append(match[2])
            if "%" in sql[op]:
                # The statement is sent with parameters (render_with_values): psycopg would
                # take a '%' for a placeholder.
                raise ConfigError(f"{path}: sql.{op}: '%' is not allowed in a statement")
            statements.append(Statement(op, sql[op], tuple(columns), tuple(types)))
        rebuild: dict[str, Any] = raw.get("rebuild", {})
        unknown = sorted(set(rebuild) - {"split"})
        if unknown:
            raise ConfigError(f"{path}: rebuild: unknown keys {unknown}")
        split = rebuild.get("split", "none")
        if split not in ("none", "stream"):
            raise ConfigError(f"{path}: rebuild.split: {split!r} is not 'none' or 'stream'")
        roleless = [op for op in raw["ops"] if op not in OP_ROLES]
        if split == "stream" and roleless:
            raise ConfigError(
                f"{path}: rebuild.split: ops {roleless} have no role in "
                "cdb.projections.mapping.OP_ROLES, so a split cannot tell whose rows they write"
            )
        return Definition(
            name=str(raw["name"]),
            version=int(raw["version"]),
            group=str(raw["group"]),
            topics=topics,
            tables=tuple(str(t) for t in raw["tables"]),
            statements=tuple(statements),
            source=path,
            splits_by_stream=split == "stream",
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: missing key {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
