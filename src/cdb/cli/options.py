"""Option declarations shared by every command, so the same flag means the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document instead of tables (for scripts).")
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Key namespace (default: CDB_NAMESPACE or 'cdb'); sandboxes never collide.",
    ),
]
TopicArg = Annotated[str, typer.Argument(help="Topic name from streams/topology.toml.")]
GroupOpt = Annotated[
    str | None, typer.Option("--group", "-g", help="Consumer group declared for the topic.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Processes a rebuild's load is split across, for projections that allow it "
        "(default: the CPUs this process may use, at most 4; 1 leaves cores to live work).",
    ),
]
