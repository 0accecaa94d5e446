"""Events -> rows: the pure part of every projection (no I/O, unit-tested on its own).

Each function takes one stored event and returns ``(op, row)`` pairs; ``op`` names the SQL
statement of the projection definition (``projections/<name>.v<N>.toml``) and ``row`` holds one
value per column of that statement. Values are what PostgreSQL stores: enums become the original
system's lower-case words, money stays :class:`~decimal.Decimal`, JSON columns are JSON text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from cdb.domain.contracts import (
    AlertV1,
    CircuitBreakerV1,
    OrderResultV1,
    OrderStatus,
    OrderType,
    OrderV1,
    PortfolioSnapshotV1,
    PositionSide,
    PositionV1,
    Side,
    SignalBlockedV1,
    SignalV1,
)
from cdb.domain.envelope import Contract
from cdb.domain.event_types import EventType
from cdb.errors import ContractError, SplitUnsafeError

C = TypeVar("C", bound=Contract)


class EventEnvelope(Protocol):
    """What a mapping reads of a stored event (:class:`cdb.domain.envelope.EventEnvelope` and
    the projections' lighter :class:`cdb.projections.decode.StoredEvent` both fit)."""

    @property
    def event_id(self) -> uuid.UUID: ...
    @property
    def event_type(self) -> EventType: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def payload(self) -> Contract: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def sequence_number(self) -> int: ...


Row = dict[str, Any]
OpRow = tuple[str, Row]

BPS = Decimal(10_000)
_CENT = Decimal("0.01")
_RATIO = Decimal("0.000001")
EXCHANGE = "PAPER"

_ORDER_STATUS = {
    OrderStatus.FILLED: "filled",
    OrderStatus.PARTIALLY_FILLED: "partial",
    OrderStatus.CANCELLED: "cancelled",
    OrderStatus.REJECTED: "rejected",
}
_FILL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED})
_ZERO = Decimal(0)
_POSITION_SIDE = {PositionSide.LONG: "long", PositionSide.SHORT: "short", PositionSide.FLAT: "none"}


def slippage_bps(fill_price: Decimal, target_price: Decimal | None) -> Decimal | None:
    """|fill - target| / target x 10 000, to 2 decimals; None without a target price."""
    if target_price is None:
        return None
    if target_price <= 0:
        raise ContractError("slippage", [("target_price", target_price, "must be > 0")])
    bps = abs(fill_price - target_price) / target_price * BPS
    return bps.quantize(_CENT, rounding=ROUND_HALF_EVEN)


_ENCODER = json.JSONEncoder(separators=(",", ":"))
# JSON string literal of a str (C implementation); the fixed-shape metadata columns below are
# assembled from these instead of going through the encoder's per-call set-up each time.
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _json(value: Mapping[str, str | bool]) -> str:
    # Key order does not matter: jsonb normalises it. Money goes in as text, never as a float.
    return _ENCODER.encode(value)


# Enum -> the original system's lower-case word, looked up rather than `.value.lower()` per row.
_LOWER: dict[Enum, str] = {
    member: member.value.lower() for kind in (Side, OrderType) for member in kind
}


def _payload(event: EventEnvelope, kind: type[C]) -> C:
    payload = event.payload
    if not isinstance(payload, kind):
        raise ContractError(
            "projection",
            [("payload", type(payload).__name__, f"{event.event_type} needs {kind.__name__}")],
        )
    return payload


def aggregate_id(stream_id: str) -> str:
    """``order-abc`` -> ``abc`` (the id part of a stream id)."""
    _, sep, rest = stream_id.partition("-")
    return rest if sep else stream_id


# -- trading: signals, orders, trades -------------------------------------------------------------


