"""Field types and enumerations shared by the contracts, each carrying its rule.

Rules that every contract obeys:

* Money, prices and quantities are :class:`~decimal.Decimal`. They accept a ``Decimal``, an
  ``int`` or a decimal string, and refuse binary floats (``0.1`` is not exactly 0.1; a float
  arriving here has already lost precision). JSON carries them as strings.
* Timestamps are timezone-aware and in UTC; naive values, other offsets and epoch numbers are
  refused (epoch milliseconds are a legacy v1.0 shape: see :mod:`cdb.domain.upcasting`).
* Symbols are ``BASE_QUOTE`` in upper case letters and digits, 1-20 characters, pattern
  :data:`SYMBOL_PATTERN` (``BTC_USDT``; the legacy ``BTC/USDT`` is converted by the upcaster).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import core_schema

SYMBOL_PATTERN = r"^[A-Z0-9]+_[A-Z0-9]+$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
ASSET_PATTERN = r"^[A-Z0-9]{1,12}$"
INTERVAL_PATTERN = r"^[1-9][0-9]*[smhdwM]$"
# The textual forms Decimal accepts and emits for finite values (including exponents: 1E+3).
DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"
    FLAT = "FLAT"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class OrderStatus(StrEnum):
    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


class AlertLevel(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class BlockReason(StrEnum):
    """Why the risk layer refused a signal; every refusal is a SIGNAL_BLOCKED event."""

    CIRCUIT_BREAKER_TRIPPED = "CIRCUIT_BREAKER_TRIPPED"
    MAX_POSITION_EXCEEDED = "MAX_POSITION_EXCEEDED"
    MAX_EXPOSURE_EXCEEDED = "MAX_EXPOSURE_EXCEEDED"
    DAILY_DRAWDOWN = "DAILY_DRAWDOWN"
    INSUFFICIENT_CASH = "INSUFFICIENT_CASH"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    STALE_SIGNAL = "STALE_SIGNAL"
    DUPLICATE_SIGNAL = "DUPLICATE_SIGNAL"
    INVALID_SIGNAL = "INVALID_SIGNAL"


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(
            "must be a Decimal, an int or a decimal string, not a float "
            "(binary floats lose precision)"
        )
    return value


def _decimal_schema(
    what: str, *, gt: int | None = None, ge: int | None = None, le: int | None = None
) -> WithJsonSchema:
    # The JSON Schema shows the wire form (a decimal string, or an integer). The numeric bound
    # keywords stay on the schema so the drift check sees a tightened rule; JSON Schema
    # validators ignore them on strings, the model enforces them.
    schema: dict[str, Any] = {
        "anyOf": [{"type": "string", "pattern": DECIMAL_PATTERN}, {"type": "integer"}],
        "format": "decimal",
        "description": what,
    }
    for keyword, bound in (("exclusiveMinimum", gt), ("minimum", ge), ("maximum", le)):
        if bound is not None:
            schema[keyword] = bound
    return WithJsonSchema(schema)


_EXACT = BeforeValidator(_no_float)

Price = Annotated[
    Decimal,
    Field(gt=0, allow_inf_nan=False),
    _EXACT,
    _decimal_schema("price, a decimal string > 0", gt=0),
]
Quantity = Annotated[
    Decimal,
    Field(ge=0, allow_inf_nan=False),
    _EXACT,
    _decimal_schema("quantity, a decimal string >= 0", ge=0),
]
PositiveQuantity = Annotated[
    Decimal,
    Field(gt=0, allow_inf_nan=False),
    _EXACT,
    _decimal_schema("quantity, a decimal string > 0", gt=0),
]
Money = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    _EXACT,
    _decimal_schema("amount of money, a decimal string (may be negative)"),
]
NonNegativeMoney = Annotated[
    Decimal,
    Field(ge=0, allow_inf_nan=False),
    _EXACT,
    _decimal_schema("amount of money, a decimal string >= 0", ge=0),
]
Percent = Annotated[
    Decimal,
    Field(ge=0, le=100, allow_inf_nan=False),
    _EXACT,
    _decimal_schema("percentage 0..100, a decimal string", ge=0, le=100),
]
BasisPoints = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    _EXACT,
    _decimal_schema("basis points (1/100 of a percent), a decimal string"),
]


def _no_epoch(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            "must be an ISO-8601 timestamp in UTC, not an epoch number "
            "(legacy ts_ms messages go through cdb.domain.upcasting)"
        )
    return value


def _utc_only(value: datetime) -> datetime:
    if value.utcoffset() != UTC.utcoffset(None):
        raise ValueError(f"must be in UTC (offset +00:00), got offset {value.utcoffset()}")
    return value.astimezone(UTC)


UtcTimestamp = Annotated[AwareDatetime, BeforeValidator(_no_epoch), AfterValidator(_utc_only)]
Symbol = Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=SYMBOL_PATTERN)]
EntityId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
Asset = Annotated[str, StringConstraints(pattern=ASSET_PATTERN)]
Interval = Annotated[str, StringConstraints(pattern=INTERVAL_PATTERN)]
Venue = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Z0-9_]+$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Confidence = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


# -- the same rules for JSON read back from a store, without calling back into Python ----------
#
# Decoding a stored event is the hot path of every consumer. There the input is JSON, where a
# float, an integer and a string are told apart by the parser, so the rules above need no Python
# callback. Each rewriter takes the core schema node pydantic built for one of the validators
# above and returns a node that accepts no more than it does, from JSON input only, with equal
# results; it returns None when the node is not the shape it knows (the node is then kept).
# Whatever the native node refuses is decided again by the normal validation, which also words
# the error, so refusing more here is never wrong; accepting more would be.


def _exact_json(node: dict[str, Any]) -> Any:
    # BeforeValidator(_no_float) around a decimal: only a JSON string or integer reaches the
    # decimal's own rules, as the Python str or int the decimal sees today.
    inner = node.get("schema", {})
    if node.get("type") != "function-before" or inner.get("type") != "decimal":
        return None
    return core_schema.chain_schema(
        [
            core_schema.union_schema(
                [core_schema.str_schema(strict=True), core_schema.int_schema(strict=True)],
                mode="left_to_right",
            ),
            inner,
        ]
    )


# The form pydantic writes a UTC datetime in (``...Z``, up to microseconds). Every string of this
# form that ``datetime.fromisoformat`` accepts, pydantic accepts as the same instant (both check
# the calendar); fromisoformat returns it with the stdlib UTC tzinfo, which the rules above
# return too (pydantic's own parser gives its TzInfo(0), which a callback would have to convert).
UTC_TIMESTAMP_FORM = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
_PLAIN_DATETIME = {"type", "tz_constraint", "microseconds_precision", "strict"}


def utc_datetime_json(datetime_node: dict[str, Any]) -> Any:
    """An aware, otherwise unconstrained ``datetime`` node as the UTC string form above."""
    if (
        datetime_node.get("type") != "datetime"
        or datetime_node.get("tz_constraint") != "aware"
        or not datetime_node.keys() <= _PLAIN_DATETIME
    ):
        return None
    return core_schema.no_info_after_validator_function(
        datetime.fromisoformat, core_schema.str_schema(strict=True, pattern=UTC_TIMESTAMP_FORM)
    )


def _utc_json(node: dict[str, Any]) -> Any:
    # AfterValidator(_utc_only) around BeforeValidator(_no_epoch) around an aware datetime.
    inner = node.get("schema", {})
    if (
        node.get("type") != "function-after"
        or inner.get("type") != "function-before"
        or inner["function"]["function"] is not _no_epoch
    ):
        return None
    return utc_datetime_json(inner["schema"])


JSON_READ_RULES: dict[Callable[..., Any], Callable[[dict[str, Any]], Any]] = {
    _no_float: _exact_json,
    _utc_only: _utc_json,
}
"""Validator function -> rewriter of its core schema node into a native JSON-read node (or None)."""
