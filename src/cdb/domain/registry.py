"""Registry ``(event_type, schema_version) -> payload contract``.

Every :class:`~cdb.domain.event_types.EventType` has a contract at schema version ``"1"``; the
built-in table :data:`BUILTIN` is registered when this module is imported, so parsing a
``NewEvent`` with a dict payload works without importing the contracts first. New versions
are added with :func:`register` (a changed contract gets a new class, e.g. ``OrderV2``, and a
new schema version; the old one stays registered so stored events still read).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cdb.domain.contracts import (
    AlertV1,
    CircuitBreakerV1,
    MarketDataV1,
    OrderResultV1,
    OrderV1,
    PortfolioSnapshotV1,
    PositionV1,
    SignalBlockedV1,
    SignalV1,
    contract_error,
)
from cdb.domain.envelope import Contract
from cdb.domain.event_types import EventType
from cdb.errors import ContractError, UnknownEventTypeError

CURRENT_VERSION = "1"

BUILTIN: dict[EventType, type[Contract]] = {
    EventType.MARKET_DATA_RECEIVED: MarketDataV1,
    EventType.SIGNAL_GENERATED: SignalV1,
    EventType.SIGNAL_BLOCKED: SignalBlockedV1,
    EventType.ORDER_PLACED: OrderV1,
    EventType.ORDER_REJECTED: OrderResultV1,
    EventType.ORDER_FILLED: OrderResultV1,
    EventType.ORDER_PARTIALLY_FILLED: OrderResultV1,
    EventType.ORDER_CANCELLED: OrderResultV1,
    EventType.POSITION_OPENED: PositionV1,
    EventType.POSITION_INCREASED: PositionV1,
    EventType.POSITION_REDUCED: PositionV1,
    EventType.POSITION_CLOSED: PositionV1,
    EventType.PORTFOLIO_SNAPSHOT_TAKEN: PortfolioSnapshotV1,
    EventType.CIRCUIT_BREAKER_TRIPPED: CircuitBreakerV1,
    EventType.CIRCUIT_BREAKER_RESET: CircuitBreakerV1,
    EventType.ALERT_RAISED: AlertV1,
}
"""The schema-version-1 contract of every event type."""

_REGISTRY: dict[tuple[str, str], type[Contract]] = {}


def register(event_type: str, schema_version: str, contract: type[Contract]) -> None:
    """Register ``contract`` for ``(event_type, schema_version)``.

    Registering the same class again is a no-op; replacing a registered contract with a
    different one is refused, because stored events were written against the first.
    """
    key = (str(event_type), schema_version)
    existing = _REGISTRY.get(key)
    if existing is not None and existing is not contract:
        raise ContractError(
            "EventRegistry",
            [
                (
                    "event_type",
                    f"{key[0]}@{key[1]}",
                    f"already registered to {existing.__name__}; "
                    f"add a new schema version for {contract.__name__}",
                )
            ],
        )
    _REGISTRY[key] = contract


def contract_for(event_type: str, schema_version: str) -> type[Contract]:
    """The contract of ``(event_type, schema_version)``; UnknownEventTypeError if none."""
    try:
        return _REGISTRY[(str(event_type), schema_version)]
    except KeyError:
        raise UnknownEventTypeError(
            str(event_type), schema_version, [f"{t}@{v}" for t, v in _REGISTRY]
        ) from None


def registered() -> dict[tuple[str, str], type[Contract]]:
    """A copy of every registration, ``(event_type, schema_version) -> contract``."""
    return dict(_REGISTRY)


def contract_versions() -> dict[str, type[Contract]]:
    """Each distinct registered contract class by its name (``OrderV1``), sorted by name."""
    by_name = {contract.__name__: contract for contract in _REGISTRY.values()}
    return dict(sorted(by_name.items()))


def event_types_of(contract: type[Contract]) -> list[str]:
    """Every ``EVENT_TYPE@version`` registered to ``contract``, sorted."""
    return sorted(f"{t}@{v}" for (t, v), c in _REGISTRY.items() if c is contract)


def validate_payload(event_type: str, schema_version: str, data: Mapping[str, Any]) -> Contract:
    """Parse ``data`` with the registered contract; ContractError names field, value and rule."""
    contract = contract_for(event_type, schema_version)
    try:
        return contract.model_validate(dict(data))
    except ValidationError as exc:
        raise contract_error(contract.__name__, exc) from None


def parse_payload(event_type: str, schema_version: str, data: dict[str, Any]) -> Contract:
    """Alias of :func:`validate_payload` kept for :mod:`cdb.domain.envelope`."""
    return validate_payload(event_type, schema_version, data)


for _event_type, _contract in BUILTIN.items():
    register(_event_type, CURRENT_VERSION, _contract)
