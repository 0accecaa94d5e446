"""Market time: the only clock the pipeline logic knows.

Service logic never reads the wall clock (a test walks the package's AST to keep it so). Time
arrives with the events: a tick carries the bar's time, every output event takes the timestamp
of the input that caused it. :class:`EventClock` is the injected clock for code that needs a
"now" between events: it only moves when an event moves it, and never backwards.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    """Something that says what time it is for the logic that asks."""

    def now(self) -> datetime: ...


class EventClock:
    """A clock driven by event timestamps: monotonic, UTC, and unset until the first event."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = None if start is None else require_utc(start, "start")

    def advance(self, timestamp: datetime) -> datetime:
        """Move to ``timestamp`` if it is later than now; an older timestamp leaves time alone."""
        ts = require_utc(timestamp, "timestamp")
        if self._now is None or ts > self._now:
            self._now = ts
        return self._now

    def now(self) -> datetime:
        if self._now is None:
            raise RuntimeError("EventClock has not seen an event yet: market time is unknown")
        return self._now

    @property
    def started(self) -> bool:
        return self._now is not None


def require_utc(value: datetime, name: str) -> datetime:
    """``value`` as an aware UTC datetime; naive or other-offset values are refused."""
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError(f"{name} must be an aware UTC datetime, got {value!r}")
    return value.astimezone(UTC)


def from_ms(ts_ms: int) -> datetime:
    """Epoch milliseconds (as recorded market data carries them) to an aware UTC datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts_ms)


def to_ms(value: datetime) -> int:
    """An aware datetime to epoch milliseconds (exact: integer arithmetic, no float)."""
    delta = require_utc(value, "value") - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def utc_day(value: datetime) -> date:
    """The UTC calendar day ``value`` falls on (the circuit breaker's reset boundary)."""
    return require_utc(value, "value").date()


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def floor_to(value: datetime, step: timedelta) -> datetime:
    """The start of the ``step``-long slot (counted from the epoch) that ``value`` falls in."""
    if step <= timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    value = require_utc(value, "value")
    return value - (value - _EPOCH) % step
