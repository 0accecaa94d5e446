"""The registry maps every event type to its contract and turns bad payloads into ContractError."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cdb.domain import registry
from cdb.domain.contracts import (
    AlertV1,
    CircuitBreakerV1,
    MarketDataV1,
    OrderResultV1,
    OrderV1,
    PositionV1,
)
from cdb.domain.envelope import Contract, NewEvent
from cdb.domain.event_types import EventType
from cdb.errors import ContractError, UnknownEventTypeError
from tests.unit.domain import factories as f


@pytest.mark.parametrize("event_type", list(EventType))
def test_every_event_type_has_a_version_one_contract(event_type: EventType) -> None:
    contract = registry.contract_for(event_type, "1")
    assert issubclass(contract, Contract)
    assert f"{event_type}@1" in registry.event_types_of(contract)


@pytest.mark.parametrize(
    ("event_type", "contract"),
    [
        (EventType.MARKET_DATA_RECEIVED, MarketDataV1),
        (EventType.ORDER_PLACED, OrderV1),
        (EventType.ORDER_REJECTED, OrderResultV1),
        (EventType.ORDER_FILLED, OrderResultV1),
        (EventType.ORDER_PARTIALLY_FILLED, OrderResultV1),
        (EventType.ORDER_CANCELLED, OrderResultV1),
        (EventType.POSITION_CLOSED, PositionV1),
        (EventType.CIRCUIT_BREAKER_TRIPPED, CircuitBreakerV1),
        (EventType.CIRCUIT_BREAKER_RESET, CircuitBreakerV1),
        (EventType.ALERT_RAISED, AlertV1),
    ],
)
def test_event_types_map_to_their_contracts(
    event_type: EventType, contract: type[Contract]
) -> None:
    assert registry.contract_for(event_type, "1") is contract
    assert registry.contract_for(str(event_type), "1") is contract


def test_contract_versions_lists_each_class_once_by_name() -> None:
    versions = registry.contract_versions()
    assert list(versions) == sorted(versions)
    assert versions["OrderResultV1"] is OrderResultV1
    assert len(versions) == len(set(registry.BUILTIN.values()))


def test_unknown_event_type_or_version_is_a_typed_error() -> None:
    with pytest.raises(UnknownEventTypeError) as caught:
        registry.contract_for("ORDER_TELEPORTED", "1")
    assert caught.value.event_type == "ORDER_TELEPORTED"
    assert "ORDER_PLACED@1" in str(caught.value)
    with pytest.raises(UnknownEventTypeError):
        registry.validate_payload(EventType.ORDER_PLACED, "9", f.order())


def test_validate_payload_parses_and_reports_contract_errors() -> None:
    placed = registry.validate_payload(EventType.ORDER_PLACED, "1", f.order())
    assert isinstance(placed, OrderV1)
    with pytest.raises(ContractError) as caught:
        registry.parse_payload(EventType.ORDER_PLACED, "1", f.order(quantity="-1", side="UP"))
    assert caught.value.contract == "OrderV1"
    fields = {field: value for field, value, _ in caught.value.problems}
    assert fields == {"quantity": "-1", "side": "UP"}


def test_a_registration_cannot_be_replaced_but_can_be_repeated() -> None:
    registry.register(EventType.ORDER_PLACED, "1", OrderV1)
    with pytest.raises(ContractError) as caught:
        registry.register(EventType.ORDER_PLACED, "1", OrderResultV1)
    assert "already registered to OrderV1" in str(caught.value)
    assert registry.contract_for(EventType.ORDER_PLACED, "1") is OrderV1


def _event(payload: Any, event_type: str = "ORDER_PLACED") -> NewEvent:
    return NewEvent.model_validate(
        {
            "event_id": str(uuid.UUID(int=1)),
            "event_type": event_type,
            "timestamp": "2024-11-01T06:40:00Z",
            "payload": payload,
        }
    )


def test_new_event_parses_a_dict_payload_through_the_registry() -> None:
    event = _event({**f.order(), "timestamp": "2024-11-01T06:40:00Z"})
    assert isinstance(event.payload, OrderV1)
    assert NewEvent.model_validate_json(event.model_dump_json()) == event


def test_new_event_with_a_bad_payload_raises_contract_error() -> None:
    with pytest.raises(ContractError) as caught:
        _event({**f.order(), "timestamp": "2024-11-01T06:40:00Z", "quantity": "0"})
    assert caught.value.problems[0][:2] == ("quantity", "0")


def test_new_event_refuses_a_payload_of_another_contract() -> None:
    alert = AlertV1(**f.alert())
    with pytest.raises(ValueError, match="needs OrderV1"):
        NewEvent(
            event_id=uuid.UUID(int=2),
            event_type=EventType.ORDER_PLACED,
            timestamp=f.T0,
            payload=alert,
        )
