"""`replay topic`: each service re-run over a recorded range reproduces the recorded outputs,
and a tampered recording is caught with the event and the field."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from cdb.cli import app as cli_app
from cdb.cli.app import main
from cdb.domain.contracts import SignalV1
from cdb.domain.event_types import EventType
from cdb.domain.services.events import Emit
from cdb.domain.services.sim import Pipeline
from cdb.errors import ContractError
from cdb.eventstore.keys import Keys
from cdb.eventstore.namespace import delete_namespace
from cdb.eventstore.store import EventStore, TopicEntry
from cdb.eventstore.topology import Topology
from cdb.services.replay.diff import Kind
from cdb.services.replay.topic import TopicReplayReport, replay_topic
from tests.integration.replay.conftest import PARAMS, Recorder


def entries(store: EventStore, topic: str) -> list[TopicEntry]:
    return store.read_topic(topic, 0, count=100_000)


def keys_of(client: redis.Redis, namespace: str) -> list[bytes]:
    return list(client.scan_iter(match=Keys(namespace).pattern(), count=1000))


@pytest.fixture
def sandbox(namespace: str, redis_client: redis.Redis) -> Iterator[str]:
    name = f"{namespace}-sandbox"
    yield name
    delete_namespace(redis_client, name)


def replay(
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    sandbox: str,
    *,
    topic: str,
    service: str,
    start: str,
    end: str | None = None,
    keep: bool = False,
) -> TopicReplayReport:
    return replay_topic(
        client,
        topology,
        namespace,
        sandbox=sandbox,
        topic=topic,
        service=service,
        start=("--from", start),
        end=None if end is None else ("--to", end),
        params=PARAMS,
        keep=keep,
    )


def test_every_service_reproduces_its_recorded_outputs(
    recorded: EventStore,
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    sandbox: str,
) -> None:
    ticks = entries(recorded, "market_data")
    signals = entries(recorded, "signals")
    cases = [
        # service, topic, --from, --to
        ("signal", "market_data", ticks[200].entry_id, ticks[450].entry_id),
        ("risk", "signals", signals[3].entry_id, None),
        ("execution", "orders", "0", "$"),
        ("portfolio", "market_data", ticks[150].event.timestamp.isoformat(), ticks[500].entry_id),
    ]
    for service, topic, start, end in cases:
        report = replay(
            redis_client,
            topology,
            namespace,
            sandbox,
            topic=topic,
            service=service,
            start=start,
            end=end,
        )
        assert report.differences == [], (service, report.differences[:5])
        assert report.identical, (service, report.unfinished)
        assert report.inputs > 0, service
        assert report.recorded_outputs > 0, service
        assert report.replayed_outputs == report.recorded_outputs, service
        assert keys_of(redis_client, sandbox) == [], f"{service}: sandbox left behind"
    assert cases[3][2].endswith("+00:00")


def test_state_before_the_range_is_rebuilt_from_the_recording(
    recorded: EventStore,
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    sandbox: str,
) -> None:
    # Risk decides the last signals with positions, orders in flight and marks it only knows
    # from what came before them: a replay of the tail alone must still agree.
    signals = [e for e in entries(recorded, "signals") if e.event.event_type.value.endswith("D")]
    report = replay(
        redis_client,
        topology,
        namespace,
        sandbox,
        topic="signals",
        service="risk",
        start=signals[-3].entry_id,
    )
    assert report.folded_before > 0
    assert report.identical, report.differences[:5]
    assert report.recorded_outputs > 0


def test_keep_leaves_the_replayed_outputs_in_the_sandbox(
    recorded: EventStore,
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    sandbox: str,
) -> None:
    report = replay(
        redis_client,
        topology,
        namespace,
        sandbox,
        topic="market_data",
        service="signal",
        start="0",
        keep=True,
    )
    kept = EventStore(redis_client, topology, sandbox, check_server=False)
    replayed = entries(kept, "signals")
    assert len(replayed) == report.replayed_outputs > 0
    assert {str(e.event.event_id) for e in replayed} == {
        str(e.event.event_id)
        for e in entries(recorded, "signals")
        if e.event.event_type is EventType.SIGNAL_GENERATED
    }


def tampered(run: Pipeline) -> tuple[list[Emit], str, str, str]:
    """The run with the confidence of its second signal changed; (events, id, old, new)."""
    events = list(run.events)
    index = [i for i, e in enumerate(events) if e.event_type is EventType.SIGNAL_GENERATED][1]
    original = events[index]
    payload = original.event.payload
    assert isinstance(payload, SignalV1)
    changed = 0.5 if payload.confidence != 0.5 else 0.25
    event = original.event.model_copy(
        update={"payload": payload.model_copy(update={"confidence": changed})}
    )
    events[index] = Emit(original.stream_id, event)
    return events, str(event.event_id), str(payload.confidence), str(changed)


def test_a_tampered_payload_is_reported_with_the_event_and_the_field(
    *,
    namespace: str,
    pipeline_run: Pipeline,
    recorder: Recorder,
    redis_client: redis.Redis,
    topology: Topology,
    sandbox: str,
) -> None:
    events, event_id, original, changed = tampered(pipeline_run)
    copy = f"{namespace}-copy"
    recorder(copy, events)
    report = replay(
        redis_client, topology, copy, sandbox, topic="market_data", service="signal", start="-"
    )
    assert not report.identical
    assert [(d.event_id, d.kind, d.field, d.recorded, d.replayed) for d in report.differences] == [
        (event_id, Kind.CHANGED, "payload.confidence", changed, original)
    ]
    assert keys_of(redis_client, sandbox) == []


def test_offsets_and_times_outside_the_topic_are_refused_with_its_range(
    recorded: EventStore,
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    sandbox: str,
) -> None:
    ticks = entries(recorded, "market_data")
    first, last = ticks[0].entry_id, ticks[-1].entry_id
    ms = first.split("-")[0]

    def refused(start: str, end: str | None = None, **kw: str) -> str:
        with pytest.raises(ContractError) as caught:
            replay(
                redis_client,
                topology,
                namespace,
                sandbox,
                topic=kw.get("topic", "market_data"),
                service=kw.get("service", "signal"),
                start=start,
                end=end,
            )
        return str(caught.value)

    before = refused("1-0")
    assert "'1-0'" in before
    assert "outside the stream" in before
    assert first in before
    assert last in before
    assert "2025-" in before
    unknown = refused(f"{ms}-99999")
    assert f"{ms}-99999" in unknown
    assert "no entry of the stream" in unknown
    assert first in unknown
    malformed = refused("2025-13-45T00:00:00Z")
    assert "2025-13-45T00:00:00Z" in malformed
    assert "ISO-8601 UTC" in malformed
    assert "UTC" in refused("2025-03-03T19:35:00+02:00")
    assert "after the last event" in refused("2999-01-01T00:00:00Z")
    assert "range is empty" in refused(ticks[10].entry_id, ticks[5].entry_id)
    assert "carries no input of execution" in refused("0", topic="signals", service="execution")
    assert "must be one of" in refused("0", service="feed")
    assert keys_of(redis_client, sandbox) == []


@pytest.fixture
def cli_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cli_app._register()
    monkeypatch.setattr(cli_app, "_register", lambda: None)
    monkeypatch.setenv("CDB_REDIS_URL", redis_url)
    # The parameters the recording was made with, as the services read them.
    for name, value in {
        "SIGNAL_THRESHOLD_PCT": "0.2",
        "SIGNAL_LOOKBACK_MIN": "5",
        "SIGNAL_COOLDOWN_MIN": "5",
        "SIGNAL_MIN_VOLUME": "0",
        "STOP_LOSS_PCT": "0.01",
    }.items():
        monkeypatch.setenv(name, value)


def cdb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_exits_non_zero_on_a_difference_and_names_it(
    *,
    cli_env: None,
    recorded: EventStore,
    namespace: str,
    pipeline_run: Pipeline,
    recorder: Recorder,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("replay", "topic", "order_results", "--from", "0", "--service", "portfolio")
    code, out, _ = cdb(capsys, *args, "--json", "-n", namespace)
    assert code == 0, out
    document = json.loads(out)
    assert document["identical"] is True
    assert document["recorded_outputs"] > 0
    assert document["sandbox"].startswith("replay-")
    assert not document["sandbox_kept"]
    assert keys_of(redis_client, document["sandbox"]) == []

    events, event_id, original, changed = tampered(pipeline_run)
    copy = f"{namespace}-copy"
    recorder(copy, events)
    code, out, _ = cdb(
        capsys,
        "replay",
        "topic",
        "market_data",
        "--from",
        "0",
        "-s",
        "signal",
        "--json",
        "-n",
        copy,
    )
    assert code == 1
    document = json.loads(out)
    assert document["differences"] == [
        {
            "event_id": event_id,
            "kind": "changed",
            "field": "payload.confidence",
            "recorded": changed,
            "replayed": original,
        }
    ]
    code, out, _ = cdb(
        capsys, "replay", "topic", "market_data", "--from", "0", "-s", "signal", "-n", copy
    )
    assert code == 1
    assert "DIFFERENT" in out
    assert "payload.confidence" in out
    assert event_id in out

    code, _, err = cdb(capsys, *args, "--from", "12", "-n", namespace)
    assert code == 2
    assert "'12'" in err
    assert "entry id" in err
