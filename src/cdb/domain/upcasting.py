"""Upcasters: the original system's v1.0 JSON messages read into the current contracts.

The v1.0 services published loose JSON on Redis pub/sub (seeds 001 and 003). Those shapes are
converted here, field by field, and then validated by the unchanged contracts; the contracts
are never loosened to accept them. What is converted:

* ``type`` names the kind: ``market_data``, ``signal``, ``order``, ``order_result``, ``alert``.
* No ``schema_version`` / ``api_version`` means v1.0; any other version is refused.
* ``ts_ms`` or an integer ``timestamp`` is epoch **milliseconds** -> UTC datetime (values that
  look like seconds are refused rather than guessed). ISO strings pass through.
* ``price``, ``volume``, ``trade_qty``, ``qty``, ``quantity``, ``filled_quantity``, ``fee`` ...
  given as strings or JSON numbers -> Decimal (a JSON number via its shortest repr, so
  ``35250.5`` becomes exactly ``Decimal("35250.5")``).
* ``trade_qty`` -> ``volume``; ``qty`` -> ``quantity``; ``direction`` (``long``/``short``/
  ``buy``/``sell``, any case) -> ``side``; ``client_order_id`` -> ``order_id``.
* Symbols ``BTC/USDT``, ``btc-usdt`` -> ``BTC_USDT``.
* Lower-case statuses (``filled``, ``partial``, ``canceled`` ...) -> OrderStatus.

Fields the v1.0 messages did not carry come from an explicit :class:`LegacyContext` (when the
message was received, the strategy, the order a result answers); nothing is invented
silently, and a field the message has but the contract does not know is refused, not dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from cdb.domain.contracts import (
    AlertV1,
    MarketDataV1,
    OrderResultV1,
    OrderStatus,
    OrderType,
    OrderV1,
    SignalV1,
)
from cdb.domain.contracts.base import MISSING, Payload
from cdb.domain.contracts.order import ORDER_EVENT_FOR_STATUS
from cdb.domain.envelope import Contract, derive_id
from cdb.domain.event_types import EventType
from cdb.errors import ContractError

LEGACY_VERSIONS = frozenset({"1.0", "v1.0", "1", "v1"})
LEGACY_STRATEGY_ID = "legacy-v1"
"""The v1.0 system ran one strategy and never named it; its signals get this strategy id."""

# Epoch milliseconds before 2001-09-09 would be seconds mistaken for milliseconds.
_MIN_EPOCH_MS = 1_000_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SIDES = {"BUY": "BUY", "LONG": "BUY", "SELL": "SELL", "SHORT": "SELL"}
_STATUSES = {
    "FILLED": OrderStatus.FILLED,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "PARTIAL": OrderStatus.PARTIALLY_FILLED,
    "PARTIALLY-FILLED": OrderStatus.PARTIALLY_FILLED,
    "REJECTED": OrderStatus.REJECTED,
    "CANCELLED": OrderStatus.CANCELLED,
    "CANCELED": OrderStatus.CANCELLED,
}


@dataclass(frozen=True)
class LegacyContext:
    """What a v1.0 message did not say, supplied by the reader.

    ``received_at`` is used only when the message carries no timestamp; ``order`` is the
    order a v1.0 ``order_result`` answers (those results named only the order id).
    """

    received_at: datetime | None = None
    strategy_id: str = LEGACY_STRATEGY_ID
    order: OrderV1 | None = None
    reference_price: Decimal | None = None
    """The price a v1.0 signal (which carried none) referred to, e.g. the last tick's price."""


