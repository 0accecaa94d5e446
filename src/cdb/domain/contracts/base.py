"""The base of every payload contract and the translation of pydantic errors into ContractError.

Pydantic reports problems as ``ValidationError``; cdb promises a typed :class:`ContractError`
naming contract, field, value and rule, so everything that builds or parses a contract goes
through :func:`contract_error` (construction via ``__init__`` and :meth:`Payload.parse` do it
for you).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import ValidationError

from cdb.domain.envelope import Contract
from cdb.errors import ContractError

MISSING = "<missing>"
"""The value reported for a required field that was not given."""


def contract_error(contract: str, exc: ValidationError) -> ContractError:
    """One ``(field, value, rule)`` problem per pydantic error; the field path is dotted."""
    problems: list[tuple[str, Any, str]] = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(part) for part in err["loc"]) or "<payload>"
        value: Any = MISSING if err["type"] == "missing" else err.get("input")
        rule = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            rule = "unknown field: the contract forbids extra fields"
        problems.append((field, value, rule))
    return ContractError(contract, problems)


class Payload(Contract):
    """A contract that raises :class:`ContractError` (never pydantic's error) on bad input."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise contract_error(type(self).__name__, exc) from None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """Validate a mapping (e.g. a payload read back as JSON) into this contract."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise contract_error(cls.__name__, exc) from None

    @classmethod
    def parse_json(cls, text: str | bytes) -> Self:
        """Validate a JSON document into this contract."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise contract_error(cls.__name__, exc) from None
