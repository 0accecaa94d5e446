"""`cdb schema export [--out DIR] [--check]`: the JSON Schema of every contract version.

One file per contract version (``OrderV1.json``) plus ``index.json`` mapping
``EVENT_TYPE@version`` to its file, under ``streams/schemas/`` by default. ``--check`` writes
nothing and fails on breaking drift; a plain export refuses to overwrite a schema in a breaking
way unless ``--allow-breaking`` is given (a breaking change should be a new contract version).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cdb.cli.options import JsonOpt
from cdb.domain.schemas import Drift, current_schemas, drift, render
from cdb.errors import SchemaDriftError

OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Directory of the schema files (default: streams/schemas)."),
]
CheckOpt = Annotated[
    bool,
    typer.Option("--check", help="Write nothing; exit non-zero when a change is breaking."),
]
AllowBreakingOpt = Annotated[
    bool,
    typer.Option(
        "--allow-breaking",
        help="Overwrite committed schemas even on a breaking change (and drop removed ones).",
    ),
]


def register(app: typer.Typer) -> None:
    """Attach this family's commands to the root app."""
    family = typer.Typer(
        name="schema", help="JSON Schemas of the event contracts.", no_args_is_help=True
    )
    family.command("export")(export)
    app.add_typer(family)


def default_schema_dir() -> Path:
    # src/cdb/cli/schema.py -> repository root / streams / schemas
    return Path(__file__).resolve().parents[3] / "streams" / "schemas"


def read_committed(directory: Path) -> dict[str, dict[str, Any]]:
    """Every ``*.json`` file of ``directory`` parsed; a malformed one is a SchemaDriftError."""
    files: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return files
    problems: list[tuple[str, Any, str]] = []
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append((path.name, str(exc), "must be a readable JSON document"))
            continue
        if not isinstance(document, dict):
            problems.append((path.name, type(document).__name__, "must be a JSON object"))
            continue
        files[path.name] = document
    if problems:
        raise SchemaDriftError(str(directory), problems)
    return files


def export(
    out: OutOpt = None,
    check: CheckOpt = False,
    allow_breaking: AllowBreakingOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Write one JSON Schema per contract version; --check only compares."""
    directory = out if out is not None else default_schema_dir()
    committed = read_committed(directory)
    current = current_schemas()
    result = drift(committed, current)
    if result.breaking and (check or not allow_breaking):
        hint = "" if check else " (add a new contract version, or pass --allow-breaking)"
        raise SchemaDriftError(
            f"breaking schema drift in {directory}{hint}",
            [change.as_problem() for change in result.breaking],
        )
    written: list[str] = []
    removed: list[str] = []
    if not check:
        directory.mkdir(parents=True, exist_ok=True)
        for name, document in current.items():
            if name not in committed or render(committed[name]) != render(document):
                (directory / name).write_text(render(document), encoding="utf-8", newline="\n")
                written.append(name)
        for name in sorted(set(committed) - set(current)):
            (directory / name).unlink()
            removed.append(name)
    _report(directory, current, result, written, removed, check=check, json_output=json_output)


def _report(
    directory: Path,
    current: dict[str, dict[str, Any]],
    result: Drift,
    written: list[str],
    removed: list[str],
    *,
    check: bool,
    json_output: bool,
) -> None:
    stale = [] if not check else result.changed
    if json_output:
        document = {
            "directory": str(directory),
            "files": sorted(current),
            "written": written,
            "removed": removed,
            "out_of_date": stale,
            "breaking": [change.as_problem()[0] for change in result.breaking],
        }
        print(json.dumps(document))
        return
    table = Table(title=f"contract schemas in {directory}")
    table.add_column("file")
    table.add_column("state")
    for name in sorted(set(current) | set(removed)):
        if name in removed:
            state = "removed"
        elif name in written:
            state = "written"
        elif name in stale:
            state = "out of date (compatible): run cdb schema export"
        else:
            state = "up to date"
        table.add_row(name, state)
    Console().print(table)