class _Message:
    """A legacy message being taken apart: every key must be consumed or passed on."""

    def __init__(self, kind: str, contract: str, message: Mapping[str, Any]) -> None:
        self.kind = kind
        self.contract = contract
        self.rest = dict(message)
        self.out: dict[str, Any] = {}
        self.source: dict[str, str] = {}  # contract field -> legacy field it came from
        self.problems: list[tuple[str, Any, str]] = []

    def fail(self, field: str, value: Any, rule: str) -> None:
        self.problems.append((field, value, rule))

    def take(self, *names: str) -> tuple[str, Any] | None:
        """The first of ``names`` present (all present ones are consumed and must agree)."""
        found = [(name, self.rest.pop(name)) for name in names if name in self.rest]
        if not found:
            return None
        first_name, first = found[0]
        for name, value in found[1:]:
            if value != first:
                self.fail(name, value, f"disagrees with {first_name}={first!r}")
        return found[0]

    def raise_if_failed(self) -> None:
        if self.problems:
            raise ContractError(f"{self.contract} (legacy v1.0 {self.kind})", self.problems)


def _decimal(msg: _Message, field: str, value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        msg.fail(field, value, "must be a number or a decimal string")
        return None
    try:
        # repr(float) is the shortest string that round-trips, i.e. what the JSON said.
        result = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        msg.fail(field, value, "must be a number or a decimal string")
        return None
    if not result.is_finite():
        msg.fail(field, value, "must be finite")
        return None
    return result


def _epoch_ms(msg: _Message, field: str, value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg.fail(field, value, "must be integer epoch milliseconds (or an ISO-8601 string)")
        return None
    if value < _MIN_EPOCH_MS:
        msg.fail(field, value, "looks like epoch seconds; v1.0 timestamps are milliseconds")
        return None
    return _EPOCH + timedelta(milliseconds=value)


def _timestamp(msg: _Message, context: LegacyContext) -> None:
    ts_ms = msg.rest.pop("ts_ms", None)
    raw = msg.rest.pop("timestamp", None)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(ts_ms, str) and ts_ms.strip().isdigit():
        ts_ms = int(ts_ms.strip())
    from_ms = _epoch_ms(msg, "ts_ms", ts_ms) if ts_ms is not None else None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        from_raw: Any = _epoch_ms(msg, "timestamp", raw)
    else:
        from_raw = raw  # an ISO string (or garbage) for the contract to judge
    if from_ms is not None and isinstance(from_raw, datetime) and from_ms != from_raw:
        msg.fail("timestamp", raw, f"disagrees with ts_ms={ts_ms}")
    if ts_ms is not None or raw is not None:
        value = from_ms if ts_ms is not None else from_raw
        if value is not None:
            msg.out["timestamp"] = value
    elif context.received_at is not None:
        msg.out["timestamp"] = context.received_at
    else:
        msg.fail(
            "timestamp",
            MISSING,
            "the message has no ts_ms/timestamp and no LegacyContext.received_at was given",
        )


def _symbol(msg: _Message, required: bool = True) -> None:
    found = msg.take("symbol")
    if found is None:
        if required:
            msg.fail("symbol", MISSING, "required")
        return
    _, value = found
    if isinstance(value, str):
        value = value.strip().upper().replace("/", "_").replace("-", "_")
    msg.out["symbol"] = value
    msg.source.setdefault("symbol", "symbol")


def _side(msg: _Message, required: bool = True) -> None:
    found = msg.take("side", "direction")
    if found is None:
        if required:
            msg.fail("side", MISSING, "required (side or direction)")
        return
    name, value = found
    msg.source["side"] = name
    side = _SIDES.get(value.strip().upper()) if isinstance(value, str) else None
    if side is None:
        msg.fail(name, value, "must be BUY/SELL or long/short (any case)")
        return
    msg.out["side"] = side


def _decimals(msg: _Message, target: str, *names: str) -> None:
    """Convert the first of ``names`` present into ``target``; the others must agree with it."""
    present = [(name, msg.rest.pop(name)) for name in names if name in msg.rest]
    values = [(name, raw, _decimal(msg, name, raw)) for name, raw in present]
    if not values or any(value is None for _, _, value in values):
        return
    first_name, first_raw, first = values[0]
    for name, raw, value in values[1:]:
        if value != first:
            msg.fail(name, raw, f"disagrees with {first_name}={first_raw!r}")
    msg.out[target] = first
    msg.source[target] = first_name


def _version(message: Mapping[str, Any], kind: str) -> None:
    for key in ("schema_version", "api_version"):
        if key in message and str(message[key]).strip().lower() not in LEGACY_VERSIONS:
            raise ContractError(
                f"legacy {kind}",
                [(key, message[key], "not a v1.0 message; only v1.0 messages are upcast")],
            )


P = TypeVar("P", bound=Payload)


def _finish(msg: _Message, contract: type[P]) -> P:
    msg.raise_if_failed()
    # Whatever is left is passed on so the contract refuses it by name (never dropped).
    data = {**msg.rest, **msg.out}
    try:
        return contract.parse(data)
    except ContractError as exc:
        problems = [(_source_name(msg, field), value, rule) for field, value, rule in exc.problems]
        raise ContractError(f"{contract.__name__} (legacy v1.0 {msg.kind})", problems) from None


def _source_name(msg: _Message, field: str) -> str:
    source = msg.source.get(field)
    return field if source is None or source == field else f"{source} (as {field})"


def _start(kind: str, contract: type[Payload], message: Mapping[str, Any]) -> _Message:
    if not isinstance(message, Mapping):
        raise ContractError(f"legacy {kind}", [("<message>", message, "must be a JSON object")])
    _version(message, kind)
    msg = _Message(kind, contract.__name__, message)
    msg.rest.pop("schema_version", None)
    msg.rest.pop("api_version", None)
    found = msg.take("type")
    if found is not None and found[1] != kind:
        msg.fail("type", found[1], f"must be {kind!r} for this upcaster")
    return msg


def upcast_market_data(
    message: Mapping[str, Any], context: LegacyContext | None = None
) -> MarketDataV1:
    """A v1.0 ``market_data`` message (``ts_ms``, string price, ``trade_qty``, ``BTC/USDT``)."""
    context = context or LegacyContext()
    msg = _start("market_data", MarketDataV1, message)
    _symbol(msg)
    _decimals(msg, "price", "price")
    _decimals(msg, "volume", "volume", "trade_qty")
    _side(msg, required=False)
    _timestamp(msg, context)
    return _finish(msg, MarketDataV1)


def upcast_signal(message: Mapping[str, Any], context: LegacyContext | None = None) -> SignalV1:
    """A v1.0 ``signal``: strategy, id and reference price come from the message or context.

    Without a ``signal_id`` the id is derived from strategy, symbol, side and timestamp, so
    reading the same legacy message twice yields the same signal.
    """
    context = context or LegacyContext()
    msg = _start("signal", SignalV1, message)
    _symbol(msg)
    _side(msg)
    _decimals(msg, "price", "price", "reference_price")
    if "price" not in msg.out and not any(p[0] == "price" for p in msg.problems):
        if context.reference_price is None:
            msg.fail(
                "price",
                MISSING,
                "v1.0 signals carried no reference price; give LegacyContext.reference_price",
            )
        else:
            msg.out["price"] = context.reference_price
    found = msg.take("strategy_id", "strategy")
    msg.out["strategy_id"] = found[1] if found is not None else context.strategy_id
    _timestamp(msg, context)
    found = msg.take("signal_id", "id")
    if found is not None:
        msg.out["signal_id"] = found[1]
    elif not msg.problems:
        msg.out["signal_id"] = str(
            derive_id(
                "legacy-signal",
                str(msg.out["strategy_id"]),
                str(msg.out["symbol"]),
                str(msg.out["side"]),
                _iso(msg.out.get("timestamp")),
            )
        )
    return _finish(msg, SignalV1)


def upcast_order(message: Mapping[str, Any], context: LegacyContext | None = None) -> OrderV1:
    """A v1.0 ``order`` (``qty``, ``direction``, ``client_order_id``, ``price`` as limit)."""
    context = context or LegacyContext()
    msg = _start("order", OrderV1, message)
    found = msg.take("order_id", "client_order_id")
    if found is None:
        msg.fail("order_id", MISSING, "required (order_id or client_order_id)")
    else:
        msg.out["order_id"] = found[1]
    _symbol(msg)
    _side(msg)
    _decimals(msg, "quantity", "quantity", "qty")
    _decimals(msg, "target_price", "target_price", "price")
    found = msg.take("order_type")
    order_type = found[1] if found is not None else OrderType.MARKET.value
    # v1.0 orders without an order type were executed at market by the mock execution.
    msg.out["order_type"] = order_type.upper() if isinstance(order_type, str) else order_type
    found = msg.take("strategy_id", "strategy")
    msg.out["strategy_id"] = found[1] if found is not None else context.strategy_id
    _timestamp(msg, context)
    return _finish(msg, OrderV1)


def upcast_order_result(
    message: Mapping[str, Any], context: LegacyContext | None = None
) -> OrderResultV1:
    """A v1.0 ``order_result``; what it does not say comes from ``context.order``.

    v1.0 results named only ``order_id``, ``status``, ``filled_quantity`` and ``price``:
    symbol, side, strategy, signal, ordered quantity and target price are taken from the order
    they answer. A missing ``fee`` is 0 in the symbol's quote asset (the v1.0 mock execution
    charged none); ``slippage_bps`` is computed from ``target_price`` when absent, as the v1.0
    db_writer did.
    """
    context = context or LegacyContext()
    msg = _start("order_result", OrderResultV1, message)
    found = msg.take("order_id", "client_order_id")
    if found is None:
        msg.fail("order_id", MISSING, "required (order_id or client_order_id)")
    else:
        msg.out["order_id"] = found[1]
        order = context.order
        if order is not None and order.order_id != found[1]:
            msg.fail(found[0], found[1], f"answers a different order than {order.order_id!r}")
    _symbol(msg, required=context.order is None)
    _side(msg, required=context.order is None)
    _decimals(msg, "quantity", "quantity", "qty")
    _decimals(msg, "filled_quantity", "filled_quantity", "filled_qty")
    _decimals(msg, "price", "price", "avg_price")
    _decimals(msg, "target_price", "target_price")
    _decimals(msg, "fee", "fee")
    _decimals(msg, "slippage_bps", "slippage_bps")
    found = msg.take("status")
    status = (
        _STATUSES.get(found[1].strip().upper()) if found and isinstance(found[1], str) else None
    )
    if found is None:
        msg.fail("status", MISSING, "required")
    elif status is None:
        msg.fail("status", found[1], "must be one of filled, partial, rejected, cancelled")
    else:
        msg.out["status"] = status
    _timestamp(msg, context)
    found = msg.take("strategy_id", "strategy")
    if found is not None:
        msg.out["strategy_id"] = found[1]
        msg.source["strategy_id"] = found[0]
    found = msg.take("signal_id")
    if found is not None:
        msg.out["signal_id"] = found[1]
    _fill_from_order(msg, context.order)
    msg.out.setdefault("strategy_id", context.strategy_id)
    # A FILLED v1.0 result filled the whole order: ordered == filled.
    if "quantity" not in msg.out and status is OrderStatus.FILLED and "filled_quantity" in msg.out:
        msg.out["quantity"] = msg.out["filled_quantity"]
    if "fee" not in msg.out:
        msg.out["fee"] = Decimal(0)
    if "fee_asset" not in msg.rest and isinstance(msg.out.get("symbol"), str):
        msg.out["fee_asset"] = msg.out["symbol"].rpartition("_")[2]
    _slippage(msg)
    return _finish(msg, OrderResultV1)


def _fill_from_order(msg: _Message, order: OrderV1 | None) -> None:
    if order is None:
        return
    taken = {
        "symbol": order.symbol,
        "side": order.side.value,
        "strategy_id": order.strategy_id,
        "signal_id": order.signal_id,
        "quantity": order.quantity,
        "target_price": order.target_price,
    }
    for field, value in taken.items():
        if field not in msg.out:
            if value is not None:
                msg.out[field] = value
        elif value is not None and msg.out[field] != value:
            msg.fail(
                msg.source.get(field, field),
                msg.out[field],
                f"disagrees with the order it answers ({value!r})",
            )


def _slippage(msg: _Message) -> None:
    price, target = msg.out.get("price"), msg.out.get("target_price")
    if "slippage_bps" in msg.out or price is None or target is None or target <= 0:
        return
    sign = 1 if msg.out.get("side") == "BUY" else -1
    # Positive slippage is a worse price than targeted: paid more on a buy, got less on a sell.
    msg.out["slippage_bps"] = (sign * (price - target) / target * 10_000).quantize(Decimal("0.01"))


def upcast_alert(message: Mapping[str, Any], context: LegacyContext | None = None) -> AlertV1:
    """A v1.0 ``alert``; ``level`` in any case; ``context`` values are turned into text."""
    context = context or LegacyContext()
    msg = _start("alert", AlertV1, message)
    found = msg.take("level")
    if found is None:
        msg.fail("level", MISSING, "required")
    else:
        msg.out["level"] = found[1].strip().upper() if isinstance(found[1], str) else found[1]
    found = msg.take("context")
    if found is not None:
        if isinstance(found[1], Mapping):
            msg.out["context"] = {str(k): _text(v) for k, v in found[1].items()}
        else:
            msg.fail("context", found[1], "must be an object")
    _timestamp(msg, context)
    return _finish(msg, AlertV1)


def _text(value: Any) -> str:
    return (
        value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
    )


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


_KINDS: dict[str, Callable[[Mapping[str, Any], LegacyContext | None], Contract]] = {
    "market_data": upcast_market_data,
    "signal": upcast_signal,
    "order": upcast_order,
    "order_result": upcast_order_result,
    "alert": upcast_alert,
}
LEGACY_KINDS = tuple(_KINDS)


LEGACY_CHANNELS: dict[str, str] = {
    "market_data": "market_data",
    "signals": "signal",
    "orders": "order",
    "order_results": "order_result",
    "alerts": "alert",
}
"""The v1.0 pub/sub channels and the kind of message each carried."""


def upcast_legacy(
    message: Mapping[str, Any],
    context: LegacyContext | None = None,
    *,
    channel: str | None = None,
) -> tuple[EventType, Contract]:
    """Read any v1.0 message into ``(event type, payload)``.

    The message's ``type`` picks the upcaster; messages without one (the v1.0 websocket feed
    published bare ticks) are identified by the ``channel`` they were read from.
    """
    if not isinstance(message, Mapping):
        raise ContractError(
            "legacy v1.0 message", [("<message>", message, "must be a JSON object")]
        )
    if channel is not None and channel not in LEGACY_CHANNELS:
        raise ContractError(
            "legacy v1.0 message",
            [("channel", channel, "must be one of " + ", ".join(LEGACY_CHANNELS))],
        )
    implied = LEGACY_CHANNELS[channel] if channel is not None else None
    kind: Any = message.get("type", implied if implied is not None else MISSING)
    upcaster = _KINDS.get(kind) if isinstance(kind, str) else None
    if upcaster is None:
        raise ContractError(
            "legacy v1.0 message",
            [
                (
                    "type",
                    kind,
                    "must name the kind (or pass the channel it came from): one of "
                    + ", ".join(LEGACY_KINDS),
                )
            ],
        )
    if implied is not None and kind != implied:
        raise ContractError(
            "legacy v1.0 message",
            [("type", kind, f"does not match channel {channel!r}, which carries {implied!r}")],
        )
    payload = upcaster(message, context)
    if isinstance(payload, OrderResultV1):
        return ORDER_EVENT_FOR_STATUS[payload.status], payload
    return _EVENT_OF_KIND[kind], payload


_EVENT_OF_KIND = {
    "market_data": EventType.MARKET_DATA_RECEIVED,
    "signal": EventType.SIGNAL_GENERATED,
    "order": EventType.ORDER_PLACED,
    "alert": EventType.ALERT_RAISED,
}
