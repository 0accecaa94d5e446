"""Registry (event_type, schema_version) -> payload contract. Filled in by cdb.domain.contracts."""

from __future__ import annotations

from typing import Any

from cdb.domain.envelope import Contract
from cdb.errors import UnknownEventTypeError

_REGISTRY: dict[tuple[str, str], type[Contract]] = {}


def register(event_type: str, schema_version: str, contract: type[Contract]) -> None:
    _REGISTRY[(str(event_type), schema_version)] = contract


def contract_for(event_type: str, schema_version: str) -> type[Contract]:
    try:
        return _REGISTRY[(str(event_type), schema_version)]
    except KeyError:
        raise UnknownEventTypeError(
            str(event_type), schema_version, [f"{t}@{v}" for t, v in _REGISTRY]
        ) from None


def parse_payload(event_type: str, schema_version: str, data: dict[str, Any]) -> Contract:
    return contract_for(event_type, schema_version).model_validate(data)
