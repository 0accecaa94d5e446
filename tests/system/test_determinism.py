"""The whole pipeline is a pure function of the recorded market data (issue 6, DESIGN §8).

A slice of the shipped recording (ticks 2000-2900: the evening of day 1 into day 2, the window
of the other pipeline tests, with their tight stop-loss and drawdown limit) goes through ``cdb
run all --exit-at-end`` (the feed, every service and every projector, scheduled in causal order)
twice, each run a process of its own, into a fresh key namespace and a fresh PostgreSQL
database. The window has signals, fills, blocked signals, stop-losses, opened and closed
positions, and a circuit breaker that trips, then resets at the UTC day boundary. (The whole
two days pass the same test too, in about three times as long.)

The two runs must leave the same streams with the same entries: every field of every entry of
every topic partition, aggregate stream and dead-letter stream, byte for byte (the ``d`` body
included: nothing in it may depend on the run; the pipeline stamps no trace context, so there
is nothing to strip), and the same projection digest. Only the topics' entry ids (Redis arrival
times) differ. The two processes run with different ``PYTHONHASHSEED`` values, so an output
that depends on set or dict-of-str iteration order shows up as a difference too.

Then ``cdb replay topic market_data --from 0 --service signal`` (and ``risk``) re-run each
service's logic over the first run's recorded input and report no difference (exit 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from cdb.cli import app as cli_app
from cdb.cli.app import main
from cdb.domain.event_types import EventType
from cdb.domain.services.risk import STOP_LOSS_PREFIX
from cdb.embedded import testing as embedded_testing
from cdb.eventstore.codec import decode_fields
from cdb.eventstore.keys import Keys
from cdb.eventstore.namespace import delete_namespace
from cdb.eventstore.store import EventStore
from cdb.eventstore.topology import Topology, load_topology
from cdb.projections.definitions import load_definitions
from cdb.projections.digest import projection_digest
from cdb.projections.engine import connect
from cdb.projections.status import status_all

ROOT = Path(__file__).resolve().parents[2]
START, TICKS = 2000, 900
PARAMS = {"STOP_LOSS_PCT": "0.004", "MAX_POSITION_PCT": "0.05", "MAX_DAILY_DRAWDOWN_PCT": "0.002"}
"""Risk limits of both runs (and of the replays, which read them from the environment)."""
RUN_TIMEOUT_S = 120
"""Deadline of one run (it takes ~10 s on a loaded 2-core machine)."""

Fields = tuple[tuple[bytes, bytes], ...]
"""One stream entry's fields, in stored order, as Redis returns them."""
Streams = dict[str, list[tuple[str, Fields]]]
"""``topic:<name>:<partition>``, ``agg:<stream id>`` or ``dlq:<topic>:<group>:<partition>`` ->
[(entry id, or "" for a topic or dead-letter entry, fields)]."""


@dataclass(frozen=True)
class Recorded:
    """What one run left behind."""

    namespace: str
    streams: Streams
    digest: dict[str, str]
    """Projection name -> digest of its tables."""
    rows: dict[str, int]


@pytest.fixture
def topology() -> Topology:
    return load_topology()