def signal_rows(event: EventEnvelope) -> list[OpRow]:
    if event.event_type is EventType.SIGNAL_BLOCKED:
        blocked = _payload(event, SignalBlockedV1)
        return [
            (
                "signal_blocked",
                {
                    "id": blocked.signal_id,
                    "symbol": blocked.symbol,
                    "status": "blocked",
                    "block_reason": f"{blocked.reason_code.value}: {blocked.detail}",
                    "sequence_number": event.sequence_number,
                },
            )
        ]
    signal = _payload(event, SignalV1)
    return [
        (
            "signal",
            {
                "id": signal.signal_id,
                "symbol": signal.symbol,
                "signal_type": _LOWER[signal.side],
                "price": signal.price,
                # Confidence is a float in the contract; its shortest repr is what was meant.
                "confidence": Decimal(repr(signal.confidence)),
                "timestamp": signal.timestamp,
                "source": signal.strategy_id,
                "status": "generated",
                "metadata": f'{{"reason":{_quote(signal.reason)},"event_id":"{event.event_id}"}}',
                "sequence_number": event.sequence_number,
            },
        )
    ]


def order_rows(event: EventEnvelope) -> list[OpRow]:
    order = _payload(event, OrderV1)
    row: Row = {
        "order_id": order.order_id,
        "signal_id": order.signal_id,
        "symbol": order.symbol,
        "side": _LOWER[order.side],
        "order_type": _LOWER[order.order_type],
        "price": order.target_price,
        "size": order.quantity,
        # An order on the orders topic passed risk; risk's refusals are SIGNAL_BLOCKED.
        "approved": True,
        "rejection_reason": None,
        "status": "submitted",
        "created_at": order.timestamp,
        "submitted_at": order.timestamp,
        "metadata": (
            f'{{"strategy_id":{_quote(order.strategy_id)},'
            f'"reduce_only":{"true" if order.reduce_only else "false"}}}'
        ),
        "sequence_number": event.sequence_number,
    }
    return [("signal_stub", {"id": order.signal_id}), ("order_open", row)]


class OrderFill(NamedTuple):
    """What an order has had filled so far (cumulative, as execution reports it)."""

    filled: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)


def result_rows(event: EventEnvelope, before: OrderFill) -> tuple[list[OpRow], OrderFill]:
    """Rows for an execution report, given what the order had filled before it.

    Reports are cumulative; a trade row is the increment this report adds (only for FILLED and
    PARTIALLY_FILLED, as in the original db_writer).
    """
    report = _payload(event, OrderResultV1)
    status = _ORDER_STATUS[report.status]
    side = _LOWER[report.side]
    rows: list[OpRow] = []
    if report.signal_id is not None:
        rows.append(("signal_stub", {"id": report.signal_id}))
    rows.append(
        (
            "order_state",
            {
                "order_id": report.order_id,
                "signal_id": report.signal_id,
                "symbol": report.symbol,
                "side": side,
                "size": report.quantity,
                "status": status,
                "rejection_reason": report.reason
                if report.status is OrderStatus.REJECTED
                else None,
                "filled_size": report.filled_quantity,
                "avg_fill_price": report.price,
                "fees": report.fee,
                "filled_at": report.timestamp if report.status is OrderStatus.FILLED else None,
                "sequence_number": event.sequence_number,
            },
        )
    )
    after = OrderFill(report.filled_quantity, report.fee)
    size = report.filled_quantity - before.filled
    if report.status in _FILL_STATUSES and size > 0:
        if report.price is None:
            raise ContractError(
                "OrderResultV1", [("price", None, f"a {report.status} report needs a price")]
            )
        slip = (
            report.slippage_bps.quantize(_CENT, rounding=ROUND_HALF_EVEN)
            if report.slippage_bps is not None
            else slippage_bps(report.price, report.target_price)
        )
        rows.append(
            (
                "trade",
                {
                    "id": str(event.event_id),
                    "order_id": report.order_id,
                    "symbol": report.symbol,
                    "side": side,
                    "price": report.price,
                    "size": size,
                    "status": status,
                    "execution_price": report.price,
                    "target_price": report.target_price,
                    "slippage_bps": slip,
                    "fees": max(report.fee - before.fees, _ZERO),
                    "timestamp": report.timestamp,
                    "exchange": EXCHANGE,
                    "metadata": (
                        f'{{"strategy_id":{_quote(report.strategy_id)},'
                        f'"fee_asset":{_quote(report.fee_asset)},'
                        f'"filled_quantity":"{report.filled_quantity}"}}'
                    ),
                },
            )
        )
    return rows, after


# -- positions, portfolio snapshots, alerts -------------------------------------------------------


