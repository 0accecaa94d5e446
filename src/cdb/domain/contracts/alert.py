"""Alerts for humans and monitoring."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from cdb.domain.contracts.base import Payload
from cdb.domain.contracts.fields import AlertLevel, Code, Text, UtcTimestamp

ContextKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ContextValue = Annotated[str, StringConstraints(max_length=1000)]


class AlertV1(Payload):
    """``code`` is machine-readable (``RISK_LIMIT``); ``context`` carries the numbers as text."""

    level: AlertLevel
    code: Code
    message: Text
    context: dict[ContextKey, ContextValue] = Field(default_factory=dict)
    timestamp: UtcTimestamp
