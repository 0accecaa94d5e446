"""`cdb dlq list|show|requeue|purge`: dead letters, with filters.

Filters (any combination): --topic, --group, --event-type, --aggregate, --error-type,
--since/--until (ISO time or a duration ago such as 2h). Requeue and purge record an audit
entry; purge asks for confirmation unless --yes; both support --dry-run.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cdb.cli.ops_common import Ops, ops, print_json, show, table, time_ms, when
from cdb.cli.options import DryRunOpt, JsonOpt, NamespaceOpt, YesOpt
from cdb.errors import CdbError
from cdb.runtime import dlq as dlq_ops
from cdb.runtime._util import now_ms

dlq_app = typer.Typer(help="Dead letters: list, show, requeue, purge.", no_args_is_help=True)

TopicOpt = Annotated[str | None, typer.Option("--topic", "-t", help="Topic name.")]
GroupOpt = Annotated[str | None, typer.Option("--group", "-g", help="Consumer group.")]
EventTypeOpt = Annotated[str | None, typer.Option("--event-type", help="e.g. ORDER_PLACED.")]
AggregateOpt = Annotated[str | None, typer.Option("--aggregate", help="Aggregate stream id.")]
ErrorTypeOpt = Annotated[
    str | None, typer.Option("--error-type", help="e.g. ContractError, HandlerRejected.")
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Dead-lettered at or after (ISO time or 2h ago).")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="Dead-lettered at or before (ISO time or 2h ago).")
]


def _filter(
    *,
    topic: str | None,
    group: str | None,
    event_type: str | None,
    aggregate: str | None,
    error_type: str | None,
    since: str | None,
    until: str | None,
) -> dlq_ops.DlqFilter:
    now = now_ms()
    return dlq_ops.DlqFilter(
        topic=topic,
        group=group,
        event_type=event_type,
        aggregate=aggregate,
        error_type=error_type,
        since_ms=time_ms(since, "--since", now),
        until_ms=time_ms(until, "--until", now),
    )


def _letters_table(title: str, letters: list[dlq_ops.DeadLetterEntry]) -> None:
    t = table(
        title,
        "dlq id",
        "when",
        "topic",
        "group",
        "event type",
        "aggregate",
        "reason",
        "error type",
        "deliveries",
    )
    for d in letters:
        t.add_row(
            d.dlq_id,
            when(d.at_ms),
            d.topic,
            d.group,
            d.event_type,
            d.aggregate,
            d.reason,
            d.error_type,
            str(d.deliveries),
        )
    show(t)


@dlq_app.command("list")
def list_(
    *,
    topic: TopicOpt = None,
    group: GroupOpt = None,
    event_type: EventTypeOpt = None,
    aggregate: AggregateOpt = None,
    error_type: ErrorTypeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 1000,
    as_json: JsonOpt = False,
    namespace: NamespaceOpt = None,
) -> None:
    """Dead letters matching the filters."""
    ctx: Ops = ops(namespace)
    flt = _filter(
        topic=topic,
        group=group,
        event_type=event_type,
        aggregate=aggregate,
        error_type=error_type,
        since=since,
        until=until,
    )
    letters = dlq_ops.list_dead_letters(ctx.client, ctx.topology, ctx.namespace, flt, limit)
    if as_json:
        print_json({"count": len(letters), "dead_letters": [d.as_dict() for d in letters]})
    else:
        _letters_table(f"{len(letters)} dead letters", letters)


@dlq_app.command("show")
def show_(
    dlq_id: Annotated[str, typer.Argument(help="Dead-letter id, original entry id or event id.")],
    topic: TopicOpt = None,
    group: GroupOpt = None,
    as_json: JsonOpt = False,
    namespace: NamespaceOpt = None,
) -> None:
    """One dead letter in full: why, where from, and the original fields."""
    ctx = ops(namespace)
    letter = dlq_ops.show(
        ctx.client, ctx.topology, ctx.namespace, dlq_id, dlq_ops.DlqFilter(topic=topic, group=group)
    )
    if letter is None:
        raise CdbError(f"no dead letter with id {dlq_id!r}")
    if as_json:
        print_json(letter.as_dict())
        return
    t = table(f"dead letter {letter.dlq_id}", "field", "value")
    for name, value in letter.as_dict().items():
        if name != "fields":
            t.add_row(name, when(value) if name == "at_ms" else str(value))
    f = table("original entry", "field", "value")
    for name, value in letter.fields.items():
        f.add_row(name, value)
    show(t, f)


@dlq_app.command("requeue")
def requeue(
    *,
    topic: TopicOpt = None,
    group: GroupOpt = None,
    event_type: EventTypeOpt = None,
    aggregate: AggregateOpt = None,
    error_type: ErrorTypeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    chunk: Annotated[int, typer.Option("--chunk", help="Entries per atomic step.")] = 100,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    namespace: NamespaceOpt = None,
) -> None:
    """Put matching dead letters back on their topic for their group (same event ids)."""
    ctx = ops(namespace)
    flt = _filter(
        topic=topic,
        group=group,
        event_type=event_type,
        aggregate=aggregate,
        error_type=error_type,
        since=since,
        until=until,
    )
    result = dlq_ops.requeue(
        ctx.client, ctx.topology, ctx.namespace, flt, dry_run=dry_run, chunk=max(1, chunk)
    )
    if as_json:
        print_json(
            {
                "dry_run": result.dry_run,
                "count": result.count,
                "requeued": [{"dlq_id": a, "entry_id": b} for a, b in result.moved],
            }
        )
        return
    if dry_run:
        _letters_table(f"would requeue {result.count} dead letters", result.letters)
    else:
        show(f"requeued {result.count} dead letters")


@dlq_app.command("purge")
def purge(
    *,
    topic: TopicOpt = None,
    group: GroupOpt = None,
    event_type: EventTypeOpt = None,
    aggregate: AggregateOpt = None,
    error_type: ErrorTypeOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
    namespace: NamespaceOpt = None,
) -> None:
    """Delete matching dead letters (later entries of their aggregates then flow again)."""
    ctx = ops(namespace)
    flt = _filter(
        topic=topic,
        group=group,
        event_type=event_type,
        aggregate=aggregate,
        error_type=error_type,
        since=since,
        until=until,
    )
    count, letters = dlq_ops.purge(ctx.client, ctx.topology, ctx.namespace, flt, dry_run=True)
    if not dry_run and count and not yes:
        typer.confirm(f"Delete {count} dead letters for good?", abort=True)
    if not dry_run and count:
        count, _ = dlq_ops.purge(ctx.client, ctx.topology, ctx.namespace, flt)
    if as_json:
        print_json({"dry_run": dry_run, "count": count})
    elif dry_run:
        _letters_table(f"would purge {count} dead letters", letters)
    else:
        show(f"purged {count} dead letters")


def register(app: typer.Typer) -> None:
    """Attach this family's commands to the root app."""
    app.add_typer(dlq_app, name="dlq")
