"""The embedded servers' home directory: layout, lock, state file, generated passwords.

    <home>/
        lock                    fcntl lock: one command at a time starts or stops servers
        state.json              ports, pids, versions, data dirs of the servers last started
        secrets/                0700; one generated password per server, each file 0600
        redis/                  redis.conf (0600), appendonlydir/, redis.log, redis.pid
        postgres/               data/ (the cluster), postgres.log

Also small process helpers shared by both servers: free ports, liveness, deadlines.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from cdb.errors import ServerError

LOCK_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ServerRecord:
    """What state.json remembers of one server."""

    pid: int | None
    port: int
    version: str
    data_dir: str
    log_file: str
    started_at: float


class Home:
    """Paths and persistent state under one embedded-servers home directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    def server_dir(self, name: str) -> Path:
        return self.root / name

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.mkdir(mode=0o700, exist_ok=True)
        self.secrets_dir.chmod(0o700)

    @contextlib.contextmanager
    def locked(self, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the home's lock: two commands starting servers at once start them once."""
        self.ensure()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise ServerError(
                            f"{self.lock_file}: another cdb command has held this lock for "
                            f"{timeout_s:.0f} s; is it stuck?"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # state.json ----------------------------------------------------------------------------

    def read_state(self) -> dict[str, ServerRecord]:
        try:
            raw = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ServerError(f"{self.state_file}: unreadable ({exc}); delete it") from None
        records: dict[str, ServerRecord] = {}
        for name, fields in raw.get("servers", {}).items():
            with contextlib.suppress(TypeError):
                records[name] = ServerRecord(**fields)
        return records

    def record(self, name: str) -> ServerRecord | None:
        return self.read_state().get(name)

    def write_record(self, name: str, record: ServerRecord | None) -> None:
        """Replace one server's record (call under :meth:`locked`)."""
        records = self.read_state()
        if record is None:
            records.pop(name, None)
        else:
            records[name] = record
        document: dict[str, Any] = {
            "servers": {key: asdict(value) for key, value in sorted(records.items())}
        }
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.state_file)

    # passwords -----------------------------------------------------------------------------

    def password(self, name: str) -> str:
        """The server's generated password, created (mode 0600) on first use."""
        self.ensure()
        path = self.secrets_dir / f"{name}_password"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            value = path.read_text(encoding="utf-8").strip()
            if not value:
                raise ServerError(f"{path} is empty; delete it and {name}'s data") from None
            return value
        value = secrets.token_urlsafe(24)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
        return value

    def has_password(self, name: str) -> bool:
        return (self.secrets_dir / f"{name}_password").is_file()


def pid_running(pid: int | None, names: tuple[str, ...] = ()) -> bool:
    """True when ``pid`` is a live (non-zombie) process, whose name starts with one of ``names``."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return not names or process.name().startswith(names)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def pid_is_zombie(pid: int | None) -> bool:
    """True for a process that has exited but not yet been reaped by its parent."""
    if not pid or pid < 0:
        return False
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: a port left in TIME_WAIT by our own last run is free to reuse.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if nothing listens there (stable URLs across restarts), else a free port."""
    if preferred and port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until true; raise :class:`ServerError` naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while not condition():
        if time.monotonic() > deadline:
            raise ServerError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` is gone; False if it is still running at the deadline."""
    try:
        wait_for(lambda: not pid_running(pid), timeout_s, f"process {pid} to exit")
    except ServerError:
        return False
    return True


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, to explain a failed start."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ServerStatus:
    """One server as ``cdb status`` shows it. ``url`` is always masked."""

    name: str
    mode: str  # "embedded" or "external"
    up: bool
    url: str
    version: str | None = None
    pid: int | None = None
    port: int | None = None
    data_dir: str | None = None
    log_file: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
