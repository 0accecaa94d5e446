"""Breaking-drift detection between a committed JSON Schema and the current model (pure)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from cdb.domain import registry
from cdb.domain.contracts.fields import PositiveQuantity, Quantity, UtcTimestamp
from cdb.domain.envelope import Contract
from cdb.domain.schemas import (
    INDEX_FILE,
    breaking_changes,
    contract_schema,
    current_schemas,
    drift,
    render,
    schema_index,
)


class Colour(StrEnum):
    RED = "RED"
    BLUE = "BLUE"


class Fewer(StrEnum):
    RED = "RED"


class More(StrEnum):
    RED = "RED"
    BLUE = "BLUE"
    GREEN = "GREEN"


class Base(Contract):
    name: Annotated[str, Field(max_length=20)]
    amount: Quantity
    colour: Colour
    note: str | None = None
    count: int
    at: UtcTimestamp


class Same(Contract):
    name: Annotated[str, Field(max_length=20)]
    amount: Quantity
    colour: Colour
    note: str | None = None
    count: int
    at: UtcTimestamp


class NewOptional(Base):
    extra: str | None = None


class NewRequired(Base):
    extra: str


class NoteRequired(Contract):
    name: Annotated[str, Field(max_length=20)]
    amount: Quantity
    colour: Colour
    note: str
    count: int
    at: UtcTimestamp


class Retyped(Contract):
    name: Annotated[str, Field(max_length=20)]
    amount: Quantity
    colour: Colour
    note: str | None = None
    count: str
    at: UtcTimestamp


class Removed(Contract):
    name: Annotated[str, Field(max_length=20)]
    amount: Quantity
    colour: Colour
    note: str | None = None
    at: UtcTimestamp


class Tightened(Contract):
    name: Annotated[str, Field(max_length=10)]
    amount: PositiveQuantity
    colour: Fewer
    note: str | None = None
    count: int
    at: UtcTimestamp


class Relaxed(Contract):
    name: Annotated[str, Field(max_length=30)]
    amount: Decimal | int
    colour: More
    note: str | int | None = None
    count: int | str
    at: datetime | int


def changes(old: type[Contract], new: type[Contract]) -> dict[str, str]:
    found = breaking_changes(contract_schema(old), contract_schema(new), prefix="X.json")
    return {change.path: change.rule for change in found}


def test_an_identical_model_has_no_breaking_change() -> None:
    assert changes(Base, Same) == {}


def test_a_new_optional_field_is_compatible() -> None:
    assert changes(Base, NewOptional) == {}


def test_a_new_required_field_is_breaking() -> None:
    assert changes(Base, NewRequired) == {"X.json:extra": "new required field"}


def test_an_optional_field_made_required_is_breaking() -> None:
    found = breaking_changes(contract_schema(Base), contract_schema(NoteRequired))
    assert sorted((c.path, c.rule) for c in found) == [
        ("note", "optional field made required"),
        ("note", "retyped: null is no longer accepted"),
    ]


def test_a_removed_field_is_breaking() -> None:
    assert changes(Base, Removed) == {"X.json:count": "field removed"}


def test_a_retyped_field_is_breaking() -> None:
    assert changes(Base, Retyped) == {"X.json:count": "retyped: integer is no longer accepted"}


def test_tightened_rules_are_breaking() -> None:
    found = changes(Base, Tightened)
    assert found == {
        "X.json:name": "maxLength lowered",
        "X.json:amount": "lower bound raised",  # >= 0 became > 0
        "X.json:colour": "enum values removed",
    }


def test_relaxed_rules_and_new_enum_values_are_compatible() -> None:
    assert changes(Base, Relaxed) == {}


def test_a_change_reports_committed_and_current_values() -> None:
    (change,) = breaking_changes(contract_schema(Base), contract_schema(Removed))
    field, value, rule = change.as_problem()
    assert (field, rule) == ("count", "field removed")
    assert "absent" in value


def test_render_is_deterministic_sorted_and_ends_with_a_newline() -> None:
    text = render({"b": 1, "a": {"d": 2, "c": [3]}})
    assert text.endswith("}\n")
    assert text.index('"a"') < text.index('"b"')
    assert render(json.loads(text)) == text


def test_current_schemas_cover_every_registered_contract_and_the_index() -> None:
    files = current_schemas()
    assert set(files) == {f"{name}.json" for name in registry.contract_versions()} | {INDEX_FILE}
    order = files["OrderV1.json"]
    assert order["title"] == "OrderV1"
    assert order["additionalProperties"] is False
    assert order["x-cdb-event-types"] == ["ORDER_PLACED@1"]
    assert order["properties"]["quantity"]["exclusiveMinimum"] == 0
    assert files[INDEX_FILE]["registrations"]["ORDER_FILLED@1"] == "OrderResultV1.json"


def _files() -> dict[str, dict[str, Any]]:
    copied: dict[str, dict[str, Any]] = json.loads(json.dumps(current_schemas()))
    return copied  # a deep copy through JSON


def test_drift_of_identical_files_is_empty() -> None:
    result = drift(_files(), current_schemas())
    assert result.ok
    assert result.changed == []


def test_drift_finds_a_removed_contract_and_a_removed_registration() -> None:
    committed = _files()
    committed["OrderV0.json"] = committed["OrderV1.json"]
    committed[INDEX_FILE]["registrations"]["ORDER_EXPIRED@1"] = "OrderResultV1.json"
    result = drift(committed, current_schemas())
    assert {(c.path, c.rule) for c in result.breaking} == {
        ("OrderV0.json", "contract version removed"),
        ("index.json:ORDER_EXPIRED@1", "registration removed"),
    }


def test_drift_finds_a_field_the_model_dropped() -> None:
    committed = _files()
    committed["SignalV1.json"]["properties"]["legacy_score"] = {"type": "number"}
    result = drift(committed, current_schemas())
    assert [(c.path, c.rule) for c in result.breaking] == [
        ("SignalV1.json:legacy_score", "field removed")
    ]


def test_new_files_and_compatible_edits_are_listed_but_not_breaking() -> None:
    committed = _files()
    del committed["AlertV1.json"]
    committed["SignalV1.json"]["properties"]["price"]["description"] = "old wording"
    result = drift(committed, current_schemas())
    assert result.ok
    assert result.changed == ["AlertV1.json", "SignalV1.json"]


def test_the_index_maps_every_registration() -> None:
    registrations = schema_index()["registrations"]
    assert len(registrations) == len(registry.registered())
