"""Every error cdb raises on purpose, in one tree.

    CdbError                        base: catch this to catch everything cdb means to raise
    ├── ConfigError                 a setting is missing or malformed (names the setting)
    ├── ContractError               input does not satisfy a contract (names field, value, rule)
    │   ├── UnknownEventTypeError   no contract is registered for (event_type, schema_version)
    │   └── SchemaDriftError        a model no longer matches its committed JSON Schema
    ├── TopologyError               topology.toml is malformed, or an unknown topic/group
    ├── StoreError                  the event store could not do what was asked
    │   ├── ConcurrencyError        expected version != actual version (names both and the stream)
    │   ├── DuplicateBatchError     a batch mixes already-stored and new event ids
    │   ├── StoreUnavailableError   Redis cannot be reached (after retries)
    │   └── UnsafeServerError       Redis is configured so that history could be lost
    ├── ServerError                 an embedded server could not be started, stopped or found
    ├── LeaseHeldError              another replica is the active one of a service (its lease)
    ├── ProjectionBusyError         another projector owns a projection (one writer per projection)
    ├── RebuildPartError            a process of a split rebuild failed (running it again resumes)
    ├── SplitUnsafeError            an event writes a row of another stream: no split rebuild
    └── HandlerRejected             a handler's verdict: this entry can never succeed

The CLI turns any CdbError into one clear line and a non-zero exit code; a bare traceback
from cdb is a bug.
"""

from __future__ import annotations

from typing import Any


class CdbError(Exception):
    """Base of every error cdb raises on purpose."""


class ConfigError(CdbError):
    """A setting is missing or malformed."""


class ContractError(CdbError):
    """Input does not satisfy a contract.

    ``problems`` holds one ``(field, value, rule)`` triple per violation so callers (the CLI,
    the dead-letter writer) can show every problem, not only the first.
    """

    def __init__(self, contract: str, problems: list[tuple[str, Any, str]]) -> None:
        self.contract = contract
        self.problems = problems
        details = "; ".join(
            f"field '{field}' = {_short(value)}: {rule}" for field, value, rule in problems
        )
        super().__init__(f"{contract}: {details}")


class UnknownEventTypeError(ContractError):
    """No contract is registered for an (event_type, schema_version) pair."""

    def __init__(self, event_type: str, schema_version: str, known: list[str]) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        rule = "no contract registered; known: " + ", ".join(sorted(known))
        super().__init__("EventRegistry", [("event_type", f"{event_type}@{schema_version}", rule)])


class SchemaDriftError(ContractError):
    """A contract model changed in a way that breaks its committed JSON Schema."""


class TopologyError(CdbError):
    """The stream topology is malformed, or a topic/group name is unknown."""


class StoreError(CdbError):
    """The event store could not do what was asked."""


class ConcurrencyError(StoreError):
    """Optimistic concurrency check failed: someone appended first."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream '{stream_id}': expected version {expected}, actual version {actual}"
        )


class DuplicateBatchError(StoreError):
    """A batch mixes event ids that are already stored with new ones."""


class StoreUnavailableError(StoreError):
    """Redis could not be reached."""


class UnsafeServerError(StoreError):
    """Redis runs with a setting that can lose history (e.g. an evicting maxmemory-policy)."""


class ServerError(CdbError):
    """An embedded server could not be started, stopped or found."""


class LeaseHeldError(CdbError):
    """Another process holds the lease of a service: it is the active replica."""

    def __init__(self, service: str, holder: str | None) -> None:
        self.service = service
        self.holder = holder
        super().__init__(
            f"service '{service}' is already active in this namespace (lease held by "
            f"{holder or 'an unknown owner'}); stop it or use another --namespace"
        )


class ProjectionBusyError(CdbError):
    """Another live projector owns the projection: its checkpoint allows one writer only."""

    def __init__(self, projection: str) -> None:
        self.projection = projection
        super().__init__(
            f"projection '{projection}' is already run by another projector on this database; "
            "this one waits as a standby"
        )


class RebuildPartError(CdbError):
    """A process of a split rebuild (``--jobs``) failed; what every part committed stays, so
    running the rebuild again resumes it."""

    def __init__(self, projection: str, failed: list[tuple[str, int]]) -> None:
        self.projection = projection
        self.failed = failed
        parts = ", ".join(f"{name} (exit code {code})" for name, code in failed)
        super().__init__(
            f"rebuild of projection '{projection}': {parts} failed (its error is logged above); "
            f"run the rebuild again to resume where each part committed"
        )


class SplitUnsafeError(CdbError):
    """An event writes a row keyed by neither its own aggregate nor itself, so the history
    cannot be split by stream (``cdb.projections.split``): the rebuild starts over in one
    process. Not the event's fault: never dead-lettered."""

    def __init__(self, stream_id: str, event_id: str, op: str, key: str) -> None:
        self.stream_id = stream_id
        self.event_id = event_id
        super().__init__(
            f"event {event_id} of stream '{stream_id}' writes the {op} row of '{key}', "
            "which belongs to another stream: this history cannot be rebuilt split by stream"
        )


class HandlerRejected(CdbError):
    """Raised by a handler for an entry that can never succeed: it is dead-lettered at once."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
