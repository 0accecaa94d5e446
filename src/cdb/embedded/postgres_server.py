"""Embedded PostgreSQL: the binaries shipped by the pgserver wheel, driven by us.

``initdb`` once (superuser ``cdb`` with a generated password, scram-sha-256 on TCP), then
``pg_ctl start`` on 127.0.0.1 and a free port, Unix sockets off. The postmaster outlives the
command that started it; later commands find it through ``postmaster.pid`` and reuse it.
pgserver's own Python wrapper is not used: it ties the server's life to one Python process.

PostgreSQL refuses to run as root; under root every PostgreSQL binary runs as the unprivileged
system user ``cdb-postgres`` (created if missing), which owns the data directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from cdb.config import mask_url
from cdb.embedded.state import (
    Home,
    ServerRecord,
    ServerStatus,
    free_port,
    pid_is_zombie,
    pid_running,
    tail,
    wait_for,
    wait_for_exit,
)
from cdb.errors import ServerError

NAME = "postgres"
SUPERUSER = "cdb"
DATABASE = "cdb"
SYSTEM_USER = "cdb-postgres"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
_PROCESS_NAMES = ("postgres",)

_BASE_CONF = """
# --- cdb (written once by initdb's caller) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
max_connections = 200
"""
# Scratch clusters (test sessions) trade crash safety for speed; `cdb up` never does.
_SCRATCH_CONF = """
fsync = off
synchronous_commit = off
full_page_writes = off
"""


def postgres_bin_dir() -> Path:
    """Directory of pgserver's PostgreSQL binaries (found without importing pgserver)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("pgserver is not installed: cannot start an embedded PostgreSQL")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not os.access(bin_dir / "pg_ctl", os.X_OK):
        raise ServerError(f"{bin_dir}: no executable pg_ctl")
    return bin_dir


