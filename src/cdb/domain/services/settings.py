"""Reading service parameters from an environment mapping, naming every bad value.

Each service's parameters are a frozen dataclass with a ``from_env(mapping)`` built on these
helpers. All problems are collected and reported together in one :class:`ConfigError`, each
naming the variable, the value it had and the rule it broke.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from cdb.errors import ConfigError


class EnvReader:
    """Typed reads from an env mapping that collect problems instead of failing on the first."""

    def __init__(self, env: Mapping[str, str], owner: str) -> None:
        self._env = env
        self._owner = owner
        self.problems: list[str] = []

    def decimal(
        self,
        name: str,
        default: Decimal,
        *,
        gt: Decimal | None = None,
        ge: Decimal | None = None,
        le: Decimal | None = None,
        lt: Decimal | None = None,
    ) -> Decimal:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            self._bad(name, raw, "must be a decimal number")
            return default
        if not value.is_finite():
            self._bad(name, raw, "must be a finite decimal number")
            return default
        failed = (
            (gt is not None and not value > gt and f"> {gt}")
            or (ge is not None and not value >= ge and f">= {ge}")
            or (le is not None and not value <= le and f"<= {le}")
            or (lt is not None and not value < lt and f"< {lt}")
        )
        if failed:
            self._bad(name, raw, f"must be {failed}")
            return default
        return value

    def integer(self, name: str, default: int, *, ge: int | None = None) -> int:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            self._bad(name, raw, "must be a whole number")
            return default
        if ge is not None and value < ge:
            self._bad(name, raw, f"must be >= {ge}")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        value = raw.strip().lower()
        if value not in allowed:
            self._bad(name, raw, "must be one of " + ", ".join(allowed))
            return default
        return value

    def text(self, name: str, default: str, *, pattern: str, rule: str) -> str:
        raw = self._env.get(name)
        value = default if raw is None else raw.strip()
        if not re.fullmatch(pattern, value):
            self._bad(name, raw, rule)
            return default
        return value

    def raw(self, name: str) -> str | None:
        return self._env.get(name)

    def bad(self, name: str, value: object, rule: str) -> None:
        self._bad(name, value, rule)

    def done(self) -> None:
        """Raise one ConfigError naming every problem seen, if any."""
        if self.problems:
            raise ConfigError(f"{self._owner}: " + "; ".join(self.problems))

    def _bad(self, name: str, value: object, rule: str) -> None:
        self.problems.append(f"{name}={value!r}: {rule}")
