"""Attaches every command family to the root app. Add a family here and nowhere else."""

from __future__ import annotations

import typer

from cdb.cli import (
    acl,
    bench,
    db,
    demo,
    dlq,
    pending,
    projections,
    replay,
    run,
    schema,
    servers,
    streams,
)


def register(app: typer.Typer) -> None:
    for family in (
        servers,
        demo,
        streams,
        pending,
        dlq,
        projections,
        replay,
        run,
        db,
        schema,
        bench,
        acl,
    ):
        family.register(app)
