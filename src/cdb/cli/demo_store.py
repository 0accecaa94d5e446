"""`cdb demo --store-only`: a walk-through of the event store (appends, conflicts, retries).

Every event has a deterministic id and a fixed timestamp, so a second run appends nothing new:
it shows each append coming back as an idempotent duplicate at its original position. Nothing
is ever deleted; the walk-through writes to its own namespace (``demo-store`` unless
``--namespace`` or ``CDB_NAMESPACE`` says otherwise).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from cdb.cli import context
from cdb.config import mask_url
from cdb.domain.contracts import (
    MarketDataV1,
    OrderResultV1,
    OrderStatus,
    OrderType,
    OrderV1,
    Side,
    SignalV1,
)
from cdb.domain.envelope import Contract, EventMetadata, NewEvent, derive_id
from cdb.domain.event_types import EventType
from cdb.errors import ConcurrencyError
from cdb.eventstore import AppendResult, EventStore
from cdb.eventstore.topology import load_topology

DEMO_NAMESPACE = "demo-store"
_T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
_SIGNAL = "signal-demo-0001"
_ORDER = "order-demo-0001"
_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def walk_through(namespace: str | None = None) -> None:
    """Walk through the event store: appends, a refused conflict, an idempotent retry, reads."""
    settings = context.load_settings(namespace=namespace)
    ns = settings.namespace if "namespace" in settings.model_fields_set else DEMO_NAMESPACE
    console = Console(highlight=False)
    url = context.redis_url(settings)
    client = redis.Redis.from_url(url)
    try:
        store = EventStore(client, load_topology(), ns)
        console.rule("[bold]cdb demo: the event store on Redis Streams")
        console.print(f"Redis {mask_url(url)}   namespace [bold]{ns}[/bold]\n")
        _walk_through(console, store)
        _list_streams(console, client, store)
    finally:
        client.close()


def _event(event_type: EventType, n: int, payload: Contract, producer: str) -> NewEvent:
    return NewEvent(
        event_id=derive_id("demo", event_type.value, str(n)),
        event_type=event_type,
        timestamp=_T0 + timedelta(seconds=n),
        payload=payload,
        metadata=EventMetadata(
            correlation_id="sig-demo-0001", producer=producer, traceparent=_TRACE
        ),
    )


def _events() -> dict[str, NewEvent]:
    at = _T0 + timedelta(seconds=1)
    signal = SignalV1(
        signal_id="sig-demo-0001",
        strategy_id="momentum",
        symbol="BTC_USDT",
        side=Side.BUY,
        confidence=0.81,
        reason="price up 1.8% in 5 minutes on 2.3x average volume",
        price=Decimal("64210.50"),
        timestamp=at,
    )
    order = OrderV1(
        order_id="ord-demo-0001",
        signal_id="sig-demo-0001",
        strategy_id="momentum",
        symbol="BTC_USDT",
        side=Side.BUY,
        quantity=Decimal("0.0150"),
        order_type=OrderType.MARKET,
        timestamp=at + timedelta(seconds=1),
    )
    result: dict[str, Any] = {
        "order_id": "ord-demo-0001",
        "signal_id": "sig-demo-0001",
        "strategy_id": "momentum",
        "symbol": "BTC_USDT",
        "side": Side.BUY,
        "quantity": Decimal("0.0150"),
        "fee_asset": "USDT",
    }
    filled = OrderResultV1(
        **result,
        status=OrderStatus.FILLED,
        filled_quantity=Decimal("0.0150"),
        price=Decimal("64218.90"),
        fee=Decimal("0.96328350"),
        slippage_bps=Decimal("1.31"),
        timestamp=at + timedelta(seconds=2),
    )
    cancelled = OrderResultV1(
        **result,
        status=OrderStatus.CANCELLED,
        filled_quantity=Decimal("0"),
        fee=Decimal("0"),
        reason="operator cancel",
        timestamp=at + timedelta(seconds=3),
    )
    tick = MarketDataV1(
        symbol="BTC_USDT",
        price=Decimal("64210.50"),
        volume=Decimal("12.75"),
        interval="1m",
        timestamp=_T0,
    )
    return {
        "tick": _event(EventType.MARKET_DATA_RECEIVED, 0, tick, "feed"),
        "signal": _event(EventType.SIGNAL_GENERATED, 1, signal, "signal"),
        "placed": _event(EventType.ORDER_PLACED, 2, order, "risk"),
        "filled": _event(EventType.ORDER_FILLED, 3, filled, "execution"),
        "cancelled": _event(EventType.ORDER_CANCELLED, 4, cancelled, "operator"),
    }


def _walk_through(console: Console, store: EventStore) -> None:
    events = _events()

    console.print("[bold]1. Appends[/bold] (one atomic Lua step each: aggregate stream + topic)")
    tick = events["tick"]
    # Topic-only publishes are not idempotent by event_id: look before publishing again.
    seen = [t for t in store.read_topic("market_data") if t.event.event_id == tick.event_id]
    if seen:
        console.print(f"   market tick: already on topic market_data (entry {seen[0].entry_id})")
    else:
        (entry_id,) = store.publish("market_data", "market-BTC_USDT", [tick])
        console.print(
            f"   market tick: published to topic market_data (entry {entry_id}); "
            "ticks have no aggregate stream"
        )
    _show_append(console, store.append(_SIGNAL, [events["signal"]], expected_version=0), "signal")
    _show_append(console, store.append(_ORDER, [events["placed"]], expected_version=0), "placed")
    _show_append(console, store.append(_ORDER, [events["filled"]], expected_version=1), "filled")

    console.print("\n[bold]2. A version conflict is refused[/bold]")
    console.print(
        f"   an operator, who loaded {_ORDER} at version 1, cancels it (expected_version=1):"
    )
    try:
        store.append(_ORDER, [events["cancelled"]], expected_version=1)
        console.print("   [red]unexpected: the stale append was accepted[/red]")
    except ConcurrencyError as exc:
        console.print(f"   [yellow]refused:[/yellow] ConcurrencyError: {exc}")
    console.print(f"   {_ORDER} is still at version {store.version(_ORDER)}: nothing was written")

    console.print("\n[bold]3. An idempotent retry[/bold] (same event_id, sent again)")
    before = store.version(_ORDER)
    retry = store.append(_ORDER, [events["placed"]], expected_version=0)
    short_id = str(events["placed"].event_id)[:8]
    console.print(
        f"   ORDER_PLACED {short_id}... sent again -> duplicate={retry.duplicate}, original "
        f"position #{retry.first_seq}; version {before} -> {store.version(_ORDER)}"
    )

    console.print(f"\n[bold]4. Read-back[/bold] of {_ORDER}")
    table = Table(show_edge=False)
    for column in ("seq", "event_type", "event_id", "time", "payload"):
        table.add_column(column, no_wrap=column != "payload")
    for event in store.read_aggregate(_ORDER):
        table.add_row(
            str(event.sequence_number),
            event.event_type.value,
            str(event.event_id)[:8],
            event.timestamp.strftime("%H:%M:%S"),
            _summary(event.payload),
        )
    console.print(table)


def _show_append(console: Console, result: AppendResult, what: str) -> None:
    if result.duplicate:
        console.print(
            f"   {what}: already stored at {result.stream_id} #{result.first_seq} by an earlier "
            "run: idempotent, nothing written"
        )
    else:
        console.print(
            f"   {what}: appended to {result.stream_id} #{result.first_seq}, "
            f"topic entry {result.entry_ids[0]}"
        )


def _summary(payload: Contract) -> str:
    if isinstance(payload, OrderV1):
        return f"{payload.side} {payload.quantity} {payload.symbol} {payload.order_type}"
    if isinstance(payload, OrderResultV1):
        fill = f"{payload.filled_quantity}/{payload.quantity}"
        return f"{payload.status} {fill} @ {payload.price} fee {payload.fee} {payload.fee_asset}"
    return payload.model_dump_json(exclude_none=True)[:60]


def _list_streams(console: Console, client: redis.Redis, store: EventStore) -> None:
    console.print(f"\n[bold]5. Streams in namespace {store.namespace}[/bold]")
    table = Table(show_edge=False)
    for column in ("key", "entries", "last entry id"):
        table.add_column(column)
    keys = sorted(
        key.decode() if isinstance(key, bytes) else str(key)
        for key in client.scan_iter(match=store.keys.pattern(), count=1000, _type="stream")
    )
    for key in keys:
        last = client.xrevrange(key, count=1)
        last_id = last[0][0] if last else b"-"
        table.add_row(
            key,
            str(client.xlen(key)),
            last_id.decode() if isinstance(last_id, bytes) else str(last_id),
        )
    console.print(table)