def position_rows(event: EventEnvelope) -> list[OpRow]:
    position = _payload(event, PositionV1)
    closed = event.event_type is EventType.POSITION_CLOSED
    return [
        (
            "position",
            {
                "position_id": aggregate_id(event.stream_id),
                "strategy_id": position.strategy_id,
                "symbol": position.symbol,
                "side": _POSITION_SIDE[position.side],
                "size": position.quantity,
                "entry_price": position.avg_entry_price,
                "current_price": position.mark_price,
                "unrealized_pnl": position.unrealised_pnl,
                "realized_pnl": position.realised_pnl,
                "status": "closed" if closed else "open",
                "opened_at": position.timestamp
                if event.event_type is EventType.POSITION_OPENED
                else None,
                "updated_at": position.timestamp,
                "closed_at": position.timestamp if closed else None,
                "sequence_number": event.sequence_number,
            },
        )
    ]


def snapshot_rows(event: EventEnvelope) -> list[OpRow]:
    snap = _payload(event, PortfolioSnapshotV1)
    exposure_pct = (
        (snap.exposure / snap.equity).quantize(_RATIO, rounding=ROUND_HALF_EVEN)
        if snap.equity > 0
        else None
    )
    return [
        (
            "snapshot",
            {
                "id": str(event.event_id),
                "timestamp": snap.timestamp,
                "total_equity": snap.equity,
                "available_balance": snap.cash,
                "margin_used": snap.exposure,
                "daily_pnl": snap.daily_pnl,
                "total_unrealized_pnl": snap.unrealised_pnl,
                "total_realized_pnl": snap.realised_pnl,
                # The original stores fractions of equity (0..1); the contract carries percent.
                "total_exposure_pct": exposure_pct,
                "max_drawdown_pct": (snap.drawdown_pct / 100).quantize(_RATIO),
                "open_positions": snap.open_positions,
                "metadata": f'{{"exposure":"{snap.exposure}"}}',
            },
        )
    ]


def alert_rows(event: EventEnvelope) -> list[OpRow]:
    if event.event_type is EventType.ALERT_RAISED:
        alert = _payload(event, AlertV1)
        row: Row = {
            "id": str(event.event_id),
            "event_type": event.event_type.value,
            "level": alert.level.value,
            "code": alert.code,
            "message": alert.message,
            "context": _json(alert.context),
            "timestamp": alert.timestamp,
        }
        return [("alert", row)]
    breaker = _payload(event, CircuitBreakerV1)
    tripped = event.event_type is EventType.CIRCUIT_BREAKER_TRIPPED
    row = {
        "id": str(event.event_id),
        "event_type": event.event_type.value,
        "level": "CRITICAL" if tripped else "INFO",
        "code": event.event_type.value,
        "message": breaker.reason,
        "context": _json(
            {
                "trading_day": breaker.trading_day.isoformat(),
                "daily_pnl": str(breaker.daily_pnl),
                "threshold": str(breaker.threshold),
            }
        ),
        "timestamp": breaker.timestamp,
    }
    return [("alert", row)]


# -- batches -------------------------------------------------------------------------------------

Mapper = Callable[[EventEnvelope], list[OpRow]]

MAPPERS: dict[EventType, Mapper] = {
    EventType.SIGNAL_GENERATED: signal_rows,
    EventType.SIGNAL_BLOCKED: signal_rows,
    EventType.ORDER_PLACED: order_rows,
    EventType.POSITION_OPENED: position_rows,
    EventType.POSITION_INCREASED: position_rows,
    EventType.POSITION_REDUCED: position_rows,
    EventType.POSITION_CLOSED: position_rows,
    EventType.PORTFOLIO_SNAPSHOT_TAKEN: snapshot_rows,
    EventType.ALERT_RAISED: alert_rows,
    EventType.CIRCUIT_BREAKER_TRIPPED: alert_rows,
    EventType.CIRCUIT_BREAKER_RESET: alert_rows,
}
RESULT_TYPES = frozenset(
    {
        EventType.ORDER_REJECTED,
        EventType.ORDER_FILLED,
        EventType.ORDER_PARTIALLY_FILLED,
        EventType.ORDER_CANCELLED,
    }
)

