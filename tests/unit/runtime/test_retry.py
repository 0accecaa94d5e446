"""When failed entries run again."""

from __future__ import annotations

from cdb.eventstore.topology import GroupPolicy
from cdb.runtime.retry import RetrySchedule

POLICY = GroupPolicy(
    "g",
    max_deliveries=5,
    backoff_base_ms=100,
    backoff_cap_ms=1000,
    claim_idle_ms=30_000,
    batch_size=10,
)


def test_backoff_grows_with_the_delivery_count_up_to_the_cap() -> None:
    delays = [POLICY.backoff_ms(n) for n in range(1, 7)]
    assert delays == [100, 200, 400, 800, 1000, 1000]


def test_entries_come_due_soonest_first_and_only_once() -> None:
    schedule = RetrySchedule()
    schedule.schedule("1-0", b"alert-a", 3, POLICY, now_ms=0)  # due at 400
    schedule.schedule("2-0", b"alert-b", 1, POLICY, now_ms=0)  # due at 100
    assert "1-0" in schedule
    assert len(schedule) == 2
    assert schedule.next_due_ms() == 100
    assert schedule.pop_due(99) == []
    assert schedule.pop_due(100) == [("2-0", b"alert-b", 1)]
    assert schedule.pop_due(1000) == [("1-0", b"alert-a", 3)]
    assert schedule.pop_due(10_000) == []
    assert len(schedule) == 0
    assert schedule.next_due_ms() is None
