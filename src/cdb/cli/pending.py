"""`cdb pending`: who holds which entries, what is stuck, and claiming stuck entries.

Exit code 1 while stuck entries exist (pending and untouched for ``--idle``: their consumer
stopped heartbeating), so a monitor can call it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cdb.cli.ops_common import ago, duration_ms, ops, print_json, show, table
from cdb.cli.options import GroupOpt, JsonOpt, NamespaceOpt
from cdb.errors import ConfigError
from cdb.runtime.inspect import (
    GroupPending,
    StuckEntry,
    claim_stuck,
    pending_info,
    stuck_entries,
)

ArgsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="[TOPIC] to inspect, or `claim [TOPIC]` to move stuck entries to --to.",
        show_default=False,
    ),
]
StuckOpt = Annotated[bool, typer.Option("--stuck", help="List the stuck entries.")]
IdleOpt = Annotated[
    str, typer.Option("--idle", help="Untouched this long counts as stuck (60s, 5m, ...).")
]
ToOpt = Annotated[
    str | None, typer.Option("--to", help="Consumer that receives claimed entries (claim).")
]


def pending(
    *,
    args: ArgsArg = None,
    group: GroupOpt = None,
    stuck: StuckOpt = False,
    idle: IdleOpt = "60s",
    to: ToOpt = None,
    as_json: JsonOpt = False,
    namespace: NamespaceOpt = None,
) -> None:
    """XPENDING inspection per group and consumer; `cdb pending claim --idle 60s --to C`."""
    words = list(args or [])
    claiming = bool(words) and words[0] == "claim"
    if claiming:
        words = words[1:]
    if len(words) > 1:
        raise ConfigError(f"unexpected arguments {words[1:]!r}: give at most one TOPIC")
    topic = words[0] if words else None
    idle_ms = duration_ms(idle, "--idle")
    ctx = ops(namespace)
    if claiming:
        if not to:
            raise ConfigError("option '--to' is required by `cdb pending claim`")
        summary = claim_stuck(
            ctx.client, ctx.topology, ctx.namespace, idle_ms, to=to, topic=topic, group=group
        )
        if as_json:
            print_json(summary.as_dict())
        else:
            show(
                f"claimed {len(summary.claimed)} entries to {to}"
                + (f"; cleared {len(summary.deleted)} deleted" if summary.deleted else "")
            )
        return
    groups = pending_info(ctx.client, ctx.topology, ctx.namespace, topic, group)
    stuck_list = stuck_entries(
        ctx.client, ctx.topology, ctx.namespace, idle_ms, topic=topic, group=group
    )
    if as_json:
        document: dict[str, object] = {
            "groups": [g.as_dict() for g in groups],
            "stuck_count": len(stuck_list),
            "idle_ms": idle_ms,
        }
        if stuck:
            document["stuck"] = [s.as_dict() for s in stuck_list]
        print_json(document)
    else:
        _print_tables(groups, stuck_list if stuck else None, len(stuck_list), idle)
    if stuck_list:
        raise typer.Exit(1)


def _print_tables(
    groups: list[GroupPending], stuck_list: list[StuckEntry] | None, stuck_count: int, idle: str
) -> None:
    t = table(
        "pending per group",
        "topic",
        "part",
        "group",
        "pending",
        "oldest idle",
        "max deliveries",
        "parked aggregates",
    )
    c = table(
        "consumers", "topic", "part", "group", "consumer", "pending", "idle", "last heartbeat"
    )
    p = table(
        "parked behind dead letters",
        "topic",
        "group",
        "aggregate",
        "held entry",
        "held as",
        "waiting",
    )
    for g in groups:
        t.add_row(
            g.topic,
            str(g.partition),
            g.group,
            str(g.pending),
            ago(g.oldest_idle_ms),
            str(g.max_deliveries_seen),
            str(len(g.parked)),
        )
        for con in g.consumers:
            c.add_row(
                g.topic,
                str(g.partition),
                g.group,
                con.name,
                str(con.pending),
                ago(con.idle_ms),
                ago(con.last_heartbeat_ms),
            )
        for park in g.parked:
            p.add_row(
                g.topic, g.group, park.aggregate, park.held_entry, park.held_as, str(park.waiting)
            )
    show(t, c)
    if p.row_count:
        show(p)
    if stuck_list is not None:
        s = table(
            f"stuck entries (idle >= {idle})",
            "topic",
            "part",
            "group",
            "entry",
            "consumer",
            "idle",
            "deliveries",
            "aggregate",
            "event type",
        )
        for e in stuck_list:
            s.add_row(
                e.topic,
                str(e.partition),
                e.group,
                e.entry_id,
                e.consumer,
                ago(e.idle_ms),
                str(e.deliveries),
                e.aggregate,
                e.event_type,
            )
        show(s)
    show(f"{stuck_count} stuck entries (idle >= {idle})")


def register(app: typer.Typer) -> None:
    """Attach this family's commands to the root app."""
    app.command(name="pending")(pending)