# The column that identifies a row of each op; rows of one op with the same key are merged
# before the statement runs (one multi-row upsert cannot touch a row twice).
OP_KEYS: dict[str, str] = {
    "signal": "id",
    "signal_blocked": "id",
    "signal_stub": "id",
    "order_open": "order_id",
    "order_state": "order_id",
    "trade": "id",
    "position": "position_id",
    "snapshot": "id",
    "alert": "id",
}

Role = Literal["aggregate", "event", "stub"]

# How the rows of each op relate to the events that write them:
# - aggregate: one row per aggregate (the event's stream), keyed by its id, its value a function
#   of that aggregate's events (latest-wins under a sequence-number guard, or merged columns);
# - event: one row per event, keyed by the event id (insert-only);
# - stub: a key-only placeholder that never changes an existing row (ON CONFLICT DO NOTHING).
# A projection with an op missing here can neither be rebuilt from an offset (replay --from)
# nor split across processes: nothing says whose rows its rows are.
OP_ROLES: dict[str, Role] = {
    "signal": "aggregate",
    "signal_blocked": "aggregate",
    "signal_stub": "stub",
    "order_open": "aggregate",
    "order_state": "aggregate",
    "trade": "event",
    "position": "aggregate",
    "snapshot": "event",
    "alert": "event",
}


def orders_of(events: Iterable[EventEnvelope], *, placed: bool) -> set[str]:
    """Order ids whose execution reports are in ``events`` (their prior fill is needed) and,
    with ``placed``, those the events place; one pass over a batch."""
    ids: set[str] = set()
    for event in events:
        event_type = event.event_type
        if event_type in RESULT_TYPES:
            ids.add(_payload(event, OrderResultV1).order_id)
        elif placed and event_type is EventType.ORDER_PLACED:
            ids.add(_payload(event, OrderV1).order_id)
    return ids


def batch_rows(
    events: Sequence[EventEnvelope],
    fills: Mapping[str, OrderFill] | None = None,
    *,
    own_keys_only: bool = False,
) -> dict[str, list[Row]]:
    """All rows of a batch per op, merged by key; ``fills`` is each reported order's prior fill.

    ``own_keys_only`` (a split rebuild, see ``cdb.projections.split``): every row must have the
    key its op's role says (:data:`OP_ROLES`: the event's aggregate id, or the event id; stubs
    aside), else :class:`~cdb.errors.SplitUnsafeError`.
    """
    running: dict[str, OrderFill] = dict(fills or {})
    merged: dict[str, dict[Any, Row]] = {op: {} for op in OP_KEYS}
    for event in events:
        if event.event_type in RESULT_TYPES:
            order_id = _payload(event, OrderResultV1).order_id
            pairs, running[order_id] = result_rows(event, running.get(order_id, _NO_FILL))
        else:
            mapper = MAPPERS.get(event.event_type)
            if mapper is None:
                raise ContractError(
                    "projection",
                    [("event_type", event.event_type.value, "no projection mapping for it")],
                )
            pairs = mapper(event)
        if own_keys_only:
            _check_own_keys(event, pairs)
        for op, row in pairs:
            rows = merged[op]
            key = row[OP_KEYS[op]]
            if key in rows:
                _merge(rows, op, key, row)
            else:
                rows[key] = row
    return {op: list(rows.values()) for op, rows in merged.items() if rows}


_NO_FILL = OrderFill()


def _check_own_keys(event: EventEnvelope, pairs: Sequence[tuple[str, Row]]) -> None:
    for op, row in pairs:
        role = OP_ROLES[op]
        if role == "stub":
            continue
        key = row[OP_KEYS[op]]
        own = aggregate_id(event.stream_id) if role == "aggregate" else str(event.event_id)
        if key != own:
            raise SplitUnsafeError(event.stream_id, str(event.event_id), op, str(key))


def _merge(rows: dict[Any, Row], op: str, key: Any, row: Row) -> None:
    """A second row of ``key`` for the same op within one batch."""
    previous = rows[key]
    if op == "signal_stub":
        return
    if op == "position" and row["opened_at"] is None:
        # The batch holds OPENED then later events of the same position: keep when it opened.
        row = {**row, "opened_at": previous["opened_at"]}
    if op in ("order_state", "position", "signal_blocked") and (
        row["sequence_number"] < previous["sequence_number"]
    ):
        return
    rows[key] = row
