"""Entry point of the ``cdb`` command: one Typer app, one sub-module per command family."""

from __future__ import annotations

import sys

import typer

from cdb.errors import CdbError

app = typer.Typer(
    name="cdb",
    help=(
        "Claire de Binare: event-sourced crypto paper trading on Redis Streams.\n\n"
        "Without CDB_REDIS_URL / CDB_DATABASE_URL, cdb starts embedded Redis and PostgreSQL "
        "servers under .cdb/ and reuses them (see `cdb status`)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Each command family lives in its own module and attaches itself to `app`.
    from cdb.cli import commands

    commands.register(app)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        code = app(args=argv, standalone_mode=False)
        # Without standalone mode click returns (not raises) the code of a `typer.Exit(n)`.
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except CdbError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(1)
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