@dataclass(frozen=True)
class _RunAs:
    """Who runs the PostgreSQL binaries: ourselves, or the system user when we are root."""

    uid: int | None
    gid: int | None

    @classmethod
    def for_current_process(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls(None, None)
        entry = _system_user()
        return cls(entry.pw_uid, entry.pw_gid)

    def kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def make_traversable(self, path: Path) -> None:
        """Give the user search (x) permission on every directory above ``path`` lacking it."""
        if self.uid is None:
            return
        for directory in reversed(path.parents):
            info = directory.stat()
            if info.st_uid == self.uid or info.st_mode & stat.S_IXOTH:
                continue
            directory.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    done = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SYSTEM_USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Exit status 9: another process created it meanwhile, which is fine.
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise ServerError(
            f"PostgreSQL cannot run as root and creating the user '{SYSTEM_USER}' failed "
            f"(useradd exit {done.returncode}: {done.stderr.strip()}); create it, or run "
            "cdb as an ordinary user"
        ) from None


class EmbeddedPostgres:
    """The PostgreSQL cluster of one home directory.

    ``durable=False`` (test sessions only) turns fsync off for speed; the setting is written
    when the cluster is created and kept for its life. ``server_dir`` puts the cluster and its
    log somewhere else than ``<home>/postgres``.
    """

    def __init__(
        self, home: Home | Path, *, durable: bool = True, server_dir: Path | None = None
    ) -> None:
        self.home = home if isinstance(home, Home) else Home(home)
        self.durable = durable
        self.dir = server_dir.resolve() if server_dir else self.home.server_dir(NAME)
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "postgres.log"

    def url(self, port: int, database: str = DATABASE) -> str:
        password = self.home.password(NAME)
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/{database}"

    def admin_url(self, port: int) -> str:
        """URL of the ``postgres`` maintenance database, as the superuser (CREATE DATABASE)."""
        return self.url(port, "postgres")

    def ensure_running(self) -> str:
        """Create the cluster if needed, start it unless it runs; return the ``cdb`` DB URL."""
        with self.home.locked():
            return self.url(self._ensure_locked().port)

    def ensure_running_admin(self) -> str:
        with self.home.locked():
            return self.admin_url(self._ensure_locked().port)

    def stop(self) -> bool:
        """``pg_ctl stop -m fast`` and wait for the postmaster to exit; True if it was running."""
        if not self.data_dir.exists():
            return False  # never created here; do not create the home just to look
        with self.home.locked():
            pid, _port = self._postmaster()
            if not pid_running(pid, _PROCESS_NAMES):
                return False
            assert pid is not None
            done = self._run(
                [
                    "pg_ctl",
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(STOP_TIMEOUT_S),
                ],
                timeout=STOP_TIMEOUT_S + 10,
            )
            if done.returncode != 0 and pid_running(pid, _PROCESS_NAMES):
                os.kill(pid, signal.SIGINT)  # SIGINT is the postmaster's "fast" shutdown
            if not wait_for_exit(pid, STOP_TIMEOUT_S):
                raise ServerError(f"PostgreSQL (pid {pid}) did not stop within {STOP_TIMEOUT_S} s")
            return True

    def status(self) -> ServerStatus:
        record = self.home.record(NAME)
        pid, port = self._postmaster()
        port = port or (record.port if record else None)
        running = pid_running(pid, _PROCESS_NAMES)
        version = self._server_version(port) if running and port else None
        return ServerStatus(
            name=NAME,
            mode="embedded",
            up=version is not None,
            url=mask_url(f"postgresql://{SUPERUSER}:x@127.0.0.1:{port}/{DATABASE}") if port else "",
            version=version or (record.version if record else None),
            pid=pid if version is not None else None,
            port=port,
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
        )

    # internals -----------------------------------------------------------------------------

    def _ensure_locked(self) -> ServerRecord:
        run_as = _RunAs.for_current_process()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(run_as)
        pid, port = self._postmaster()
        record = self.home.record(NAME)
        if pid_running(pid, _PROCESS_NAMES) and port:
            assert pid is not None
            wait_for(
                lambda: (
                    self._server_version(port) is not None or not pid_running(pid, _PROCESS_NAMES)
                ),
                START_TIMEOUT_S,
                f"the running PostgreSQL (pid {pid}) to accept connections on port {port}",
            )
            if self._server_version(port) is None:
                raise ServerError(
                    f"PostgreSQL (pid {pid}, port {port}) runs but refuses our connections; "
                    f"{self.log_file}:\n{tail(self.log_file)}"
                )
            if record is None or record.pid != pid or record.port != port:
                record = self._record(pid, port)
            return record
        if pid_is_zombie(pid):
            # A killed postmaster not yet reaped still "holds" postmaster.pid, and PostgreSQL
            # refuses to start until it is gone.
            with contextlib.suppress(ServerError):
                wait_for(lambda: not pid_is_zombie(pid), 15, f"dead postmaster {pid} to go")
        record = self._start(record.port if record else None)
        self._create_database(record.port)
        return record

    def _initdb(self, run_as: _RunAs) -> None:
        bin_dir = postgres_bin_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        run_as.own(self.dir)
        run_as.make_traversable(self.dir)
        run_as.make_traversable(bin_dir / "pg_ctl")
        if self.data_dir.exists():
            raise ServerError(
                f"{self.data_dir} exists but holds no PostgreSQL cluster (no PG_VERSION); "
                "move it away or delete it"
            )
        # initdb reads the password from a file the server user can read; removed right after.
        pwfile = self.dir / "initdb.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.home.password(NAME) + "\n")
        run_as.own(pwfile)
        try:
            done = self._run(
                [
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                    *([] if self.durable else ["--no-sync"]),
                ],
                timeout=120,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise ServerError(f"initdb failed (exit {done.returncode}):\n{done.stdout.strip()}")
        conf = _BASE_CONF + ("" if self.durable else _SCRATCH_CONF)
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as handle:
            handle.write(conf)

    def _start(self, preferred: int | None) -> ServerRecord:
        postgres_bin_dir()
        last_error = ""
        for _attempt in range(3):
            port = free_port(preferred)
            preferred = None
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            done = self._run(
                [
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    f"-p {port}",
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                ],
                timeout=START_TIMEOUT_S + 10,
            )
            pid, _ = self._postmaster()
            if done.returncode == 0 and pid is not None:
                return self._record(pid, port)
            last_error = self._log_since(log_offset) or done.stdout
            if "could not bind" not in last_error:
                break
        raise ServerError(
            f"embedded PostgreSQL did not start; {self.log_file}:\n{last_error.strip()}"
        )

    def _record(self, pid: int, port: int) -> ServerRecord:
        record = ServerRecord(
            pid=pid,
            port=port,
            version=_binary_version(),
            data_dir=str(self.data_dir),
            log_file=str(self.log_file),
            started_at=time.time(),
        )
        self.home.write_record(NAME, record)
        return record

    def _create_database(self, port: int) -> None:
        """The ``cdb`` database, unless it exists (a first start may have died before it)."""
        with psycopg.connect(self.admin_url(port), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _server_version(self, port: int | None) -> str | None:
        if not port:
            return None
        try:
            with psycopg.connect(self.admin_url(port), connect_timeout=2) as conn:
                row = conn.execute("SHOW server_version").fetchone()
        except psycopg.Error:
            return None
        return str(row[0]) if row else None

    def _postmaster(self) -> tuple[int | None, int | None]:
        """(pid, port) from ``postmaster.pid``, or (None, None) when there is none."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None, None
        # A negative pid marks a single-user backend (initdb at work), not a postmaster.
        return (pid, port) if pid > 0 else (None, None)

    def _run(self, command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        bin_dir = postgres_bin_dir()
        # PG* variables of the caller (PGDATA, PGPORT, ...) would redirect pg_ctl and initdb.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(
            [str(bin_dir / command[0]), *command[1:]],
            cwd=self.dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            start_new_session=True,
            check=False,
            **_RunAs.for_current_process().kwargs(),
        )

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return tail(self.log_file)


def _binary_version() -> str:
    done = subprocess.run(
        [str(postgres_bin_dir() / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip().rsplit(" ", 1)[-1] if done.returncode == 0 else "unknown"
