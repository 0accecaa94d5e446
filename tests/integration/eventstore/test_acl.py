"""Derived ACL users on a real Redis: a service can do its job and nothing the topology denies.

Each test runs its own server (ACLs are server-wide: never the machine's Redis). Redis 6.2 is the
embedded one; Redis 7 is the system ``redis-server`` when one is installed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from cdb.cli import app as cli_app
from cdb.cli.acl import apply_user, server_major
from cdb.cli.app import main
from cdb.domain.envelope import EventEnvelope, NewEvent
from cdb.embedded import testing as embedded_testing
from cdb.errors import StoreError
from cdb.eventstore import AppendRequest, EventStore
from cdb.eventstore.acl import derive_acl
from cdb.eventstore.keys import Keys
from cdb.eventstore.topology import load_topology
from cdb.runtime import dlq as dead_letters
from cdb.runtime import inspect
from cdb.runtime.claim import autoclaim, reap_consumers
from cdb.runtime.consumer import Consumer
from cdb.runtime.handler import Ack, Delivery, Reject
from cdb.runtime.ordering import PartitionKeys
from tests.eventstore_events import order_placed, signal, tick

NS = "acl"
REDIS_7 = shutil.which("redis-server")


@dataclass(frozen=True)
class Server:
    url: str = field(repr=False)
    major: int
    passwords: dict[str, str] = field(repr=False)

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def login(self, user: str) -> redis.Redis:
        base = redis.Redis.from_url(self.url).connection_pool.connection_kwargs
        return redis.Redis(
            host=base["host"], port=base["port"], username=user, password=self.passwords[user]
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis7_url(tmp_path: Path) -> Iterator[str]:
    if REDIS_7 is None:
        pytest.skip("no system redis-server installed")
    port, password = _free_port(), uuid.uuid4().hex
    args = [REDIS_7, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    args += ["no", "--dir", str(tmp_path), "--requirepass", password]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        _wait(lambda: _answers(url), "redis-server 7 to answer", 10.0)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(params=[6, 7], ids=["redis6-embedded", "redis7-system"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == 7:
        url = request.getfixturevalue("redis7_url")
        yield _with_users(url)
        return
    with embedded_testing.redis_server(tmp_path / "redis") as url:
        yield _with_users(url)


def _with_users(url: str) -> Server:
    admin = redis.Redis.from_url(url)
    try:
        major = server_major(admin)
        passwords: dict[str, str] = {}
        for user in derive_acl(load_topology(), NS):
            passwords[user.name] = uuid.uuid4().hex
            apply_user(admin, user, passwords[user.name], major)
    finally:
        admin.close()
    return Server(url, major, passwords)


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def _wait(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}")


def test_signal_appends_its_signals_and_reads_its_own_topic(server: Server) -> None:
    client = server.login("cdb-signal")
    store = EventStore(client, load_topology(), NS)  # CONFIG is not granted: a warning only

    result = store.append("signal-s1", [signal("s1")], expected_version=0)

    assert (result.first_seq, result.duplicate) == (1, False)
    assert store.append("signal-s1", [signal("s1")], expected_version=0).duplicate
    assert [e.event_id for e in store.read_aggregate("signal-s1")] == [signal("s1").event_id]
    (entry,) = store.read_topic("signals")
    assert entry.entry_id == result.entry_ids[0]


def test_signal_may_not_write_orders_nor_run_admin_commands(server: Server) -> None:
    client = server.login("cdb-signal")
    keys = Keys(NS)
    orders = keys.topic("orders", 0)

    with pytest.raises(redis.exceptions.NoPermissionError):
        client.xadd(orders, {"forged": "1"})
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.xrange(orders)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.config_get("requirepass")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.keys("*")
    # The atomic append declares the order stream, its id hash and the orders topic: refused.
    store = EventStore(client, load_topology(), NS)
    with pytest.raises(StoreError, match="no permissions to access one of the keys"):
        store.append("order-o1", [order_placed("o1")], expected_version=0)
    # Keys a script reaches without declaring them are checked too (6.2 and 7 alike).
    sneaky = "return redis.call('XADD', ARGV[1], '*', 'forged', '1')"
    sha = client.script_load(sneaky)
    with pytest.raises(redis.ResponseError, match="can't access"):
        client.evalsha(sha, 1, keys.topic("signals", 0), orders)
    # Nothing reached the orders topic.
    admin = server.admin()
    assert admin.xlen(orders) == 0
    admin.close()


def test_on_redis_7_a_consumer_cannot_write_its_input_topic(server: Server) -> None:
    if server.major < 7:
        pytest.skip("Redis 6.2 has no selectors: a consumer's input topic is writable there")
    client = server.login("cdb-signal")
    market = Keys(NS).topic("market_data", 0)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.xadd(market, {"forged": "1"})
    # DEL is granted for the group's own keys and the lease only, not for any stream.
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.delete(Keys(NS).topic("signals", 0))
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.delete(market)
    sha = client.script_load("return redis.call('XADD', KEYS[1], '*', 'forged', '1')")
    with pytest.raises(redis.ResponseError, match="user executing the script can't"):
        client.evalsha(sha, 1, market)


def test_feed_to_signal_runs_on_the_derived_users(server: Server) -> None:
    topology = load_topology()
    feed = EventStore(server.login("cdb-feed"), topology, NS)
    ticks = [tick("BTC_USDT", n) for n in range(1, 5)]
    number = {t.event_id: n for n, t in enumerate(ticks, start=1)}
    feed.publish("market_data", "market-BTC_USDT", ticks)
    signal_client = server.login("cdb-signal")
    store = EventStore(signal_client, topology, NS)

    def handler(event: EventEnvelope, delivery: Delivery) -> Ack | Reject:
        n = number[event.event_id]
        if n == 4:
            return Reject("the last tick is refused, to exercise the dead-letter path")
        out: NewEvent = signal(f"from-{n}")
        return Ack(outputs=[AppendRequest(f"signal-from-{n}", [out], 0)])

    consumer = Consumer(
        signal_client,
        topology,
        NS,
        topic="market_data",
        group="signal",
        handler=handler,
        store=store,
    )
    dlq = Keys(NS).dead_letter("market_data", "signal", 0)
    admin = server.admin()
    try:
        deadline = time.monotonic() + 10.0
        while not (admin.xlen(Keys(NS).topic("signals", 0)) == 3 and admin.xlen(dlq) == 1):
            assert time.monotonic() < deadline, "3 signals and 1 dead letter within 10 s"
            consumer.step()
        assert admin.xpending(Keys(NS).topic("market_data", 0), "signal")["pending"] == 0
        # The claim and reap paths a second replica runs need nothing more.
        pk = PartitionKeys.of(Keys(NS), "market_data", "signal", 0)
        autoclaim(signal_client, pk, "standby", 0)
        reap_consumers(signal_client, pk, "standby", 0)
        # The operator inspects and purges what the service may not touch itself.
        operator = server.login("cdb-operator")
        assert len(inspect.streams_info(operator, topology, NS)) == len(topology.topics)
        inspect.pending_info(operator, topology, NS, "market_data", "signal")
        (letter,) = dead_letters.list_dead_letters(operator, topology, NS, dead_letters.DlqFilter())
        assert letter.group == "signal"
        purged, _ = dead_letters.purge(
            operator, topology, NS, dead_letters.DlqFilter(topic="market_data")
        )
        assert purged == 1
        with pytest.raises(redis.exceptions.NoPermissionError):
            operator.flushall()
    finally:
        consumer.close()
        admin.close()


def test_the_projector_reads_with_its_group_and_appends_nothing(server: Server) -> None:
    signal_store = EventStore(server.login("cdb-signal"), load_topology(), NS)
    signal_store.append("signal-p1", [signal("p1")], expected_version=0)
    projector = server.login("cdb-projector")
    signals = Keys(NS).topic("signals", 0)

    projector.xgroup_create(signals, "projector", id="0", mkstream=True)
    reply: Any = projector.xreadgroup("projector", "p-1", {signals: ">"}, count=10)
    ((_, rows),) = reply
    assert projector.xack(signals, "projector", rows[0][0]) == 1
    if server.major >= 7:  # 6.2: one key list for all commands, so XADD would be allowed
        with pytest.raises(redis.exceptions.NoPermissionError):
            projector.xadd(signals, {"forged": "1"})
    store = EventStore(projector, load_topology(), NS)
    with pytest.raises(StoreError, match="no permissions"):
        store.append("signal-p2", [signal("p2")], expected_version=0)


def _cdb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_shows_placeholders_and_applies_passwords_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_app._register()
    monkeypatch.setattr(cli_app, "_register", lambda: None)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    password = uuid.uuid4().hex
    (secrets / "cdb-signal").write_text(password + "\n")
    with embedded_testing.redis_server(tmp_path / "redis") as url:
        monkeypatch.setenv("CDB_REDIS_URL", url)
        monkeypatch.setenv("CDB_NAMESPACE", NS)

        code, out, _ = _cdb(capsys, "acl", "show", "--service", "signal", "--redis-version", "6")
        assert code == 0
        assert out.startswith('ACL SETUSER cdb-signal reset on "><from file>" resetkeys')

        # A missing file stops everything before anything is applied, naming the file.
        code, out, err = _cdb(
            capsys, "acl", "apply", "--password-dir", str(secrets), "-s", "signal", "-s", "feed"
        )
        assert code == 2
        assert f"{secrets / 'cdb-feed'}" in err
        admin = redis.Redis.from_url(url)
        assert b"cdb-signal" not in admin.acl_users()

        code, out, err = _cdb(
            capsys, "acl", "apply", "--password-dir", str(secrets), "-s", "signal", "--json"
        )
        assert code == 0, err
        assert json.loads(out) == {"redis_version": 6, "applied": ["cdb-signal"]}
        assert password not in out + err
        signal_client = Server(url, 6, {"cdb-signal": password}).login("cdb-signal")
        assert signal_client.ping()
        with pytest.raises(redis.exceptions.NoPermissionError):
            signal_client.flushall()
        signal_client.close()
        admin.close()
