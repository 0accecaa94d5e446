"""`cdb streams`, `cdb pending`, `cdb dlq` against real Redis, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from cdb.cli import app as cli_app
from cdb.cli.app import main
from cdb.eventstore.keys import Keys
from cdb.eventstore.store import EventStore
from cdb.runtime import ordering
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Reject
from cdb.runtime.ordering import PartitionKeys
from tests.integration.runtime.support import (
    GROUP,
    TOPIC,
    alert,
    decoded,
    new_aggregate,
    topology,
    wait_for,
)

TOPOLOGY_TOML = """
[defaults]
max_deliveries = 3
backoff_base_ms = 10
backoff_cap_ms = 50
claim_idle_ms = 1000
batch_size = 50

[topics.alerts]
events = ["ALERT_RAISED"]
groups.g = {}
groups.other = {}
"""


@pytest.fixture
def cli_env(
    redis_url: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() registers every command family on each call; once is enough for many calls.
    cli_app._register()
    monkeypatch.setattr(cli_app, "_register", lambda: None)
    path = tmp_path / "topology.toml"
    path.write_text(TOPOLOGY_TOML)
    monkeypatch.setenv("CDB_REDIS_URL", redis_url)
    monkeypatch.setenv("CDB_TOPOLOGY_FILE", str(path))
    monkeypatch.setenv("CDB_NAMESPACE", namespace)


def cdb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_streams_and_pending_report_groups_consumers_and_stuck_entries(
    cli_env: None, redis_client: redis.Redis, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = EventStore(redis_client, topology(), namespace, check_server=False)
    agg = new_aggregate()
    store.append(agg, [alert(agg, 1), alert(agg, 2)], 0)
    pk = PartitionKeys.of(Keys(namespace), TOPIC, GROUP, 0)
    redis_client.xgroup_create(pk.stream, GROUP, id="0")
    ordering.read(redis_client, pk, "dead-one", 1)

    code, out, _ = cdb(capsys, "streams", "--json")
    assert code == 0
    (part,) = json.loads(out)["partitions"]
    assert part["length"] == 2
    groups = {g["name"]: g for g in part["groups"]}
    assert groups[GROUP]["pending"] == 1
    assert groups["other"]["pending"] == 0

    code, out, _ = cdb(capsys, "pending", TOPIC, "--group", GROUP, "--json", "--idle", "1h")
    assert code == 0  # nothing idle for an hour
    doc = json.loads(out)
    assert doc["groups"][0]["consumers"][0]["name"] == "dead-one"

    wait_for(
        lambda: cdb(capsys, "pending", TOPIC, "--idle", "30ms", "--json")[0] == 1,
        "the entry to count as stuck",
    )
    code, out, _ = cdb(capsys, "pending", "--stuck", "--idle", "30ms", "--json")
    assert code == 1  # a monitor sees the stuck entry
    (stuck,) = json.loads(out)["stuck"]
    assert stuck["aggregate"] == agg
    assert stuck["deliveries"] == 1

    code, out, _ = cdb(capsys, "pending", "claim", TOPIC, "--idle", "30ms", "--to", "ops")
    assert code == 0
    assert "claimed 1 entries to ops" in out
    code, out, _ = cdb(capsys, "pending", TOPIC)  # the rich tables
    assert code == 0
    assert "ops" in out


def test_unknown_topic_or_group_is_one_clear_error(
    cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cdb(capsys, "pending", "nope")
    assert code == 2
    assert "unknown topic 'nope'" in err
    code, _, err = cdb(capsys, "dlq", "list", "--topic", TOPIC, "--group", "nope")
    assert code == 2
    assert "has no consumer group 'nope'" in err
    code, _, err = cdb(capsys, "pending", "--idle", "soon")
    assert code == 2
    assert "--idle" in err


def test_dlq_list_show_requeue_purge(
    cli_env: None, redis_client: redis.Redis, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topo = topology()
    store = EventStore(redis_client, topo, namespace, check_server=False)
    aggs = [new_aggregate() for _ in range(3)]
    for a in aggs:
        store.append(a, [alert(a, 1)], 0)
    consumer = Consumer(
        redis_client,
        topo,
        namespace,
        topic=TOPIC,
        group=GROUP,
        handler=lambda event, _delivery: Reject(f"bad {event.stream_id}"),
    )
    consumer.step()
    consumer.close()

    code, out, _ = cdb(capsys, "dlq", "list", "--json")
    assert json.loads(out)["count"] == 3
    code, out, _ = cdb(capsys, "dlq", "list", "--aggregate", aggs[0], "--json")
    (letter,) = json.loads(out)["dead_letters"]
    assert letter["error_type"] == "HandlerRejected"
    assert letter["aggregate"] == aggs[0]
    code, out, _ = cdb(capsys, "dlq", "list", "--error-type", "ContractError", "--json")
    assert json.loads(out)["count"] == 0
    code, out, _ = cdb(capsys, "dlq", "list", "--since", "1h", "--until", "2999-01-01", "--json")
    assert json.loads(out)["count"] == 3
    code, out, _ = cdb(capsys, "dlq", "list", "--until", "2000-01-01T00:00:00Z", "--json")
    assert json.loads(out)["count"] == 0

    code, out, _ = cdb(capsys, "dlq", "show", letter["dlq_id"], "--json")
    shown = json.loads(out)
    assert shown["fields"]["s"] == aggs[0]
    assert shown["reason"] == "rejected"
    code, _, err = cdb(capsys, "dlq", "show", "0-1")
    assert code == 2
    assert "no dead letter" in err

    code, out, _ = cdb(capsys, "dlq", "requeue", "--aggregate", aggs[0], "--dry-run", "--json")
    assert json.loads(out) == {"dry_run": True, "count": 1, "requeued": []}
    code, out, _ = cdb(capsys, "dlq", "requeue", "--aggregate", aggs[0], "--json")
    assert json.loads(out)["count"] == 1
    code, out, _ = cdb(capsys, "dlq", "list", "--json")
    assert json.loads(out)["count"] == 2

    code, out, _ = cdb(capsys, "dlq", "purge", "--dry-run", "--json")
    assert json.loads(out) == {"dry_run": True, "count": 2}
    code, out, _ = cdb(capsys, "dlq", "purge", "--yes")
    assert code == 0
    assert "purged 2 dead letters" in out
    code, out, _ = cdb(capsys, "dlq", "list", "--json")
    assert json.loads(out)["count"] == 0
    audit = [
        json.loads(decoded(f[b"filter"])) | {"action": decoded(f[b"action"])}
        for _, f in redis_client.xrange(Keys(namespace).audit()) or []
        if f is not None
    ]
    assert [a["action"] for a in audit] == ["dlq.requeue", "dlq.purge"]
    assert audit[0]["aggregate"] == aggs[0]
