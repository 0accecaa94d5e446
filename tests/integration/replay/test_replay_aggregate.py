"""`replay aggregate`: an aggregate's state at a sequence number or a time, with its events."""

from __future__ import annotations

import json

import pytest

from cdb.cli import app as cli_app
from cdb.cli.app import main
from cdb.domain.event_types import EventType
from cdb.domain.services.sim import Pipeline
from cdb.errors import ContractError
from cdb.eventstore.store import EventStore
from cdb.services.replay.aggregate import replay_aggregate


def stream_with(run: Pipeline, *types: EventType) -> str:
    """A stream id of the run holding events of every one of ``types``."""
    streams: dict[str, set[EventType]] = {}
    for item in run.events:
        streams.setdefault(item.stream_id, set()).add(item.event_type)
    return next(s for s, seen in streams.items() if set(types) <= seen)


def test_an_order_is_folded_to_a_sequence_number(
    recorded: EventStore, pipeline_run: Pipeline
) -> None:
    order = stream_with(pipeline_run, EventType.ORDER_PLACED, EventType.ORDER_FILLED)
    placed = replay_aggregate(recorded, order, to_seq=1)
    assert (placed.version, placed.head, placed.folded) == (1, 2, True)
    assert placed.state["status"] == "PLACED"
    assert placed.state["filled_quantity"] == "0"
    assert [e.event_type for e in placed.events] == [EventType.ORDER_PLACED]

    filled = replay_aggregate(recorded, order)
    assert filled.version == 2
    assert filled.state["status"] == "FILLED"
    assert filled.state["filled_quantity"] == filled.state["order"]["quantity"]
    assert filled.state["avg_price"] is not None


def test_a_position_is_folded_to_a_time(recorded: EventStore, pipeline_run: Pipeline) -> None:
    position = stream_with(pipeline_run, EventType.POSITION_OPENED, EventType.POSITION_CLOSED)
    events = recorded.read_aggregate(position)
    opened, closed = events[0], events[1]
    assert opened.timestamp < closed.timestamp
    # Between the two events: the position is open.
    between = opened.timestamp + (closed.timestamp - opened.timestamp) / 2
    at = between.isoformat().replace("+00:00", "Z")
    state = replay_aggregate(recorded, position, at=at)
    assert state.version == 1
    assert state.state["side"] in ("LONG", "SHORT")
    # At the second event's time: the last event at or before it (a flip is CLOSED + OPENED
    # at one timestamp; both count).
    upto = max(e.sequence_number for e in events if e.timestamp <= closed.timestamp)
    at_second = replay_aggregate(recorded, position, at=closed.timestamp.isoformat())
    assert at_second.version == upto
    assert at_second.state["side"] == events[upto - 1].payload.model_dump()["side"].value
    later = replay_aggregate(recorded, position, at="2999-01-01T00:00:00Z")
    assert later.version == later.head == len(events)


def test_an_aggregate_without_a_fold_shows_its_version_and_last_event(
    recorded: EventStore,
) -> None:
    account = replay_aggregate(recorded, "portfolio-account", to_seq=3)
    assert not account.folded
    assert account.state["version"] == 3
    assert account.state["last_event_type"] == "PORTFOLIO_SNAPSHOT_TAKEN"
    assert account.state["last_event_id"] == str(account.events[-1].event_id)
    assert len(account.events) == 3


def test_positions_outside_the_stream_are_refused_with_its_range(
    recorded: EventStore, pipeline_run: Pipeline
) -> None:
    order = stream_with(pipeline_run, EventType.ORDER_PLACED, EventType.ORDER_FILLED)
    first = recorded.read_aggregate(order)[0].timestamp

    def refused(stream_id: str = order, **kw: object) -> str:
        with pytest.raises(ContractError) as caught:
            replay_aggregate(recorded, stream_id, **kw)  # type: ignore[arg-type]
        return str(caught.value)

    assert "sequence numbers 1 .. 2" in refused(to_seq=3)
    assert "'0'" in refused(to_seq=0)
    before = refused(at="2000-01-01T00:00:00Z")
    assert "before the first event" in before
    assert first.isoformat().replace("+00:00", "Z") in before
    assert "ISO-8601" in refused(at="yesterday")
    assert "not both" in refused(to_seq=1, at="2025-03-03T00:00:00Z")
    assert "has no events" in refused("order-does-not-exist")


def test_the_command_prints_the_state_and_its_events(
    *,
    recorded: EventStore,
    pipeline_run: Pipeline,
    namespace: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli_app._register()
    monkeypatch.setattr(cli_app, "_register", lambda: None)
    monkeypatch.setenv("CDB_REDIS_URL", redis_url)
    order = stream_with(pipeline_run, EventType.ORDER_PLACED, EventType.ORDER_FILLED)

    def cdb(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = cdb("replay", "aggregate", order, "--to-seq", "1", "--json", "-n", namespace)
    assert code == 0
    document = json.loads(out)
    assert document["state"]["status"] == "PLACED"
    assert [e["event_type"] for e in document["events"]] == ["ORDER_PLACED"]

    code, out, _ = cdb("replay", "aggregate", order, "-n", namespace)
    assert code == 0
    assert "FILLED" in out
    assert "ORDER_PLACED" in out

    code, _, err = cdb("replay", "aggregate", order, "--to-seq", "9", "-n", namespace)
    assert code == 2
    assert "--to-seq" in err
    assert "1 .. 2" in err
