"""Embedded Redis and PostgreSQL: real processes, started by real `cdb` commands.

Every test that starts servers gives them a home of its own and stops them afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cdb.cli import context
from cdb.cli.app import main
from cdb.embedded import EmbeddedServers, testing
from cdb.embedded.state import pid_running

CLI = [sys.executable, "-c", "from cdb.cli.app import main; main()"]


def cdb_env(home: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CDB_")}
    env["CDB_HOME"] = str(home)
    env["CDB_SECRETS_DIR"] = str(home.parent / "no-secrets")
    env.update(extra)
    return env


def cdb_process(home: Path, *args: str, **extra: str) -> dict[str, Any]:
    """`cdb ARGS --json` as a process of its own (servers must outlive it)."""
    done = subprocess.run(
        [*CLI, *args, "--json"],
        env=cdb_env(home, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"cdb {' '.join(args)} failed: {done.stdout}{done.stderr}"
    document: dict[str, Any] = json.loads(done.stdout)
    return document


class Cli:
    """`cdb` run in this process (no interpreter start-up), with its own environment."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.monkeypatch = monkeypatch
        self.capsys = capsys

    def text(self, home: Path, *args: str, **extra: str) -> str:
        with self.monkeypatch.context() as patch:
            for name in os.environ:
                if name.startswith("CDB_"):
                    patch.delenv(name)
            for name, value in cdb_env(home, **extra).items():
                if name.startswith("CDB_"):
                    patch.setenv(name, value)
            self.capsys.readouterr()
            main(list(args))
            context.forget_servers()
            return self.capsys.readouterr().out

    def json(self, home: Path, *args: str, **extra: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.text(home, *args, "--json", **extra))
        return document


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(monkeypatch, capsys)


@pytest.fixture
def home() -> Iterator[Path]:
    """A home for embedded servers; whatever a test started there is stopped and deleted.

    Not under tmp_path: pytest resets its base temp dir to mode 0700 when another session
    starts, which would lock PostgreSQL's unprivileged user (we may be root) out of its data.
    """
    path = Path(tempfile.mkdtemp(prefix="cdb-test-home-")) / "home"
    try:
        yield path
    finally:
        try:
            EmbeddedServers(path).down()
        finally:
            context.forget_servers()
            shutil.rmtree(path.parent, ignore_errors=True)


def test_redis_runs_with_aof_noeviction_and_a_password(tmp_path: Path) -> None:
    with testing.redis_server(tmp_path) as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        try:
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
            assert client.config_get("bind") == {"bind": "127.0.0.1"}
            port = client.connection_pool.connection_kwargs["port"]
        finally:
            client.close()
        anonymous = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()


def test_postgres_accepts_its_password_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    with testing.postgres_server(tmp_path) as admin_url:
        with psycopg.connect(admin_url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("cdb",)
        password = admin_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(admin_url.replace(password, "wrong-password"), connect_timeout=5)

        with testing.scratch_database(admin_url) as scratch_url:
            name = scratch_url.rsplit("/", 1)[1]
            with psycopg.connect(scratch_url) as conn:
                conn.execute("CREATE TABLE t (x int)")  # holds a connection open on purpose
                with psycopg.connect(admin_url) as admin:
                    assert admin.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                    ).fetchone()
        with psycopg.connect(admin_url) as admin:
            gone = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            assert gone.fetchone() is None


def test_up_reuses_running_servers_and_down_stops_them(home: Path, cli: Cli) -> None:
    # Started by a process that then exits: the servers must outlive it.
    first = cdb_process(home, "up")["servers"]
    assert first["redis"]["up"]
    assert first["postgres"]["up"]

    second = cli.json(home, "up")["servers"]
    assert second["redis"]["pid"] == first["redis"]["pid"]
    assert second["postgres"]["pid"] == first["postgres"]["pid"]

    # The composition root of another process (this one) finds the same servers.
    settings = context.load_settings(home=home)
    client = context.redis_client(settings)
    try:
        assert client.info("server")["process_id"] == first["redis"]["pid"]
        client.set("survives-restart", "yes")
    finally:
        client.close()
    with psycopg.connect(context.database_url(settings)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("cdb",)

    stopped = cli.json(home, "down")["stopped"]
    assert stopped == {"redis": True, "postgres": True}
    assert not pid_running(first["redis"]["pid"])
    assert not pid_running(first["postgres"]["pid"])
    after = cli.json(home, "status")["servers"]
    assert not after["redis"]["up"]
    assert not after["postgres"]["up"]

    # Data survives a restart (AOF).
    again = cli.json(home, "up")["servers"]
    assert again["redis"]["pid"] != first["redis"]["pid"]
    client = context.redis_client(context.load_settings(home=home))
    try:
        assert client.get("survives-restart") == b"yes"
    finally:
        client.close()


def test_status_json_has_every_field_and_never_a_password(home: Path, cli: Cli) -> None:
    document = cli.json(home, "up")
    passwords = [
        (home / "secrets" / f"{name}_password").read_text().strip()
        for name in ("redis", "postgres")
    ]
    human = cli.text(home, "status")
    status = cli.json(home, "status")
    assert status["home"] == str(home.resolve())
    for name in ("redis", "postgres"):
        server = status["servers"][name]
        assert set(server) >= {"mode", "up", "url", "version", "pid", "port", "data_dir"}
        assert server["mode"] == "embedded"
        assert server["up"] is True
        assert server["pid"] == document["servers"][name]["pid"]
        assert ":***@127.0.0.1:" in server["url"]
        assert str(home.resolve()) in server["data_dir"]
        assert name in human
    assert status["servers"]["redis"]["version"].startswith("6.2")
    assert status["servers"]["postgres"]["version"].startswith("16")
    for password in passwords:
        assert password not in human
        assert password not in json.dumps(status)
    assert (home / "secrets" / "redis_password").stat().st_mode & 0o777 == 0o600
    assert (home / "secrets" / "postgres_password").stat().st_mode & 0o777 == 0o600


def test_two_commands_starting_at_once_start_one_set_of_servers(home: Path) -> None:
    commands = [
        subprocess.Popen(
            [*CLI, "up", "--json"],
            env=cdb_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [command.communicate(timeout=120) for command in commands]
    assert all(command.returncode == 0 for command in commands), outputs
    documents = [json.loads(stdout)["servers"] for stdout, _ in outputs]
    for name in ("redis", "postgres"):
        assert documents[0][name]["pid"] == documents[1][name]["pid"]


def test_configured_urls_are_used_and_nothing_is_started(
    home: Path, cli: Cli, redis_url: str, database_url: str
) -> None:
    external = {"CDB_REDIS_URL": redis_url, "CDB_DATABASE_URL": database_url}
    up = cli.json(home, "up", **external)["servers"]
    status = cli.json(home, "status", **external)["servers"]
    for document in (up, status):
        assert document["redis"]["mode"] == document["postgres"]["mode"] == "external"
        assert document["redis"]["up"]
        assert document["postgres"]["up"]
    for name, url in (("redis", redis_url), ("postgres", database_url)):
        credentials = url.split("://", 1)[1].split("@", 1)[0] if "@" in url else ""
        if ":" in credentials:
            assert credentials.split(":", 1)[1] not in json.dumps(status[name])
    assert not home.exists()