@pytest.fixture
def second_namespace(redis_url: str) -> Iterator[str]:
    """Another namespace like ``namespace``, for the second run; deleted afterwards."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    try:
        delete_namespace(client, ns)
    finally:
        client.close()


@pytest.fixture
def two_databases(database_url: str) -> Iterator[tuple[str, str]]:
    with ExitStack() as stack:
        first = stack.enter_context(embedded_testing.scratch_database(database_url))
        second = stack.enter_context(embedded_testing.scratch_database(database_url))
        yield first, second


def run_all(
    redis_url: str,
    client: redis.Redis,
    topology: Topology,
    namespace: str,
    database_url: str,
    *,
    hash_seed: str,
    log: Path,
) -> Recorded:
    """``cdb run all --exit-at-end`` over the slice in a process of its own, then what it left.

    The laptop drains every group and projector after each tick and once more at the end, so
    when the process has exited nothing is in flight.
    """
    env = {
        **os.environ,
        **PARAMS,
        "CDB_REDIS_URL": redis_url,
        "CDB_DATABASE_URL": database_url,
        "PYTHONHASHSEED": hash_seed,
    }
    command = [sys.executable, "-c", "from cdb.cli.app import main; main()", "run", "all"]
    command += ["--namespace", namespace, "--start", str(START), "--limit", str(TICKS)]
    command += ["--exit-at-end"]
    with log.open("wb") as out:
        try:
            proc = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"cdb run all did not finish in {RUN_TIMEOUT_S}s:\n{_tail(log)}")
    assert proc.returncode == 0, f"cdb run all exited {proc.returncode}:\n{_tail(log)}"
    definitions = list(load_definitions().values())
    for status in status_all(definitions, client, topology, namespace, database_url):
        assert status.lag_events == 0, f"{status.name} is behind after the run: {status}"
        assert status.dead_letters == 0, f"{status.name} dead-lettered entries: {status}"
    with connect(database_url) as conn:
        digests = {d.name: projection_digest(conn, d, "public") for d in definitions}
    return Recorded(
        namespace,
        snapshot(client, topology, namespace),
        {name: d.sha256 for name, d in digests.items()},
        {name: d.rows for name, d in digests.items()},
    )


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


def snapshot(client: redis.Redis, topology: Topology, namespace: str) -> Streams:
    """Every entry of every stream holding events: topic partitions, the aggregate streams
    their entries name, dead letters of every group (keys found without SCAN: a shared Redis
    may hold millions of keys).

    Aggregate entry ids are the sequence numbers (``0-N``), so they are kept; a topic's ids are
    Redis arrival times, so only their order counts.
    """
    store = EventStore(client, topology, namespace, check_server=False)
    keys = Keys(namespace)
    out: Streams = {}
    aggregates: dict[str, None] = {}  # in order of first appearance
    for topic in topology.topics.values():
        for partition in range(topic.partitions):
            entries = _xrange(client, keys.topic(topic.name, partition))
            out[f"topic:{topic.name}:{partition}"] = [("", fields) for _, fields in entries]
            for _, fields in entries:
                row = dict(fields)
                if row[b"n"] != b"0":
                    aggregates[row[b"s"].decode()] = None
            for group in topic.groups:
                dead = _xrange(client, keys.dead_letter(topic.name, group, partition))
                if dead:
                    out[f"dlq:{topic.name}:{group}:{partition}"] = [("", f) for _, f in dead]
    for stream_id in aggregates:
        out[f"agg:{stream_id}"] = _xrange(client, store.aggregate_key(stream_id))
    return out


def _xrange(client: redis.Redis, key: str) -> list[tuple[str, Fields]]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(key, "-", "+")  # type: ignore[assignment]
    return [(entry_id.decode(), tuple(fields.items())) for entry_id, fields in entries]


def decoded(fields: Fields) -> dict[str, Any]:
    """The envelope of one entry as comparable values (metadata without ``traceparent``)."""
    event = decode_fields(dict(fields))
    return {
        "event_id": str(event.event_id),
        "event_type": event.event_type.value,
        "stream_id": event.stream_id,
        "sequence_number": event.sequence_number,
        "timestamp": event.timestamp.isoformat(),
        "schema_version": event.schema_version,
        "payload": event.payload.model_dump(mode="json"),
        "metadata": event.metadata.model_dump(mode="json", exclude={"traceparent"}),
    }


def first_difference(a: Recorded, b: Recorded) -> str:
    """A readable account of where two snapshots first part (for the assertion message)."""
    only_a = sorted(set(a.streams) - set(b.streams))
    only_b = sorted(set(b.streams) - set(a.streams))
    if only_a or only_b:
        return f"streams only in run 1: {only_a[:5]}; only in run 2: {only_b[:5]}"
    for key in sorted(a.streams):
        left, right = a.streams[key], b.streams[key]
        for i, (x, y) in enumerate(zip(left, right, strict=False)):
            if x != y:
                return f"{key} entry {i}:\n  run 1 {x}\n  run 2 {y}"
        if len(left) != len(right):
            return f"{key}: {len(left)} entries in run 1, {len(right)} in run 2"
    return "no difference"


def test_two_runs_store_the_same_events_and_digest_and_replays_agree(
    *,
    redis_url: str,
    redis_client: redis.Redis,
    topology: Topology,
    namespace: str,
    second_namespace: str,
    two_databases: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = (
        run_all(
            redis_url,
            redis_client,
            topology,
            ns,
            database,
            hash_seed=seed,
            log=tmp_path / f"run{seed}.log",
        )
        for ns, database, seed in zip(
            (namespace, second_namespace), two_databases, ("1", "2"), strict=True
        )
    )

    # The window exercises what could go wrong: fills, blocks, stop-losses, the breaker.
    events = [
        decoded(fields)
        for key, entries in first.streams.items()
        if key.startswith("topic:")
        for _, fields in entries
    ]
    kinds = Counter(e["event_type"] for e in events)
    assert kinds[EventType.MARKET_DATA_RECEIVED.value] == TICKS
    for kind in (
        EventType.ORDER_FILLED,
        EventType.SIGNAL_BLOCKED,
        EventType.POSITION_CLOSED,
        EventType.CIRCUIT_BREAKER_TRIPPED,
        EventType.CIRCUIT_BREAKER_RESET,
        EventType.PORTFOLIO_SNAPSHOT_TAKEN,
    ):
        assert kinds[kind.value] > 0, f"the window has no {kind.value}: {dict(kinds)}"
    stop_losses = [
        e
        for e in events
        if e["event_type"] == EventType.ORDER_PLACED.value
        and str(e["payload"]["signal_id"]).startswith(STOP_LOSS_PREFIX)
    ]
    assert stop_losses, "the window has no stop-loss order"
    assert not [k for k in first.streams if k.startswith("dlq:")], "run 1 dead-lettered"
    stored = sum(len(v) for k, v in first.streams.items() if k.startswith("agg:"))
    assert stored == sum(kinds.values()) - TICKS, "every non-tick event is in its aggregate"
    assert all(rows > 0 for rows in first.rows.values()), first.rows

    # Same streams, same entries in the same order: ids, types, stream ids, sequence numbers,
    # timestamps, payloads and metadata, compared decoded ...
    assert sorted(first.streams) == sorted(second.streams), first_difference(first, second)
    for key, entries in first.streams.items():
        left = [(entry_id, decoded(fields)) for entry_id, fields in entries]
        right = [(entry_id, decoded(fields)) for entry_id, fields in second.streams[key]]
        assert left == right, f"{key} differs: {first_difference(first, second)}"
    # ... and as stored, byte for byte (the ``d`` body included).
    assert first.streams == second.streams, first_difference(first, second)
    assert first.digest == second.digest
    assert first.rows == second.rows

    # Each service's logic re-run over the first run's recorded inputs gives what it recorded.
    cli_app._register()
    monkeypatch.setattr(cli_app, "_register", lambda: None)
    monkeypatch.setenv("CDB_REDIS_URL", redis_url)
    monkeypatch.setenv("CDB_DATABASE_URL", two_databases[0])
    for name, value in PARAMS.items():  # the services' parameters, as the runs had them
        monkeypatch.setenv(name, value)
    for topic, service in (("market_data", "signal"), ("market_data", "risk")):
        code, out, err = replay_cli(capsys, namespace, topic, service)
        assert code == 0, f"replay topic {topic} --service {service}: exit {code}\n{out}{err}"
        report = json.loads(out)
        assert report["identical"] is True, report
        assert report["inputs"] > 0, report
        assert report["recorded_outputs"] > 0, report
        assert report["replayed_outputs"] == report["recorded_outputs"], report
        sandbox = Keys(report["sandbox"])
        assert not redis_client.exists(*(sandbox.topic(t, 0) for t in topology.topics))


def replay_cli(
    capsys: pytest.CaptureFixture[str], namespace: str, topic: str, service: str
) -> tuple[int, str, str]:
    """``cdb replay topic TOPIC --from 0 --service SERVICE -n NAMESPACE --json``: its exit
    code, stdout and stderr."""
    capsys.readouterr()
    try:
        main(
            [
                *("replay", "topic", topic, "--from", "0", "--service", service),
                *("--namespace", namespace, "--json"),
            ]
        )
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
