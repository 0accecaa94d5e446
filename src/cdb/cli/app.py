"""Entry point of the ``cdb`` command: one Typer app, one sub-module per command family."""

from __future__ import annotations

import sys

import typer

from cdb.cli import helptext
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


@app.callback()
def _root() -> None:
    # A callback keeps the root a group of commands even when only one family is registered
    # (Typer runs a lone command as the whole app, which would swallow its name).
    pass


def _register() -> None:
    # Each command family lives in its own module and attaches itself to `app`.
    from cdb.cli import commands

    commands.register(app)


def _register_for(argv: list[str]) -> None:
    # A call that names its command loads only that family (see cdb.cli.commands).
    from cdb.cli import commands

    commands.register_for(app, argv)


def main(argv: list[str] | None = None) -> None:
    try:
        _register_for(sys.argv[1:] if argv is None else argv)
        command = typer.main.get_command(app)
        helptext.reflow_tree(command)
        code = command(args=argv, standalone_mode=False)
        # Without standalone mode click returns (not raises) the code of a `typer.Exit(n)`.
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except CdbError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", err=True)
        sys.exit(1)
    except typer.TyperException as exc:
        # Usage errors (unknown command, bad option, no arguments) arrive here in non-standalone
        # mode: show them as the command line would, without a traceback.
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        message = _server_unreachable(exc)
        if message is not None:
            _fail(message)
        raise


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    sys.exit(2)


def _server_unreachable(exc: Exception) -> str | None:
    """One line for a server that cannot be reached, instead of a driver traceback.

    Driver messages name host and port but never the password, so they are safe to show.
    """
    import redis

    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return (
            f"cannot reach Redis: {exc} (check CDB_REDIS_URL, or unset it to use the "
            "embedded server; `cdb status` shows what is used)"
        )
    import psycopg
    import sqlalchemy.exc

    cause: BaseException = exc
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        cause = exc.orig if exc.orig is not None else exc
    if isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        return (
            f"cannot reach PostgreSQL: {first} (check CDB_DATABASE_URL, or unset it to use "
            "the embedded server; `cdb status` shows what is used)"
        )
    return None


if __name__ == "__main__":
    main()
