"""Same input, same output: every event, id and byte, also across a restart."""

from __future__ import annotations

from cdb.domain.contracts import MarketDataV1
from cdb.domain.services import execution, portfolio, risk
from cdb.domain.services.events import Emit
from cdb.domain.services.sim import Pipeline, simulate


def dump(events: list[Emit]) -> list[str]:
    return [f"{e.stream_id} {e.event.model_dump_json()}" for e in events]


def test_the_same_ticks_give_the_same_events_byte_for_byte(
    shipped_ticks: list[MarketDataV1], shipped_run: Pipeline
) -> None:
    again = simulate(shipped_ticks)
    assert dump(again.events) == dump(shipped_run.events)


def test_defect_ids_repeated_after_a_restart_a_resumed_run_is_the_same_run(
    shipped_ticks: list[MarketDataV1], shipped_run: Pipeline
) -> None:
    """Defect of the original: ids repeated after a restart (counters started again).

    Stop the pipeline mid-day-1 (breaker not yet tripped) and at the day boundary, rebuild every
    service's state from the events so far (as a restart rebuilds it from the streams), go on:
    the result is the uninterrupted run, and no id is used twice.
    """
    for cut in (1100, 2880):
        first = simulate(shipped_ticks[:cut])
        resumed = Pipeline.rebuild(first.events).run(shipped_ticks[cut:])
        assert dump(resumed.events) == dump(shipped_run.events)
    ids = [e.event.event_id for e in shipped_run.events]
    assert len(set(ids)) == len(ids)


def test_a_replayed_input_changes_nothing(shipped_ticks: list[MarketDataV1]) -> None:
    """Feeding ticks again (a redelivery of the whole first hour) emits nothing new."""
    hour = shipped_ticks[:120]
    pipe = simulate(shipped_ticks[:240])
    before = len(pipe.events)
    for tick in hour:
        emitted = pipe.feed(tick)
        assert [e.event_type.value for e in emitted] == ["MARKET_DATA_RECEIVED"]
    assert len(pipe.events) == before + len(hour)


def test_rebuilding_from_only_the_folded_types_gives_the_same_state(
    shipped_run: Pipeline,
) -> None:
    """Each service rebuilds from the event types it declares, not from everything."""
    params = shipped_run.params
    r, x, p = risk.RiskState(), execution.ExecutionState(), portfolio.PortfolioState()
    for item in shipped_run.events:
        event = item.event
        if event.event_type in risk.FOLDED_TYPES:
            r = risk.apply(r, event)
        if event.event_type in execution.FOLDED_TYPES:
            x = execution.apply(x, event, params.execution)
        if event.event_type in portfolio.FOLDED_TYPES:
            p = portfolio.apply(p, event, params.portfolio)
    assert r == shipped_run.risk
    assert x == shipped_run.execution
    assert p == shipped_run.portfolio
