"""`cdb streams`: every topic partition of the topology with its live state."""

from __future__ import annotations

import typer

from cdb.cli.ops_common import ops, print_json, show, table
from cdb.cli.options import JsonOpt, NamespaceOpt
from cdb.runtime.inspect import streams_info


def streams(as_json: JsonOpt = False, namespace: NamespaceOpt = None) -> None:
    """Topics and partitions: length, first and last id, groups, lag, pending, dead letters."""
    ctx = ops(namespace)
    infos = streams_info(ctx.client, ctx.topology, ctx.namespace)
    if as_json:
        print_json({"namespace": ctx.namespace, "partitions": [i.as_dict() for i in infos]})
        return
    t = table(
        f"streams (namespace {ctx.namespace})",
        "topic",
        "part",
        "length",
        "first id",
        "last id",
        "group",
        "lag",
        "pending",
        "dead letters",
        "consumers",
    )
    for info in infos:
        head = [
            info.topic,
            str(info.partition),
            str(info.length),
            info.first_id or "-",
            info.last_id or "-",
        ]
        if not info.groups:
            t.add_row(*head, "-", "-", "-", "-", "-")
        for i, g in enumerate(info.groups):
            cells = head if i == 0 else ["", "", "", "", ""]
            t.add_row(
                *cells,
                g.name,
                "?" if g.lag is None else str(g.lag),
                str(g.pending),
                str(g.dead_letters),
                str(g.consumers),
            )
    show(t)


def register(app: typer.Typer) -> None:
    """Attach this family's commands to the root app."""
    app.command(name="streams")(streams)
